//! Delegated administration of existing workspaces: close (P3), lock (read-only), archive,
//! transfer to another unit, recover (the policy bot, a creator of every workspace room, restores
//! an admin) and export the member list. Each action is decided with its `relais_policy::Action`
//! (the actor's delegation must cover the workspace's unit), carried out by the policy bot, and
//! audited in the unit's room.

use relais_appservice::records::names;
use relais_policy::{AccessClass, Action, Tier, UnitId, WorkspaceFacts, WorkspaceRef};
use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, UserId,
    events::{StateEventType, room::member::MembershipState},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::PolicyError;
use crate::service::{Services, rooms::PduTemplate};

/// The power level a locked workspace requires to post or change state: members and
/// moderators are silenced, the room admins who could unlock it are not.
const LOCKED_LEVEL: i64 = 100;

/// A member removed when a workspace closed.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    /// The room they were removed from.
    pub room_id: OwnedRoomId,
    /// Who.
    pub user_id: OwnedUserId,
    /// Their tier, which the new class no longer admits.
    pub tier: Tier,
}

/// The outcome of closing a workspace.
#[derive(Clone, Debug, Serialize)]
pub struct Closed {
    /// Each room (the space first) with its class now.
    pub rooms: Vec<(OwnedRoomId, AccessClass)>,
    /// The members removed, with the reason given to them.
    pub removed: Vec<Removed>,
}

/// One line of a workspace's member export.
#[derive(Clone, Debug, Serialize)]
pub struct MemberRow {
    /// The room (the space or one of its rooms).
    pub room_id: OwnedRoomId,
    /// The member.
    pub user_id: OwnedUserId,
    /// `join`, `invite`, `knock`...
    pub membership: String,
    /// Their tier.
    pub tier: Tier,
    /// Their unit, for local users in the directory.
    pub unit: Option<UnitId>,
    /// Their power level; `None` for the room's creators, whose power has no bound.
    pub power: Option<i64>,
}

/// The lifecycle actions that make a workspace read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freeze {
    /// Read-only, by an admin's decision.
    Lock,
    /// Closed and kept for the record (read-only too).
    Archive,
}

impl Services {
    /// A workspace's facts and its reference for the decision engine.
    fn workspace(
        &self,
        space: &RoomId,
        actor: &UserId,
    ) -> Result<(WorkspaceRef, WorkspaceFacts), PolicyError> {
        self.require_policy()?;
        let facts = self
            .workspace_facts(space, actor)?
            .ok_or_else(|| PolicyError::NotFound(format!("{space} is not a workspace")))?;
        Ok((WorkspaceRef { room: space.as_str().into(), unit: facts.unit.clone() }, facts))
    }

    /// The space and the rooms it lists as children (`m.space.child` with a `via`), space first.
    pub fn workspace_rooms(&self, space: &RoomId) -> Result<Vec<OwnedRoomId>, PolicyError> {
        let mut rooms = vec![space.to_owned()];
        let Some((_, meta)) = self.rooms.meta(space)? else { return Ok(rooms) };
        for pdu in self.rooms.state_events(meta.state)? {
            if pdu.kind().to_string() != "m.space.child" {
                continue;
            }
            let linked = serde_json::from_str::<Value>(pdu.fields.content.get()).is_ok_and(|c| {
                c.get("via").is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            });
            if let Some(room) = pdu.state_key().and_then(|k| RoomId::parse(k).ok())
                && linked
                && self.rooms.exists(&room)?
            {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }

    /// Closes a workspace to `to` (P3): the space and every room more open than `to` take it,
    /// and members whose tier the new class no longer admits are removed, with the rule as the
    /// reason.
    pub fn close_workspace(
        &self,
        actor: &UserId,
        space: &RoomId,
        to: AccessClass,
        reason: &str,
    ) -> Result<Closed, PolicyError> {
        let (workspace, facts) = self.workspace(space, actor)?;
        let from = facts.effective_class();
        if to == AccessClass::Direct || to.is_more_open_than(from) {
            return Err(PolicyError::Refused(format!(
                "P3: closing cannot make the workspace more open than `{from}`; an admin of the workspace opens it (P2)"
            )));
        }
        let unit = workspace.unit.clone();
        let action = Action::CloseWorkspace { workspace, to };
        let authority = self.authorise(actor, &action)?;
        let bot = self.policy_bot()?;
        let directory = self.policy.service.directory();
        let mut closed = Closed { rooms: Vec::new(), removed: Vec::new() };
        for room in self.workspace_rooms(space)? {
            let own = AccessClass::from_event_content(
                self.state_content(&room, names::ACCESS, "")?.as_ref(),
            );
            let class = own.within(to);
            if class != own || room == space {
                self.rooms.append(
                    &room,
                    &bot,
                    PduTemplate::state(
                        StateEventType::from(names::ACCESS),
                        "",
                        class.to_event_content(),
                    ),
                    None,
                )?;
            }
            for (user, entry) in self.rooms.members(&room)? {
                let current = matches!(
                    entry.membership,
                    MembershipState::Join | MembershipState::Invite | MembershipState::Knock
                );
                let tier = directory.tier_of(&user.as_str().into());
                if !current || class.admits(tier) || self.is_policy_exempt(&user)? {
                    continue;
                }
                let why = format!(
                    "P3: this room was closed to class `{class}`, which does not admit the tier `{tier}`{}",
                    if reason.is_empty() { String::new() } else { format!(" ({reason})") }
                );
                self.set_membership(&room, &bot, &user, MembershipState::Leave, Some(&why))?;
                closed.removed.push(Removed { room_id: room.clone(), user_id: user, tier });
            }
            closed.rooms.push((room, class));
        }
        let details = json!({ "from": from, "to": to, "removed": closed.removed });
        self.audit_workspace(&unit, &action, actor, &authority, space, details, reason)?;
        Ok(closed)
    }

    /// Locks (read-only) or archives a workspace: posting and changing state in the space and its
    /// rooms needs power level 100, and the workspace record says so.
    pub fn freeze_workspace(
        &self,
        actor: &UserId,
        space: &RoomId,
        freeze: Freeze,
        reason: &str,
    ) -> Result<(), PolicyError> {
        let (workspace, _) = self.workspace(space, actor)?;
        let unit = workspace.unit.clone();
        let (action, status) = match freeze {
            Freeze::Lock => (Action::LockWorkspace { workspace }, "locked"),
            Freeze::Archive => (Action::ArchiveWorkspace { workspace }, "archived"),
        };
        let authority = self.authorise(actor, &action)?;
        let bot = self.policy_bot()?;
        let rooms = self.workspace_rooms(space)?;
        for room in &rooms {
            let mut levels =
                self.state_content(room, "m.room.power_levels", "")?.unwrap_or_else(|| json!({}));
            if let Some(obj) = levels.as_object_mut() {
                obj.insert("events_default".into(), LOCKED_LEVEL.into());
                obj.insert("state_default".into(), LOCKED_LEVEL.into());
            }
            self.rooms.append(
                room,
                &bot,
                PduTemplate::state(StateEventType::RoomPowerLevels, "", levels),
                None,
            )?;
        }
        self.update_workspace_record(space, &bot, |record| record["status"] = status.into())?;
        let details = json!({ "status": status, "rooms": rooms });
        self.audit_workspace(&unit, &action, actor, &authority, space, details, reason)
    }

    /// Moves a workspace to another unit; both units' logs record it.
    pub fn transfer_workspace(
        &self,
        actor: &UserId,
        space: &RoomId,
        to: &str,
        reason: &str,
    ) -> Result<(), PolicyError> {
        let (workspace, _) = self.workspace(space, actor)?;
        let (from, to) = (workspace.unit.clone(), UnitId::from(to));
        if !self.policy.service.directory().units().contains(&to) {
            return Err(PolicyError::NotFound(format!("there is no organisation unit `{to}`")));
        }
        let action = Action::TransferWorkspace { workspace, to: to.clone() };
        let authority = self.authorise(actor, &action)?;
        let bot = self.policy_bot()?;
        self.update_workspace_record(space, &bot, |record| record["unit"] = to.as_str().into())?;
        let details = json!({ "from": from, "to": to });
        self.audit_workspace(&from, &action, actor, &authority, space, details.clone(), reason)?;
        if from != to {
            self.audit_workspace(&to, &action, actor, &authority, space, details, reason)?;
        }
        Ok(())
    }

    /// Recovers a workspace whose admins left: the policy bot, a creator of every workspace room,
    /// makes `admin` (the actor when `None`) an admin (power 100) of the space and its rooms and
    /// invites them where they are not a member. Only a state agent may become a workspace admin
    /// (P1).
    pub fn recover_workspace(
        &self,
        actor: &UserId,
        space: &RoomId,
        admin: Option<&UserId>,
        reason: &str,
    ) -> Result<Vec<OwnedRoomId>, PolicyError> {
        let (workspace, _) = self.workspace(space, actor)?;
        let unit = workspace.unit.clone();
        let admin = admin.unwrap_or(actor).to_owned();
        let action = Action::RecoverWorkspace { workspace };
        let authority = self.authorise(actor, &action)?;
        let tier = self.policy.service.directory().tier_of(&admin.as_str().into());
        if tier != Tier::Agent && !self.is_policy_exempt(&admin)? {
            return Err(PolicyError::Refused(format!(
                "P1: only a state agent may be a workspace admin; {admin} is of tier `{tier}`"
            )));
        }
        let bot = self.policy_bot()?;
        let rooms = self.workspace_rooms(space)?;
        for room in &rooms {
            // A creator of the room (v12) has unbounded power already, and may not be listed.
            let (power, _, _) = self.rooms.current_power(room, &admin)?;
            if power.is_some() {
                let mut levels = self
                    .state_content(room, "m.room.power_levels", "")?
                    .unwrap_or_else(|| json!({}));
                if let Some(obj) = levels.as_object_mut() {
                    let users = obj.entry("users").or_insert_with(|| json!({}));
                    users[admin.as_str()] = 100.into();
                }
                self.rooms.append(
                    room,
                    &bot,
                    PduTemplate::state(StateEventType::RoomPowerLevels, "", levels),
                    None,
                )?;
            }
            let membership = self.rooms.membership(room, &admin)?.map(|m| m.membership);
            if !matches!(membership, Some(MembershipState::Join | MembershipState::Invite)) {
                self.rooms.invite(room, &bot, &admin, Some(reason), false)?;
            }
        }
        let details = json!({ "admin": admin, "rooms": rooms });
        self.audit_workspace(&unit, &action, actor, &authority, space, details, reason)?;
        Ok(rooms)
    }

    /// The member list of a workspace (the space and its rooms); the export is audited.
    pub fn export_workspace_members(
        &self,
        actor: &UserId,
        space: &RoomId,
    ) -> Result<Vec<MemberRow>, PolicyError> {
        let (workspace, _) = self.workspace(space, actor)?;
        let unit = workspace.unit.clone();
        let action = Action::ExportMembers { workspace };
        let authority = self.authorise(actor, &action)?;
        let directory = self.policy.service.directory();
        let mut rows = Vec::new();
        for room in self.workspace_rooms(space)? {
            for (user, entry) in self.rooms.members(&room)? {
                let id = relais_policy::UserId::from(user.as_str());
                let (power, _, _) = self.rooms.current_power(&room, &user)?;
                rows.push(MemberRow {
                    room_id: room.clone(),
                    membership: entry.membership.as_str().to_owned(),
                    tier: directory.tier_of(&id),
                    unit: directory.user(&id).map(|r| r.unit.clone()),
                    power: power.map(i64::from),
                    user_id: user,
                });
            }
        }
        let details = json!({ "rows": rows.len() });
        self.audit_workspace(&unit, &action, actor, &authority, space, details, "")?;
        Ok(rows)
    }

    /// Rewrites the space's `fr.relais.workspace` record (as the policy bot).
    fn update_workspace_record(
        &self,
        space: &RoomId,
        bot: &UserId,
        edit: impl FnOnce(&mut Value),
    ) -> Result<(), PolicyError> {
        let mut record =
            self.state_content(space, names::WORKSPACE, "")?.unwrap_or_else(|| json!({}));
        edit(&mut record);
        self.rooms.append(
            space,
            bot,
            PduTemplate::state(StateEventType::from(names::WORKSPACE), "", record),
            None,
        )?;
        Ok(())
    }
}
