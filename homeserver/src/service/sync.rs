//! Building `/sync` responses (sync v2).
//!
//! A sync token is a position in the global stream. A response covers everything after `since`
//! and at most `upto`, the visible position when the response is built; `upto` becomes
//! `next_batch`. Rooms the user joined after `since` are sent as in an initial sync.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    sync::Arc,
};

use ruma::{
    OwnedRoomId, OwnedUserId, UInt, UserId,
    api::client::{
        filter::{FilterDefinition, LazyLoadOptions},
        sync::sync_events::v3::{
            InviteState, InvitedRoom, JoinedRoom, KnockState, KnockedRoom, LeftRoom, Response,
            State, StateEvents,
        },
    },
    events::{StateEventType, TimelineEventType, room::member::MembershipState},
};
use serde_json::{Value, json};

use super::{
    Services, filters,
    globals::ChangeKind,
    rooms::{
        RoomError,
        membership::MembershipEntry,
        pdu::{PduEvent, to_raw},
        state::StateMap,
    },
};

/// What a sync asks for.
#[derive(Debug)]
pub struct SyncRequest {
    /// The user syncing.
    pub user: OwnedUserId,
    /// The device syncing.
    pub device: ruma::OwnedDeviceId,
    /// Position of the previous response; 0 for an initial sync.
    pub since: u64,
    /// Send the full state of every room.
    pub full_state: bool,
    /// The filter.
    pub filter: FilterDefinition,
    /// MSC4222: send the state at the end of the timeline instead of at its start.
    pub use_state_after: bool,
}

/// State events clients show for an invite or knock before they join.
const STRIPPED_STATE: [StateEventType; 7] = [
    StateEventType::RoomCreate,
    StateEventType::RoomJoinRules,
    StateEventType::RoomName,
    StateEventType::RoomAvatar,
    StateEventType::RoomCanonicalAlias,
    StateEventType::RoomEncryption,
    StateEventType::RoomTopic,
];

impl Services {
    /// Builds a sync response up to stream position `upto`.
    pub fn build_sync(&self, req: &SyncRequest, upto: u64) -> Result<Response, RoomError> {
        let mut response = Response::new(upto.to_string());
        let since = req.since;
        let account_data = self.account_data.changes_since(&req.user, since, upto)?;
        let mut room_account_data: BTreeMap<OwnedRoomId, Vec<Value>> = BTreeMap::new();
        for change in account_data {
            let event = json!({ "type": change.kind, "content": change.content });
            match change.room_id {
                Some(room) => room_account_data.entry(room).or_default().push(event),
                None => response.account_data.events.push(to_raw(&event)),
            }
        }

        // The members of every joined room are gathered only to look up their presence: skip it
        // when no presence changed after `since` (it costs rooms x members per sync).
        let presence_changed = self.globals.changed_since(ChangeKind::Presence, since);
        let mut audience: BTreeSet<OwnedUserId> = BTreeSet::new();
        for (room_id, entry) in self.rooms.rooms_of(&req.user)? {
            if entry.since > upto {
                // A membership newer than this response: the next sync sends it.
                continue;
            }
            if !room_allowed(&req.filter, &room_id) {
                continue;
            }
            match entry.membership {
                MembershipState::Join => {
                    let data = room_account_data.remove(&room_id).unwrap_or_default();
                    if let Some(joined) = self.joined_room(req, &room_id, &entry, upto, data)? {
                        response.rooms.join.insert(room_id.clone(), joined);
                    }
                    if presence_changed {
                        audience.extend(self.rooms.joined_members(&room_id)?);
                    }
                }
                MembershipState::Invite if entry.count > since => {
                    let mut invited = InvitedRoom::new();
                    invited.invite_state = InviteState::from(self.stripped_state(&entry)?);
                    response.rooms.invite.insert(room_id, invited);
                }
                MembershipState::Knock if entry.count > since => {
                    let mut knocked = KnockedRoom::new();
                    knocked.knock_state = KnockState::new();
                    knocked.knock_state.events = self.stripped_state(&entry)?;
                    response.rooms.knock.insert(room_id, knocked);
                }
                MembershipState::Leave | MembershipState::Ban
                    if !entry.forgotten
                        && ((since > 0 && entry.since > since)
                            || req.filter.room.include_leave) =>
                {
                    if let Some(left) = self.left_room(req, &room_id, &entry)? {
                        response.rooms.leave.insert(room_id, left);
                    }
                }
                _ => {}
            }
        }

        if presence_changed {
            audience.insert(req.user.clone());
        }
        for user in &audience {
            if let Some(event) = self.presence.event_since(user, since, upto) {
                response.presence.events.push(to_raw(&event));
            }
        }
        self.fill_e2ee_sync(req, upto, &mut response)?;
        Ok(response)
    }

    fn joined_room(
        &self,
        req: &SyncRequest,
        room_id: &ruma::RoomId,
        entry: &MembershipEntry,
        upto: u64,
        account_data: Vec<Value>,
    ) -> Result<Option<JoinedRoom>, RoomError> {
        let (shortroomid, meta) = self.rooms.require_meta(room_id)?;
        let since = req.since;
        let initial = since == 0 || entry.since > since;
        let ephemeral_since = if initial { 0 } else { since };
        let typing = self.ephemeral.typing_since(room_id, ephemeral_since);
        let receipts = self.ephemeral.receipts_since(room_id, &req.user, ephemeral_since, upto)?;

        if !initial
            && !req.full_state
            && meta.last_count <= since
            && typing.is_none()
            && receipts.is_none()
            && account_data.is_empty()
        {
            return Ok(None);
        }

        let limit = self.timeline_limit(req);
        let after = if initial { 0 } else { since };
        let (mut events, limited) = self.rooms.timeline_tail(shortroomid, after, upto, limit)?;
        // Events before the user's join are shown only as `history_visibility` allows; from the
        // join on, every event is visible, so the check is skipped for them.
        events.retain(|pdu| {
            filters::matches(&req.filter.room.timeline, pdu)
                && (pdu.stored.count >= entry.since
                    || self.can_see_event(&req.user, pdu).unwrap_or(false))
        });

        let mut joined = JoinedRoom::new();
        joined.timeline.limited = limited;
        joined.timeline.prev_batch = Some(match events.first() {
            Some(first) => first.stored.count.to_string(),
            None => (upto + 1).to_string(),
        });

        let end_state = match events.last() {
            Some(last) => last.stored.state_after,
            None => {
                self.rooms.event_at(shortroomid, upto)?.map_or(meta.state, |p| p.stored.state_after)
            }
        };
        let start_state = events.first().map_or(end_state, |first| first.stored.state_before);

        let state_events = if req.use_state_after {
            let base =
                if initial || req.full_state { 0 } else { self.state_at(shortroomid, since)? };
            self.state_delta(base, end_state)?
        } else if initial || req.full_state {
            self.state_delta(0, start_state)?
        } else if limited {
            let base = self.state_at(shortroomid, since)?;
            self.state_delta(base, start_state)?
        } else {
            Vec::new()
        };
        let lazy =
            matches!(req.filter.room.state.lazy_load_options, LazyLoadOptions::Enabled { .. });
        let senders: HashSet<&UserId> = events.iter().map(|e| e.sender()).collect();
        let timeline_ids: HashSet<&ruma::OwnedEventId> =
            events.iter().map(|e| e.event_id()).collect();
        let state_json: Vec<Value> = state_events
            .iter()
            // `state` is the state before the timeline, so it leaves out the timeline's own state
            // events; MSC4222's `state_after` is the whole change, and clients using it ignore
            // state events in the timeline (matrix-sdk would miss `m.room.encryption`).
            .filter(|pdu| req.use_state_after || !timeline_ids.contains(pdu.event_id()))
            .filter(|pdu| {
                !lazy
                    || *pdu.kind() != TimelineEventType::RoomMember
                    || pdu.state_key().is_some_and(|k| {
                        k == req.user.as_str() || senders.iter().any(|s| s.as_str() == k)
                    })
            })
            .filter(|pdu| filters::matches(&req.filter.room.state, pdu))
            .map(|pdu| self.client_event(pdu, Some(&req.user)))
            .collect::<Result<_, _>>()?;
        let state = StateEvents::from(state_json.iter().map(to_raw).collect::<Vec<_>>());
        joined.state = if req.use_state_after { State::After(state) } else { State::Before(state) };

        let members_changed = initial
            || events.iter().any(|e| *e.kind() == TimelineEventType::RoomMember)
            || state_events.iter().any(|e| *e.kind() == TimelineEventType::RoomMember);
        for pdu in &events {
            joined.timeline.events.push(to_raw(&self.client_event(pdu, Some(&req.user))?));
        }
        if members_changed {
            self.fill_summary(room_id, &req.user, end_state, &mut joined)?;
        }

        joined.ephemeral.events.extend(typing.iter().map(to_raw));
        joined.ephemeral.events.extend(receipts.iter().map(to_raw));
        joined.account_data.events = account_data.iter().map(to_raw).collect();
        let threads_apart = req.filter.room.timeline.unread_thread_notifications;
        self.fill_unread_counts(&req.user, room_id, threads_apart, &mut joined)?;
        Ok(Some(joined))
    }

    fn left_room(
        &self,
        req: &SyncRequest,
        room_id: &ruma::RoomId,
        entry: &MembershipEntry,
    ) -> Result<Option<LeftRoom>, RoomError> {
        let (shortroomid, _) = self.rooms.require_meta(room_id)?;
        let Some(leave) = self.rooms.pdu(&entry.event_id)? else { return Ok(None) };
        let limit = self.timeline_limit(req);
        let (mut events, limited) =
            self.rooms.timeline_tail(shortroomid, req.since, leave.stored.count, limit)?;
        events.retain(|pdu| self.can_see_event(&req.user, pdu).unwrap_or(false));
        let mut left = LeftRoom::new();
        left.timeline.limited = limited;
        left.timeline.prev_batch = events.first().map(|e| e.stored.count.to_string());
        for pdu in &events {
            left.timeline.events.push(to_raw(&self.client_event(pdu, Some(&req.user))?));
        }
        Ok(Some(left))
    }

    /// Timeline events per room: the filter's limit, else the configured default, within 1..=500.
    fn timeline_limit(&self, req: &SyncRequest) -> usize {
        req.filter
            .room
            .timeline
            .limit
            .map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX))
            .unwrap_or(self.config.sync.default_timeline_limit)
            .clamp(1, 500)
    }

    /// The room state at stream position `at` (after the last event at or before it).
    pub fn state_at(&self, shortroomid: u64, at: u64) -> Result<u64, RoomError> {
        Ok(self.rooms.event_at(shortroomid, at)?.map_or(0, |p| p.stored.state_after))
    }

    /// The events of `to` that are not in `from`.
    pub(crate) fn state_delta(&self, from: u64, to: u64) -> Result<Vec<Arc<PduEvent>>, RoomError> {
        let from_map: Arc<StateMap> = self.rooms.state_map(from)?;
        let to_map = self.rooms.state_map(to)?;
        let mut out = Vec::new();
        for (key, event) in to_map.iter() {
            if from_map.get(key) != Some(event)
                && let Some(pdu) = self.rooms.pdu_by_short(*event)?
            {
                out.push(pdu);
            }
        }
        Ok(out)
    }

    /// The stripped state of an invite or knock: what clients show before joining.
    pub(crate) fn stripped_state(
        &self,
        entry: &MembershipEntry,
    ) -> Result<Vec<ruma::serde::Raw<ruma::events::AnyStrippedStateEvent>>, RoomError> {
        let Some(member) = self.rooms.pdu(&entry.event_id)? else { return Ok(Vec::new()) };
        let mut events = Vec::new();
        if member.stored.state_before == 0 {
            // An invite from another server's room: its state came with the invite.
            events.extend(remote_invite_state(&member).iter().map(to_raw));
            events.push(to_raw(&member.to_stripped_json()));
            return Ok(events);
        }
        for kind in &STRIPPED_STATE {
            if let Some(pdu) = self.rooms.state_event(member.stored.state_before, kind, "")? {
                events.push(to_raw(&pdu.to_stripped_json()));
            }
        }
        if let Some(inviter) = self.rooms.state_event(
            member.stored.state_before,
            &StateEventType::RoomMember,
            member.sender().as_str(),
        )? {
            events.push(to_raw(&inviter.to_stripped_json()));
        }
        events.push(to_raw(&member.to_stripped_json()));
        Ok(events)
    }

    fn fill_summary(
        &self,
        room_id: &ruma::RoomId,
        user: &UserId,
        state: u64,
        joined: &mut JoinedRoom,
    ) -> Result<(), RoomError> {
        let members = self.rooms.members(room_id)?;
        let joined_count =
            members.iter().filter(|(_, m)| m.membership == MembershipState::Join).count();
        let invited_count =
            members.iter().filter(|(_, m)| m.membership == MembershipState::Invite).count();
        joined.summary.joined_member_count = Some(UInt::from(joined_count as u32));
        joined.summary.invited_member_count = Some(UInt::from(invited_count as u32));
        let named = self.rooms.state_event(state, &StateEventType::RoomName, "")?.is_some()
            || self.rooms.state_event(state, &StateEventType::RoomCanonicalAlias, "")?.is_some();
        if !named {
            joined.summary.heroes = members
                .iter()
                .filter(|(u, m)| {
                    *u != user
                        && matches!(m.membership, MembershipState::Join | MembershipState::Invite)
                })
                .take(5)
                .map(|(u, _)| u.clone())
                .collect();
        }
        Ok(())
    }
}

fn room_allowed(filter: &FilterDefinition, room_id: &ruma::RoomId) -> bool {
    if filter.room.not_rooms.iter().any(|r| r == room_id) {
        return false;
    }
    filter.room.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
}

/// Whether a response carries nothing new, so a long-poll should keep waiting.
pub fn is_empty(response: &Response) -> bool {
    response.rooms.join.is_empty()
        && response.rooms.invite.is_empty()
        && response.rooms.leave.is_empty()
        && response.rooms.knock.is_empty()
        && response.account_data.events.is_empty()
        && response.presence.events.is_empty()
        && response.to_device.events.is_empty()
        && response.device_lists.changed.is_empty()
        && response.device_lists.left.is_empty()
}

/// The stripped state another server sent with an invite or a knock answer
/// (`unsigned.invite_room_state`, `unsigned.knock_room_state`), full
/// PDUs or stripped events, shown as stripped events.
fn remote_invite_state(member: &PduEvent) -> Vec<serde_json::Value> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(member.stored.json.get()) else {
        return Vec::new();
    };
    let state = json
        .pointer("/unsigned/invite_room_state")
        .or_else(|| json.pointer("/unsigned/knock_room_state"))
        .and_then(|v| v.as_array());
    let Some(state) = state else {
        return Vec::new();
    };
    state
        .iter()
        .filter(|e| e.get("type").is_some() && e.get("state_key").is_some())
        .map(|e| {
            serde_json::json!({
                "type": e["type"],
                "state_key": e["state_key"],
                "sender": e["sender"],
                "content": e["content"],
            })
        })
        .collect()
}
