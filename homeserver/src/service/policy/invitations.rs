//! Registration invitations: an admin (or, for a guest, the sponsoring agent) issues a token that
//! lets its holder register an account of a given tier in a given unit (rule R1). Only the token's
//! hash is stored, in a `fr.relais.invitation` state event of the unit's room; each use is counted
//! there, so a single-use token works once even across restarts.

use relais_appservice::records::{AuditEntry, InvitationRecord, UserRecord, names};
use relais_policy::{Action, Tier};
use ruma::UserId;
use serde::Deserialize;
use serde_json::json;

use super::PolicyError;
use crate::service::{
    Services,
    accounts::{hash_token, new_token},
    ephemeral::now_ms,
};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What an admin asks for when issuing an invitation.
#[derive(Clone, Debug, Deserialize)]
pub struct NewInvitation {
    /// The tier of the accounts.
    pub tier: Tier,
    /// Their unit; the issuer's own when absent.
    #[serde(default)]
    pub unit: Option<String>,
    /// How many accounts it may create (1 by default).
    #[serde(default = "one")]
    pub uses: u32,
    /// How long the token stays valid, in days (7 by default).
    #[serde(default = "seven")]
    pub valid_days: u64,
    /// For guests: how long each account lasts, in days (`policy.guest_default_term_days` by
    /// default).
    #[serde(default)]
    pub guest_term_days: Option<u64>,
    /// Why (for the audit log).
    #[serde(default)]
    pub reason: String,
    /// The token itself, when the issuer chooses it (the Synapse admin API allows it); a random
    /// one otherwise. 1 to 64 characters of `A-Z a-z 0-9 . _ ~ -`.
    #[serde(default)]
    pub token: Option<String>,
    /// An absolute expiry, in milliseconds since the epoch, instead of `valid_days`.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// A change to an invitation: each field left `None` stays as it is.
#[derive(Clone, Debug, Default)]
pub struct InvitationChange {
    /// The registrations it allows in all (uses already taken count against it).
    pub uses_allowed: Option<u32>,
    /// Its new expiry, in milliseconds since the epoch.
    pub expires_at_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn seven() -> u64 {
    7
}

impl Services {
    /// Issues an invitation; returns its token (shown once, never stored) and its record.
    pub fn policy_issue_invitation(
        &self,
        actor: &UserId,
        new: NewInvitation,
    ) -> Result<(String, String, InvitationRecord), PolicyError> {
        if !self.policy.enabled() {
            return Err(PolicyError::Disabled);
        }
        let unit = self.unit_or_own(actor, new.unit.as_deref())?;
        if new.uses == 0 {
            return Err(PolicyError::BadRequest("`uses` must be at least 1".into()));
        }
        let authority =
            self.authorise(actor, &Action::IssueInvitation { tier: new.tier, unit: unit.clone() })?;
        let token = match new.token {
            Some(token) => {
                let valid = (1..=64).contains(&token.len())
                    && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
                if !valid {
                    return Err(PolicyError::BadRequest(
                        "a token is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'"
                            .into(),
                    ));
                }
                token
            }
            None => new_token(),
        };
        let hash = hash_token(&token);
        if self.policy.service.invitation(&hash).is_some() {
            return Err(PolicyError::BadRequest("this token already exists".into()));
        }
        let record = InvitationRecord {
            tier: new.tier,
            unit: unit.clone(),
            issued_by: actor.as_str().into(),
            expires_at_ms: new
                .expires_at_ms
                .unwrap_or_else(|| now_ms().saturating_add(new.valid_days.max(1) * DAY_MS)),
            uses_left: new.uses,
            uses_allowed: Some(new.uses),
            guest_term_ms: (new.tier == Tier::Guest).then(|| {
                new.guest_term_days
                    .map_or_else(|| self.policy.service.guest_default_term_ms(), |d| d * DAY_MS)
            }),
            revoked: false,
        };
        let audit = AuditEntry {
            action: "issue_invitation".into(),
            actor: actor.as_str().into(),
            authority,
            target: hash.clone(),
            unit: unit.clone(),
            details: json!({ "tier": record.tier, "uses": record.uses_left, "expires_at_ms": record.expires_at_ms }),
            reason: new.reason,
        };
        self.write_invitation(&hash, &record, Some(&audit))?;
        Ok((token, hash, record))
    }

    /// Withdraws an invitation, named by the hash of its token.
    pub fn policy_revoke_invitation(
        &self,
        actor: &UserId,
        hash: &str,
        reason: &str,
    ) -> Result<(), PolicyError> {
        let Some(mut record) = self.policy.service.invitation(hash) else {
            return Err(PolicyError::NotFound("no such invitation".into()));
        };
        let authority = self.authorise(
            actor,
            &Action::IssueInvitation { tier: record.tier, unit: record.unit.clone() },
        )?;
        record.revoked = true;
        let audit = AuditEntry {
            action: "revoke_invitation".into(),
            actor: actor.as_str().into(),
            authority,
            target: hash.to_owned(),
            unit: record.unit.clone(),
            details: json!({}),
            reason: reason.to_owned(),
        };
        self.write_invitation(hash, &record, Some(&audit))
    }

    /// Changes how many registrations an invitation allows, or when it expires.
    pub fn policy_change_invitation(
        &self,
        actor: &UserId,
        hash: &str,
        change: InvitationChange,
    ) -> Result<InvitationRecord, PolicyError> {
        let Some(mut record) = self.policy.service.invitation(hash) else {
            return Err(PolicyError::NotFound("no such invitation".into()));
        };
        let authority = self.authorise(
            actor,
            &Action::IssueInvitation { tier: record.tier, unit: record.unit.clone() },
        )?;
        if let Some(allowed) = change.uses_allowed {
            let taken = record.uses_allowed.map_or(0, |a| a.saturating_sub(record.uses_left));
            record.uses_left = allowed.saturating_sub(taken);
            record.uses_allowed = Some(allowed);
        }
        if let Some(expiry) = change.expires_at_ms {
            record.expires_at_ms = expiry;
        }
        let audit = AuditEntry {
            action: "change_invitation".into(),
            actor: actor.as_str().into(),
            authority,
            target: hash.to_owned(),
            unit: record.unit.clone(),
            details: json!({ "uses_allowed": record.uses_allowed, "expires_at_ms": record.expires_at_ms }),
            reason: String::new(),
        };
        self.write_invitation(hash, &record, Some(&audit))?;
        Ok(record)
    }

    /// The invitations whose units `actor` administers, with their IDs (token hashes).
    pub fn policy_invitations_for(&self, actor: &UserId) -> Vec<(String, InvitationRecord)> {
        let directory = self.policy.service.directory();
        let units: Vec<_> = directory
            .units()
            .iter()
            .map(|u| u.id.clone())
            .filter(|u| self.check_scope_covers(actor, u).is_ok())
            .collect();
        self.policy.service.invitations_in(&units)
    }

    /// The invitation named by its token or by its ID (the hash of its token), with its ID.
    pub fn policy_find_invitation(&self, token_or_id: &str) -> Option<(String, InvitationRecord)> {
        let hash = hash_token(token_or_id);
        if let Some(record) = self.policy.service.invitation(&hash) {
            return Some((hash, record));
        }
        self.policy.service.invitation(token_or_id).map(|r| (token_or_id.to_owned(), r))
    }

    /// The usable invitation of a token, if any.
    pub fn policy_invitation(&self, token: &str) -> Option<InvitationRecord> {
        self.policy.service.invitation(&hash_token(token)).filter(|r| r.is_usable(now_ms()))
    }

    /// Takes one use of an invitation for `user`'s registration and records the user as the
    /// invitation says. Serialised, so that a single-use token cannot create two accounts.
    pub fn policy_register_with_invitation(
        &self,
        user: &UserId,
        token: &str,
    ) -> Result<UserRecord, PolicyError> {
        let _claiming = self.policy.claim_lock.lock();
        let hash = hash_token(token);
        let Some(mut invitation) =
            self.policy.service.invitation(&hash).filter(|r| r.is_usable(now_ms()))
        else {
            return Err(PolicyError::Refused(
                "the registration invitation is used up, expired or withdrawn".into(),
            ));
        };
        invitation.uses_left -= 1;
        self.write_invitation(&hash, &invitation, None)?;
        let record = match invitation.guest_term_ms {
            Some(term) if invitation.tier == Tier::Guest => UserRecord::guest(
                invitation.unit.clone(),
                invitation.issued_by.clone(),
                now_ms() + term,
            ),
            _ => UserRecord::new(invitation.tier, invitation.unit.clone()),
        };
        let authority = format!("invitation:{hash}");
        let details =
            json!({ "tier": record.tier, "unit": record.unit, "invited_by": invitation.issued_by });
        self.record_user(
            &ruma::OwnedUserId::try_from(invitation.issued_by.as_str())
                .map_err(|e| PolicyError::BadRequest(e.to_string()))?,
            &authority,
            "register_with_invitation",
            user,
            record.clone(),
            details,
            "",
        )?;
        Ok(record)
    }

    /// Writes an invitation's state event (and its audit entry) and applies it.
    fn write_invitation(
        &self,
        hash: &str,
        record: &InvitationRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), PolicyError> {
        let content =
            serde_json::to_value(record).map_err(|e| PolicyError::BadRequest(e.to_string()))?;
        self.write_directory_event(record.unit.as_str(), names::INVITATION, hash, content, audit)?;
        self.policy.service.apply_invitation(hash, record.clone());
        Ok(())
    }
}
