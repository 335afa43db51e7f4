//! Simplified sliding sync (MSC4186), the sync of Element X.
//!
//! A request names lists (filters, ranges over the user's rooms sorted by recency, and the data
//! wanted per room) and room subscriptions. The response sends the rooms in those windows that
//! the client does not have yet (`initial`) or that changed since its previous response, and the
//! extensions (to-device, E2EE, account data, receipts, typing). What each connection already
//! has lives in [`connection`]; sorting and filters in [`lists`]; one room's data in
//! [`room_data`]; extensions in [`extensions`].

mod bump;
mod connection;
mod extensions;
mod lists;
mod room_data;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ruma::{
    DeviceId, OwnedRoomId, RoomId, UInt, UserId,
    api::client::sync::sync_events::v5::{Request, Response, response},
};

pub use self::connection::{ConnState, ConnectionKey, Connections, RoomConfig, SentAs, SentRoom};
use self::{
    extensions::{ExtensionContext, Window},
    lists::Candidate,
    room_data::{JoinedRoom, Since},
};
use super::{Services, rooms::RoomError};
use crate::storage::StorageError;

/// Column families owned by sliding sync.
pub const COLUMN_FAMILIES: &[&str] = &[connection::TABLE];

/// Sliding sync failures.
#[derive(Debug, thiserror::Error)]
pub enum SlidingSyncError {
    /// The `pos` was not handed out by this connection, or is too old: the client starts over.
    #[error("unknown or expired position {0:?}: start a new sliding sync connection")]
    UnknownPos(String),
    /// Reading rooms failed.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A computed response and the connection state after it.
#[derive(Debug)]
pub struct Outcome {
    /// The response; its `pos` is set when the state is committed.
    pub response: Response,
    /// What the client has once it receives the response.
    pub state: ConnState,
    /// Whether the response carries anything new (else a long-poll keeps waiting).
    pub has_news: bool,
}

/// Rooms chosen for a response: per room the merged config, per list its rooms in range.
#[derive(Default)]
struct Selection {
    rooms: BTreeMap<OwnedRoomId, RoomConfig>,
    lists: BTreeMap<String, Vec<OwnedRoomId>>,
    subscriptions: BTreeSet<OwnedRoomId>,
}

/// The `spaces` filter of each list, by list name: ruma 0.16's request type has no field for it,
/// so the handler reads it from the JSON body.
pub type SpaceFilters = BTreeMap<String, Vec<ruma::OwnedRoomId>>;

/// The `spaces` filters of a request's JSON body.
pub fn space_filters(body: Option<&serde_json::Value>) -> SpaceFilters {
    let Some(lists) = body.and_then(|b| b.get("lists")).and_then(|l| l.as_object()) else {
        return SpaceFilters::new();
    };
    lists
        .iter()
        .filter_map(|(name, list)| {
            let spaces = list.pointer("/filters/spaces")?.as_array()?;
            let spaces = spaces
                .iter()
                .filter_map(|s| s.as_str().and_then(|s| ruma::OwnedRoomId::try_from(s).ok()))
                .collect();
            Some((name.clone(), spaces))
        })
        .collect()
}

impl Services {
    /// Builds a sliding sync response up to stream position `upto`, from the connection state
    /// `base` (`None` for a new connection).
    pub fn build_sliding_sync(
        &self,
        user: &UserId,
        device: &DeviceId,
        request: &Request,
        space_filters: &SpaceFilters,
        base: Option<&ConnState>,
        upto: u64,
    ) -> Result<Outcome, SlidingSyncError> {
        // A connection with no lists and no rooms (Element X's encryption connection) only
        // wants extensions: no need to read the user's rooms.
        let needs_rooms = !request.lists.is_empty()
            || !request.room_subscriptions.is_empty()
            || base.is_some_and(|b| !b.rooms.is_empty());
        let user_rooms =
            if needs_rooms { self.user_rooms(user, upto)? } else { lists::UserRooms::default() };
        let mut response = Response::new(String::new());
        response.txn_id = request.txn_id.clone();
        let mut next = ConnState {
            pos: String::new(),
            upto,
            configs: base.map(|b| b.configs.clone()).unwrap_or_default(),
            rooms: base.map(|b| b.rooms.clone()).unwrap_or_default(),
            lists: BTreeMap::new(),
        };

        let selection =
            self.select(request, space_filters, &user_rooms, &mut response, &mut next)?;
        let by_id: HashMap<&RoomId, &Candidate> =
            user_rooms.rooms.iter().map(|c| (&*c.room_id, c)).collect();
        let live_after = base.map_or(0, |b| b.upto);
        let mut initial = BTreeSet::new();
        for (room_id, config) in &selection.rooms {
            let Some(candidate) = by_id.get(&**room_id) else { continue };
            let sent = base.and_then(|b| b.rooms.get(room_id).map(|s| (s, b.config_of(s))));
            let covered =
                sent.as_ref().is_some_and(|(_, c)| c.is_some_and(|c| config.covered_by(c)));
            let index = next.intern(config);
            if candidate.is_invite() {
                let unchanged = sent.as_ref().is_some_and(|(s, _)| {
                    s.sent_as == SentAs::Invited && candidate.entry.count <= s.upto
                });
                if !unchanged {
                    let mut room = self.invited_room_data(&candidate.entry)?;
                    room.is_dm = Some(user_rooms.direct.contains(room_id));
                    response.rooms.insert(room_id.clone(), room);
                    initial.insert(room_id.clone());
                    let entry =
                        SentRoom { upto, config: index, sent_as: SentAs::Invited, counts: (0, 0) };
                    next.rooms.insert(room_id.clone(), entry);
                }
                continue;
            }
            let since = match sent {
                Some((s, _)) if covered && s.sent_as == SentAs::Joined => {
                    Some(Since { upto: s.upto })
                }
                _ => None,
            };
            let sent_counts = sent.map(|(s, _)| s.counts);
            let target = JoinedRoom {
                room_id,
                config,
                since,
                sent_counts,
                bump: candidate.bump,
                latest: candidate.latest,
            };
            let data = self.joined_room_data(user, &target, live_after, upto)?;
            if let Some((mut room, counts)) = data {
                room.is_dm = Some(user_rooms.direct.contains(room_id));
                if since.is_none() {
                    initial.insert(room_id.clone());
                }
                response.rooms.insert(room_id.clone(), room);
                let entry = SentRoom { upto, config: index, sent_as: SentAs::Joined, counts };
                next.rooms.insert(room_id.clone(), entry);
            }
        }
        self.drop_left_rooms(user, base, &user_rooms, &by_id, &mut response, &mut next)?;

        let known: BTreeSet<OwnedRoomId> = next.rooms.keys().cloned().collect();
        let ctx = ExtensionContext {
            user,
            device,
            since: base.map(|b| b.upto),
            upto,
            known_rooms: &known,
        };
        let window = Window {
            lists: &selection.lists,
            subscriptions: &selection.subscriptions,
            initial: &initial,
        };
        response.extensions = self.sliding_extensions(&ctx, &request.extensions, &window)?;
        let has_news = base.is_none()
            || !response.rooms.is_empty()
            || extensions::has_news(&response.extensions)
            || base.is_some_and(|b| b.lists != next.lists);
        Ok(Outcome { response, state: next, has_news })
    }

    /// Applies the lists and subscriptions of a request: list counts into the response, the
    /// chosen rooms with their merged configs.
    fn select(
        &self,
        request: &Request,
        space_filters: &SpaceFilters,
        user_rooms: &lists::UserRooms,
        response: &mut Response,
        next: &mut ConnState,
    ) -> Result<Selection, SlidingSyncError> {
        let mut selection = Selection::default();
        for (name, list) in &request.lists {
            let in_spaces = self.list_space_children(space_filters.get(name.as_str()))?;
            let mut filtered: Vec<&Candidate> = Vec::new();
            for room in &user_rooms.rooms {
                if self.passes(
                    list.filters.as_ref(),
                    in_spaces.as_ref(),
                    room,
                    &user_rooms.direct,
                )? {
                    filtered.push(room);
                }
            }
            let config = lists::config_of(&list.room_details);
            let mut in_range = Vec::new();
            for room in lists::in_ranges(&filtered, &list.ranges) {
                selection.rooms.entry(room.room_id.clone()).or_default().merge(&config);
                in_range.push(room.room_id.clone());
            }
            let count = filtered.len() as u64;
            let mut out = response::List::default();
            out.count = UInt::new_saturating(count);
            response.lists.insert(name.clone(), out);
            next.lists.insert(name.clone(), count);
            selection.lists.insert(name.clone(), in_range);
        }
        for (room_id, subscription) in &request.room_subscriptions {
            if !user_rooms.rooms.iter().any(|c| &c.room_id == room_id) {
                // Not joined or invited: nothing the user may see.
                continue;
            }
            let config =
                lists::config_from(&subscription.required_state, subscription.timeline_limit);
            selection.rooms.entry(room_id.clone()).or_default().merge(&config);
            selection.subscriptions.insert(room_id.clone());
        }
        Ok(selection)
    }

    /// Rooms the client has that the user left (or was banned from, or forgot): sent once with
    /// the leave, then dropped from the connection.
    fn drop_left_rooms(
        &self,
        user: &UserId,
        base: Option<&ConnState>,
        user_rooms: &lists::UserRooms,
        current: &HashMap<&RoomId, &Candidate>,
        response: &mut Response,
        next: &mut ConnState,
    ) -> Result<(), SlidingSyncError> {
        let Some(base) = base else { return Ok(()) };
        for (room_id, sent) in &base.rooms {
            if current.contains_key(&**room_id) {
                continue;
            }
            next.rooms.remove(room_id);
            let Some(entry) = user_rooms.left.get(room_id) else { continue };
            let mut config = base.config_of(sent).cloned().unwrap_or_default();
            if sent.sent_as == SentAs::Invited {
                // An invitee never saw the timeline: only the leave (a rejected invite).
                config.timeline_limit = 0;
            }
            if let Some(room) = self.left_room_data(user, room_id, entry, sent, &config)? {
                response.rooms.insert(room_id.clone(), room);
            }
        }
        Ok(())
    }
}
