//! Each user's push ruleset, stored as the `m.push_rules` global account data event (so that
//! clients see changes through `/sync`), refreshed with the current server-default rules when
//! loaded, and cached in memory for the send path.

use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;
use ruma::{
    OwnedUserId, UserId,
    api::client::push::{PushRule, RuleKind},
    events::push_rules::PushRulesEventContent,
    push::{Action, InsertPushRuleError, NewPushRule, PushCondition, RemovePushRuleError, Ruleset},
};

use super::PushError;
use crate::{service::account_data::AccountData, storage::StorageError};

/// The account data type holding the rules.
pub const PUSH_RULES_TYPE: &str = "m.push_rules";

/// Users whose rulesets are kept in memory.
const CACHED_USERS: usize = 10_000;

/// A user's ruleset as the evaluator uses it.
#[derive(Debug)]
pub struct UserRules {
    /// The rules, server-default ones included.
    pub ruleset: Ruleset,
    /// Whether these are exactly the server-default rules: such members' results depend only on
    /// whether the event mentions or targets them, which lets the evaluator share work.
    pub is_default: bool,
    /// Whether a rule needs the user's display name (the deprecated `contains_display_name`).
    pub needs_display_name: bool,
}

impl UserRules {
    /// Wraps a ruleset, working out its flags.
    pub fn new(user: &UserId, ruleset: Ruleset) -> Self {
        let is_default = serde_json::to_value(&ruleset).ok()
            == serde_json::to_value(Ruleset::server_default(user)).ok();
        #[allow(deprecated, reason = "old rulesets may still use contains_display_name")]
        let needs_display_name = ruleset
            .override_
            .iter()
            .chain(ruleset.underride.iter())
            .flat_map(|rule| rule.conditions.iter())
            .any(|condition| matches!(condition, PushCondition::ContainsDisplayName));
        Self { ruleset, is_default, needs_display_name }
    }

    /// The server-default rules of `user`.
    pub fn server_default(user: &UserId) -> Self {
        Self { ruleset: Ruleset::server_default(user), is_default: true, needs_display_name: false }
    }
}

/// Push rule storage and cache.
pub struct Rules {
    account_data: Arc<AccountData>,
    cache: Mutex<LruCache<OwnedUserId, Arc<UserRules>>>,
    /// Serialises read-modify-write of rulesets, so concurrent edits are not lost.
    write_lock: Mutex<()>,
}

impl Rules {
    /// Opens the rule store.
    pub fn new(account_data: Arc<AccountData>) -> Self {
        Self {
            account_data,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHED_USERS).unwrap_or(NonZeroUsize::MIN),
            )),
            write_lock: Mutex::new(()),
        }
    }

    /// The user's rules.
    pub fn get(&self, user: &UserId) -> Result<Arc<UserRules>, StorageError> {
        if let Some(rules) = self.cache.lock().get(user) {
            return Ok(rules.clone());
        }
        let rules = Arc::new(UserRules::new(user, self.load(user)?));
        self.cache.lock().put(user.to_owned(), rules.clone());
        Ok(rules)
    }

    /// The rules of many users, in the order given; one cache lock for the hits.
    pub fn get_many(&self, users: &[OwnedUserId]) -> Result<Vec<Arc<UserRules>>, StorageError> {
        let mut out: Vec<Option<Arc<UserRules>>> = {
            let mut cache = self.cache.lock();
            users.iter().map(|user| cache.get(user).cloned()).collect()
        };
        for (slot, user) in out.iter_mut().zip(users) {
            if slot.is_none() {
                *slot = Some(self.get(user)?);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The stored ruleset brought up to date with the server-default rules, or the defaults.
    fn load(&self, user: &UserId) -> Result<Ruleset, StorageError> {
        let defaults = Ruleset::server_default(user);
        let Some(content) = self.account_data.get(user, None, PUSH_RULES_TYPE)? else {
            return Ok(defaults);
        };
        match serde_json::from_value::<PushRulesEventContent>(content) {
            Ok(stored) => {
                let mut ruleset = stored.global;
                ruleset.update_with_server_default(defaults);
                Ok(ruleset)
            }
            Err(error) => {
                tracing::warn!(%user, %error, "stored push rules are invalid; using the defaults");
                Ok(defaults)
            }
        }
    }

    /// Applies `change` to the user's ruleset and stores the result.
    fn update(
        &self,
        user: &UserId,
        change: impl FnOnce(&mut Ruleset) -> Result<(), PushError>,
    ) -> Result<(), PushError> {
        let _guard = self.write_lock.lock();
        let mut ruleset = self.load(user)?;
        change(&mut ruleset)?;
        let content = serde_json::to_value(PushRulesEventContent::new(ruleset.clone()))
            .map_err(|e| PushError::InvalidParam(format!("push rules cannot be stored: {e}")))?;
        self.account_data.set(user, None, PUSH_RULES_TYPE, content)?;
        self.cache.lock().put(user.to_owned(), Arc::new(UserRules::new(user, ruleset)));
        Ok(())
    }

    /// One rule.
    pub fn rule(
        &self,
        user: &UserId,
        kind: &RuleKind,
        rule_id: &str,
    ) -> Result<PushRule, PushError> {
        let rules = self.get(user)?;
        rules
            .ruleset
            .get(kind.clone(), rule_id)
            .map(PushRule::from)
            .ok_or_else(|| not_found(rule_id))
    }

    /// Creates or replaces a user-defined rule, placed by `before`/`after`.
    pub fn insert(
        &self,
        user: &UserId,
        rule: NewPushRule,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<(), PushError> {
        self.update(user, |ruleset| {
            ruleset.insert(rule, after, before).map_err(|e| match e {
                InsertPushRuleError::UnknownRuleId => {
                    PushError::NotFound("the `before` or `after` rule does not exist".into())
                }
                other => PushError::InvalidParam(other.to_string()),
            })
        })
    }

    /// Deletes a user-defined rule.
    pub fn remove(&self, user: &UserId, kind: &RuleKind, rule_id: &str) -> Result<(), PushError> {
        self.update(user, |ruleset| {
            ruleset.remove(kind.clone(), rule_id).map_err(|e| match e {
                RemovePushRuleError::ServerDefault => {
                    PushError::InvalidParam("server-default rules cannot be deleted".into())
                }
                _ => not_found(rule_id),
            })
        })
    }

    /// Enables or disables a rule.
    pub fn set_enabled(
        &self,
        user: &UserId,
        kind: &RuleKind,
        rule_id: &str,
        enabled: bool,
    ) -> Result<(), PushError> {
        self.update(user, |ruleset| {
            ruleset.set_enabled(kind.clone(), rule_id, enabled).map_err(|_| not_found(rule_id))
        })
    }

    /// Replaces a rule's actions.
    pub fn set_actions(
        &self,
        user: &UserId,
        kind: &RuleKind,
        rule_id: &str,
        actions: Vec<Action>,
    ) -> Result<(), PushError> {
        self.update(user, |ruleset| {
            ruleset.set_actions(kind.clone(), rule_id, actions).map_err(|_| not_found(rule_id))
        })
    }
}

fn not_found(rule_id: &str) -> PushError {
    PushError::NotFound(format!("push rule {rule_id} does not exist"))
}

#[cfg(test)]
mod tests {
    use ruma::{
        owned_room_id, owned_user_id,
        push::{NewSimplePushRule, PushCondition},
    };

    use super::*;

    #[test]
    fn default_rules_are_recognised_and_edits_are_not() {
        let user = owned_user_id!("@alice:example.org");
        assert!(UserRules::new(&user, Ruleset::server_default(&user)).is_default);
        let mut ruleset = Ruleset::server_default(&user);
        ruleset
            .insert(
                NewPushRule::Room(NewSimplePushRule::new(owned_room_id!("!r:example.org"), vec![])),
                None,
                None,
            )
            .unwrap();
        assert!(!UserRules::new(&user, ruleset).is_default);
    }

    #[test]
    fn display_name_need_is_detected() {
        let user = owned_user_id!("@alice:example.org");
        let mut ruleset = Ruleset::server_default(&user);
        #[allow(deprecated)]
        let condition = PushCondition::ContainsDisplayName;
        ruleset
            .insert(
                NewPushRule::Override(ruma::push::NewConditionalPushRule::new(
                    "name".into(),
                    vec![condition],
                    vec![Action::Notify],
                )),
                None,
                None,
            )
            .unwrap();
        assert!(UserRules::new(&user, ruleset).needs_display_name);
        assert!(!UserRules::server_default(&user).needs_display_name);
    }
}
