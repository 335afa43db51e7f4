//! The directory in Matrix rooms: one room per organisation unit, a space whose children are the
//! rooms of its sub-units, created by the policy bot at first start (alias
//! `#relais-unit-<unit>:<server>`). Users and delegations are state events in them; every change is
//! also an `fr.relais.audit` timeline event, so the rooms' timelines are the audit log.

use relais_appservice::records::{AuditEntry, names};
use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId,
    api::client::room::{Visibility, create_room},
    events::{StateEventType, TimelineEventType},
    room::RoomType,
    serde::Raw,
};
use serde_json::{Value, json};

use super::PolicyError;
use crate::{
    config::SUPPORTED_ROOM_VERSIONS,
    service::{
        Services,
        accounts::AccountError,
        rooms::{PduTemplate, create::CreateRoom, pdu::PduEvent},
    },
};

/// The state key of a user's records: the user ID without its `@`, since the authorization rules
/// let only the user themselves send state keyed by their ID.
pub fn user_state_key(user: &str) -> &str {
    user.strip_prefix('@').unwrap_or(user)
}

/// The alias of a unit's room.
pub fn unit_alias(unit: &str, server_name: &str) -> Result<OwnedRoomAliasId, PolicyError> {
    OwnedRoomAliasId::try_from(format!("#relais-unit-{unit}:{server_name}"))
        .map_err(|e| PolicyError::BadRequest(format!("unit {unit:?} makes no room alias: {e}")))
}

impl Services {
    /// The policy bot's user ID (its account exists from [`Services::ensure_policy_bot`]).
    pub(super) fn policy_bot(&self) -> Result<OwnedUserId, PolicyError> {
        OwnedUserId::try_from(self.policy.service.bot().as_str())
            .map_err(|e| PolicyError::BadRequest(format!("policy bot ID: {e}")))
    }

    /// Creates the policy bot's account on first start.
    pub(super) fn ensure_policy_bot(&self) -> Result<OwnedUserId, PolicyError> {
        let bot = self.policy_bot()?;
        match self.accounts.register(&bot, None, false) {
            Ok(()) | Err(AccountError::UserInUse) => Ok(bot),
            Err(e) => Err(e.into()),
        }
    }

    /// Finds or creates the room of every configured unit, parents before children.
    pub(super) fn ensure_unit_rooms(&self) -> Result<(), PolicyError> {
        let bot = self.ensure_policy_bot()?;
        let server = self.config.server_name.as_str();
        let mut pending: Vec<_> = self.config.policy.units.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for unit in pending {
                let parent_room = match &unit.parent {
                    Some(parent) => match self.policy.unit_room(parent) {
                        Some(room) => Some(room),
                        None => {
                            rest.push(unit);
                            continue;
                        }
                    },
                    None => None,
                };
                let alias = unit_alias(&unit.id, server)?;
                let room = match self.rooms.aliases.resolve(&alias)? {
                    Some(entry) => entry.room_id,
                    None => {
                        let room = self.create_unit_room(&bot, &unit.id, &unit.name, &alias)?;
                        if let Some(parent) = &parent_room {
                            let content = json!({ "via": [server] });
                            self.rooms.append(
                                parent,
                                &bot,
                                PduTemplate::state(
                                    StateEventType::SpaceChild,
                                    room.as_str(),
                                    content,
                                ),
                                None,
                            )?;
                        }
                        tracing::info!(unit = unit.id, %room, "organisation unit room created");
                        room
                    }
                };
                self.policy.unit_rooms.write().insert(unit.id.clone(), room);
            }
            if rest.len() == before {
                // The service checked the tree already; this only guards against a loop.
                return Err(PolicyError::BadRequest("the unit tree has no root".into()));
            }
            pending = rest;
        }
        Ok(())
    }

    fn create_unit_room(
        &self,
        bot: &OwnedUserId,
        unit: &str,
        name: &str,
        alias: &OwnedRoomAliasId,
    ) -> Result<OwnedRoomId, PolicyError> {
        let mut request = create_room::v3::Request::new();
        request.name = Some(if name.is_empty() { unit.to_owned() } else { name.to_owned() });
        request.topic = Some(format!("Directory and audit log of the organisation unit {unit}"));
        request.room_alias_name = Some(alias.alias().to_owned());
        request.visibility = Visibility::Private;
        request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        let mut creation = ruma::api::client::room::create_room::v3::CreationContent::new();
        creation.room_type = Some(RoomType::Space);
        request.creation_content =
            Some(Raw::new(&creation).map_err(|e| PolicyError::BadRequest(e.to_string()))?);
        let org_unit = json!({
            "type": names::ORG_UNIT,
            "state_key": unit,
            "content": { "id": unit },
        });
        self.bot_create_room(bot, request, &org_unit)
    }

    /// Creates a room as the policy bot, with one initial state event, and sends its invites.
    pub(super) fn bot_create_room(
        &self,
        bot: &OwnedUserId,
        mut request: create_room::v3::Request,
        initial_state: &Value,
    ) -> Result<OwnedRoomId, PolicyError> {
        request.initial_state = vec![Raw::from_json(
            serde_json::value::to_raw_value(initial_state)
                .map_err(|e| PolicyError::BadRequest(e.to_string()))?,
        )];
        let room = self.rooms.create_room_without_invites(
            bot,
            CreateRoom {
                request: &request,
                default_version: &self.config.rooms.default_version,
                supported: &SUPPORTED_ROOM_VERSIONS,
                displayname: Some("Relais policy".to_owned()),
                avatar_url: None,
            },
        )?;
        self.rooms.invite_and_publish(&room, bot, &request)?;
        Ok(room)
    }

    /// Rebuilds the index from the unit rooms' state, in stream order (the latest record of a user
    /// wins). Returns the number of records applied.
    pub(super) fn load_directory(&self) -> Result<usize, PolicyError> {
        let rooms: Vec<OwnedRoomId> = self.policy.unit_rooms.read().values().cloned().collect();
        let mut records: Vec<std::sync::Arc<PduEvent>> = Vec::new();
        for room in rooms {
            let Some((_, meta)) = self.rooms.meta(&room)? else { continue };
            for pdu in self.rooms.state_events(meta.state)? {
                let kind = pdu.kind().to_string();
                if kind == names::MEMBER || kind == names::DELEGATION || kind == names::INVITATION {
                    records.push(pdu);
                }
            }
        }
        records.sort_by_key(|pdu| pdu.stored.count);
        let mut applied = 0;
        for pdu in records {
            let (Some(key), Ok(content)) =
                (pdu.state_key(), serde_json::from_str::<Value>(pdu.fields.content.get()))
            else {
                continue;
            };
            let unit = self.unit_of_room(pdu.room_id());
            match self.policy.service.apply_directory_event(
                &pdu.kind().to_string(),
                key,
                content,
                unit.as_deref(),
            ) {
                Ok(true) => applied += 1,
                Ok(false) => {}
                // A record the directory cannot hold (a unit removed from the configuration, say)
                // is skipped: the rest of the directory still works, and the log says why.
                Err(e) => tracing::warn!(event_id = %pdu.event_id(), error = %e,
                    "directory record skipped"),
            }
        }
        Ok(applied)
    }

    /// The unit whose room this is.
    pub(super) fn unit_of_room(&self, room: &RoomId) -> Option<String> {
        let rooms = self.policy.unit_rooms.read();
        rooms.iter().find(|(_, r)| r.as_str() == room.as_str()).map(|(unit, _)| unit.clone())
    }

    /// Writes a user's state event of the directory (keyed by [`user_state_key`]) in `unit`'s
    /// room, and its audit entry.
    pub(super) fn write_directory(
        &self,
        unit: &str,
        kind: &str,
        user: &str,
        content: Value,
        audit: &AuditEntry,
    ) -> Result<(), PolicyError> {
        self.write_directory_event(unit, kind, user_state_key(user), content, Some(audit))
    }

    /// Writes a state event of the directory in `unit`'s room, and its audit entry if any.
    pub(super) fn write_directory_event(
        &self,
        unit: &str,
        kind: &str,
        state_key: &str,
        content: Value,
        audit: Option<&AuditEntry>,
    ) -> Result<(), PolicyError> {
        let room = self
            .policy
            .unit_room(unit)
            .ok_or_else(|| PolicyError::NotFound(format!("unit {unit} has no room")))?;
        let bot = self.policy_bot()?;
        self.rooms.append(
            &room,
            &bot,
            PduTemplate::state(StateEventType::from(kind), state_key, content),
            None,
        )?;
        let Some(audit) = audit else { return Ok(()) };
        let audit =
            serde_json::to_value(audit).map_err(|e| PolicyError::BadRequest(e.to_string()))?;
        self.rooms.append(
            &room,
            &bot,
            PduTemplate::message(TimelineEventType::from(names::AUDIT), audit),
            None,
        )?;
        Ok(())
    }
}
