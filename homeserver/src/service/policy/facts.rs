//! Room facts for the decision engine, read from room state: the engine never looks anything up
//! itself, so this is where "what is this room?" is answered.

use relais_appservice::records::names;
use relais_policy::{AccessClass, RoomFacts, UnitId, WorkspaceFacts, WorkspaceStatus};
use ruma::{
    RoomId, UserId,
    events::{StateEventType, room::member::MembershipState},
    state_res::events::RoomPowerLevelsIntField,
};
use serde_json::Value;

use crate::service::{
    Services,
    rooms::{RoomError, power::required_level},
};

/// Members checked for `is_direct`: a direct conversation has two (a third is refused by M4).
const DIRECT_MEMBERS_CHECKED: usize = 3;

impl Services {
    /// What the decision engine needs to know about `room_id` for an action of `actor`; `None` if
    /// the room is unknown here.
    pub fn policy_room_facts(
        &self,
        room_id: &RoomId,
        actor: &UserId,
    ) -> Result<Option<RoomFacts>, RoomError> {
        if !self.rooms.exists(room_id)? {
            return Ok(None);
        }
        let state = |kind: &str| self.state_content(room_id, kind, "");
        let class = state(names::ACCESS)?.map(|c| AccessClass::from_event_content(Some(&c)));
        let workspace_event = state(names::WORKSPACE)?;
        let members = self.rooms.members(room_id)?;
        let current: Vec<_> = members
            .iter()
            .filter(|(_, m)| {
                matches!(m.membership, MembershipState::Join | MembershipState::Invite)
            })
            .collect();
        let mut is_direct = false;
        if current.len() <= DIRECT_MEMBERS_CHECKED {
            for (user, _) in &current {
                if let Some(content) =
                    self.state_content(room_id, "m.room.member", user.as_str())?
                {
                    is_direct |= content.get("is_direct").and_then(Value::as_bool) == Some(true);
                }
            }
        }
        let actor_membership = members.iter().find(|(u, _)| u == actor).map(|(_, m)| &m.membership);
        let (power, power_levels, rules) = self.rooms.current_power(room_id, actor)?;
        let level = |field| required_level(field, power_levels.as_deref(), &rules).map(i64::from);
        let users_default = power_levels
            .as_deref()
            .and_then(|pl| serde_json::from_str::<Value>(pl.fields.content.get()).ok())
            .and_then(|c| c.get("users_default").and_then(Value::as_i64))
            .unwrap_or(0);
        let workspace = self.parent_workspace(room_id, actor)?;
        let unit = match &workspace_event {
            Some(ws) => ws.get("unit").and_then(Value::as_str).map(UnitId::from),
            None => self.creator_unit(room_id)?,
        };
        Ok(Some(RoomFacts {
            class,
            is_direct,
            is_workspace: workspace_event.is_some(),
            member_count: u32::try_from(current.len()).unwrap_or(u32::MAX),
            actor_joined: actor_membership == Some(&MembershipState::Join),
            actor_invited: actor_membership == Some(&MembershipState::Invite),
            actor_power: power.map_or(i64::MAX, i64::from),
            invite_power: level(RoomPowerLevelsIntField::Invite)?,
            users_default_power: users_default,
            workspace,
            unit,
        }))
    }

    /// The workspace `room_id` is a child of (through `m.space.parent`), if any.
    pub fn parent_workspace(
        &self,
        room_id: &RoomId,
        actor: &UserId,
    ) -> Result<Option<WorkspaceFacts>, RoomError> {
        let Some((_, meta)) = self.rooms.meta(room_id)? else { return Ok(None) };
        for pdu in self.rooms.state_events(meta.state)? {
            if pdu.kind().to_string() != "m.space.parent" {
                continue;
            }
            let Some(parent) = pdu.state_key().and_then(|k| RoomId::parse(k).ok()) else {
                continue;
            };
            if let Some(facts) = self.workspace_facts(&parent, actor)? {
                return Ok(Some(facts));
            }
        }
        Ok(None)
    }

    /// The facts of `space` if it is a workspace (it has a `fr.relais.workspace` event).
    pub fn workspace_facts(
        &self,
        space: &RoomId,
        actor: &UserId,
    ) -> Result<Option<WorkspaceFacts>, RoomError> {
        if !self.rooms.exists(space)? {
            return Ok(None);
        }
        let Some(workspace) = self.state_content(space, names::WORKSPACE, "")? else {
            return Ok(None);
        };
        let Some(unit) = workspace.get("unit").and_then(Value::as_str) else { return Ok(None) };
        let class = self
            .state_content(space, names::ACCESS, "")?
            .map(|c| AccessClass::from_event_content(Some(&c)));
        let status = workspace
            .get("status")
            .and_then(|s| serde_json::from_value::<WorkspaceStatus>(s.clone()).ok())
            .unwrap_or_default();
        let (power, _, _) = self.rooms.current_power(space, actor)?;
        Ok(Some(WorkspaceFacts {
            class,
            unit: UnitId::from(unit),
            actor_power: power.map_or(i64::MAX, i64::from),
            status,
        }))
    }

    /// The unit of the room's creator, for rooms outside any workspace.
    fn creator_unit(&self, room_id: &RoomId) -> Result<Option<UnitId>, RoomError> {
        let Some(create) =
            self.rooms.current_state_event(room_id, &StateEventType::RoomCreate, "")?
        else {
            return Ok(None);
        };
        let directory = self.policy.service.directory();
        Ok(directory.user(&create.sender().as_str().into()).map(|record| record.unit.clone()))
    }

    /// The content of a current state event, parsed.
    pub fn state_content(
        &self,
        room_id: &RoomId,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<Value>, RoomError> {
        Ok(self
            .rooms
            .current_state_event(room_id, &StateEventType::from(kind), state_key)?
            .and_then(|pdu| serde_json::from_str(pdu.fields.content.get()).ok()))
    }
}
