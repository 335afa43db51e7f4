//! The content of the `fr.relais.*` events that hold the directory.
//!
//! - `fr.relais.member` (state key: the user ID without its `@`, since only a user may send state
//!   keyed by their own ID) in the room of the user's unit: the user's
//!   [`UserRecord`] (tier, unit, sponsor, expiry, status). The latest one written, in stream order,
//!   wins: moving a user to another unit writes a record in the new unit's room.
//! - `fr.relais.delegation` (state key: the admin's user ID without its `@`) in the room of the unit they
//!   administer: [`DelegationRecord`].
//! - `fr.relais.audit` (timeline event) in the room of the unit concerned: [`AuditEntry`]. The
//!   rooms' timelines are the audit log.

use relais_policy::{UnitId, UserId};
pub use relais_policy::{UserRecord, names};
use serde::{Deserialize, Serialize};

/// A delegation of a unit's administration to a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRecord {
    /// Whether the delegation holds; withdrawn delegations stay in the room's history.
    pub active: bool,
    /// Who appointed (or removed) the admin.
    pub by: UserId,
}

/// One administrative action, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The action's name, as `relais_policy::Action::name` gives it (`set_tier`, `lock`, ...).
    pub action: String,
    /// Who acted.
    pub actor: UserId,
    /// Under which authority: `server_admin`, or the units of the actor's delegations that cover
    /// the target.
    pub authority: String,
    /// On whom or what (a user ID, a unit, a room).
    pub target: String,
    /// The unit concerned.
    pub unit: UnitId,
    /// What changed, e.g. `{"tier": "agent"}`.
    #[serde(default)]
    pub details: serde_json::Value,
    /// The reason the actor gave.
    #[serde(default)]
    pub reason: String,
}
