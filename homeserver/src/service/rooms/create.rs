//! Creating rooms (`POST /createRoom`): the create event, the creator's join, power levels, the
//! preset's rules, initial state, name, topic, alias and invites, in the order the spec gives.

use std::sync::Arc;

use rand::{Rng, distributions::Alphanumeric};
use ruma::{
    OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomVersionId, UserId,
    api::client::room::{
        Visibility,
        create_room::v3::{Request, RoomPreset},
    },
    events::StateEventType,
};
use serde_json::{Value, json};

use super::{PduTemplate, RoomError, Rooms, builder::Target, pdu::PduEvent};

/// What `createRoom` needs besides the request.
pub struct CreateRoom<'a> {
    /// The spec request.
    pub request: &'a Request,
    /// The room version when the request names none.
    pub default_version: &'a RoomVersionId,
    /// The room versions this server supports.
    pub supported: &'a [RoomVersionId],
    /// The profile of the creator, copied into their member event.
    pub displayname: Option<String>,
    /// The creator's avatar.
    pub avatar_url: Option<String>,
}

impl Rooms {
    /// Creates a room; returns its ID.
    pub fn create_room(
        &self,
        creator: &UserId,
        params: CreateRoom<'_>,
    ) -> Result<OwnedRoomId, RoomError> {
        let request = params.request;
        let room_id = self.create_room_without_invites(creator, params)?;
        self.invite_and_publish(&room_id, creator, request)?;
        Ok(room_id)
    }

    /// Creates a room up to its alias, without the invites and the directory listing: the
    /// policy checks of those need the room ID (see [`Rooms::invite_and_publish`]).
    pub fn create_room_without_invites(
        &self,
        creator: &UserId,
        params: CreateRoom<'_>,
    ) -> Result<OwnedRoomId, RoomError> {
        let request = params.request;
        let version =
            request.room_version.clone().unwrap_or_else(|| params.default_version.clone());
        if !params.supported.contains(&version) {
            return Err(RoomError::UnsupportedVersion(version));
        }
        let rules =
            version.rules().ok_or_else(|| RoomError::UnsupportedVersion(version.clone()))?;
        let alias = match &request.room_alias_name {
            Some(local) => {
                let alias =
                    OwnedRoomAliasId::try_from(format!("#{local}:{}", self.globals.server_name))
                        .map_err(|e| {
                            RoomError::BadRequest(format!("invalid room_alias_name: {e}"))
                        })?;
                if self.aliases.resolve(&alias)?.is_some() {
                    return Err(RoomError::AliasInUse(alias.to_string()));
                }
                Some(alias)
            }
            None => None,
        };
        let preset = request.preset.clone().unwrap_or(match request.visibility {
            Visibility::Public => RoomPreset::PublicChat,
            _ => RoomPreset::PrivateChat,
        });
        let trusted = preset == RoomPreset::TrustedPrivateChat;

        // 1. m.room.create
        let mut create_content: serde_json::Map<String, Value> = match &request.creation_content {
            Some(raw) => serde_json::from_str(raw.json().get())
                .map_err(|e| RoomError::BadRequest(format!("invalid creation_content: {e}")))?,
            None => serde_json::Map::new(),
        };
        create_content.insert("room_version".into(), version.as_str().into());
        if !rules.authorization.use_room_create_sender {
            create_content.insert("creator".into(), creator.as_str().into());
        } else {
            create_content.remove("creator");
        }
        if rules.authorization.additional_room_creators && trusted {
            let mut extra: Vec<Value> = create_content
                .get("additional_creators")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for invitee in &request.invite {
                if invitee != creator && !extra.contains(&invitee.as_str().into()) {
                    extra.push(invitee.as_str().into());
                }
            }
            if !extra.is_empty() {
                create_content.insert("additional_creators".into(), extra.into());
            }
        }
        let room_id = if rules.authorization.room_create_event_id_as_room_id {
            None
        } else {
            Some(self.new_room_id()?)
        };
        let create = self.build_and_store(
            Target::New { version: version.clone(), room_id },
            creator,
            PduTemplate::state(StateEventType::RoomCreate, "", Value::Object(create_content)),
            None,
        )?;
        let room_id = create.room_id().to_owned();
        let send = |template: PduTemplate| -> Result<Arc<PduEvent>, RoomError> {
            self.append(&room_id, creator, template, None)
        };

        // 2. The creator joins.
        let mut member = json!({ "membership": "join" });
        if let Some(name) = &params.displayname {
            member["displayname"] = name.as_str().into();
        }
        if let Some(avatar) = &params.avatar_url {
            member["avatar_url"] = avatar.as_str().into();
        }
        send(PduTemplate::state(StateEventType::RoomMember, creator.as_str(), member))?;

        // 3. Power levels, with the client's override merged on top.
        let mut users = serde_json::Map::new();
        if !rules.authorization.explicitly_privilege_room_creators {
            users.insert(creator.to_string(), 100.into());
            if trusted {
                for invitee in &request.invite {
                    users.insert(invitee.to_string(), 100.into());
                }
            }
        }
        let mut power_levels = json!({
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50,
                "m.room.avatar": 50,
                "m.room.tombstone": 150,
                "m.room.server_acl": 100,
                "m.room.encryption": 100,
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
            "notifications": { "room": 50 },
        });
        if let Some(raw) = &request.power_level_content_override {
            let overrides: serde_json::Map<String, Value> = serde_json::from_str(raw.json().get())
                .map_err(|e| {
                    RoomError::BadRequest(format!("invalid power_level_content_override: {e}"))
                })?;
            if let Some(pl) = power_levels.as_object_mut() {
                pl.extend(overrides);
            }
        }
        send(PduTemplate::state(StateEventType::RoomPowerLevels, "", power_levels))?;

        // 4. Canonical alias.
        if let Some(alias) = &alias {
            send(PduTemplate::state(
                StateEventType::RoomCanonicalAlias,
                "",
                json!({ "alias": alias }),
            ))?;
        }

        // 5. The preset's rules, unless initial_state sets them.
        let initial: Vec<(StateEventType, String, Value)> = request
            .initial_state
            .iter()
            .map(|raw| {
                let event: Value = serde_json::from_str(raw.json().get())
                    .map_err(|e| RoomError::BadRequest(format!("invalid initial_state: {e}")))?;
                let kind = event.get("type").and_then(Value::as_str).ok_or_else(|| {
                    RoomError::BadRequest("initial_state event without type".into())
                })?;
                let state_key =
                    event.get("state_key").and_then(Value::as_str).unwrap_or_default().to_owned();
                let content = event.get("content").cloned().unwrap_or_else(|| json!({}));
                Ok((StateEventType::from(kind), state_key, content))
            })
            .collect::<Result<_, RoomError>>()?;
        let in_initial =
            |kind: &StateEventType| initial.iter().any(|(k, s, _)| k == kind && s.is_empty());
        let (join_rule, guest_access) = match preset {
            RoomPreset::PublicChat => ("public", "forbidden"),
            _ => ("invite", "can_join"),
        };
        if !in_initial(&StateEventType::RoomJoinRules) {
            send(PduTemplate::state(
                StateEventType::RoomJoinRules,
                "",
                json!({ "join_rule": join_rule }),
            ))?;
        }
        if !in_initial(&StateEventType::RoomHistoryVisibility) {
            send(PduTemplate::state(
                StateEventType::RoomHistoryVisibility,
                "",
                json!({ "history_visibility": "shared" }),
            ))?;
        }
        if !in_initial(&StateEventType::RoomGuestAccess) {
            send(PduTemplate::state(
                StateEventType::RoomGuestAccess,
                "",
                json!({ "guest_access": guest_access }),
            ))?;
        }

        // 6. initial_state.
        for (kind, state_key, content) in initial {
            if kind == StateEventType::RoomCreate || kind == StateEventType::RoomMember {
                return Err(RoomError::BadRequest(format!(
                    "initial_state cannot contain {kind} events"
                )));
            }
            send(PduTemplate::state(kind, &state_key, content))?;
        }

        // 7. Name and topic.
        if let Some(name) = &request.name {
            send(PduTemplate::state(StateEventType::RoomName, "", json!({ "name": name })))?;
        }
        if let Some(topic) = &request.topic {
            send(PduTemplate::state(
                StateEventType::RoomTopic,
                "",
                json!({
                    "topic": topic,
                    "m.topic": { "m.text": [{ "body": topic, "mimetype": "text/plain" }] },
                }),
            ))?;
        }

        if let Some(alias) = &alias {
            self.aliases.create(alias, &room_id, creator)?;
        }
        Ok(room_id)
    }

    /// The end of `createRoom`: the invites (step 8) and the directory listing.
    pub fn invite_and_publish(
        &self,
        room_id: &ruma::RoomId,
        creator: &UserId,
        request: &Request,
    ) -> Result<(), RoomError> {
        for invitee in &request.invite {
            self.invite(room_id, creator, invitee, None, request.is_direct)?;
        }
        if request.visibility == Visibility::Public {
            self.aliases.set_public(room_id, true)?;
        }
        Ok(())
    }

    /// Invites `invitee` on behalf of `sender`.
    pub fn invite(
        &self,
        room_id: &ruma::RoomId,
        sender: &UserId,
        invitee: &OwnedUserId,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<Arc<PduEvent>, RoomError> {
        let mut content = json!({ "membership": "invite" });
        if is_direct {
            content["is_direct"] = true.into();
        }
        if let Some(reason) = reason {
            content["reason"] = reason.into();
        }
        self.append(
            room_id,
            sender,
            PduTemplate::state(StateEventType::RoomMember, invitee.as_str(), content),
            None,
        )
    }

    fn new_room_id(&self) -> Result<OwnedRoomId, RoomError> {
        let local: String =
            rand::thread_rng().sample_iter(&Alphanumeric).take(18).map(char::from).collect();
        OwnedRoomId::try_from(format!("!{local}:{}", self.globals.server_name))
            .map_err(|e| RoomError::BadRequest(e.to_string()))
    }
}
