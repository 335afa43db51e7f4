//! A room's public face (name, topic, alias, avatar, member count, join rule, type), as the room
//! directory shows it.

use ruma::{
    OwnedMxcUri, OwnedRoomAliasId, RoomId, UInt,
    directory::{PublicRoomsChunk, PublicRoomsChunkInit},
    events::StateEventType,
    room::{JoinRuleKind, RoomType},
};
use serde_json::Value;

use super::{Services, rooms::RoomError};

impl Services {
    fn state_field(&self, state: u64, kind: StateEventType, field: &str) -> Result<Option<String>, RoomError> {
        Ok(self
            .rooms
            .state_event(state, &kind, "")?
            .and_then(|e| e.content_object().get(field).and_then(Value::as_str).map(str::to_owned)))
    }

    /// The directory entry of a room.
    pub fn public_chunk(&self, room_id: &RoomId) -> Result<Option<PublicRoomsChunk>, RoomError> {
        let Some((_, meta)) = self.rooms.meta(room_id)? else { return Ok(None) };
        let state = meta.state;
        let joined = self.rooms.joined_members(room_id)?.len();
        let history = self.state_field(state, StateEventType::RoomHistoryVisibility, "history_visibility")?;
        let guest = self.state_field(state, StateEventType::RoomGuestAccess, "guest_access")?;
        let mut chunk: PublicRoomsChunk = PublicRoomsChunkInit {
            num_joined_members: UInt::try_from(joined).unwrap_or(UInt::MAX),
            room_id: room_id.to_owned(),
            world_readable: history.as_deref() == Some("world_readable"),
            guest_can_join: guest.as_deref() == Some("can_join"),
        }
        .into();
        chunk.name = self.state_field(state, StateEventType::RoomName, "name")?;
        chunk.topic = self.state_field(state, StateEventType::RoomTopic, "topic")?;
        chunk.canonical_alias = self
            .state_field(state, StateEventType::RoomCanonicalAlias, "alias")?
            .and_then(|a| OwnedRoomAliasId::try_from(a).ok());
        chunk.avatar_url =
            self.state_field(state, StateEventType::RoomAvatar, "url")?.map(OwnedMxcUri::from);
        chunk.join_rule = self
            .state_field(state, StateEventType::RoomJoinRules, "join_rule")?
            .map(|r| JoinRuleKind::from(r.as_str()))
            .unwrap_or(JoinRuleKind::Invite);
        chunk.room_type = self.state_field(state, StateEventType::RoomCreate, "type")?.map(RoomType::from);
        Ok(Some(chunk))
    }
}
