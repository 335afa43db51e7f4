//! Who may read what: `m.room.history_visibility` applied to a user and an event.

use ruma::{
    RoomId, UserId,
    events::{StateEventType, TimelineEventType, room::member::MembershipState},
};
use serde_json::Value;

use super::{
    Services,
    rooms::{RoomError, pdu::PduEvent},
};

/// The history visibility settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HistoryVisibility {
    WorldReadable,
    Shared,
    Invited,
    Joined,
}

impl Services {
    fn history_visibility(&self, shortstatehash: u64) -> Result<HistoryVisibility, RoomError> {
        let event =
            self.rooms.state_event(shortstatehash, &StateEventType::RoomHistoryVisibility, "")?;
        let value = event
            .map(|e| e.content_object())
            .and_then(|c| c.get("history_visibility").and_then(Value::as_str).map(str::to_owned));
        Ok(match value.as_deref() {
            Some("world_readable") => HistoryVisibility::WorldReadable,
            Some("invited") => HistoryVisibility::Invited,
            Some("joined") => HistoryVisibility::Joined,
            _ => HistoryVisibility::Shared,
        })
    }

    fn membership_in(
        &self,
        shortstatehash: u64,
        user: &UserId,
    ) -> Result<Option<MembershipState>, RoomError> {
        let event =
            self.rooms.state_event(shortstatehash, &StateEventType::RoomMember, user.as_str())?;
        Ok(event.and_then(|e| {
            e.content_object().get("membership").and_then(Value::as_str).map(MembershipState::from)
        }))
    }

    /// Whether `user` may see `pdu`.
    pub fn can_see_event(&self, user: &UserId, pdu: &PduEvent) -> Result<bool, RoomError> {
        // Users always see their own membership changes: without their leave (or a rejected
        // invite) the room would never leave their client's list.
        if *pdu.kind() == TimelineEventType::RoomMember && pdu.state_key() == Some(user.as_str()) {
            return Ok(true);
        }
        let visibility = self.history_visibility(pdu.stored.state_before)?;
        if visibility == HistoryVisibility::WorldReadable {
            return Ok(true);
        }
        let at_event = self.membership_in(pdu.stored.state_after, user)?;
        Ok(match visibility {
            HistoryVisibility::WorldReadable => true,
            HistoryVisibility::Shared => {
                at_event == Some(MembershipState::Join)
                    || self.rooms.is_joined(pdu.room_id(), user)?
            }
            HistoryVisibility::Invited => {
                matches!(at_event, Some(MembershipState::Join | MembershipState::Invite))
            }
            HistoryVisibility::Joined => at_event == Some(MembershipState::Join),
        })
    }

    /// Whether `user` may read the room's current state: members, and anyone if world-readable.
    pub fn can_read_room(&self, user: &UserId, room_id: &RoomId) -> Result<bool, RoomError> {
        if self.rooms.is_joined(room_id, user)? {
            return Ok(true);
        }
        let Some((_, meta)) = self.rooms.meta(room_id)? else { return Ok(false) };
        Ok(self.history_visibility(meta.state)? == HistoryVisibility::WorldReadable)
    }

    /// The state snapshot `user` may read: the current one for members, the one at their leave
    /// for former members (who keep what they saw), none otherwise.
    pub fn readable_state(
        &self,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<Option<u64>, RoomError> {
        let Some((_, meta)) = self.rooms.meta(room_id)? else { return Ok(None) };
        if self.can_read_room(user, room_id)? {
            return Ok(Some(meta.state));
        }
        match self.rooms.membership(room_id, user)? {
            Some(entry)
                if matches!(entry.membership, MembershipState::Leave | MembershipState::Ban) =>
            {
                // Only if they had joined at some point: their leave event's state says so.
                let Some(leave) = self.rooms.pdu(&entry.event_id)? else { return Ok(None) };
                let before = self.membership_in(leave.stored.state_before, user)?;
                Ok((before == Some(MembershipState::Join)).then_some(leave.stored.state_after))
            }
            _ => Ok(None),
        }
    }
}
