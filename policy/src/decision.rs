//! The answer to a policy question, and the rule that gave it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A row of the decision table in POLICY.md, or one of the rules stated beside it.
///
/// The codes are stable: they appear in Matrix error messages, the audit log and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Register.
    R1,
    /// Log in / use the account.
    R2,
    /// Create a workspace.
    W1,
    /// Create a room.
    W2,
    /// Create a direct conversation.
    W3,
    /// Be invited to / join a room of a class.
    M1,
    /// Invite someone.
    M2,
    /// Invite a guest.
    M3,
    /// A direct conversation has at most 2 members.
    M4,
    /// Highest power level in a room.
    P1,
    /// Open a room.
    P2,
    /// Close a room.
    P3,
    /// Publish a room in the room directory.
    D1,
    /// See the room directory.
    D2,
    /// Search the user directory.
    D3,
    /// Access classes: a room inside a workspace is never more open than the workspace, and a
    /// direct conversation's class is fixed.
    C1,
    /// Delegated administration: only within the admin's subtree (and, for appointments, its
    /// sub-units).
    A1,
    /// Delegated administration: never above the admin's own tier.
    A2,
    /// Delegated administration: only local agents and public agents hold a delegation.
    A3,
}

impl Rule {
    /// A short title for the rule, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Rule::R1 => "registration",
            Rule::R2 => "account use",
            Rule::W1 => "workspace creation",
            Rule::W2 => "room creation",
            Rule::W3 => "direct conversations",
            Rule::M1 => "room membership",
            Rule::M2 => "invitations",
            Rule::M3 => "inviting guests",
            Rule::M4 => "direct conversations hold two people",
            Rule::P1 => "power levels",
            Rule::P2 => "opening a room",
            Rule::P3 => "closing a room",
            Rule::D1 => "room directory publication",
            Rule::D2 => "room directory",
            Rule::D3 => "user directory",
            Rule::C1 => "access classes",
            Rule::A1 => "administration scope",
            Rule::A2 => "administration tier ceiling",
            Rule::A3 => "administrators",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The policy's answer.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused.
    Deny {
        /// The rule that refused.
        rule: Rule,
        /// What happened and what the user can do about it, in a sentence.
        reason: String,
    },
}

impl Decision {
    /// A refusal by `rule`.
    pub fn deny(rule: Rule, reason: impl Into<String>) -> Decision {
        Decision::Deny { rule, reason: reason.into() }
    }

    /// Whether the action may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// The refusing rule, `None` for `Allow`.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Decision::Allow => None,
            Decision::Deny { rule, .. } => Some(*rule),
        }
    }

    /// The message for a Matrix error: which rule refused and why. `None` for `Allow`.
    pub fn message(&self) -> Option<String> {
        match self {
            Decision::Allow => None,
            Decision::Deny { rule, reason } => {
                Some(format!("Refused by policy rule {rule} ({}): {reason}", rule.title()))
            }
        }
    }
}

/// A refusal on its way out of a check; lets checks chain with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) rule: Rule,
    pub(crate) reason: String,
}

/// The result of one check.
pub(crate) type Verdict = Result<(), Refusal>;

/// A refusal by `rule` with `reason`, for checks that return something besides `()`.
pub(crate) fn refusal(rule: Rule, reason: impl Into<String>) -> Refusal {
    Refusal { rule, reason: reason.into() }
}

/// Refuses by `rule` with `reason`.
pub(crate) fn refuse(rule: Rule, reason: impl Into<String>) -> Verdict {
    Err(refusal(rule, reason))
}

/// Refuses by `rule` unless `condition` holds.
pub(crate) fn require(condition: bool, rule: Rule, reason: impl FnOnce() -> String) -> Verdict {
    if condition { Ok(()) } else { refuse(rule, reason()) }
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Decision {
        match verdict {
            Ok(()) => Decision::Allow,
            Err(Refusal { rule, reason }) => Decision::Deny { rule, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_print_and_serialise_as_their_code() {
        assert_eq!(Rule::M3.to_string(), "M3");
        assert_eq!(serde_json::to_string(&Rule::M3).expect("serialise"), "\"M3\"");
    }

    #[test]
    fn a_refusal_message_names_the_rule() {
        let decision = Decision::deny(Rule::M3, "only state agents invite guests");
        assert_eq!(
            decision.message().as_deref(),
            Some("Refused by policy rule M3 (inviting guests): only state agents invite guests")
        );
        assert_eq!(Decision::Allow.message(), None);
    }
}
