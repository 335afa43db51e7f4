//! What other servers may read of this server's rooms: one event, the state at an event with its
//! auth chain, an event's auth chain, back-fill and gap filling.
//!
//! Every read is checked against the room's server ACL (`m.room.server_acl`) and, for room reads,
//! the requesting server's presence in the room (one of its users is joined). Events are filtered
//! by history visibility as it applies to a server: an event is visible to a server when one of
//! its users could see it (the rule of Synapse's `filter_events_for_server`). Back-fill and gap
//! filling answer the events a server may not see redacted, so that its copy of the DAG has no
//! hole; `/event` refuses them.

use std::{
    collections::{BinaryHeap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use ruma::{
    EventId, OwnedEventId, OwnedRoomId, RoomId, ServerName,
    events::{
        StateEventType, TimelineEventType,
        room::{
            history_visibility::HistoryVisibility, member::MembershipState,
            server_acl::RoomServerAclEventContent,
        },
    },
};
use serde_json::value::{RawValue as RawJsonValue, to_raw_value};

use crate::{
    service::{
        Services,
        rooms::{
            RoomError,
            pdu::{MalformedPdu, PduEvent},
        },
    },
    storage::StorageError,
};

/// Most events one back-fill or gap-filling answer holds, whatever the requester asks.
pub const MAX_EVENTS: usize = 100;

/// Most events an auth-chain walk visits: a bound on the work one request can cause.
const MAX_AUTH_CHAIN: usize = 50_000;

/// The state at an event and the auth chain of that state, as `/state` answers them.
pub type StateAndAuthChain = (Vec<Arc<PduEvent>>, Vec<Arc<PduEvent>>);

/// Why a federation read is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading a room or an event failed.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The requesting server may not read this (`M_FORBIDDEN`).
    #[error("{0}")]
    Forbidden(String),
    /// The room or event is not known here (`M_NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (`M_INVALID_PARAM`).
    #[error("{0}")]
    InvalidParam(String),
}

impl From<StorageError> for ReadError {
    fn from(error: StorageError) -> Self {
        Self::Room(RoomError::Storage(error))
    }
}

/// The events reachable from `roots` through `auth_events`, `roots` included, each once, in the
/// order they were found. `auth_events_of` answers an event's `auth_events`, or `None` for an
/// event this server does not have (left out of the chain). The walk stops after `limit` events.
pub fn walk_auth_chain<E>(
    roots: impl IntoIterator<Item = OwnedEventId>,
    limit: usize,
    mut auth_events_of: impl FnMut(&EventId) -> Result<Option<Vec<OwnedEventId>>, E>,
) -> Result<Vec<OwnedEventId>, E> {
    let mut seen: HashSet<OwnedEventId> = HashSet::new();
    let mut queue: VecDeque<OwnedEventId> = VecDeque::new();
    for root in roots {
        if seen.insert(root.clone()) {
            queue.push_back(root);
        }
    }
    let mut chain = Vec::new();
    while let Some(event_id) = queue.pop_front() {
        if chain.len() >= limit {
            break;
        }
        let Some(auth_events) = auth_events_of(&event_id)? else { continue };
        chain.push(event_id);
        for auth in auth_events {
            if seen.insert(auth.clone()) {
                queue.push_back(auth);
            }
        }
    }
    Ok(chain)
}

/// Whether an event with history visibility `visibility` is visible to a server whose users have
/// `memberships` in the state at the event: always for `shared` and `world_readable`, else when
/// one of them is joined (or invited, for `invited`).
pub fn visible_to_server(
    visibility: &HistoryVisibility,
    memberships: impl IntoIterator<Item = MembershipState>,
) -> bool {
    match visibility {
        HistoryVisibility::Invited => memberships
            .into_iter()
            .any(|m| matches!(m, MembershipState::Join | MembershipState::Invite)),
        HistoryVisibility::Joined => memberships.into_iter().any(|m| m == MembershipState::Join),
        _ => true,
    }
}

/// Whether `server` is the server part of the user ID `user_id` (a member event's state key).
fn user_of_server(user_id: &str, server: &ServerName) -> bool {
    user_id.starts_with('@') && user_id.split_once(':').is_some_and(|(_, s)| s == server.as_str())
}

impl Services {
    /// Refuses `server` if the current server ACL of `room_id` denies it.
    pub fn check_server_acl(&self, room_id: &RoomId, server: &ServerName) -> Result<(), ReadError> {
        let Some(event) =
            self.rooms.current_state_event(room_id, &StateEventType::RoomServerAcl, "")?
        else {
            return Ok(());
        };
        // An ACL whose content does not parse denies nothing (as the spec's auth rules treat
        // an unusable ACL): the room would otherwise be cut off by a malformed event.
        let Ok(acl) = event.content_as::<RoomServerAclEventContent>() else { return Ok(()) };
        if acl.is_allowed(server) {
            Ok(())
        } else {
            Err(ReadError::Forbidden(format!("server {server} is denied by the room's server ACL")))
        }
    }

    /// Whether one of `server`'s users is joined to `room_id` now.
    pub fn server_in_room(
        &self,
        server: &ServerName,
        room_id: &RoomId,
    ) -> Result<bool, StorageError> {
        Ok(self.rooms.joined_members(room_id)?.iter().any(|u| u.server_name() == server))
    }

    /// The servers of the users joined to `room_id`, this one left out: where the room's EDUs go.
    pub fn remote_servers_in_room(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<ruma::OwnedServerName>, StorageError> {
        let mut servers: Vec<ruma::OwnedServerName> = self
            .rooms
            .joined_members(room_id)?
            .iter()
            .map(|u| u.server_name().to_owned())
            .filter(|s| *s != self.globals.server_name)
            .collect();
        servers.sort_unstable();
        servers.dedup();
        Ok(servers)
    }

    /// Checks that `origin` may read `room_id`: the room is known (else `M_NOT_FOUND`), its ACL
    /// allows `origin` and one of `origin`'s users is joined (else `M_FORBIDDEN`).
    pub fn require_server_in_room(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
    ) -> Result<(), ReadError> {
        if !self.rooms.exists(room_id)? {
            return Err(ReadError::NotFound(format!("room {room_id} is not known here")));
        }
        self.check_server_acl(room_id, origin)?;
        if !self.server_in_room(origin, room_id)? {
            return Err(ReadError::Forbidden(format!("server {origin} is not in room {room_id}")));
        }
        Ok(())
    }

    /// Whether `server` may see `pdu`: by the history visibility before the event and the
    /// memberships of `server`'s users in the state after it.
    pub fn server_can_see_event(
        &self,
        server: &ServerName,
        pdu: &PduEvent,
    ) -> Result<bool, RoomError> {
        // A server always sees the membership events of its own users.
        if *pdu.kind() == TimelineEventType::RoomMember
            && pdu.state_key().is_some_and(|k| user_of_server(k, server))
        {
            return Ok(true);
        }
        let visibility = self.history_visibility_at(pdu.stored.state_before)?;
        if !matches!(visibility, HistoryVisibility::Invited | HistoryVisibility::Joined) {
            return Ok(true);
        }
        let memberships = self.server_memberships(pdu.stored.state_after, server)?;
        Ok(visible_to_server(&visibility, memberships))
    }

    /// The history visibility of the state snapshot `shortstatehash` (`shared` by default).
    fn history_visibility_at(&self, shortstatehash: u64) -> Result<HistoryVisibility, RoomError> {
        Ok(self
            .rooms
            .state_event(shortstatehash, &StateEventType::RoomHistoryVisibility, "")?
            .and_then(|e| {
                e.content_object()
                    .get("history_visibility")
                    .and_then(serde_json::Value::as_str)
                    .map(HistoryVisibility::from)
            })
            .unwrap_or(HistoryVisibility::Shared))
    }

    /// The memberships of `server`'s users in the state snapshot `shortstatehash`.
    fn server_memberships(
        &self,
        shortstatehash: u64,
        server: &ServerName,
    ) -> Result<Vec<MembershipState>, RoomError> {
        let state = self.rooms.state_map(shortstatehash)?;
        let mut memberships = Vec::new();
        for (statekey, event) in state.iter() {
            let Some(key) = self.rooms.short.statekey(*statekey)? else { continue };
            if key.0 != StateEventType::RoomMember || !user_of_server(&key.1, server) {
                continue;
            }
            let Some(pdu) = self.rooms.pdu_by_short(*event)? else { continue };
            if let Some(m) = pdu.content_object().get("membership").and_then(|m| m.as_str()) {
                memberships.push(MembershipState::from(m));
            }
        }
        Ok(memberships)
    }

    /// An event of `room_id` (any room when `None`), or `M_NOT_FOUND`.
    fn event_in_room(
        &self,
        event_id: &EventId,
        room_id: Option<&RoomId>,
    ) -> Result<Arc<PduEvent>, ReadError> {
        self.rooms
            .pdu(&event_id.to_owned())?
            .filter(|pdu| room_id.is_none_or(|r| pdu.room_id() == r))
            .ok_or_else(|| ReadError::NotFound(format!("event {event_id} is not known here")))
    }

    /// `GET /event/{eventId}`: the signed PDU, if `origin` is in the room (or the event is
    /// world-readable) and may see it.
    pub fn federation_event(
        &self,
        origin: &ServerName,
        event_id: &EventId,
    ) -> Result<Box<RawJsonValue>, ReadError> {
        let pdu = self.event_in_room(event_id, None)?;
        self.check_server_acl(pdu.room_id(), origin)?;
        let world_readable = self.history_visibility_at(pdu.stored.state_before)?
            == HistoryVisibility::WorldReadable;
        if !world_readable && !self.server_in_room(origin, pdu.room_id())? {
            return Err(ReadError::Forbidden(format!(
                "server {origin} is not in room {}",
                pdu.room_id()
            )));
        }
        if !self.server_can_see_event(origin, &pdu)? {
            return Err(ReadError::Forbidden(format!("server {origin} may not see {event_id}")));
        }
        Ok(pdu.stored.json.clone())
    }

    /// The auth chain of `events` (events of one room): every event reachable from their
    /// `auth_events`. From room version 12 the create event is in no `auth_events`; it is added,
    /// as it is still part of every auth chain.
    pub fn auth_chain_of<'a>(
        &self,
        events: impl IntoIterator<Item = &'a PduEvent>,
    ) -> Result<Vec<Arc<PduEvent>>, RoomError> {
        let mut room: Option<OwnedRoomId> = None;
        let mut roots: Vec<OwnedEventId> = Vec::new();
        for event in events {
            room.get_or_insert_with(|| event.room_id().to_owned());
            roots.extend(event.fields.auth_events.iter().cloned());
        }
        let has_roots = !roots.is_empty();
        let mut loaded: HashMap<OwnedEventId, Arc<PduEvent>> = HashMap::new();
        let chain = walk_auth_chain(roots, MAX_AUTH_CHAIN, |event_id| {
            let Some(pdu) = self.rooms.pdu(&event_id.to_owned())? else { return Ok(None) };
            let auth = pdu.fields.auth_events.clone();
            loaded.insert(event_id.to_owned(), pdu);
            Ok::<_, RoomError>(Some(auth))
        })?;
        let mut chain: Vec<Arc<PduEvent>> =
            chain.into_iter().filter_map(|id| loaded.remove(&id)).collect();
        if has_roots
            && let Some(room) = room
            && !chain.iter().any(|e| *e.kind() == TimelineEventType::RoomCreate)
            && let Some(create) =
                self.rooms.current_state_event(&room, &StateEventType::RoomCreate, "")?
        {
            chain.insert(0, create);
        }
        Ok(chain)
    }

    /// The room state before `event_id` (as `/state` and `/state_ids` define the state at an
    /// event) and the auth chain of that state, for `origin`.
    pub fn federation_state_at(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<StateAndAuthChain, ReadError> {
        self.require_server_in_room(origin, room_id)?;
        let pdu = self.event_in_room(event_id, Some(room_id))?;
        // An outlier (an auth or state event fetched for another one) has no known state.
        if pdu.stored.count == 0 {
            return Err(ReadError::NotFound(format!("the state at {event_id} is not known here")));
        }
        let state = self.rooms.state_events(pdu.stored.state_before)?;
        let auth_chain = self.auth_chain_of(state.iter().map(|e| &**e))?;
        Ok((state, auth_chain))
    }

    /// `GET /event_auth/{roomId}/{eventId}`: the auth chain of an event.
    pub fn federation_event_auth(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<Vec<Box<RawJsonValue>>, ReadError> {
        self.require_server_in_room(origin, room_id)?;
        let pdu = self.event_in_room(event_id, Some(room_id))?;
        Ok(self.auth_chain_of([&*pdu])?.iter().map(|e| e.stored.json.clone()).collect())
    }

    /// `GET /backfill/{roomId}`: up to `limit` events from `from` backwards through
    /// `prev_events`, deepest first, `from` included.
    pub fn federation_backfill(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        from: &[OwnedEventId],
        limit: usize,
    ) -> Result<Vec<Box<RawJsonValue>>, ReadError> {
        self.require_server_in_room(origin, room_id)?;
        let limit = limit.min(MAX_EVENTS);
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut queue: BinaryHeap<(u64, OwnedEventId)> = BinaryHeap::new();
        for event_id in from {
            if seen.insert(event_id.clone())
                && let Some(pdu) = self.rooms.pdu(event_id)?
                && pdu.room_id() == room_id
            {
                queue.push((u64::from(pdu.fields.depth), event_id.clone()));
            }
        }
        let mut events = Vec::new();
        while events.len() < limit {
            let Some((_, event_id)) = queue.pop() else { break };
            let Some(pdu) = self.rooms.pdu(&event_id)? else { continue };
            for prev in &pdu.fields.prev_events {
                if seen.insert(prev.clone())
                    && let Some(prev_pdu) = self.rooms.pdu(prev)?
                    && prev_pdu.room_id() == room_id
                {
                    queue.push((u64::from(prev_pdu.fields.depth), prev.clone()));
                }
            }
            events.push(pdu);
        }
        self.events_for_server(origin, room_id, &events)
    }

    /// `POST /get_missing_events/{roomId}`: the events before `latest` back to `earliest`
    /// (neither included), breadth first through `prev_events`, at most `limit`, none below
    /// `min_depth`, oldest first.
    pub fn federation_missing_events(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        earliest: &[OwnedEventId],
        latest: &[OwnedEventId],
        limit: usize,
        min_depth: u64,
    ) -> Result<Vec<Box<RawJsonValue>>, ReadError> {
        self.require_server_in_room(origin, room_id)?;
        let limit = limit.min(MAX_EVENTS);
        let mut seen: HashSet<OwnedEventId> = earliest.iter().cloned().collect();
        let mut front: Vec<OwnedEventId> =
            latest.iter().filter(|e| !seen.contains(*e)).cloned().collect();
        seen.extend(latest.iter().cloned());
        let mut events: Vec<Arc<PduEvent>> = Vec::new();
        'walk: while !front.is_empty() {
            let mut next = Vec::new();
            for event_id in front {
                let Some(pdu) = self.rooms.pdu(&event_id)? else { continue };
                if pdu.room_id() != room_id {
                    continue;
                }
                for prev in &pdu.fields.prev_events {
                    if !seen.insert(prev.clone()) {
                        continue;
                    }
                    let Some(prev_pdu) = self.rooms.pdu(prev)? else { continue };
                    if prev_pdu.room_id() != room_id {
                        continue;
                    }
                    // Depth only decreases backwards: nothing before this is deep enough.
                    if u64::from(prev_pdu.fields.depth) < min_depth {
                        continue;
                    }
                    next.push(prev.clone());
                    events.push(prev_pdu);
                    if events.len() >= limit {
                        break 'walk;
                    }
                }
            }
            front = next;
        }
        events.sort_by_key(|e| (u64::from(e.fields.depth), e.stored.count));
        self.events_for_server(origin, room_id, &events)
    }

    /// `events` as `origin` may have them: the signed PDU, redacted where `origin` may not see
    /// the event.
    fn events_for_server(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        events: &[Arc<PduEvent>],
    ) -> Result<Vec<Box<RawJsonValue>>, ReadError> {
        let (_, meta) = self.rooms.require_meta(room_id)?;
        let rules = meta.version.rules().ok_or(RoomError::UnsupportedVersion(meta.version))?;
        let mut out = Vec::with_capacity(events.len());
        for pdu in events {
            if self.server_can_see_event(origin, pdu)? {
                out.push(pdu.stored.json.clone());
                continue;
            }
            let object =
                pdu.canonical_object().map_err(|e| RoomError::Malformed(MalformedPdu(e)))?;
            let redacted = ruma::canonical_json::redact(object, &rules.redaction, None)
                .map_err(|e| RoomError::BadRequest(e.to_string()))?;
            let json =
                to_raw_value(&redacted).map_err(|e| RoomError::Malformed(MalformedPdu(e)))?;
            out.push(json);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "reads_tests.rs"]
mod service_tests;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ruma::{OwnedEventId, events::room::history_visibility::HistoryVisibility, server_name};

    use super::*;

    fn id(s: &str) -> OwnedEventId {
        OwnedEventId::try_from(format!("${s}")).unwrap()
    }

    #[test]
    fn auth_chain_walk_visits_each_event_once_and_skips_unknown_ones() {
        // create <- power <- join_alice; join_bob -> {create, power, join_alice}; "gone" unknown.
        let graph: HashMap<OwnedEventId, Vec<OwnedEventId>> = [
            (id("create"), vec![]),
            (id("power"), vec![id("create"), id("join_alice")]),
            (id("join_alice"), vec![id("create")]),
            (id("join_bob"), vec![id("create"), id("power"), id("join_alice"), id("gone")]),
        ]
        .into_iter()
        .collect();
        let mut lookups = 0;
        let chain = walk_auth_chain([id("join_bob"), id("power")], 100, |e| {
            lookups += 1;
            Ok::<_, ()>(graph.get(e).cloned())
        })
        .unwrap();
        let mut sorted = chain.clone();
        sorted.sort();
        assert_eq!(sorted, vec![id("create"), id("join_alice"), id("join_bob"), id("power")]);
        assert_eq!(chain[0], id("join_bob"));
        // Five distinct IDs were looked up (the unknown one included), none twice.
        assert_eq!(lookups, 5);
    }

    #[test]
    fn auth_chain_walk_stops_at_the_limit_and_survives_cycles() {
        let graph: HashMap<OwnedEventId, Vec<OwnedEventId>> =
            [(id("a"), vec![id("b")]), (id("b"), vec![id("a"), id("c")]), (id("c"), vec![])]
                .into_iter()
                .collect();
        let all = walk_auth_chain([id("a")], 100, |e| Ok::<_, ()>(graph.get(e).cloned())).unwrap();
        assert_eq!(all, vec![id("a"), id("b"), id("c")]);
        let two = walk_auth_chain([id("a")], 2, |e| Ok::<_, ()>(graph.get(e).cloned())).unwrap();
        assert_eq!(two, vec![id("a"), id("b")]);
    }

    #[test]
    fn history_visibility_for_a_server() {
        use MembershipState::{Invite, Join, Leave};
        for open in [HistoryVisibility::Shared, HistoryVisibility::WorldReadable] {
            assert!(visible_to_server(&open, []));
        }
        assert!(!visible_to_server(&HistoryVisibility::Joined, []));
        assert!(!visible_to_server(&HistoryVisibility::Joined, [Invite, Leave]));
        assert!(visible_to_server(&HistoryVisibility::Joined, [Leave, Join]));
        assert!(visible_to_server(&HistoryVisibility::Invited, [Invite]));
        assert!(!visible_to_server(&HistoryVisibility::Invited, [Leave]));
    }

    #[test]
    fn user_ids_belong_to_their_server_only() {
        let server = server_name!("a.test");
        assert!(user_of_server("@alice:a.test", server));
        assert!(!user_of_server("@alice:a.test.evil", server));
        assert!(!user_of_server("@alice:b.test", server));
        assert!(!user_of_server("alice:a.test", server));
        assert!(user_of_server("@alice:a.test:8448", server_name!("a.test:8448")));
    }
}
