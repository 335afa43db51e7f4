//! Lists: the user's rooms, filtered, sorted by recency, cut to the requested ranges.
//!
//! The recency of a room (its bump stamp) is the stream position of its latest event of a bumping
//! type (`bump.rs`): usually the latest event, found from the room metadata the room service keeps
//! in memory and a cached event, so sorting 1000 rooms scans no timeline.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{
    OwnedRoomId, RoomId, UserId,
    api::client::sync::sync_events::v5::request::{ListFilters, RoomDetails},
    directory::RoomTypeFilter,
    events::{StateEventType, room::member::MembershipState},
};

use super::{SlidingSyncError, connection::RoomConfig};
use crate::service::{Services, rooms::membership::MembershipEntry};

/// A room the user is joined to or invited to.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The user's membership.
    pub entry: MembershipEntry,
    /// Stream position of the latest bumping event (joined) or of the invite: the sort key.
    pub bump: u64,
    /// Stream position of the latest event of any type (joined) or of the invite: whether the
    /// client has everything.
    pub latest: u64,
}

impl Candidate {
    /// Whether the user is invited (not joined).
    pub fn is_invite(&self) -> bool {
        self.entry.membership == MembershipState::Invite
    }
}

/// The user's rooms as lists see them.
#[derive(Default)]
pub(super) struct UserRooms {
    /// Joined and invited rooms, most recent first.
    pub rooms: Vec<Candidate>,
    /// Rooms the user left or was banned from, with their membership.
    pub left: BTreeMap<OwnedRoomId, MembershipEntry>,
    /// Rooms marked as direct chats in `m.direct`.
    pub direct: BTreeSet<OwnedRoomId>,
}

impl Services {
    /// The user's rooms up to stream position `upto`, sorted by recency.
    pub(super) fn user_rooms(
        &self,
        user: &UserId,
        upto: u64,
    ) -> Result<UserRooms, SlidingSyncError> {
        let mut rooms = Vec::new();
        let mut left = BTreeMap::new();
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            if entry.since > upto {
                // A membership newer than this response: the next one sends it.
                continue;
            }
            match entry.membership {
                MembershipState::Join => {
                    let Some((short, meta)) = self.rooms.meta(&room_id)? else { continue };
                    let bump = self.bump_stamp(short, &meta, upto)?;
                    let latest = meta.last_count.min(upto);
                    rooms.push(Candidate { room_id, entry, bump, latest });
                }
                MembershipState::Invite => {
                    let bump = entry.count;
                    rooms.push(Candidate { room_id, entry, bump, latest: bump });
                }
                MembershipState::Leave | MembershipState::Ban => {
                    left.insert(room_id, entry);
                }
                _ => {}
            }
        }
        rooms.sort_by(|a, b| b.bump.cmp(&a.bump).then_with(|| a.room_id.cmp(&b.room_id)));
        Ok(UserRooms { rooms, left, direct: self.direct_rooms(user)? })
    }

    /// The rooms `m.direct` lists.
    fn direct_rooms(&self, user: &UserId) -> Result<BTreeSet<OwnedRoomId>, SlidingSyncError> {
        let Some(content) = self.account_data.get(user, None, "m.direct")? else {
            return Ok(BTreeSet::new());
        };
        Ok(content
            .as_object()
            .into_iter()
            .flat_map(|users| users.values())
            .filter_map(|rooms| rooms.as_array())
            .flatten()
            .filter_map(|room| room.as_str())
            .filter_map(|room| OwnedRoomId::try_from(room).ok())
            .collect())
    }

    /// The rooms the `spaces` filter of a list admits: the children (`m.space.child` with a
    /// `via`) of the spaces it names. `None` when the list has no such filter.
    pub(super) fn list_space_children(
        &self,
        spaces: Option<&Vec<OwnedRoomId>>,
    ) -> Result<Option<BTreeSet<OwnedRoomId>>, SlidingSyncError> {
        let Some(spaces) = spaces.filter(|s| !s.is_empty()) else { return Ok(None) };
        let mut children = BTreeSet::new();
        for space in spaces {
            let Some((_, meta)) = self.rooms.meta(space)? else { continue };
            for pdu in self.rooms.state_events(meta.state)? {
                if pdu.kind().to_string() != "m.space.child" {
                    continue;
                }
                let linked = serde_json::from_str::<serde_json::Value>(pdu.fields.content.get())
                    .ok()
                    .and_then(|c| c.get("via").and_then(|v| v.as_array()).map(|v| !v.is_empty()))
                    .unwrap_or(false);
                if let Some(child) = pdu.state_key().and_then(|k| OwnedRoomId::try_from(k).ok())
                    && linked
                {
                    children.insert(child);
                }
            }
        }
        Ok(Some(children))
    }

    /// Whether a room passes a list's filters. State is read only for the filters that need it.
    pub(super) fn passes(
        &self,
        filters: Option<&ListFilters>,
        in_spaces: Option<&BTreeSet<OwnedRoomId>>,
        room: &Candidate,
        direct: &BTreeSet<OwnedRoomId>,
    ) -> Result<bool, SlidingSyncError> {
        if in_spaces.is_some_and(|children| !children.contains(&room.room_id)) {
            return Ok(false);
        }
        let Some(filters) = filters else { return Ok(true) };
        if filters.is_invite.is_some_and(|wanted| wanted != room.is_invite()) {
            return Ok(false);
        }
        if filters.is_dm.is_some_and(|wanted| wanted != direct.contains(&room.room_id)) {
            return Ok(false);
        }
        if let Some(wanted) = filters.is_encrypted {
            let encrypted = self
                .rooms
                .current_state_event(&room.room_id, &StateEventType::RoomEncryption, "")?
                .is_some();
            if wanted != encrypted {
                return Ok(false);
            }
        }
        if !filters.room_types.is_empty() || !filters.not_room_types.is_empty() {
            let kind = self.room_type(&room.room_id)?;
            let is = |filter: &RoomTypeFilter| filter.as_str() == kind.as_deref();
            if !filters.room_types.is_empty() && !filters.room_types.iter().any(is) {
                return Ok(false);
            }
            if filters.not_room_types.iter().any(is) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The `type` of a room's create event (`m.space`, ...), `None` for an ordinary room.
    fn room_type(&self, room_id: &RoomId) -> Result<Option<String>, SlidingSyncError> {
        let create = self.rooms.current_state_event(room_id, &StateEventType::RoomCreate, "")?;
        Ok(create.and_then(|pdu| {
            pdu.content_object().get("type").and_then(|t| t.as_str()).map(str::to_owned)
        }))
    }
}

/// The rooms of a sorted, filtered list that fall in `ranges` (inclusive bounds).
pub(super) fn in_ranges<'a>(
    sorted: &'a [&'a Candidate],
    ranges: &[(ruma::UInt, ruma::UInt)],
) -> impl Iterator<Item = &'a Candidate> + 'a {
    let mut indexes: BTreeSet<usize> = BTreeSet::new();
    for (start, end) in ranges {
        let start = usize::try_from(u64::from(*start)).unwrap_or(usize::MAX);
        let end = usize::try_from(u64::from(*end)).unwrap_or(usize::MAX);
        if start >= sorted.len() || start > end {
            continue;
        }
        indexes.extend(start..=end.min(sorted.len() - 1));
    }
    indexes.into_iter().filter_map(move |i| sorted.get(i).copied())
}

/// The room config a list's or subscription's room details ask for.
pub(super) fn config_of(details: &RoomDetails) -> RoomConfig {
    config_from(&details.required_state, details.timeline_limit)
}

/// A room config from `required_state` and `timeline_limit`.
pub(super) fn config_from(
    required_state: &[(StateEventType, String)],
    timeline_limit: ruma::UInt,
) -> RoomConfig {
    let mut config = RoomConfig {
        required_state: Vec::new(),
        // Bounded like `/sync`: a client cannot ask for a room's whole history in one response.
        timeline_limit: u64::from(timeline_limit).min(500),
    };
    for (kind, key) in required_state {
        let entry = (kind.to_string(), key.clone());
        if !config.required_state.contains(&entry) {
            config.required_state.push(entry);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use ruma::{UInt, event_id};

    use super::*;

    fn candidate(i: u64) -> Candidate {
        Candidate {
            room_id: OwnedRoomId::try_from(format!("!r{i}:x")).expect("room id"),
            entry: MembershipEntry {
                membership: MembershipState::Join,
                count: i,
                since: i,
                event_id: event_id!("$e:x").to_owned(),
                forgotten: false,
            },
            bump: i,
            latest: i,
        }
    }

    #[test]
    fn ranges_are_inclusive_and_clipped() {
        let rooms: Vec<Candidate> = (0..5).map(candidate).collect();
        let sorted: Vec<&Candidate> = rooms.iter().collect();
        let picked: Vec<u64> =
            in_ranges(&sorted, &[(UInt::from(1u32), UInt::from(2u32))]).map(|c| c.bump).collect();
        assert_eq!(picked, vec![1, 2]);
        let picked: Vec<u64> =
            in_ranges(&sorted, &[(UInt::from(3u32), UInt::from(99u32))]).map(|c| c.bump).collect();
        assert_eq!(picked, vec![3, 4]);
        assert_eq!(in_ranges(&sorted, &[(UInt::from(9u32), UInt::from(10u32))]).count(), 0);
    }
}
