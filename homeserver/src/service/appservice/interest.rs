//! Which events an application service receives: those sent by or about its users, and every
//! event of a room where one of its users is a member or whose ID or alias it claims.
//!
//! Whether a room interests a service depends on its members, which change rarely compared with
//! how often events arrive, so the answer is cached per room and forgotten at each membership event
//! of that room. The sender evaluates events in stream order, so it sees every such change.

use std::num::NonZeroUsize;

use lru::LruCache;
use ruma::{OwnedRoomId, RoomId, events::TimelineEventType};

use super::Appservice;
use crate::service::{
    Services,
    rooms::{RoomError, pdu::PduEvent},
};

/// Rooms whose answer is remembered, per service.
const CACHED_ROOMS: usize = 10_000;

/// The rooms a service is known to be interested in, or not.
pub struct InterestCache(LruCache<OwnedRoomId, bool>);

impl Default for InterestCache {
    fn default() -> Self {
        Self(LruCache::new(NonZeroUsize::new(CACHED_ROOMS).unwrap_or(NonZeroUsize::MIN)))
    }
}

impl Services {
    /// Whether `service` receives `pdu`.
    pub fn appservice_wants_event(
        &self,
        service: &Appservice,
        pdu: &PduEvent,
        cache: &mut InterestCache,
    ) -> Result<bool, RoomError> {
        let is_member_event = *pdu.kind() == TimelineEventType::RoomMember;
        if is_member_event {
            cache.0.pop(pdu.room_id());
        }
        if service.is_user_in_namespace(pdu.sender()) {
            return Ok(true);
        }
        if is_member_event
            && let Some(target) = pdu.state_key().and_then(|k| ruma::UserId::parse(k).ok())
            && service.is_user_in_namespace(&target)
        {
            return Ok(true);
        }
        if let Some(&known) = cache.0.get(pdu.room_id()) {
            return Ok(known);
        }
        let wanted = self.appservice_wants_room(service, pdu.room_id())?;
        cache.0.put(pdu.room_id().to_owned(), wanted);
        Ok(wanted)
    }

    /// Whether `service` follows everything in `room_id`: it claims the room's ID or one of its
    /// aliases, or one of its users is in the room.
    pub fn appservice_wants_room(
        &self,
        service: &Appservice,
        room_id: &RoomId,
    ) -> Result<bool, RoomError> {
        if service.rooms.matches(room_id.as_str()) {
            return Ok(true);
        }
        if self
            .rooms
            .aliases
            .aliases_of(room_id)?
            .iter()
            .any(|a| service.aliases.matches(a.as_str()))
        {
            return Ok(true);
        }
        Ok(self.rooms.joined_members(room_id)?.iter().any(|u| service.is_user_in_namespace(u)))
    }
}
