//! Room access classes, carried by the `fr.relais.access` state event.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names;
use crate::tier::Tier;

/// Who may be a member of a room or a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessClass {
    /// State agents only. Also the class of a room without the event: a room nobody
    /// classified holds the most sensitive data we can imagine until someone says otherwise.
    Agents,
    /// State and public-sector agents.
    Public,
    /// Everyone; guests only by invitation.
    Open,
    /// A conversation between two users, any tiers allowed by the decision table.
    Direct,
}

impl AccessClass {
    /// The classes on the open/close scale, most restrictive first. `Direct` is not on it:
    /// a direct conversation is neither opened nor closed, its membership is fixed at two.
    pub const SCALE: [AccessClass; 3] =
        [AccessClass::Agents, AccessClass::Public, AccessClass::Open];

    /// The class of a room, given the class its `fr.relais.access` event holds, if any.
    pub fn or_default(class: Option<AccessClass>) -> AccessClass {
        class.unwrap_or(AccessClass::Agents)
    }

    /// Reads the content of a `fr.relais.access` event.
    ///
    /// A missing event, a missing field or an unknown class all give `Agents`: a typo in a
    /// state event must close a room, never open it.
    pub fn from_event_content(content: Option<&serde_json::Value>) -> AccessClass {
        content
            .and_then(|c| c.get(names::ACCESS_CLASS_FIELD))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or(AccessClass::Agents)
    }

    /// The content of the `fr.relais.access` event that sets this class.
    pub fn to_event_content(self) -> serde_json::Value {
        serde_json::json!({ names::ACCESS_CLASS_FIELD: self })
    }

    /// Whether a user of `tier` may be a member (before any invitation requirement).
    pub fn admits(self, tier: Tier) -> bool {
        match self {
            AccessClass::Agents => tier == Tier::Agent,
            AccessClass::Public => tier >= Tier::Public,
            AccessClass::Open | AccessClass::Direct => true,
        }
    }

    /// The most restrictive class that admits `tier` (`Direct` aside).
    pub fn narrowest_admitting(tier: Tier) -> AccessClass {
        match tier {
            Tier::Agent => AccessClass::Agents,
            Tier::Public => AccessClass::Public,
            Tier::Guest => AccessClass::Open,
        }
    }

    /// Position on the open/close scale, `None` for `Direct`.
    fn openness(self) -> Option<u8> {
        match self {
            AccessClass::Agents => Some(0),
            AccessClass::Public => Some(1),
            AccessClass::Open => Some(2),
            AccessClass::Direct => None,
        }
    }

    /// Compares how open two classes are; `None` when `Direct` is involved (and the classes differ),
    /// because a direct conversation cannot be moved along the scale.
    pub fn compare_openness(self, other: AccessClass) -> Option<Ordering> {
        if self == other {
            return Some(Ordering::Equal);
        }
        Some(self.openness()?.cmp(&other.openness()?))
    }

    /// Whether `self` lets in strictly more tiers than `other` on the open/close scale.
    pub fn is_more_open_than(self, other: AccessClass) -> bool {
        self.compare_openness(other) == Some(Ordering::Greater)
    }

    /// The class that applies to a room whose parent workspace has class `workspace`:
    /// never more open than the workspace.
    ///
    /// A direct room placed in a workspace takes the workspace's class, and a workspace that
    /// claims to be `Direct` (meaningless for a space) counts as `Agents`: both are
    /// inconsistent states, and we resolve them on the closed side.
    pub fn within(self, workspace: AccessClass) -> AccessClass {
        let Some(ceiling) = workspace.openness() else {
            return AccessClass::Agents;
        };
        match self.openness() {
            Some(own) if own <= ceiling => self,
            _ => workspace,
        }
    }

    /// The class a new room gets when the request names none: the most restrictive one the
    /// creator's tier may create. `None` for guests, who create direct conversations only.
    pub fn default_for_creator(tier: Tier) -> Option<AccessClass> {
        match tier {
            Tier::Agent => Some(AccessClass::Agents),
            Tier::Public => Some(AccessClass::Public),
            Tier::Guest => None,
        }
    }

    /// The lowercase name used in events and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessClass::Agents => "agents",
            AccessClass::Public => "public",
            AccessClass::Open => "open",
            AccessClass::Direct => "direct",
        }
    }
}

impl fmt::Display for AccessClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_room_without_the_event_is_agents_only() {
        assert_eq!(AccessClass::or_default(None), AccessClass::Agents);
        assert_eq!(AccessClass::from_event_content(None), AccessClass::Agents);
        assert_eq!(AccessClass::from_event_content(Some(&json!({}))), AccessClass::Agents);
        assert_eq!(
            AccessClass::from_event_content(Some(&json!({"class": "wide-open"}))),
            AccessClass::Agents
        );
    }

    #[test]
    fn event_content_round_trips() {
        for class in
            [AccessClass::Agents, AccessClass::Public, AccessClass::Open, AccessClass::Direct]
        {
            let content = class.to_event_content();
            assert_eq!(AccessClass::from_event_content(Some(&content)), class);
        }
    }

    #[test]
    fn classes_admit_tiers() {
        use AccessClass::*;
        assert!(
            Agents.admits(Tier::Agent)
                && !Agents.admits(Tier::Public)
                && !Agents.admits(Tier::Guest)
        );
        assert!(Public.admits(Tier::Public) && !Public.admits(Tier::Guest));
        assert!(Open.admits(Tier::Guest) && Direct.admits(Tier::Guest));
    }

    #[test]
    fn openness_orders_the_scale_and_leaves_direct_out() {
        use AccessClass::*;
        assert!(Open.is_more_open_than(Public) && Public.is_more_open_than(Agents));
        assert!(!Agents.is_more_open_than(Open));
        assert_eq!(Direct.compare_openness(Agents), None);
        assert_eq!(Direct.compare_openness(Direct), Some(Ordering::Equal));
    }

    #[test]
    fn a_child_is_never_more_open_than_its_workspace() {
        use AccessClass::*;
        assert_eq!(Open.within(Public), Public);
        assert_eq!(Agents.within(Open), Agents);
        assert_eq!(Direct.within(Public), Public);
        assert_eq!(Open.within(Direct), Agents);
    }
}
