//! The directory index and the decisions taken on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use parking_lot::RwLock;
use relais_policy::{
    Action, Actor, Decision, Directory, DirectoryError, DirectoryParts, RoomFacts, Tier, Unit,
    UnitId, UserId, UserRecord,
};

use crate::{
    PolicyConfig,
    records::{DelegationRecord, InvitationRecord, names},
};

/// Errors of the policy service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration or a change would make the directory inconsistent.
    #[error("policy directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A configuration value is wrong.
    #[error("policy configuration: {0}")]
    Config(String),
    /// A directory event's content is not a record.
    #[error("policy directory: unreadable {kind} record: {reason}")]
    Record {
        /// The event type.
        kind: String,
        /// Why it cannot be read.
        reason: String,
    },
}

/// The policy service's index: a checked directory, rebuilt on every change so that each
/// decision sees one consistent snapshot.
pub struct PolicyService {
    config: PolicyConfig,
    parts: RwLock<DirectoryParts>,
    directory: RwLock<Arc<Directory>>,
    /// Registration invitations by the SHA-256 (base64url) of their token.
    invitations: RwLock<BTreeMap<String, InvitationRecord>>,
}

impl PolicyService {
    /// The index of a fresh start: the bootstrap tree, servers, rules and admins of the
    /// configuration, and no users yet.
    pub fn new(config: PolicyConfig, server_name: &str) -> Result<Self, ServiceError> {
        let bot = UserId::from(format!("@{}:{server_name}", config.bot_localpart));
        let mut parts = DirectoryParts::new(server_name, bot);
        parts.server_admins =
            config.server_admins.iter().map(|u| UserId::from(u.as_str())).collect();
        parts.units = config
            .units
            .iter()
            .map(|u| Unit {
                id: UnitId::from(u.id.as_str()),
                parent: u.parent.as_deref().map(UnitId::from),
                requires_workspace_approval: u.requires_workspace_approval,
            })
            .collect();
        parts.email_rules = config.email_rules.clone();
        parts.servers = config.servers.iter().map(|(s, t)| (s.as_str().into(), *t)).collect();
        parts.guest_max_term_ms = config.guest_max_term_days.saturating_mul(DAY_MS);
        if config.enabled && parts.units.is_empty() {
            return Err(ServiceError::Config(
                "`policy.units` must name at least the root unit when the policy is enabled".into(),
            ));
        }
        let directory = Directory::from_parts(parts.clone())?;
        Ok(Self {
            config,
            parts: RwLock::new(parts),
            directory: RwLock::new(Arc::new(directory)),
            invitations: RwLock::new(BTreeMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The policy bot's user ID.
    pub fn bot(&self) -> UserId {
        self.parts.read().policy_bot.clone()
    }

    /// The current snapshot.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.read().clone()
    }

    /// Decides on `action` by `actor` now.
    pub fn decide(
        &self,
        action: &Action,
        actor: &str,
        room: Option<&RoomFacts>,
        now_ms: u64,
    ) -> Decision {
        relais_policy::decide(action, &Actor::new(actor), room, &self.directory(), now_ms)
    }

    /// The term of a new guest account, in milliseconds.
    pub fn guest_default_term_ms(&self) -> u64 {
        self.config.guest_default_term_days.saturating_mul(DAY_MS)
    }

    /// Records a user (a `fr.relais.member` event). Refused, leaving the index as it was, if the
    /// directory would become inconsistent (an unknown unit, say).
    pub fn apply_member(&self, user: &str, record: UserRecord) -> Result<(), ServiceError> {
        self.change(|parts| {
            let user = UserId::from(user);
            // An admin who becomes a guest loses their delegations (guests administer nothing).
            if record.tier == Tier::Guest {
                parts.delegations.remove(&user);
            }
            parts.users.insert(user, record);
        })
    }

    /// Records a delegation of `unit` to `user`, or its withdrawal.
    pub fn apply_delegation(
        &self,
        user: &str,
        unit: &str,
        record: &DelegationRecord,
    ) -> Result<(), ServiceError> {
        self.change(|parts| {
            let (user, unit) = (UserId::from(user), UnitId::from(unit));
            let units = parts.delegations.entry(user.clone()).or_insert_with(BTreeSet::new);
            if record.active {
                units.insert(unit);
            } else {
                units.remove(&unit);
                if units.is_empty() {
                    parts.delegations.remove(&user);
                }
            }
        })
    }

    /// Applies a state event of a unit's directory room (`unit`: whose room it is): a user's
    /// record, a delegation of the unit, or an invitation. `Ok(false)` for an event of another
    /// type; an error, changing nothing, for a record the directory cannot hold.
    pub fn apply_directory_event(
        &self,
        kind: &str,
        state_key: &str,
        content: serde_json::Value,
        unit: Option<&str>,
    ) -> Result<bool, ServiceError> {
        fn read<T: serde::de::DeserializeOwned>(
            kind: &str,
            content: serde_json::Value,
        ) -> Result<T, ServiceError> {
            serde_json::from_value(content)
                .map_err(|e| ServiceError::Record { kind: kind.to_owned(), reason: e.to_string() })
        }
        // Users' records are keyed by the user ID without its `@` (see `records`).
        let user = format!("@{state_key}");
        match kind {
            names::MEMBER => self.apply_member(&user, read(kind, content)?)?,
            names::DELEGATION => match unit {
                Some(unit) => self.apply_delegation(&user, unit, &read(kind, content)?)?,
                None => return Ok(false),
            },
            names::INVITATION => self.apply_invitation(state_key, read(kind, content)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Records an invitation (a `fr.relais.invitation` event) under the hash of its token.
    pub fn apply_invitation(&self, token_hash: &str, record: InvitationRecord) {
        self.invitations.write().insert(token_hash.to_owned(), record);
    }

    /// The invitation whose token hashes to `token_hash`.
    pub fn invitation(&self, token_hash: &str) -> Option<InvitationRecord> {
        self.invitations.read().get(token_hash).cloned()
    }

    /// The invitations for accounts in `units`, with the hashes of their tokens.
    pub fn invitations_in(&self, units: &[UnitId]) -> Vec<(String, InvitationRecord)> {
        self.invitations
            .read()
            .iter()
            .filter(|(_, r)| units.contains(&r.unit))
            .map(|(h, r)| (h.clone(), r.clone()))
            .collect()
    }

    /// The units `user` administers (directly; their subtrees follow).
    pub fn delegations_of(&self, user: &str) -> Vec<UnitId> {
        self.parts
            .read()
            .delegations
            .get(&UserId::from(user))
            .map(|units| units.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies `edit` to a copy of the parts and installs the result if it checks.
    fn change(&self, edit: impl FnOnce(&mut DirectoryParts)) -> Result<(), ServiceError> {
        let mut parts = self.parts.write();
        let mut next = parts.clone();
        edit(&mut next);
        let directory = Directory::from_parts(next.clone())?;
        *parts = next;
        *self.directory.write() = Arc::new(directory);
        Ok(())
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use relais_policy::Rule;

    use super::*;
    use crate::UnitConfig;

    fn service() -> PolicyService {
        let config = PolicyConfig::enabled_with(vec![
            UnitConfig::new("state", None),
            UnitConfig::new("interior", Some("state")),
        ]);
        PolicyService::new(config, "relais.test").expect("valid bootstrap")
    }

    #[test]
    fn enabled_without_units_is_refused() {
        let config = PolicyConfig { enabled: true, ..PolicyConfig::default() };
        assert!(PolicyService::new(config, "relais.test").is_err());
    }

    #[test]
    fn records_change_decisions_and_bad_records_change_nothing() {
        let service = service();
        let create = Action::CreateRoom { class: None, parent_workspace: None };
        let unknown = service.decide(&create, "@alice:relais.test", None, 0);
        assert!(!unknown.is_allowed(), "an unknown user is a guest without a sponsor");
        service
            .apply_member("@alice:relais.test", UserRecord::new(Tier::Agent, "interior"))
            .expect("valid");
        assert!(service.decide(&create, "@alice:relais.test", None, 0).is_allowed());
        let err = service.apply_member("@bob:relais.test", UserRecord::new(Tier::Agent, "nowhere"));
        assert!(err.is_err());
        assert!(service.directory().user(&"@bob:relais.test".into()).is_none());
    }

    #[test]
    fn delegations_scope_administration() {
        let service = service();
        service
            .apply_member("@admin:relais.test", UserRecord::new(Tier::Agent, "interior"))
            .unwrap();
        service
            .apply_member("@bob:relais.test", UserRecord::new(Tier::Public, "interior"))
            .unwrap();
        let set = Action::SetTier { target: "@bob:relais.test".into(), tier: Tier::Agent };
        let before = service.decide(&set, "@admin:relais.test", None, 0);
        assert!(!before.is_allowed());
        let by = UserId::from("@root:relais.test");
        service
            .apply_delegation(
                "@admin:relais.test",
                "interior",
                &DelegationRecord { active: true, by },
            )
            .unwrap();
        assert_eq!(service.delegations_of("@admin:relais.test"), vec![UnitId::from("interior")]);
        assert!(service.decide(&set, "@admin:relais.test", None, 0).is_allowed());
        let outside = Action::SetTier { target: "@bob:relais.test".into(), tier: Tier::Agent };
        let denied = service.decide(&outside, "@bob:relais.test", None, 0);
        assert!(matches!(denied.rule(), Some(r) if r != Rule::R1), "{denied:?}");
    }
}
