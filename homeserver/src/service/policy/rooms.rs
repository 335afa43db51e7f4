//! What the policy adds to a new room: its access class (`fr.relais.access`), and for a workspace
//! (a space) its owning unit (`fr.relais.workspace`) with the policy bot as an additional creator
//! (room version 12), so that a workspace whose admins all left can be recovered.

use relais_appservice::records::names;
use relais_policy::{AccessClass, Tier};
use ruma::{OwnedUserId, RoomId, UserId, api::client::room::create_room, serde::Raw};
use serde_json::{Value, json};

use super::PolicyError;
use crate::service::Services;

impl Services {
    /// Completes a `createRoom` request the policy allowed: the class the creator asked for, or
    /// the most restrictive one they may create (never more open than the parent workspace); for a
    /// space, the workspace record and the bot as a creator.
    pub fn policy_prepare_room(
        &self,
        creator: &UserId,
        request: &mut create_room::v3::Request,
    ) -> Result<(), PolicyError> {
        if !self.policy.enabled() {
            return Ok(());
        }
        let bad = |e: serde_json::Error| PolicyError::BadRequest(e.to_string());
        let mut state: Vec<Value> = request
            .initial_state
            .iter()
            .map(|raw| serde_json::from_str(raw.json().get()))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        let find = |state: &[Value], kind: &str| {
            state.iter().position(|e| e.get("type").and_then(Value::as_str) == Some(kind))
        };
        let mut creation: Value = match &request.creation_content {
            Some(raw) => serde_json::from_str(raw.json().get()).map_err(bad)?,
            None => json!({}),
        };
        let is_space = creation.get("type").and_then(Value::as_str) == Some("m.space");
        let record = self.policy_record(creator);
        let tier = record.as_ref().map_or(Tier::Guest, |r| r.tier);
        let parent_class = state
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("m.space.parent"))
            .filter_map(|e| e.get("state_key").and_then(Value::as_str))
            .filter_map(|k| RoomId::parse(k).ok())
            .find_map(|space| self.workspace_facts(&space, creator).ok().flatten())
            .map(|ws| ws.effective_class());
        if find(&state, names::ACCESS).is_none() {
            let class = if request.is_direct {
                AccessClass::Direct
            } else {
                let default = AccessClass::default_for_creator(tier).unwrap_or(AccessClass::Agents);
                parent_class.map_or(default, |ceiling| default.within(ceiling))
            };
            state.push(json!({ "type": names::ACCESS, "state_key": "", "content": class.to_event_content() }));
        }
        if is_space
            && find(&state, names::WORKSPACE).is_none()
            && let Some(record) = &record
        {
            state.push(json!({
                "type": names::WORKSPACE,
                "state_key": "",
                "content": { "unit": record.unit, "status": "active" },
            }));
        }
        if is_space || parent_class.is_some() {
            let bot = OwnedUserId::try_from(self.policy.service.bot().as_str())
                .map_err(|e| PolicyError::BadRequest(e.to_string()))?;
            if let Some(obj) = creation.as_object_mut() {
                let creators = obj.entry("additional_creators").or_insert_with(|| json!([]));
                if let Some(list) = creators.as_array_mut()
                    && !list.iter().any(|u| u.as_str() == Some(bot.as_str()))
                {
                    list.push(bot.as_str().into());
                }
            }
            request.creation_content =
                Some(Raw::from_json(serde_json::value::to_raw_value(&creation).map_err(bad)?));
        }
        request.initial_state = state
            .iter()
            .map(|e| serde_json::value::to_raw_value(e).map(Raw::from_json))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        Ok(())
    }

    /// After `createRoom`: where [`Services::policy_prepare_room`] made the policy bot an
    /// additional creator, the bot joins (invited by the creator), since a creator that is not
    /// joined sends nothing; it can then recover, close or lock the room when every admin left.
    pub fn policy_room_created(
        &self,
        room_id: &RoomId,
        creator: &UserId,
    ) -> Result<(), PolicyError> {
        if !self.policy.enabled() {
            return Ok(());
        }
        let bot = self.policy_bot()?;
        let Some(create) = self.state_content(room_id, "m.room.create", "")? else { return Ok(()) };
        let is_creator = create
            .get("additional_creators")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|u| u.as_str() == Some(bot.as_str())));
        if !is_creator || self.rooms.is_joined(room_id, &bot)? {
            return Ok(());
        }
        self.rooms.invite(room_id, creator, &bot, None, false)?;
        self.join(room_id, &bot, None)?;
        Ok(())
    }
}
