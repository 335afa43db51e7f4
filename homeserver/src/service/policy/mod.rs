//! The embedded policy service: `relais-appservice`'s index and decisions, wired into this server.
//!
//! - [`directory_rooms`]: one room per organisation unit, owned by the policy bot, holding the
//!   unit's users and delegations as `fr.relais.*` state events; their timelines are the audit
//!   log. The index is rebuilt from them at start-up.
//! - [`facts`]: what the decision needs to know about a room, read from its state.
//! - [`embedded`]: the [`PolicyCheck`](super::policy_check::PolicyCheck) implementation the
//!   homeserver asks at every choke point.
//! - [`admin`]: the delegated-administration actions (set a tier, appoint an admin, lock...),
//!   each decided, written to the directory and audited.
//! - [`workspaces`]: workspaces created from the configured templates (a space and its rooms).
//! - [`workspace_admin`]: close, lock, archive, transfer, recover a workspace, export its members.
//! - [`user_admin`]: an admin's scope, and account changes for the Synapse-compatible admin API.
//! - [`refusal_notices`]: a refused invitation explained to the inviter in a notice, for clients
//!   that hide the refusal's text.

pub mod admin;
pub mod bot;
pub mod directory_rooms;
pub mod email_registration;
pub mod embedded;
pub mod facts;
pub mod invitations;
pub mod refusal_notices;
pub mod reminders;
pub mod rooms;
pub mod user_admin;
pub mod workspace_admin;
pub mod workspaces;

use std::{collections::HashMap, sync::Arc};

use parking_lot::RwLock;
use relais_appservice::{PolicyConfig, PolicyService, ServiceError};
use ruma::{OwnedRoomId, UserId};

use super::{Services, accounts::AccountError, rooms::RoomError};
use crate::storage::StorageError;

/// Errors of the policy layer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or the configuration is inconsistent.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Writing a directory room failed.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Creating the policy bot failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// Freeing a deactivated account's e-mail addresses failed.
    #[error(transparent)]
    Threepid(#[from] super::threepids::ThreepidError),
    /// The action is refused by a rule of the decision table.
    #[error("{0}")]
    Refused(String),
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The policy is not enabled on this server.
    #[error("the policy layer is not enabled on this server (`policy.enabled`)")]
    Disabled,
}

/// The policy layer of this server.
pub struct Policy {
    /// The index and decisions.
    pub service: PolicyService,
    /// The room of each organisation unit.
    unit_rooms: RwLock<HashMap<String, OwnedRoomId>>,
    /// Serialises the uses of invitations.
    claim_lock: parking_lot::Mutex<()>,
    /// Refused invitations explained to the inviter lately.
    recent_refusals: refusal_notices::RecentRefusals,
}

impl Policy {
    /// The policy of `config` for `server_name`; nothing is enforced until
    /// [`Services::start_policy`] installs it.
    pub fn new(config: &PolicyConfig, server_name: &str) -> Result<Self, PolicyError> {
        Ok(Self {
            service: PolicyService::new(config.clone(), server_name)?,
            unit_rooms: RwLock::new(HashMap::new()),
            claim_lock: parking_lot::Mutex::new(()),
            recent_refusals: refusal_notices::RecentRefusals::default(),
        })
    }

    /// Whether the policy is enforced.
    pub fn enabled(&self) -> bool {
        self.service.config().enabled
    }

    /// The room of a unit.
    pub fn unit_room(&self, unit: &str) -> Option<OwnedRoomId> {
        self.unit_rooms.read().get(unit).cloned()
    }
}

impl Services {
    /// Sets the policy up: the bot, the unit rooms, the index rebuilt from them, and the embedded
    /// service as the backend of every policy check (unless `policy.checks` sends the checks to
    /// an external service). Does nothing when the policy is disabled.
    pub fn start_policy(self: &Arc<Self>) -> Result<(), PolicyError> {
        if !self.policy.enabled() {
            return Ok(());
        }
        self.ensure_unit_rooms()?;
        let loaded = self.load_directory()?;
        tracing::info!(
            units = self.config.policy.units.len(),
            records = loaded,
            "policy directory loaded"
        );
        if self.config.policy.checks == relais_appservice::ChecksBy::Embedded {
            self.policy_checks.set_backend(Arc::new(embedded::EmbeddedPolicy::new(self)));
        }
        self.rooms.add_event_hook(Arc::new(bot::PolicyBot::new(self)));
        Ok(())
    }

    /// Refuses a user whose account the policy no longer lets work (locked, deactivated, an
    /// expired guest, or unknown to the directory): rule R2, checked on every request, not only
    /// at login, so that a lock or an expiry takes effect at once.
    pub fn check_account_usable(&self, user: &UserId) -> Result<(), PolicyError> {
        if !self.policy.enabled() {
            return Ok(());
        }
        let decision = self.policy.service.decide(
            &relais_policy::Action::Login,
            user.as_str(),
            None,
            super::ephemeral::now_ms(),
        );
        if decision.is_allowed() || self.is_policy_exempt(user)? {
            return Ok(());
        }
        Err(PolicyError::Refused(decision.message().unwrap_or_default()))
    }

    /// Whether `user` (`None`: an anonymous caller) may list the room directory (rule D2).
    pub fn may_see_room_directory(&self, user: Option<&UserId>) -> Result<bool, StorageError> {
        if !self.policy.enabled() {
            return Ok(true);
        }
        let Some(user) = user else { return Ok(false) };
        let decision = self.policy.service.decide(
            &relais_policy::Action::SeeRoomDirectory,
            user.as_str(),
            None,
            super::ephemeral::now_ms(),
        );
        Ok(decision.is_allowed() || self.is_policy_exempt(user)?)
    }

    /// Whether `user` passes every check: a server admin (an account created as admin, or one
    /// listed in `policy.server_admins`) or the policy bot.
    pub fn is_policy_exempt(&self, user: &UserId) -> Result<bool, StorageError> {
        if user.as_str() == self.policy.service.bot().as_str() {
            return Ok(true);
        }
        Ok(self.accounts.account(user)?.is_some_and(|a| a.admin))
    }
}
