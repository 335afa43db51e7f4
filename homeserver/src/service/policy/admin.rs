//! Delegated administration: each action is decided (the actor's delegation must cover the
//! target, and never above the actor's own tier), written to the directory room of the unit
//! concerned, applied to the index and audited there.

use relais_appservice::records::{AuditEntry, DelegationRecord, UserRecord, names};
use relais_policy::{AccountStatus, Action, Decision, Tier, UnitId};
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::PolicyError;
use crate::service::{Services, ephemeral::now_ms, rooms::timeline::Direction};

/// A new account, created by an admin (or, for a guest, by the sponsoring agent).
#[derive(Clone, Debug, Deserialize)]
pub struct NewAccount {
    /// The localpart or full user ID.
    pub username: String,
    /// The initial password.
    pub password: String,
    /// The tier.
    pub tier: Tier,
    /// The unit; the actor's own unit when absent.
    #[serde(default)]
    pub unit: Option<String>,
    /// For a guest: when the account ends, in ms since the epoch; `policy.guest_default_term_days`
    /// from now when absent.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Why (for the audit log).
    #[serde(default)]
    pub reason: String,
}

/// A change of a user's record.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct UserChange {
    /// A new tier.
    #[serde(default)]
    pub tier: Option<Tier>,
    /// A new unit.
    #[serde(default)]
    pub unit: Option<String>,
    /// `active`, `locked` or `deactivated`.
    #[serde(default)]
    pub status: Option<AccountStatus>,
    /// For a guest: a new expiry (a renewal), in ms since the epoch.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Why (for the audit log).
    #[serde(default)]
    pub reason: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    /// When, in ms since the epoch.
    pub ts: u64,
    /// The event holding it, in the unit's room.
    pub event_id: String,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

impl Services {
    pub(super) fn require_policy(&self) -> Result<(), PolicyError> {
        if self.policy.enabled() { Ok(()) } else { Err(PolicyError::Disabled) }
    }

    /// Decides an administrative action; `Ok(authority)` names what allowed it.
    pub(super) fn authorise(&self, actor: &UserId, action: &Action) -> Result<String, PolicyError> {
        if self.is_policy_exempt(actor)? {
            return Ok("server_admin".to_owned());
        }
        match self.policy.service.decide(action, actor.as_str(), None, now_ms()) {
            Decision::Allow => {
                let units = self.policy.service.delegations_of(actor.as_str());
                Ok(if units.is_empty() {
                    "sponsor".to_owned()
                } else {
                    format!(
                        "delegation:{}",
                        units.iter().map(UnitId::as_str).collect::<Vec<_>>().join(",")
                    )
                })
            }
            denied => {
                self.audit_refusal(actor, action, &denied);
                Err(PolicyError::Refused(denied.message().unwrap_or_default()))
            }
        }
    }

    /// Records a refused administrative attempt in the audit log of the unit it aimed at (or the
    /// actor's own), so that admins see attempts outside a scope, not only what succeeded.
    fn audit_refusal(&self, actor: &UserId, action: &Action, denied: &Decision) {
        let directory = self.policy.service.directory();
        let user_unit = |user: &relais_policy::UserId| directory.user(user).map(|r| r.unit.clone());
        let (target, unit) = match action {
            Action::IssueInvitation { unit, .. }
            | Action::ApproveWorkspace { unit }
            | Action::ReadAuditLog { unit } => (unit.as_str().to_owned(), Some(unit.clone())),
            Action::AppointAdmin { user, unit } | Action::RemoveAdmin { user, unit } => {
                (user.as_str().to_owned(), Some(unit.clone()))
            }
            Action::SetTier { target, .. }
            | Action::Lock { target }
            | Action::Unlock { target }
            | Action::Deactivate { target }
            | Action::RenewGuest { target, .. }
            | Action::EndGuest { target } => (target.as_str().to_owned(), user_unit(target)),
            Action::TransferWorkspace { workspace, .. }
            | Action::CloseWorkspace { workspace, .. }
            | Action::LockWorkspace { workspace }
            | Action::ArchiveWorkspace { workspace }
            | Action::RecoverWorkspace { workspace }
            | Action::ExportMembers { workspace } => {
                (workspace.room.as_str().to_owned(), Some(workspace.unit.clone()))
            }
            _ => (String::new(), None),
        };
        let Some(unit) = unit
            .filter(|u| self.policy.unit_room(u.as_str()).is_some())
            .or_else(|| user_unit(&actor.as_str().into()))
        else {
            return;
        };
        let entry = AuditEntry {
            action: format!("refused:{}", action.name()),
            actor: actor.as_str().into(),
            authority: "none".into(),
            target,
            unit: unit.clone(),
            details: json!({ "rule": denied.rule().map(|r| format!("{r:?}")), "reason": denied.message() }),
            reason: String::new(),
        };
        if let Err(e) = self.write_audit(&entry) {
            tracing::warn!(error = %e, "could not audit a refused administrative action");
        }
    }

    /// Whether `actor`'s scope covers `unit` (a server admin's covers all): who may read a unit's
    /// records, invitations and audit log. A read, so a refusal is not audited.
    pub fn check_scope_covers(&self, actor: &UserId, unit: &UnitId) -> Result<(), PolicyError> {
        if self.is_policy_exempt(actor)? {
            return Ok(());
        }
        let action = Action::ReadAuditLog { unit: unit.clone() };
        match self.policy.service.decide(&action, actor.as_str(), None, now_ms()) {
            Decision::Allow => Ok(()),
            denied => Err(PolicyError::Refused(denied.message().unwrap_or_default())),
        }
    }

    /// `unit` if given, else the actor's own unit.
    pub(super) fn unit_or_own(
        &self,
        actor: &UserId,
        unit: Option<&str>,
    ) -> Result<UnitId, PolicyError> {
        match unit {
            Some(unit) => Ok(UnitId::from(unit)),
            None => self
                .policy_record(actor)
                .map(|r| r.unit)
                .ok_or_else(|| PolicyError::BadRequest("`unit` is required".into())),
        }
    }

    /// The record of `user`, if the directory knows them.
    pub fn policy_record(&self, user: &UserId) -> Option<UserRecord> {
        self.policy.service.directory().user(&user.as_str().into()).cloned()
    }

    /// Creates an account with its directory record.
    pub fn policy_create_account(
        &self,
        actor: &UserId,
        new: NewAccount,
    ) -> Result<(OwnedUserId, UserRecord), PolicyError> {
        self.require_policy()?;
        let user = match new.username.strip_prefix('@') {
            Some(_) => OwnedUserId::try_from(new.username.to_lowercase())
                .map_err(|e| PolicyError::BadRequest(format!("invalid user ID: {e}")))?,
            None => self
                .accounts
                .user_id(&new.username.to_lowercase())
                .map_err(|e| PolicyError::BadRequest(e.to_string()))?,
        };
        if user.server_name() != self.config.server_name {
            return Err(PolicyError::BadRequest(format!("{user} is not a user of this server")));
        }
        let unit = self.unit_or_own(actor, new.unit.as_deref())?;
        let authority =
            self.authorise(actor, &Action::IssueInvitation { tier: new.tier, unit: unit.clone() })?;
        let record = if new.tier == Tier::Guest {
            let expires = new
                .expires_at_ms
                .unwrap_or_else(|| now_ms() + self.policy.service.guest_default_term_ms());
            UserRecord::guest(unit.clone(), actor.as_str(), expires)
        } else {
            let mut record = UserRecord::new(new.tier, unit.clone());
            record.expires_at_ms = new.expires_at_ms;
            record
        };
        self.accounts.register(&user, Some(&new.password), false)?;
        let details = json!({ "tier": record.tier, "unit": record.unit, "expires_at_ms": record.expires_at_ms });
        self.record_user(
            actor,
            &authority,
            "create_account",
            &user,
            record.clone(),
            details,
            &new.reason,
        )?;
        Ok((user, record))
    }

    /// Changes a user's tier, unit, status or expiry.
    pub fn policy_change_user(
        &self,
        actor: &UserId,
        target: &UserId,
        change: UserChange,
    ) -> Result<UserRecord, PolicyError> {
        self.require_policy()?;
        let Some(mut record) = self.policy_record(target) else {
            return Err(PolicyError::NotFound(format!("{target} is not in the directory")));
        };
        let target_id = target.as_str();
        let mut actions = Vec::new();
        let mut details = serde_json::Map::new();
        if let Some(tier) = change.tier.filter(|t| *t != record.tier) {
            actions.push(Action::SetTier { target: target_id.into(), tier });
            details.insert("tier".into(), json!(tier));
            record.tier = tier;
        }
        if let Some(unit) =
            change.unit.map(|u| UnitId::from(u.as_str())).filter(|u| *u != record.unit)
        {
            // Moving someone needs scope over where they are and where they go.
            actions.push(Action::SetTier { target: target_id.into(), tier: record.tier });
            actions.push(Action::IssueInvitation { tier: record.tier, unit: unit.clone() });
            details.insert("unit".into(), json!(unit));
            record.unit = unit;
        }
        if let Some(status) = change.status.filter(|s| *s != record.status) {
            actions.push(match status {
                AccountStatus::Active => Action::Unlock { target: target_id.into() },
                AccountStatus::Locked => Action::Lock { target: target_id.into() },
                AccountStatus::Deactivated => Action::Deactivate { target: target_id.into() },
            });
            details.insert("status".into(), json!(status));
            record.status = status;
        }
        if let Some(until) = change.expires_at_ms.filter(|e| Some(*e) != record.expires_at_ms) {
            actions.push(Action::RenewGuest { target: target_id.into(), until_ms: until });
            details.insert("expires_at_ms".into(), json!(until));
            record.expires_at_ms = Some(until);
        }
        if actions.is_empty() {
            return Ok(record);
        }
        let mut authority = String::new();
        for action in &actions {
            authority = self.authorise(actor, action)?;
        }
        if record.status == AccountStatus::Deactivated {
            self.accounts.deactivate(target)?;
            self.threepids.unbind_all(target)?;
        }
        if record.status == AccountStatus::Locked {
            // A locked account's sessions end now; unlocking lets the user log in again.
            self.accounts.delete_all_devices(target, None)?;
        }
        self.record_user(
            actor,
            &authority,
            "change_user",
            target,
            record.clone(),
            details.into(),
            &change.reason,
        )?;
        Ok(record)
    }

    /// Appoints (`active`) or removes a delegated admin of `unit`.
    pub fn policy_delegate(
        &self,
        actor: &UserId,
        user: &UserId,
        unit: &str,
        active: bool,
        reason: &str,
    ) -> Result<(), PolicyError> {
        self.require_policy()?;
        let (user_id, unit_id) = (user.as_str().into(), UnitId::from(unit));
        let action = if active {
            Action::AppointAdmin { user: user_id, unit: unit_id.clone() }
        } else {
            Action::RemoveAdmin { user: user_id, unit: unit_id.clone() }
        };
        let authority = self.authorise(actor, &action)?;
        let record = DelegationRecord { active, by: actor.as_str().into() };
        self.policy.service.apply_delegation(user.as_str(), unit, &record)?;
        if active {
            self.invite_to_unit_room(user, unit)?;
        }
        let audit = AuditEntry {
            action: action.name().to_owned(),
            actor: actor.as_str().into(),
            authority,
            target: user.to_string(),
            unit: unit_id,
            details: json!({ "active": active }),
            reason: reason.to_owned(),
        };
        let content =
            serde_json::to_value(&record).map_err(|e| PolicyError::BadRequest(e.to_string()))?;
        self.write_directory(unit, names::DELEGATION, user.as_str(), content, &audit)
    }

    /// The audit log of `unit`'s subtree, oldest first, if the actor's scope covers it.
    pub fn policy_audit_log(
        &self,
        actor: &UserId,
        unit: &str,
    ) -> Result<Vec<AuditRow>, PolicyError> {
        self.require_policy()?;
        self.authorise(actor, &Action::ReadAuditLog { unit: UnitId::from(unit) })?;
        let directory = self.policy.service.directory();
        let units: Vec<String> = self
            .config
            .policy
            .units
            .iter()
            .filter(|u| {
                directory.units().is_in_subtree(&UnitId::from(u.id.as_str()), &UnitId::from(unit))
            })
            .map(|u| u.id.clone())
            .collect();
        let mut rows = Vec::new();
        for unit in units {
            let Some(room) = self.policy.unit_room(&unit) else { continue };
            let Some(short) = self.rooms.shortroomid(&room)? else { continue };
            let upto = self.globals.visible_count();
            let page = self.rooms.timeline_page(short, 0, Direction::Forward, usize::MAX, upto)?;
            for pdu in page {
                if pdu.kind().to_string() != names::AUDIT {
                    continue;
                }
                let Ok(entry) = serde_json::from_str::<AuditEntry>(pdu.fields.content.get()) else {
                    continue;
                };
                rows.push(AuditRow {
                    ts: pdu.fields.origin_server_ts.0.into(),
                    event_id: pdu.event_id().to_string(),
                    entry,
                });
            }
        }
        rows.sort_by_key(|r| r.ts);
        Ok(rows)
    }

    /// Writes a user's record in their unit's room, applies it and audits the action.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per action, each naming every part"
    )]
    pub(super) fn record_user(
        &self,
        actor: &UserId,
        authority: &str,
        action: &str,
        user: &UserId,
        record: UserRecord,
        details: Value,
        reason: &str,
    ) -> Result<(), PolicyError> {
        self.policy.service.apply_member(user.as_str(), record.clone())?;
        let unit = record.unit.clone();
        let audit = AuditEntry {
            action: action.to_owned(),
            actor: actor.as_str().into(),
            authority: authority.to_owned(),
            target: user.to_string(),
            unit: unit.clone(),
            details,
            reason: reason.to_owned(),
        };
        let content =
            serde_json::to_value(&record).map_err(|e| PolicyError::BadRequest(e.to_string()))?;
        self.write_directory(unit.as_str(), names::MEMBER, user.as_str(), content, &audit)
    }
}
