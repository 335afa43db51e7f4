//! Account administration scoped by delegation, for the Synapse-compatible admin API: who an
//! admin sees (a server admin everyone, a delegated admin the users and rooms of their units'
//! subtrees), and account changes routed through the decided, audited actions of [`super::admin`].

use relais_appservice::records::{AuditEntry, names};
use relais_policy::{AccountStatus, Action, Tier, UnitId, UserRecord};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId, events::StateEventType};
use serde_json::{Value, json};

use super::{
    PolicyError,
    admin::{NewAccount, UserChange},
};
use crate::service::{Services, accounts::Account};

/// What an admin's scope covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminScope {
    /// A server admin (or the policy bot): everything.
    Server,
    /// A delegated admin: the subtrees of these units.
    Units(Vec<UnitId>),
}

/// A local account with its directory record.
#[derive(Clone, Debug)]
pub struct ManagedUser {
    /// The user.
    pub user_id: OwnedUserId,
    /// The account.
    pub account: Account,
    /// The directory record, if the policy knows the user.
    pub record: Option<UserRecord>,
    /// Whether the user is a server admin (by account or by configuration).
    pub admin: bool,
}

/// A change asked through the admin API; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct AccountUpdate {
    /// A new password (for a new account, its password).
    pub password: Option<String>,
    /// Whether a new password ends the user's sessions.
    pub logout_devices: bool,
    /// A new display name; empty removes it.
    pub displayname: Option<String>,
    /// Server administration (server admins only).
    pub admin: Option<bool>,
    /// Deactivate (`true`); reactivation is refused, deactivation is final.
    pub deactivated: Option<bool>,
    /// Lock or unlock.
    pub locked: Option<bool>,
    /// For a new account: its tier (the caller's own tier when absent).
    pub tier: Option<Tier>,
    /// For a new account: its unit (the caller's unit when absent).
    pub unit: Option<String>,
}

impl Services {
    /// The caller's administrative scope; refused for users who administer nothing.
    pub fn admin_scope(&self, actor: &UserId) -> Result<AdminScope, PolicyError> {
        let configured = self.policy.service.directory().is_server_admin(&actor.as_str().into());
        if configured || self.is_policy_exempt(actor)? {
            return Ok(AdminScope::Server);
        }
        let units = self.policy.service.delegations_of(actor.as_str());
        if units.is_empty() || !self.policy.enabled() {
            return Err(PolicyError::Refused(
                "you are not a server admin nor a delegated admin of an organisation unit".into(),
            ));
        }
        Ok(AdminScope::Units(units))
    }

    /// Whether `scope` covers `unit`.
    fn covers(&self, scope: &AdminScope, unit: Option<&UnitId>) -> bool {
        match (scope, unit) {
            (AdminScope::Server, _) => true,
            (AdminScope::Units(units), Some(unit)) => {
                let directory = self.policy.service.directory();
                units.iter().any(|root| directory.units().is_in_subtree(unit, root))
            }
            (AdminScope::Units(_), None) => false,
        }
    }

    /// A local user as the admin API shows them, if the scope covers them.
    pub fn managed_user(
        &self,
        scope: &AdminScope,
        user: &UserId,
    ) -> Result<Option<ManagedUser>, PolicyError> {
        let Some(account) = self.accounts.account(user)? else { return Ok(None) };
        let record = self.policy_record(user);
        if !self.covers(scope, record.as_ref().map(|r| &r.unit)) {
            return Err(PolicyError::Refused(format!(
                "{user} is outside the units you administer"
            )));
        }
        let configured = self.policy.service.directory().is_server_admin(&user.as_str().into());
        let admin = account.admin || configured;
        Ok(Some(ManagedUser { user_id: user.to_owned(), account, record, admin }))
    }

    /// Every local account the scope covers, by user ID.
    pub fn managed_users(&self, scope: &AdminScope) -> Result<Vec<ManagedUser>, PolicyError> {
        let mut users = Vec::new();
        for (user_id, account) in self.accounts.all()? {
            let record = self.policy_record(&user_id);
            if !self.covers(scope, record.as_ref().map(|r| &r.unit)) {
                continue;
            }
            let configured =
                self.policy.service.directory().is_server_admin(&user_id.as_str().into());
            let admin = account.admin || configured;
            users.push(ManagedUser { user_id, account, record, admin });
        }
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(users)
    }

    /// Creates (`Ok(true)`) or modifies (`Ok(false)`) an account. A new account goes through
    /// [`Services::policy_create_account`] (decided and audited); status changes through
    /// [`Services::policy_change_user`]; password and profile changes are decided as a change of
    /// the user (the admin's scope must cover them) and audited.
    pub fn admin_upsert_user(
        &self,
        actor: &UserId,
        target: &UserId,
        update: AccountUpdate,
    ) -> Result<bool, PolicyError> {
        let scope = self.admin_scope(actor)?;
        if update.admin.is_some() && scope != AdminScope::Server {
            return Err(PolicyError::Refused(
                "only server admins grant server administration".into(),
            ));
        }
        let created = self.accounts.account(target)?.is_none();
        if created {
            self.admin_create(actor, target, &scope, &update)?;
        } else {
            // Refused if the scope does not cover the user, or (through the decision of a change
            // of the user) if the user's tier is above the admin's own.
            self.managed_user(&scope, target)?;
            if let Some(record) = self.policy_record(target).filter(|_| self.policy.enabled()) {
                let action = Action::SetTier { target: target.as_str().into(), tier: record.tier };
                self.authorise(actor, &action)?;
            }
        }
        let mut details = serde_json::Map::new();
        if !created && let Some(password) = &update.password {
            self.accounts.set_password(target, password)?;
            if update.logout_devices {
                self.accounts.delete_all_devices(target, None)?;
            }
            details.insert("password".into(), json!("changed"));
        }
        if let Some(name) = &update.displayname {
            let name = (!name.is_empty()).then(|| name.clone());
            self.accounts.set_profile(target, Some(name.clone()), None)?;
            details.insert("displayname".into(), json!(name));
        }
        if let Some(admin) = update.admin {
            self.accounts.set_admin(target, admin)?;
            details.insert("admin".into(), json!(admin));
        }
        if !details.is_empty() {
            self.audit_account(actor, &scope, target, details.into())?;
        }
        let status = match (update.deactivated, update.locked) {
            (Some(true), _) => Some(AccountStatus::Deactivated),
            (Some(false), _) if self.is_deactivated(target)? => {
                return Err(PolicyError::BadRequest(
                    "deactivation is final: create a new account instead".into(),
                ));
            }
            (_, Some(true)) => Some(AccountStatus::Locked),
            (_, Some(false)) => Some(AccountStatus::Active),
            _ => None,
        };
        if let Some(status) = status {
            self.admin_set_status(actor, &scope, target, status)?;
        }
        Ok(created)
    }

    /// Deactivates an account for good and takes it out of its rooms (decided and audited).
    pub fn admin_deactivate(&self, actor: &UserId, target: &UserId) -> Result<(), PolicyError> {
        let scope = self.admin_scope(actor)?;
        self.managed_user(&scope, target)?
            .ok_or_else(|| PolicyError::NotFound(format!("{target} has no account here")))?;
        self.admin_set_status(actor, &scope, target, AccountStatus::Deactivated)
    }

    /// Whether `scope` covers `room`: a server admin's covers every room, a delegated admin's
    /// the rooms of their units' subtrees.
    pub fn covers_room(&self, scope: &AdminScope, room: &RoomId) -> Result<bool, PolicyError> {
        Ok(*scope == AdminScope::Server || self.covers(scope, self.room_unit(room)?.as_ref()))
    }

    /// Local rooms the scope covers: those a local user is in, whose unit (the workspace's, the
    /// parent workspace's, the unit room's, or the creator's) is in the scope.
    pub fn managed_rooms(&self, scope: &AdminScope) -> Result<Vec<OwnedRoomId>, PolicyError> {
        let mut rooms = std::collections::BTreeSet::new();
        for (user, _) in self.accounts.all()? {
            rooms.extend(self.rooms.rooms_of(&user)?.into_iter().map(|(room, _)| room));
        }
        let mut covered = Vec::new();
        for room in rooms {
            if self.covers_room(scope, &room)? {
                covered.push(room);
            }
        }
        Ok(covered)
    }

    /// The unit a room belongs to, if any.
    fn room_unit(&self, room: &RoomId) -> Result<Option<UnitId>, PolicyError> {
        if let Some(unit) = self.unit_of_room(room) {
            return Ok(Some(UnitId::from(unit.as_str())));
        }
        let own = self.state_content(room, names::WORKSPACE, "")?;
        if let Some(unit) = own.as_ref().and_then(|w| w.get("unit")).and_then(Value::as_str) {
            return Ok(Some(UnitId::from(unit)));
        }
        let bot = self.policy_bot()?;
        if let Some(workspace) = self.parent_workspace(room, &bot)? {
            return Ok(Some(workspace.unit));
        }
        let creator =
            self.rooms.current_state_event(room, &StateEventType::RoomCreate, "")?.and_then(|c| {
                self.policy.service.directory().user(&c.sender().as_str().into()).cloned()
            });
        Ok(creator.map(|r| r.unit))
    }

    fn admin_create(
        &self,
        actor: &UserId,
        target: &UserId,
        scope: &AdminScope,
        update: &AccountUpdate,
    ) -> Result<(), PolicyError> {
        let password = update.password.clone().ok_or_else(|| {
            PolicyError::BadRequest("`password` is required to create an account".into())
        })?;
        if !self.policy.enabled() {
            // A plain homeserver: the server admin creates the account directly.
            self.accounts.register(target, Some(&password), false)?;
            return Ok(());
        }
        let own = self.policy_record(actor);
        let unit = update.unit.clone().or_else(|| own.as_ref().map(|r| r.unit.to_string()));
        // A server admin outside the directory creates accounts in the root unit by default.
        let unit = unit.or_else(|| {
            let root = self.config.policy.units.iter().find(|u| u.parent.is_none());
            root.filter(|_| *scope == AdminScope::Server).map(|u| u.id.clone())
        });
        let tier = update.tier.or(own.map(|r| r.tier)).unwrap_or(Tier::Agent);
        let new = NewAccount {
            username: target.to_string(),
            password,
            tier,
            unit,
            expires_at_ms: None,
            reason: "admin API (Synapse-compatible)".into(),
        };
        self.policy_create_account(actor, new)?;
        Ok(())
    }

    fn is_deactivated(&self, user: &UserId) -> Result<bool, PolicyError> {
        Ok(self.accounts.account(user)?.is_some_and(|a| a.deactivated))
    }

    /// Locks, unlocks or deactivates; users outside the directory (created before the policy)
    /// can only be changed by server admins, without a decision to take.
    fn admin_set_status(
        &self,
        actor: &UserId,
        scope: &AdminScope,
        target: &UserId,
        status: AccountStatus,
    ) -> Result<(), PolicyError> {
        if self.policy.enabled() && self.policy_record(target).is_some() {
            let change = UserChange {
                status: Some(status),
                reason: "admin API (Synapse-compatible)".into(),
                ..UserChange::default()
            };
            self.policy_change_user(actor, target, change)?;
        } else if *scope != AdminScope::Server {
            return Err(PolicyError::Refused(format!("{target} is outside your units")));
        } else if status == AccountStatus::Deactivated {
            self.accounts.deactivate(target)?;
            self.threepids.unbind_all(target)?;
        } else if status == AccountStatus::Locked {
            return Err(PolicyError::BadRequest(format!(
                "{target} is not in the policy directory, where locks are kept"
            )));
        }
        if status == AccountStatus::Deactivated {
            self.leave_all_rooms(target)?;
        }
        Ok(())
    }

    /// Audits a password, profile or admin change made through the admin API.
    fn audit_account(
        &self,
        actor: &UserId,
        scope: &AdminScope,
        target: &UserId,
        details: Value,
    ) -> Result<(), PolicyError> {
        let Some(record) = self.policy_record(target).filter(|_| self.policy.enabled()) else {
            return Ok(());
        };
        let authority = match scope {
            AdminScope::Server => "server_admin".to_owned(),
            AdminScope::Units(units) => format!(
                "delegation:{}",
                units.iter().map(UnitId::as_str).collect::<Vec<_>>().join(",")
            ),
        };
        self.write_audit(&AuditEntry {
            action: "change_account".into(),
            actor: actor.as_str().into(),
            authority,
            target: target.to_string(),
            unit: record.unit,
            details,
            reason: "admin API (Synapse-compatible)".into(),
        })
    }
}
