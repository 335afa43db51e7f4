//! The `[policy]` section of the configuration.

use std::collections::BTreeMap;

use relais_policy::{EmailRule, Tier};
use serde::{Deserialize, Serialize};

/// The policy service's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Whether the policy is enforced. Off, every check allows (a plain homeserver).
    pub enabled: bool,
    /// Localpart of the policy service's bot, which owns the directory rooms and passes every
    /// check.
    pub bot_localpart: String,
    /// Server admins (user IDs): they pass every check, in addition to accounts created with
    /// `relais create-user --admin`.
    pub server_admins: Vec<String>,
    /// The organisation tree at first start; later changes go through the admin API.
    pub units: Vec<UnitConfig>,
    /// Email-domain rules, first match wins (`{ domain = "*.gouv.fr", tier = "agent",
    /// unit = "state" }`); no match gives `guest`.
    pub email_rules: Vec<EmailRule>,
    /// Partner servers and the tier of their users; unknown servers give `guest`.
    pub servers: BTreeMap<String, Tier>,
    /// Term of a new guest account when the sponsor gives none, in days.
    pub guest_default_term_days: u64,
    /// Longest term a guest renewal may grant, in days.
    pub guest_max_term_days: u64,
}

/// One organisation unit of the bootstrap tree.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// The unit's identifier (`prefecture-creuse`).
    pub id: String,
    /// The parent unit; absent for the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Human-readable name, given to the unit's directory room.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Whether agents of this unit need an admin's approval to create a workspace.
    #[serde(default)]
    pub requires_workspace_approval: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            bot_localpart: "relais-policy".to_owned(),
            server_admins: Vec::new(),
            units: Vec::new(),
            email_rules: Vec::new(),
            servers: BTreeMap::new(),
            guest_default_term_days: 90,
            guest_max_term_days: 365,
        }
    }
}
