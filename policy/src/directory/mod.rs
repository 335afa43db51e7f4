//! The directory: organisation units, users, delegated admins, server admins, email rules and
//! partner servers. A checked, read-only snapshot that `decide` consults.

mod email;
mod error;
mod parts;
mod units;

pub use email::{DomainMatch, DomainPattern, EmailRule, email_domain, match_email};
pub use error::DirectoryError;
pub use parts::{AccountStatus, DEFAULT_GUEST_MAX_TERM_MS, DirectoryParts, Unit, UserRecord};
pub use units::UnitTree;

use crate::ids::{ServerName, UnitId, UserId};
use crate::tier::Tier;

/// A checked directory. Build it with [`Directory::from_parts`]; to change it, clone
/// [`Directory::parts`], edit and rebuild, so that every snapshot `decide` sees is consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    parts: DirectoryParts,
    tree: UnitTree,
}

impl Directory {
    /// Checks the parts: the unit tree, that every user, delegation and email rule names a known
    /// unit, that admins are eligible, and that server admins and the bot are local.
    pub fn from_parts(parts: DirectoryParts) -> Result<Directory, DirectoryError> {
        let tree = UnitTree::new(&parts.units)?;
        let directory = Directory { parts, tree };
        directory.check_special_users()?;
        directory.check_users()?;
        directory.check_delegations()?;
        directory.check_email_rules()?;
        Ok(directory)
    }

    fn check_special_users(&self) -> Result<(), DirectoryError> {
        let bot = std::iter::once((&self.parts.policy_bot, "policy bot"));
        let admins = self.parts.server_admins.iter().map(|u| (u, "server admin"));
        for (user, role) in bot.chain(admins) {
            if !self.is_local(user) {
                return Err(DirectoryError::NotLocal { user: user.clone(), role });
            }
        }
        Ok(())
    }

    fn check_users(&self) -> Result<(), DirectoryError> {
        for (user, record) in &self.parts.users {
            if !user.is_well_formed() {
                return Err(DirectoryError::InvalidUserId { user: user.clone() });
            }
            if !self.tree.contains(&record.unit) {
                return Err(DirectoryError::UserInUnknownUnit {
                    user: user.clone(),
                    unit: record.unit.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_delegations(&self) -> Result<(), DirectoryError> {
        for (user, units) in &self.parts.delegations {
            let record = self
                .user(user)
                .ok_or_else(|| DirectoryError::UnknownAdmin { user: user.clone() })?;
            if record.tier == Tier::Guest || !self.is_local(user) {
                return Err(DirectoryError::IneligibleAdmin { user: user.clone() });
            }
            if let Some(unit) = units.iter().find(|u| !self.tree.contains(u)) {
                return Err(DirectoryError::DelegationToUnknownUnit {
                    user: user.clone(),
                    unit: unit.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_email_rules(&self) -> Result<(), DirectoryError> {
        for rule in &self.parts.email_rules {
            let pattern = rule.domain.to_string();
            match &rule.unit {
                None if rule.tier != Tier::Guest => {
                    return Err(DirectoryError::EmailRuleWithoutUnit { pattern, tier: rule.tier });
                }
                Some(unit) if !self.tree.contains(unit) => {
                    return Err(DirectoryError::EmailRuleToUnknownUnit {
                        pattern,
                        unit: unit.clone(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The parts this directory was built from.
    pub fn parts(&self) -> &DirectoryParts {
        &self.parts
    }

    /// The organisation-unit tree.
    pub fn units(&self) -> &UnitTree {
        &self.tree
    }

    /// This homeserver's name.
    pub fn server_name(&self) -> &ServerName {
        &self.parts.server_name
    }

    /// Whether the user is on this homeserver.
    pub fn is_local(&self, user: &UserId) -> bool {
        user.is_on(&self.parts.server_name)
    }

    /// Whether the user is a server admin.
    pub fn is_server_admin(&self, user: &UserId) -> bool {
        self.parts.server_admins.contains(user)
    }

    /// Whether the user is the policy appservice's bot.
    pub fn is_policy_bot(&self, user: &UserId) -> bool {
        &self.parts.policy_bot == user
    }

    /// The directory's record of the user, if any.
    pub fn user(&self, user: &UserId) -> Option<&UserRecord> {
        self.parts.users.get(user)
    }

    /// The user's tier: from their record, else from their server for a remote user; an unknown
    /// local user, an unknown server and a malformed ID all give `guest`.
    ///
    /// The policy bot, and a server admin without a record, count as `agent`: they pass every
    /// check as actors, and as targets they must be able to sit in any room (the bot is in every
    /// workspace room so that a workspace can always be recovered).
    pub fn tier_of(&self, user: &UserId) -> Tier {
        if let Some(record) = self.user(user) {
            return record.tier;
        }
        if self.is_policy_bot(user) || self.is_server_admin(user) {
            return Tier::Agent;
        }
        match user.server_name() {
            Some(server) if !self.is_local(user) => self.remote_server_tier(server),
            _ => Tier::Guest,
        }
    }

    /// The tier of a remote server's users per the partner table; `guest` if unlisted.
    pub fn remote_server_tier(&self, server: &str) -> Tier {
        self.parts.servers.get(&ServerName::from(server)).copied().unwrap_or(Tier::Guest)
    }

    /// What the email rules give an address.
    pub fn match_email(&self, email: &str) -> DomainMatch {
        match_email(&self.parts.email_rules, email)
    }

    /// The units whose subtrees the user administers (empty for non-admins).
    pub fn admin_units(&self, user: &UserId) -> impl Iterator<Item = &UnitId> {
        self.parts.delegations.get(user).into_iter().flatten()
    }

    /// Whether the user holds any delegation.
    pub fn is_delegated_admin(&self, user: &UserId) -> bool {
        self.admin_units(user).next().is_some()
    }

    /// Whether one of the user's delegations covers `unit` (the unit is in its subtree).
    pub fn admin_covers(&self, user: &UserId, unit: &UnitId) -> bool {
        self.admin_units(user).any(|root| self.tree.is_in_subtree(unit, root))
    }

    /// Whether `unit` lies strictly below one of the user's delegated units: the units whose
    /// admins this user may appoint or remove.
    pub fn admin_covers_strictly(&self, user: &UserId, unit: &UnitId) -> bool {
        self.admin_units(user).any(|root| self.tree.is_strictly_below(unit, root))
    }

    /// The longest term a guest renewal may grant, in milliseconds.
    pub fn guest_max_term_ms(&self) -> u64 {
        self.parts.guest_max_term_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> DirectoryParts {
        let mut p = DirectoryParts::new("relais.test", "@policy:relais.test");
        p.units = vec![
            Unit { id: "state".into(), parent: None, requires_workspace_approval: false },
            Unit {
                id: "interior".into(),
                parent: Some("state".into()),
                requires_workspace_approval: false,
            },
        ];
        p.users.insert("@anne:relais.test".into(), UserRecord::new(Tier::Agent, "interior"));
        p.servers.insert("partner.gouv.fr".into(), Tier::Agent);
        p
    }

    #[test]
    fn tiers_come_from_records_then_servers_then_guest() {
        let d = Directory::from_parts(parts()).expect("valid");
        assert_eq!(d.tier_of(&"@anne:relais.test".into()), Tier::Agent);
        assert_eq!(d.tier_of(&"@bob:partner.gouv.fr".into()), Tier::Agent);
        assert_eq!(d.tier_of(&"@eve:unknown.example".into()), Tier::Guest);
        assert_eq!(d.tier_of(&"@ghost:relais.test".into()), Tier::Guest);
        assert_eq!(d.tier_of(&"not-an-id".into()), Tier::Guest);
        assert_eq!(d.tier_of(&"@policy:relais.test".into()), Tier::Agent);
    }

    #[test]
    fn admins_cover_their_subtree_only() {
        let mut p = parts();
        p.delegations.insert("@anne:relais.test".into(), ["interior".into()].into());
        let d = Directory::from_parts(p).expect("valid");
        let anne = UserId::from("@anne:relais.test");
        assert!(d.admin_covers(&anne, &"interior".into()));
        assert!(!d.admin_covers(&anne, &"state".into()));
        assert!(!d.admin_covers_strictly(&anne, &"interior".into()));
    }

    #[test]
    fn inconsistent_parts_are_refused() {
        let mut p = parts();
        p.users.insert("@x:relais.test".into(), UserRecord::new(Tier::Agent, "nowhere"));
        assert!(matches!(Directory::from_parts(p), Err(DirectoryError::UserInUnknownUnit { .. })));

        let mut p = parts();
        p.delegations.insert("@ghost:relais.test".into(), ["state".into()].into());
        assert!(matches!(Directory::from_parts(p), Err(DirectoryError::UnknownAdmin { .. })));

        let mut p = parts();
        p.users.insert("@g:relais.test".into(), UserRecord::guest("state", "@anne:relais.test", 1));
        p.delegations.insert("@g:relais.test".into(), ["state".into()].into());
        assert!(matches!(Directory::from_parts(p), Err(DirectoryError::IneligibleAdmin { .. })));

        let mut p = parts();
        p.server_admins.insert("@root:elsewhere.test".into());
        assert!(matches!(Directory::from_parts(p), Err(DirectoryError::NotLocal { .. })));

        let mut p = parts();
        p.email_rules.push(EmailRule { domain: DomainPattern::Any, tier: Tier::Agent, unit: None });
        assert!(matches!(
            Directory::from_parts(p),
            Err(DirectoryError::EmailRuleWithoutUnit { .. })
        ));
    }

    #[test]
    fn parts_deserialise_with_defaults() {
        let json = serde_json::json!({
            "server_name": "relais.test",
            "policy_bot": "@policy:relais.test",
            "email_rules": [{"domain": "*.gouv.fr", "tier": "agent", "unit": "state"}],
            "units": [{"id": "state"}]
        });
        let p: DirectoryParts = serde_json::from_value(json).expect("parse");
        assert_eq!(p.guest_max_term_ms, DEFAULT_GUEST_MAX_TERM_MS);
        assert!(Directory::from_parts(p).is_ok());
        let bad = serde_json::json!({
            "server_name": "relais.test", "policy_bot": "@policy:relais.test",
            "email_rules": [{"domain": "gouv.*", "tier": "agent"}]
        });
        assert!(serde_json::from_value::<DirectoryParts>(bad).is_err());
    }
}
