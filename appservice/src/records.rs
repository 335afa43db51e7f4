//! The content of the `fr.relais.*` events that hold the directory.
//!
//! - `fr.relais.member` (state key: the user ID without its `@`, since only a user may send state
//!   keyed by their own ID) in the room of the user's unit: the user's
//!   [`UserRecord`] (tier, unit, sponsor, expiry, status). The latest one written, in stream order,
//!   wins: moving a user to another unit writes a record in the new unit's room.
//! - `fr.relais.delegation` (state key: the admin's user ID without its `@`) in the room of the unit they
//!   administer: [`DelegationRecord`].
//! - `fr.relais.invitation` (state key: the SHA-256 of the token, base64url) in the room of the unit the
//!   accounts will join: [`InvitationRecord`].
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

/// A registration invitation: whoever holds its token may register an account of `tier` in
/// `unit`, `uses_left` times, until `expires_at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRecord {
    /// The tier of the accounts it creates.
    pub tier: relais_policy::Tier,
    /// Their unit.
    pub unit: UnitId,
    /// Who issued it: an admin, or the sponsoring agent of a guest.
    pub issued_by: UserId,
    /// When it stops being valid, in milliseconds since the epoch.
    pub expires_at_ms: u64,
    /// Registrations it still allows.
    pub uses_left: u32,
    /// Registrations it allowed when issued or last changed (so that the uses taken can be
    /// shown); absent in records written before it was kept.
    #[serde(default)]
    pub uses_allowed: Option<u32>,
    /// For guest accounts: how long each account lasts from its registration, in milliseconds.
    #[serde(default)]
    pub guest_term_ms: Option<u64>,
    /// Withdrawn by an admin.
    #[serde(default)]
    pub revoked: bool,
}

impl InvitationRecord {
    /// Whether it still allows a registration at `now_ms`.
    pub fn is_usable(&self, now_ms: u64) -> bool {
        !self.revoked && self.uses_left > 0 && now_ms < self.expires_at_ms
    }

    /// The invitation as the decision engine checks it.
    pub fn to_policy(&self) -> relais_policy::Invitation {
        relais_policy::Invitation {
            tier: self.tier,
            unit: self.unit.clone(),
            issued_by: self.issued_by.clone(),
            expires_at_ms: self.expires_at_ms,
        }
    }
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
