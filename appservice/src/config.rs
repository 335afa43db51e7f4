//! The `[policy]` section of the configuration.

use std::collections::BTreeMap;

use relais_policy::{AccessClass, EmailRule, Tier};
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
    /// How many days before a guest account ends the guest and their sponsor get a notice.
    pub guest_reminder_days: u64,
    /// How often the policy service looks for accounts to remind, in seconds.
    pub reminder_interval_secs: u64,
    /// The templates workspaces are created from (`[[policy.workspace_templates]]`).
    pub workspace_templates: Vec<WorkspaceTemplate>,
    /// Who answers the homeserver's policy checks (read by the homeserver only).
    pub checks: ChecksBy,
}

/// Who answers a homeserver's policy checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksBy {
    /// The policy service embedded in the homeserver, with no HTTP in between.
    #[default]
    Embedded,
    /// The service at `[policy_checks] url`: a `relais-policy-service` running on its own. The
    /// homeserver still keeps the directory (admin API, bot, reminders); the service reads it
    /// from the unit rooms.
    External,
}

/// A workspace template: the rooms a new workspace (a space) starts with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceTemplate {
    /// The template's identifier, named in creation requests (`standard`).
    pub id: String,
    /// The rooms created in the workspace, in this order.
    pub rooms: Vec<TemplateRoom>,
}

/// One room of a [`WorkspaceTemplate`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRoom {
    /// The room's name.
    pub name: String,
    /// The room's topic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topic: String,
    /// The class of the room; the workspace's when absent, and never more open than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<AccessClass>,
    /// The power level needed to post messages (`events_default`): 50 lets only moderators
    /// post, as in an announcements room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_default: Option<i64>,
}

impl TemplateRoom {
    fn named(name: &str, topic: &str) -> Self {
        Self { name: name.to_owned(), topic: topic.to_owned(), class: None, events_default: None }
    }
}

impl WorkspaceTemplate {
    /// The default template: discussion, announcements (moderators post), documents, tasks.
    pub fn standard() -> Self {
        Self {
            id: "standard".to_owned(),
            rooms: vec![
                TemplateRoom::named("Discussion", "Everyday conversation of the workspace"),
                TemplateRoom {
                    events_default: Some(50),
                    ..TemplateRoom::named("Announcements", "Only moderators post here")
                },
                TemplateRoom::named("Documents", "Shared files and references"),
                TemplateRoom::named("Tasks", "Who does what, by when"),
            ],
        }
    }
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

impl UnitConfig {
    /// A unit with no name of its own and no approval needed for workspaces.
    pub fn new(id: &str, parent: Option<&str>) -> Self {
        Self {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            name: String::new(),
            requires_workspace_approval: false,
        }
    }
}

impl PolicyConfig {
    /// The policy enabled over `units`, with the defaults for everything else.
    pub fn enabled_with(units: Vec<UnitConfig>) -> Self {
        Self { enabled: true, units, ..Self::default() }
    }
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
            guest_reminder_days: 7,
            reminder_interval_secs: 3600,
            workspace_templates: vec![WorkspaceTemplate::standard()],
            checks: ChecksBy::Embedded,
        }
    }
}
