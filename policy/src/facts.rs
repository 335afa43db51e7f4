//! What the caller tells `decide` about the actor and the room.
//!
//! The homeserver computes room facts from room state (it is the only one that can); the policy
//! engine never looks anything up by itself, which keeps it pure and easy to test.

use serde::{Deserialize, Serialize};

use crate::access::AccessClass;
use crate::ids::{UnitId, UserId};

/// Who is acting. Only the ID: tier, unit and account state come from the directory, so that no
/// caller can claim a tier the directory did not grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor {
    /// The acting user (for registration: the user ID being registered).
    pub user_id: UserId,
}

impl Actor {
    /// An actor from a user ID.
    pub fn new(user_id: impl Into<UserId>) -> Actor {
        Actor { user_id: user_id.into() }
    }
}

/// Power level of a room moderator, the highest a `public` user may hold (rule P1).
pub const MODERATOR_POWER: i64 = 50;
/// Power level of a room admin, needed to open a room (rule P2).
pub const ADMIN_POWER: i64 = 100;

/// Facts about the room an action concerns, as of just before the action.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomFacts {
    /// The class in the room's `fr.relais.access` event; `None` (no event) means `agents`.
    pub class: Option<AccessClass>,
    /// Whether the room was created as a direct conversation (`is_direct`), whatever its class.
    pub is_direct: bool,
    /// Whether the room is a workspace (a space with a `fr.relais.workspace` event).
    pub is_workspace: bool,
    /// Joined plus invited members, the actor and target included if they already are either.
    pub member_count: u32,
    /// Whether the actor is joined.
    pub actor_joined: bool,
    /// Whether the actor holds a pending invitation.
    pub actor_invited: bool,
    /// The actor's power level. In room version 12 a creator's power is unbounded: pass
    /// `i64::MAX`.
    pub actor_power: i64,
    /// The power level needed to invite (`invite` in `m.room.power_levels`, 0 if absent).
    pub invite_power: i64,
    /// The power level new members get (`users_default`).
    pub users_default_power: i64,
    /// The workspace this room is a child of, if any.
    pub workspace: Option<WorkspaceFacts>,
    /// The unit the room is administered under, for a room that is not a workspace's child: a
    /// workspace's own unit, or the creator's unit for a standalone room. `None` if unknown.
    pub unit: Option<UnitId>,
}

impl RoomFacts {
    /// The class that applies: the event's class (or `agents`), never more open than the
    /// parent workspace's.
    pub fn effective_class(&self) -> AccessClass {
        let own = AccessClass::or_default(self.class);
        match &self.workspace {
            Some(ws) => own.within(ws.effective_class()),
            None => own,
        }
    }

    /// The class in the room's own event (or `agents`), before the workspace ceiling.
    pub fn own_class(&self) -> AccessClass {
        AccessClass::or_default(self.class)
    }

    /// Whether the room is a direct conversation, by creation flag or by class.
    pub fn is_direct_conversation(&self) -> bool {
        self.is_direct || self.class == Some(AccessClass::Direct)
    }

    /// The unit whose admins govern the room: the parent workspace's, else the room's own.
    pub fn administering_unit(&self) -> Option<&UnitId> {
        self.workspace.as_ref().map(|ws| &ws.unit).or(self.unit.as_ref())
    }

    /// Whether the actor is a room admin (P2).
    pub fn actor_is_room_admin(&self) -> bool {
        self.actor_power >= ADMIN_POWER
    }
}

/// Facts about a workspace: the parent of a room, or the one a room is being created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceFacts {
    /// The class in the workspace's `fr.relais.access` event; `None` means `agents`.
    #[serde(default)]
    pub class: Option<AccessClass>,
    /// The unit the workspace belongs to.
    pub unit: UnitId,
    /// The actor's power level in the workspace's space.
    #[serde(default)]
    pub actor_power: i64,
    /// Whether the workspace is active, locked or archived.
    #[serde(default)]
    pub status: WorkspaceStatus,
}

impl WorkspaceFacts {
    /// The workspace's class, `agents` without the event.
    pub fn effective_class(&self) -> AccessClass {
        AccessClass::or_default(self.class)
    }
}

/// A workspace's lifecycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceStatus {
    /// In use.
    #[default]
    Active,
    /// Read-only, by an admin's decision.
    Locked,
    /// Closed and kept for the record.
    Archived,
}
