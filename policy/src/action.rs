//! Everything a user can ask for that the policy decides on.

use serde::{Deserialize, Serialize};

use crate::access::AccessClass;
use crate::facts::WorkspaceFacts;
use crate::ids::{RoomId, UnitId, UserId};
use crate::tier::Tier;

/// An action to decide on. Serialised with an `action` tag in snake case, e.g.
/// `{"action": "invite", "target": "@a:relais.test", "room": "!r:relais.test"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// R1: register the actor's user ID.
    Register {
        /// The verified email address, if the registration has one.
        #[serde(default)]
        email: Option<String>,
        /// The registration invitation (token or email invite) presented, if any.
        #[serde(default)]
        invitation: Option<Invitation>,
    },
    /// R2: log in (and, implicitly, any use of the account).
    Login,
    /// W1: create a workspace (a space) in `unit`.
    CreateWorkspace {
        /// The unit the workspace will belong to.
        unit: UnitId,
        /// The requested class; `None` gives `agents`.
        #[serde(default)]
        class: Option<AccessClass>,
        /// The admin who approved the request, where the unit requires approval.
        #[serde(default)]
        approved_by: Option<UserId>,
    },
    /// W2: create a room, possibly inside a workspace.
    CreateRoom {
        /// The requested class; `None` gives the most restrictive one the creator may create.
        #[serde(default)]
        class: Option<AccessClass>,
        /// The workspace the room is created in, if any.
        #[serde(default)]
        parent_workspace: Option<WorkspaceFacts>,
    },
    /// W3: create a direct conversation with `with`.
    CreateDirect {
        /// The other user.
        with: UserId,
        /// Whether the actor and `with` already share a room (computed by the homeserver).
        #[serde(default)]
        shares_room: bool,
    },
    /// M1: the actor joins a room.
    Join {
        /// The room.
        room: RoomId,
    },
    /// M1–M4: invite `target` into a room.
    Invite {
        /// The invitee.
        target: UserId,
        /// The room.
        room: RoomId,
    },
    /// M1: the actor knocks on a room.
    Knock {
        /// The room.
        room: RoomId,
    },
    /// P1: set `target`'s power level in a room.
    SetPowerLevel {
        /// The room.
        room: RoomId,
        /// Whose power level changes.
        target: UserId,
        /// The new level.
        level: i64,
    },
    /// P2/P3: change a room's access class.
    ChangeAccessClass {
        /// The room or workspace.
        room: RoomId,
        /// The class the caller believes the room has now.
        from: AccessClass,
        /// The class asked for.
        to: AccessClass,
    },
    /// D1: publish a room in the room directory.
    PublishInDirectory {
        /// The room.
        room: RoomId,
    },
    /// D2: list the room directory (`room: None`), or see one entry of it (`room: Some`).
    SeeRoomDirectory,
    /// D3: find `target` in the user directory.
    SearchUserDirectory {
        /// The user who would appear in the results.
        target: UserId,
        /// Whether the actor and `target` share a room (computed by the homeserver).
        #[serde(default)]
        shares_room: bool,
    },
    /// Issue a registration invitation for a new account of `tier` in `unit`.
    IssueInvitation {
        /// The tier the invitation grants.
        tier: Tier,
        /// The unit the new account will belong to.
        unit: UnitId,
    },
    /// Set a user's tier. Afterwards the homeserver removes the user from rooms whose class no
    /// longer admits them and lowers their power levels to [`crate::max_power_level`].
    SetTier {
        /// The user.
        target: UserId,
        /// The new tier.
        tier: Tier,
    },
    /// Lock an account (reversible).
    Lock {
        /// The user.
        target: UserId,
    },
    /// Unlock an account.
    Unlock {
        /// The user.
        target: UserId,
    },
    /// Deactivate an account for good.
    Deactivate {
        /// The user.
        target: UserId,
    },
    /// Extend a guest's account until `until_ms`.
    RenewGuest {
        /// The guest.
        target: UserId,
        /// The new expiry, in milliseconds since the epoch.
        until_ms: u64,
    },
    /// End a guest's account now.
    EndGuest {
        /// The guest.
        target: UserId,
    },
    /// Approve a workspace creation request in `unit`.
    ApproveWorkspace {
        /// The unit the workspace will belong to.
        unit: UnitId,
    },
    /// Move a workspace from one unit to another.
    TransferWorkspace {
        /// The workspace, with its current unit.
        workspace: WorkspaceRef,
        /// The unit it moves to.
        to: UnitId,
    },
    /// Close a workspace: make it less open (rule P3 at the workspace level). Its rooms follow,
    /// since a child is never more open than its workspace; members whose tier no longer fits
    /// are removed by the homeserver.
    CloseWorkspace {
        /// The workspace.
        workspace: WorkspaceRef,
        /// The class it closes to.
        to: AccessClass,
    },
    /// Make a workspace read-only.
    LockWorkspace {
        /// The workspace.
        workspace: WorkspaceRef,
    },
    /// Archive a workspace.
    ArchiveWorkspace {
        /// The workspace.
        workspace: WorkspaceRef,
    },
    /// Take back a workspace whose admins left.
    RecoverWorkspace {
        /// The workspace.
        workspace: WorkspaceRef,
    },
    /// Export a workspace's member list.
    ExportMembers {
        /// The workspace.
        workspace: WorkspaceRef,
    },
    /// Read (filter, export) the audit log of `unit`'s subtree.
    ReadAuditLog {
        /// The unit whose entries are read.
        unit: UnitId,
    },
    /// Make `user` a delegated admin of `unit`.
    AppointAdmin {
        /// The future admin.
        user: UserId,
        /// The unit they will administer.
        unit: UnitId,
    },
    /// Withdraw `user`'s delegation over `unit`.
    RemoveAdmin {
        /// The admin.
        user: UserId,
        /// The unit.
        unit: UnitId,
    },
}

/// A registration invitation, as checked by whoever holds the token: the policy re-checks that
/// its issuer may still issue it, so a revoked delegation revokes its pending invitations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The tier the new account gets.
    pub tier: Tier,
    /// The unit the new account joins.
    pub unit: UnitId,
    /// Who issued it: a delegated admin, or for a guest the sponsoring agent.
    pub issued_by: UserId,
    /// When it stops being valid, in milliseconds since the epoch.
    pub expires_at_ms: u64,
}

/// A workspace named in an administrative action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRef {
    /// The workspace's space room.
    pub room: RoomId,
    /// The unit it belongs to now.
    pub unit: UnitId,
}

impl Action {
    /// The snake-case name of the action, as in its serialised tag; for messages and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Register { .. } => "register",
            Action::Login => "login",
            Action::CreateWorkspace { .. } => "create_workspace",
            Action::CreateRoom { .. } => "create_room",
            Action::CreateDirect { .. } => "create_direct",
            Action::Join { .. } => "join",
            Action::Invite { .. } => "invite",
            Action::Knock { .. } => "knock",
            Action::SetPowerLevel { .. } => "set_power_level",
            Action::ChangeAccessClass { .. } => "change_access_class",
            Action::PublishInDirectory { .. } => "publish_in_directory",
            Action::SeeRoomDirectory => "see_room_directory",
            Action::SearchUserDirectory { .. } => "search_user_directory",
            Action::IssueInvitation { .. } => "issue_invitation",
            Action::SetTier { .. } => "set_tier",
            Action::Lock { .. } => "lock",
            Action::Unlock { .. } => "unlock",
            Action::Deactivate { .. } => "deactivate",
            Action::RenewGuest { .. } => "renew_guest",
            Action::EndGuest { .. } => "end_guest",
            Action::ApproveWorkspace { .. } => "approve_workspace",
            Action::TransferWorkspace { .. } => "transfer_workspace",
            Action::CloseWorkspace { .. } => "close_workspace",
            Action::LockWorkspace { .. } => "lock_workspace",
            Action::ArchiveWorkspace { .. } => "archive_workspace",
            Action::RecoverWorkspace { .. } => "recover_workspace",
            Action::ExportMembers { .. } => "export_members",
            Action::ReadAuditLog { .. } => "read_audit_log",
            Action::AppointAdmin { .. } => "appoint_admin",
            Action::RemoveAdmin { .. } => "remove_admin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_the_serialised_tag() {
        let actions = [
            Action::Login,
            Action::SeeRoomDirectory,
            Action::Invite { target: "@a:x".into(), room: "!r:x".into() },
            Action::ReadAuditLog { unit: "state".into() },
        ];
        for action in actions {
            let json = serde_json::to_value(&action).expect("serialise");
            assert_eq!(json["action"], action.name());
        }
    }
}
