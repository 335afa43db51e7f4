//! The raw material of a directory, as configuration and `fr.relais.*` state events give it.
//!
//! These types are plain data with public fields so that the appservice can build them from
//! state events and tests from JSON; [`super::Directory::from_parts`] checks them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::email::EmailRule;
use crate::ids::{ServerName, UnitId, UserId};
use crate::tier::Tier;

/// Default longest guest term, 365 days: long enough for a yearly partnership, short enough that
/// forgotten guests fall away.
pub const DEFAULT_GUEST_MAX_TERM_MS: u64 = 365 * 24 * 60 * 60 * 1000;

/// Everything the policy needs to know about people and organisation, before checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryParts {
    /// This homeserver's name; users on it are local.
    pub server_name: ServerName,
    /// The policy appservice's bot, which passes every check.
    pub policy_bot: UserId,
    /// Server admins, who pass every check. Must be local users.
    #[serde(default)]
    pub server_admins: BTreeSet<UserId>,
    /// The organisation units, in any order.
    #[serde(default)]
    pub units: Vec<Unit>,
    /// Known users: local ones, and remote ones replicated from trusted partners.
    #[serde(default)]
    pub users: BTreeMap<UserId, UserRecord>,
    /// Delegated admins: user -> the units whose subtrees they administer.
    #[serde(default)]
    pub delegations: BTreeMap<UserId, BTreeSet<UnitId>>,
    /// Email-domain rules, first match wins; no match gives `guest`.
    #[serde(default)]
    pub email_rules: Vec<EmailRule>,
    /// Partner servers and the tier of their users; unknown servers give `guest`.
    #[serde(default)]
    pub servers: BTreeMap<ServerName, Tier>,
    /// The longest term a guest renewal may grant, in milliseconds from the renewal.
    #[serde(default = "default_guest_max_term_ms")]
    pub guest_max_term_ms: u64,
}

fn default_guest_max_term_ms() -> u64 {
    DEFAULT_GUEST_MAX_TERM_MS
}

impl DirectoryParts {
    /// An empty directory for `server_name`, with `policy_bot` as its bot.
    pub fn new(
        server_name: impl Into<ServerName>,
        policy_bot: impl Into<UserId>,
    ) -> DirectoryParts {
        DirectoryParts {
            server_name: server_name.into(),
            policy_bot: policy_bot.into(),
            server_admins: BTreeSet::new(),
            units: Vec::new(),
            users: BTreeMap::new(),
            delegations: BTreeMap::new(),
            email_rules: Vec::new(),
            servers: BTreeMap::new(),
            guest_max_term_ms: DEFAULT_GUEST_MAX_TERM_MS,
        }
    }
}

/// One organisation unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The unit's identifier.
    pub id: UnitId,
    /// The parent unit; `None` for a root.
    #[serde(default)]
    pub parent: Option<UnitId>,
    /// Whether agents of this unit (and of its sub-units) need an admin's approval to create a
    /// workspace.
    #[serde(default)]
    pub requires_workspace_approval: bool,
}

/// What the directory knows about one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user's tier.
    pub tier: Tier,
    /// The unit the user belongs to.
    pub unit: UnitId,
    /// The agent who invited this guest; every guest has one.
    #[serde(default)]
    pub sponsor: Option<UserId>,
    /// When the account stops working, in milliseconds since the epoch. Every guest has one;
    /// other tiers may have one too (e.g. a fixed-term contract).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Whether the account is active, locked or deactivated.
    #[serde(default)]
    pub status: AccountStatus,
    /// Whether the user opted out of the user directory.
    #[serde(default)]
    pub hidden: bool,
}

impl UserRecord {
    /// An active, visible, non-expiring record.
    pub fn new(tier: Tier, unit: impl Into<UnitId>) -> UserRecord {
        UserRecord {
            tier,
            unit: unit.into(),
            sponsor: None,
            expires_at_ms: None,
            status: AccountStatus::Active,
            hidden: false,
        }
    }

    /// An active guest record with its sponsor and expiry.
    pub fn guest(
        unit: impl Into<UnitId>,
        sponsor: impl Into<UserId>,
        expires_at_ms: u64,
    ) -> UserRecord {
        UserRecord {
            sponsor: Some(sponsor.into()),
            expires_at_ms: Some(expires_at_ms),
            ..UserRecord::new(Tier::Guest, unit)
        }
    }
}

/// The administrative state of an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// The account works (subject to expiry).
    #[default]
    Active,
    /// Suspended by an admin; can be unlocked.
    Locked,
    /// Closed for good.
    Deactivated,
}
