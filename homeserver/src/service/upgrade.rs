//! Room upgrades (`/upgrade`): a new room of the new version that carries the old room's
//! settings, a tombstone in the old room, aliases moved, and the old room muted.

use ruma::{
    OwnedRoomId, RoomId, RoomVersionId, UserId,
    api::client::room::create_room::v3::Request as CreateRoomRequest, events::StateEventType,
    serde::Raw,
};
use serde_json::{Value, json};

use super::{
    Services,
    rooms::{PduTemplate, RoomError, create::CreateRoom},
};

/// State copied into the replacement room.
const COPIED_STATE: [StateEventType; 9] = [
    StateEventType::RoomJoinRules,
    StateEventType::RoomHistoryVisibility,
    StateEventType::RoomGuestAccess,
    StateEventType::RoomName,
    StateEventType::RoomTopic,
    StateEventType::RoomAvatar,
    StateEventType::RoomEncryption,
    StateEventType::RoomServerAcl,
    StateEventType::RoomPinnedEvents,
];

impl Services {
    /// Upgrades `room_id` to `version` on behalf of `user`; returns the replacement room.
    pub fn upgrade_room(
        &self,
        user: &UserId,
        room_id: &RoomId,
        version: &RoomVersionId,
        supported: &[RoomVersionId],
    ) -> Result<OwnedRoomId, RoomError> {
        let (_, meta) = self.rooms.require_meta(room_id)?;
        let create = self
            .rooms
            .state_event(meta.state, &StateEventType::RoomCreate, "")?
            .ok_or_else(|| RoomError::Forbidden("room has no create event".into()))?;
        let power_levels =
            self.rooms.state_event(meta.state, &StateEventType::RoomPowerLevels, "")?;
        // Refuse before creating anything: the tombstone needs its power level.
        if !self.rooms.may_send_state(room_id, user, &StateEventType::RoomTombstone)? {
            let needed = self.rooms.state_event_level(room_id, &StateEventType::RoomTombstone)?;
            return Err(RoomError::Forbidden(format!(
                "upgrading the room needs power level {needed}"
            )));
        }

        let last_event = meta.extremities.first().cloned();
        let mut creation = json!({ "predecessor": { "room_id": room_id } });
        if let Some(event_id) = &last_event {
            creation["predecessor"]["event_id"] = event_id.as_str().into();
        }
        if let Some(kind) = create.content_object().get("type") {
            creation["type"] = kind.clone();
        }
        let mut initial_state = Vec::new();
        for kind in COPIED_STATE {
            if let Some(event) = self.rooms.state_event(meta.state, &kind, "")? {
                let state = json!({ "type": kind.to_string(), "state_key": "", "content": event.content_object() });
                initial_state.push(raw(&state)?);
            }
        }
        let mut request = CreateRoomRequest::new();
        request.room_version = Some(version.clone());
        request.creation_content = Some(raw(&creation)?);
        request.initial_state = initial_state;
        if let Some(pl) = &power_levels {
            let mut content = pl.content_object();
            // Creators of v12 rooms hold their power through the create event, not the users map.
            let new_rules =
                version.rules().ok_or_else(|| RoomError::UnsupportedVersion(version.clone()))?;
            if new_rules.authorization.explicitly_privilege_room_creators
                && let Some(users) = content.get_mut("users").and_then(Value::as_object_mut)
            {
                users.remove(user.as_str());
            }
            request.power_level_content_override = Some(raw(&Value::Object(content))?);
        }
        let account = self.accounts.account(user)?.unwrap_or_default();
        let new_room = self.rooms.create_room(
            user,
            CreateRoom {
                request: &request,
                default_version: version,
                supported,
                displayname: account.displayname,
                avatar_url: account.avatar_url,
            },
        )?;

        self.rooms.append(
            room_id,
            user,
            PduTemplate::state(
                StateEventType::RoomTombstone,
                "",
                json!({ "body": "This room has been replaced", "replacement_room": new_room }),
            ),
            None,
        )?;
        self.move_aliases(user, room_id, &new_room)?;
        self.relink_spaces(user, room_id, &new_room, meta.state)?;
        self.mute_old_room(user, room_id, power_levels.as_deref())?;
        Ok(new_room)
    }

    fn move_aliases(&self, user: &UserId, old: &RoomId, new: &RoomId) -> Result<(), RoomError> {
        for alias in self.rooms.aliases.aliases_of(old)? {
            self.rooms.aliases.delete(&alias, old)?;
            self.rooms.aliases.create(&alias, new, user)?;
        }
        if self.rooms.aliases.is_public(old)? {
            self.rooms.aliases.set_public(old, false)?;
            self.rooms.aliases.set_public(new, true)?;
        }
        if let Some(canonical) =
            self.rooms.current_state_event(old, &StateEventType::RoomCanonicalAlias, "")?
        {
            let content = Value::Object(canonical.content_object());
            self.rooms.append(
                new,
                user,
                PduTemplate::state(StateEventType::RoomCanonicalAlias, "", content),
                None,
            )?;
            self.rooms.append(
                old,
                user,
                PduTemplate::state(StateEventType::RoomCanonicalAlias, "", json!({})),
                None,
            )?;
        }
        Ok(())
    }

    /// Keeps the room's place in the space tree: a space's children and the room's parents are
    /// copied to the new room, and each parent space (where the user may) lists the new room in
    /// place of the old one.
    fn relink_spaces(
        &self,
        user: &UserId,
        old: &RoomId,
        new: &RoomId,
        old_state: u64,
    ) -> Result<(), RoomError> {
        for pdu in self.rooms.state_events(old_state)? {
            let kind = pdu.kind().to_string();
            if kind != "m.space.child" && kind != "m.space.parent" {
                continue;
            }
            let Some(state_key) = pdu.state_key() else { continue };
            let content = Value::Object(pdu.content_object());
            if content.as_object().is_none_or(|c| c.is_empty()) {
                continue;
            }
            let template =
                PduTemplate::state(StateEventType::from(kind.as_str()), state_key, content.clone());
            if let Err(e) = self.rooms.append(new, user, template, None) {
                tracing::warn!(%new, error = %e, "could not copy a space link to the upgraded room");
            }
            if kind == "m.space.parent" {
                let Ok(parent) = ruma::OwnedRoomId::try_from(state_key) else { continue };
                let Some(child) = self.rooms.current_state_event(
                    &parent,
                    &StateEventType::SpaceChild,
                    old.as_str(),
                )?
                else {
                    continue;
                };
                let child_content = Value::Object(child.content_object());
                let add =
                    PduTemplate::state(StateEventType::SpaceChild, new.as_str(), child_content);
                let remove =
                    PduTemplate::state(StateEventType::SpaceChild, old.as_str(), json!({}));
                if self.rooms.append(&parent, user, add, None).is_ok() {
                    let _ = self.rooms.append(&parent, user, remove, None);
                }
            }
        }
        Ok(())
    }

    /// Raises the levels to speak and invite in the old room, as the spec recommends.
    fn mute_old_room(
        &self,
        user: &UserId,
        room_id: &RoomId,
        power_levels: Option<&super::rooms::pdu::PduEvent>,
    ) -> Result<(), RoomError> {
        let Some(pl) = power_levels else { return Ok(()) };
        let mut content = pl.content_object();
        let restricted = content.get("users_default").and_then(Value::as_i64).unwrap_or(0).max(50);
        content.insert("events_default".into(), restricted.into());
        content.insert("invite".into(), restricted.into());
        if let Err(e) = self.rooms.append(
            room_id,
            user,
            PduTemplate::state(StateEventType::RoomPowerLevels, "", Value::Object(content)),
            None,
        ) {
            tracing::warn!(%room_id, error = %e, "could not restrict the upgraded room");
        }
        Ok(())
    }
}

fn raw<T>(value: &Value) -> Result<Raw<T>, RoomError> {
    Ok(Raw::from_json(
        serde_json::value::to_raw_value(value).map_err(|e| RoomError::BadRequest(e.to_string()))?,
    ))
}
