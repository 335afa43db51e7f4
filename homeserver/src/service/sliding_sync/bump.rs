//! Bump stamps: a room moves up the list for the events people care about (messages, calls,
//! polls, stickers, its creation), not for reactions, edits of state or membership churn. The
//! simplified sliding sync MSC fixes this set on the server, as Synapse does.

use ruma::events::TimelineEventType;

use super::SlidingSyncError;
use crate::service::{
    Services,
    rooms::{RoomMeta, timeline::Direction},
};

/// Event types that bump a room.
const BUMP_EVENT_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "m.beacon_info",
];

/// Events looked at, newest first, for one that bumps; beyond them the oldest one looked at
/// stands in, so a room busy with other events still sorts by recent activity.
const LOOKBACK: usize = 50;

fn bumps(kind: &TimelineEventType) -> bool {
    BUMP_EVENT_TYPES.contains(&kind.to_string().as_str())
}

impl Services {
    /// The stream position of the latest bumping event of a room at or before `upto`. The usual
    /// case (the latest event is a message) costs one cached event lookup.
    pub(super) fn bump_stamp(
        &self,
        shortroomid: u64,
        meta: &RoomMeta,
        upto: u64,
    ) -> Result<u64, SlidingSyncError> {
        if meta.last_count <= upto
            && let Some(latest) = meta.extremities.first()
            && let Some(pdu) = self.rooms.pdu(latest)?
            && bumps(pdu.kind())
        {
            return Ok(pdu.stored.count);
        }
        let page =
            self.rooms.timeline_page(shortroomid, upto + 1, Direction::Backward, LOOKBACK, upto)?;
        // Newest first.
        match page.iter().find(|pdu| bumps(pdu.kind())) {
            Some(pdu) => Ok(pdu.stored.count),
            None => Ok(page.last().map_or(0, |pdu| pdu.stored.count)),
        }
    }
}
