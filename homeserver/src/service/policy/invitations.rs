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
        let token = new_token();
        let hash = hash_token(&token);
        let record = InvitationRecord {
            tier: new.tier,
            unit: unit.clone(),
            issued_by: actor.as_str().into(),
            expires_at_ms: now_ms() + new.valid_days.max(1) * DAY_MS,
            uses_left: new.uses,
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
