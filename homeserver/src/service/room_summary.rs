//! A room's public face (name, topic, alias, avatar, member count, join rule, type, encryption),
//! as the room directory, room previews and the space hierarchy show it.

use ruma::{
    OwnedMxcUri, OwnedRoomAliasId, OwnedRoomId, RoomId, UInt,
    directory::{PublicRoomsChunk, PublicRoomsChunkInit},
    events::{StateEventType, room::join_rules::RoomJoinRulesEventContent},
    room::{JoinRule, RoomSummary, RoomType},
};
use serde_json::Value;

use super::{Services, rooms::RoomError};

/// What the current state says about a room, read once.
#[derive(Clone, Debug)]
pub struct RoomFacts {
    /// The room.
    pub room_id: OwnedRoomId,
    /// Current state snapshot.
    pub state: u64,
    /// The room version.
    pub version: ruma::RoomVersionId,
    /// `m.room.name`.
    pub name: Option<String>,
    /// `m.room.topic`.
    pub topic: Option<String>,
    /// `m.room.canonical_alias`.
    pub canonical_alias: Option<OwnedRoomAliasId>,
    /// `m.room.avatar`.
    pub avatar_url: Option<OwnedMxcUri>,
    /// The create event's `type` (`m.space`).
    pub room_type: Option<RoomType>,
    /// The join rule (with its allow list).
    pub join_rule: JoinRule,
    /// History visible to anyone.
    pub world_readable: bool,
    /// Guests may join.
    pub guest_can_join: bool,
    /// The encryption algorithm, if encrypted.
    pub encryption: Option<String>,
    /// Joined members.
    pub joined_members: u64,
}

impl Services {
    fn state_field(
        &self,
        state: u64,
        kind: StateEventType,
        field: &str,
    ) -> Result<Option<String>, RoomError> {
        Ok(self
            .rooms
            .state_event(state, &kind, "")?
            .and_then(|e| e.content_object().get(field).and_then(Value::as_str).map(str::to_owned)))
    }

    /// The facts of a room this server knows.
    pub fn room_facts(&self, room_id: &RoomId) -> Result<Option<RoomFacts>, RoomError> {
        let Some((_, meta)) = self.rooms.meta(room_id)? else { return Ok(None) };
        let state = meta.state;
        let join_rule = self
            .rooms
            .state_event(state, &StateEventType::RoomJoinRules, "")?
            .and_then(|e| e.content_as::<RoomJoinRulesEventContent>().ok())
            .map_or(JoinRule::Invite, |c| c.join_rule);
        let history =
            self.state_field(state, StateEventType::RoomHistoryVisibility, "history_visibility")?;
        let guest = self.state_field(state, StateEventType::RoomGuestAccess, "guest_access")?;
        Ok(Some(RoomFacts {
            room_id: room_id.to_owned(),
            state,
            version: meta.version.clone(),
            name: self.state_field(state, StateEventType::RoomName, "name")?,
            topic: self.state_field(state, StateEventType::RoomTopic, "topic")?,
            canonical_alias: self
                .state_field(state, StateEventType::RoomCanonicalAlias, "alias")?
                .and_then(|a| OwnedRoomAliasId::try_from(a).ok()),
            avatar_url: self
                .state_field(state, StateEventType::RoomAvatar, "url")?
                .map(OwnedMxcUri::from),
            room_type: self
                .state_field(state, StateEventType::RoomCreate, "type")?
                .map(RoomType::from),
            join_rule,
            world_readable: history.as_deref() == Some("world_readable"),
            guest_can_join: guest.as_deref() == Some("can_join"),
            encryption: self.state_field(state, StateEventType::RoomEncryption, "algorithm")?,
            joined_members: self.rooms.joined_members(room_id)?.len() as u64,
        }))
    }

    /// The directory entry of a room.
    pub fn public_chunk(&self, room_id: &RoomId) -> Result<Option<PublicRoomsChunk>, RoomError> {
        let Some(facts) = self.room_facts(room_id)? else { return Ok(None) };
        let mut chunk: PublicRoomsChunk = PublicRoomsChunkInit {
            num_joined_members: UInt::new_saturating(facts.joined_members),
            room_id: facts.room_id,
            world_readable: facts.world_readable,
            guest_can_join: facts.guest_can_join,
        }
        .into();
        chunk.name = facts.name;
        chunk.topic = facts.topic;
        chunk.canonical_alias = facts.canonical_alias;
        chunk.avatar_url = facts.avatar_url;
        chunk.join_rule = facts.join_rule.kind();
        chunk.room_type = facts.room_type;
        Ok(Some(chunk))
    }
}

impl RoomFacts {
    /// The summary clients show before joining (room previews, the space hierarchy).
    pub fn summary(&self) -> RoomSummary {
        let mut summary = RoomSummary::new(
            self.room_id.clone(),
            self.join_rule.clone().into(),
            self.guest_can_join,
            UInt::new_saturating(self.joined_members),
            self.world_readable,
        );
        summary.name = self.name.clone();
        summary.topic = self.topic.clone();
        summary.canonical_alias = self.canonical_alias.clone();
        summary.avatar_url = self.avatar_url.clone();
        summary.room_type = self.room_type.clone();
        summary.encryption = self.encryption.as_deref().map(Into::into);
        summary.room_version = Some(self.version.clone());
        summary
    }

    /// The rooms whose members may join without invitation (restricted join rules).
    pub fn allowed_rooms(&self) -> Vec<OwnedRoomId> {
        match &self.join_rule {
            JoinRule::Restricted(r) | JoinRule::KnockRestricted(r) => r
                .allow
                .iter()
                .filter_map(|rule| match rule {
                    ruma::room::AllowRule::RoomMembership(m) => Some(m.room_id.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}
