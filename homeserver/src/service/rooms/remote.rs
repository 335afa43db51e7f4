//! Events built elsewhere: events from other servers (their signatures and hashes already checked
//! by the federation service), the state of a room this server joins over federation, and the
//! templates other servers ask for (`make_join`, `make_leave`, `make_knock`).
//!
//! An event enters the timeline by the checks of the spec's "Checks performed on receipt of a
//! PDU": it must pass the authorization rules against its own `auth_events`, then against the
//! state before it (resolved from its `prev_events`' states when there are several: rejected
//! otherwise), then against the room's current state (soft-failed otherwise: kept, but neither
//! shown to clients nor used as a `prev_event`).

use std::{collections::HashMap, sync::Arc};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId,
    UserId,
    events::StateEventType,
    room_version_rules::RoomVersionRules,
    signatures::{hash_and_sign_event, reference_hash},
    state_res::{check_state_dependent_auth_rules, check_state_independent_auth_rules},
};
use serde_json::value::to_raw_value;

use super::{
    RoomError, RoomMeta, Rooms,
    builder::PduTemplate,
    pdu::{PduEvent, StoredPdu},
    state::StateMap,
};
use crate::storage::{Batch, Json};

/// Stream positions left free before a room joined over federation, for its history: how many
/// events of it backfill can add.
const BACKFILL_POSITIONS: u64 = 1_000_000;

/// What became of an event from another server.
#[derive(Debug)]
pub enum Accepted {
    /// It is in the timeline.
    Stored(Arc<PduEvent>),
    /// This server already had it.
    AlreadyKnown,
    /// It passed the checks against its own history but not against the current state: kept, not
    /// shown.
    SoftFailed,
}

impl Rooms {
    /// The room version of an event's room, derived from the event ID's format where needed.
    pub fn room_version(&self, room_id: &RoomId) -> Result<Option<RoomVersionId>, RoomError> {
        Ok(self.meta(room_id)?.map(|(_, meta)| meta.version))
    }

    /// An unsigned event for `sender` in a room this server is in, as `make_join` and its
    /// siblings return it: the other server fills in its part, signs it, and sends it back.
    pub fn event_template(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        template: &PduTemplate,
    ) -> Result<(RoomVersionId, CanonicalJsonObject), RoomError> {
        let (_, meta) = self.require_meta(room_id)?;
        let rules = rules_of(&meta.version)?;
        let state = self.state.load(meta.state)?;
        let object = self.event_skeleton(&meta, &state, sender, template, &rules, false)?;
        Ok((meta.version, object))
    }

    /// Hashes and signs an event this server's user sends into a room of another server (a join
    /// from `make_join`'s template, for instance), and returns its ID.
    pub fn sign_event(
        &self,
        object: &mut CanonicalJsonObject,
        version: &RoomVersionId,
    ) -> Result<OwnedEventId, RoomError> {
        let rules = rules_of(version)?;
        object.remove("signatures");
        object.remove("unsigned");
        object.remove("hashes");
        hash_and_sign_event(
            self.globals.server_name.as_str(),
            self.globals.keypair(),
            object,
            &rules.redaction,
        )
        .map_err(|e| RoomError::Signing(e.to_string()))?;
        event_id_of(object, &rules)
    }

    /// Adds this server's signature to an event another server signed (an invite to one of this
    /// server's users; a restricted join this server authorises).
    pub fn cosign_event(
        &self,
        object: &mut CanonicalJsonObject,
        version: &RoomVersionId,
    ) -> Result<(), RoomError> {
        let rules = rules_of(version)?;
        let redacted = ruma::canonical_json::redact(object.clone(), &rules.redaction, None)
            .map_err(|e| RoomError::Signing(e.to_string()))?;
        let mut signed = redacted;
        ruma::signatures::sign_json(
            self.globals.server_name.as_str(),
            self.globals.keypair(),
            &mut signed,
        )
        .map_err(|e| RoomError::Signing(e.to_string()))?;
        if let Some(signatures) = signed.remove("signatures") {
            object.insert("signatures".into(), signatures);
        }
        Ok(())
    }

    /// Stores an event without a place in the timeline (an outlier): the state and auth events a
    /// join or a fetch brings. Returns its short ID.
    pub fn store_outlier(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
    ) -> Result<u64, RoomError> {
        if let Some(short) = self.short.shorteventid(event_id)? {
            return Ok(short);
        }
        let stored = outlier_record(room_id, event_id, object)?;
        let short = self.globals.next_short_id()?;
        let mut batch = Batch::default();
        batch.put(&self.pdus, &short, &Json(stored));
        self.short.put_event(&mut batch, event_id, short);
        self.pdus.db().write(batch)?;
        Ok(short)
    }

    /// Keeps an invite of another server's room for one of this server's users: the event (with
    /// the room's stripped state in `unsigned.invite_room_state`, which `/sync` shows) and the
    /// user's membership.
    pub fn store_remote_invite(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        invite_room_state: Vec<serde_json::Value>,
        invitee: &UserId,
    ) -> Result<(), RoomError> {
        let mut with_state = object.clone();
        let state = CanonicalJsonValue::try_from(serde_json::Value::Array(invite_room_state))
            .map_err(|e| RoomError::BadRequest(format!("invalid invite_room_state: {e}")))?;
        let mut unsigned = CanonicalJsonObject::new();
        unsigned.insert("invite_room_state".into(), state);
        with_state.insert("unsigned".into(), CanonicalJsonValue::Object(unsigned));
        self.store_remote_membership(room_id, event_id, &with_state, invitee)
    }

    /// Keeps a membership event of one of this server's users in a room this server is not in
    /// (an invite, or the leave that rejects it), and updates the user's membership.
    pub fn store_remote_membership(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        user: &UserId,
    ) -> Result<(), RoomError> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock();
        let mut stored = outlier_record(room_id, event_id, object)?;
        stored.json = to_raw_value(object).map_err(|e| RoomError::BadRequest(e.to_string()))?;
        let mut batch = Batch::default();
        let short = match self.short.shorteventid(event_id)? {
            Some(short) => short,
            None => {
                let short = self.globals.next_short_id()?;
                self.short.put_event(&mut batch, event_id, short);
                short
            }
        };
        let pending = self.globals.next_count()?;
        let count = pending.count;
        stored.count = 0;
        let pdu = PduEvent::from_stored(stored.clone())?;
        batch.put(&self.pdus, &short, &Json(stored));
        self.queue_membership(&mut batch, &pdu, count)?;
        self.pdus.db().write(batch)?;
        self.membership_changed(room_id);
        drop(pending);
        self.pdu_cache.lock().pop(&short);
        self.notifier.notify([user], count);
        Ok(())
    }

    /// The oldest event of a room's timeline here, with its position.
    pub fn earliest_event(&self, room_id: &RoomId) -> Result<Option<Arc<PduEvent>>, RoomError> {
        let Some(shortroomid) = self.shortroomid(room_id)? else { return Ok(None) };
        match self.timeline.scan_prefix(&shortroomid)?.next() {
            Some(entry) => {
                let (_, short) = entry?;
                self.pdu_by_short(short)
            }
            None => Ok(None),
        }
    }

    /// Stores an event of the room's history from before this server joined (backfill). It goes
    /// before every event of the room's timeline here, at a position below theirs, so `/sync`
    /// never shows it as new while `/messages` pages into it. Its state is taken as the earliest
    /// state known here; it changes neither the room's state nor its memberships. Returns
    /// whether it was stored (false: known already, or no position is left below).
    pub fn store_backfilled(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
    ) -> Result<bool, RoomError> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock();
        if self.is_in_timeline(event_id)? {
            return Ok(false);
        }
        let Some(earliest) = self.earliest_event(room_id)? else { return Ok(false) };
        let Some(shortroomid) = self.shortroomid(room_id)? else { return Ok(false) };
        let Some(count) = earliest.stored.count.checked_sub(1).filter(|c| *c > 0) else {
            return Ok(false);
        };
        let mut stored = outlier_record(room_id, event_id, object)?;
        stored.count = count;
        stored.state_before = earliest.stored.state_before;
        stored.state_after = earliest.stored.state_before;
        let mut batch = Batch::default();
        let short = match self.short.shorteventid(event_id)? {
            Some(short) => short,
            None => {
                let short = self.globals.next_short_id()?;
                self.short.put_event(&mut batch, event_id, short);
                short
            }
        };
        let pdu = PduEvent::from_stored(stored.clone())?;
        batch.put(&self.pdus, &short, &Json(stored));
        batch.put(&self.timeline, &(shortroomid, count), &short);
        self.queue_relation(&mut batch, &pdu, count, short)?;
        self.pdus.db().write(batch)?;
        self.pdu_cache.lock().put(short, pdu);
        Ok(true)
    }

    /// Whether an event has a place in the room's DAG here (not an outlier).
    pub fn is_in_timeline(&self, event_id: &OwnedEventId) -> Result<bool, RoomError> {
        Ok(self.pdu(event_id)?.is_some_and(|p| p.stored.count > 0))
    }

    /// The state map of state events another server sent (stored here already).
    fn state_map_of(
        &self,
        state: &[(OwnedEventId, CanonicalJsonObject)],
    ) -> Result<StateMap, RoomError> {
        let mut state_map = StateMap::new();
        for (event_id, object) in state {
            let Some(CanonicalJsonValue::String(kind)) = object.get("type") else { continue };
            let Some(CanonicalJsonValue::String(state_key)) = object.get("state_key") else {
                continue;
            };
            let kind = StateEventType::from(kind.as_str());
            let shortstatekey = self.short.get_or_create_shortstatekey(&kind, state_key)?;
            if let Some(short) = self.short.shorteventid(event_id)? {
                state_map.insert(shortstatekey, short);
            }
        }
        Ok(state_map)
    }

    /// Appends an event whose `prev_events` this server could not get: the state before it is
    /// the one its origin answered for it (`/state`), verified by the caller; the events of that
    /// state and their auth chain are stored as outliers first. The missing history stays a gap.
    pub fn append_remote_with_state(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        state: &[(OwnedEventId, CanonicalJsonObject)],
        auth_chain: &[(OwnedEventId, CanonicalJsonObject)],
    ) -> Result<Accepted, RoomError> {
        for (id, event) in auth_chain.iter().chain(state) {
            self.store_outlier(room_id, id, event)?;
        }
        let state_before = self.state_map_of(state)?;
        self.append_remote_inner(room_id, event_id, object, false, Some(state_before))
    }

    /// Appends an event from another server whose `prev_events` and `auth_events` are all known
    /// here (the caller fetched what was missing). `relay` marks an event this server must pass on
    /// to the room's other servers (a join through this server).
    pub fn append_remote(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        relay: bool,
    ) -> Result<Accepted, RoomError> {
        self.append_remote_inner(room_id, event_id, object, relay, None)
    }

    /// [`Rooms::append_remote`], with the state before the event given when its parents are not
    /// here.
    fn append_remote_inner(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        relay: bool,
        given_state: Option<StateMap>,
    ) -> Result<Accepted, RoomError> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock();
        let (shortroomid, meta) = self.require_meta(room_id)?;
        if self.is_in_timeline(event_id)? {
            return Ok(Accepted::AlreadyKnown);
        }
        let rules = rules_of(&meta.version)?;
        let mut stored = outlier_record(room_id, event_id, object)?;
        stored.relay = relay;
        let pdu = PduEvent::from_stored(stored.clone())?;

        // The state before the event, from its parents.
        let state_before = match given_state {
            Some(state) => state,
            None => {
                let mut parent_states = Vec::new();
                for prev in &pdu.fields.prev_events {
                    let parent =
                        self.pdu(prev)?.filter(|p| p.stored.count > 0).ok_or_else(|| {
                            RoomError::BadRequest(format!("prev event {prev} is not known"))
                        })?;
                    parent_states.push(self.state.load(parent.stored.state_after)?);
                }
                let parents: Vec<&StateMap> = parent_states.iter().map(|s| &**s).collect();
                if parents.is_empty() {
                    StateMap::new()
                } else {
                    self.resolve_states(&rules, &parents)?
                }
            }
        };
        self.check_remote_event(&pdu, &state_before, &rules)?;

        // Soft failure: the event fits its own history but not the room as it is now.
        let current = self.state.load(meta.state)?;
        let soft_failed = check_state_dependent_auth_rules(
            &rules.authorization,
            &*pdu,
            |kind: &StateEventType, key: &str| self.lookup(&current, kind, key).ok().flatten(),
        )
        .is_err();
        if soft_failed {
            tracing::info!(%event_id, %room_id, "event soft-failed against the current state");
            self.store_outlier(room_id, event_id, object)?;
            return Ok(Accepted::SoftFailed);
        }

        let pdu = self.write_in_timeline(
            shortroomid,
            &meta,
            stored,
            state_before,
            &rules,
            Some(&current),
        )?;
        Ok(Accepted::Stored(pdu))
    }

    /// Creates a room this server joins over federation: `state` is the room's state before the
    /// join and `auth_chain` its auth events, all already verified; both are stored as outliers,
    /// then the join is appended on top of that state.
    pub fn join_remote_room(
        &self,
        room_id: &RoomId,
        version: &RoomVersionId,
        state: &[(OwnedEventId, CanonicalJsonObject)],
        auth_chain: &[(OwnedEventId, CanonicalJsonObject)],
        join: (&OwnedEventId, &CanonicalJsonObject),
    ) -> Result<Arc<PduEvent>, RoomError> {
        let lock = self.room_lock(room_id);
        let guard = lock.lock();
        let rules = rules_of(version)?;
        for (event_id, object) in auth_chain.iter().chain(state) {
            self.store_outlier(room_id, event_id, object)?;
        }
        let state_map = self.state_map_of(state)?;
        // Room for the history before the join, fetched later by backfill.
        self.globals.skip_counts(BACKFILL_POSITIONS)?;
        let mut batch = Batch::default();
        let shortroomid = match self.meta(room_id)? {
            Some((short, _)) => short,
            None => {
                let short = self.globals.next_short_id()?;
                batch.put(&self.roomid_short, &room_id.to_owned(), &short);
                short
            }
        };
        // The state's events as this server's view of the room before the join: its members go
        // into the membership index, so that the room's servers and members are known.
        let state_hash = self.state.save(&mut batch, 0, state_map.clone())?;
        let pending = self.globals.next_count()?;
        let count = pending.count;
        for short in state_map.values() {
            if let Some(event) = self.pdu_by_short(*short)? {
                let mut event_stored = event.stored.clone();
                event_stored.state_after = state_hash;
                let event = PduEvent::from_stored(event_stored)?;
                self.queue_membership(&mut batch, &event, count)?;
            }
        }
        let prev_depth = state
            .iter()
            .filter_map(|(_, o)| match o.get("depth") {
                Some(CanonicalJsonValue::Integer(d)) => u64::try_from(i64::from(*d)).ok(),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let meta = RoomMeta {
            room_id: room_id.to_owned(),
            version: version.clone(),
            state: state_hash,
            extremities: ids_of(join.1, "prev_events"),
            depth: prev_depth,
            last_count: count,
        };
        batch.put(&self.meta, &shortroomid, &Json(meta.clone()));
        self.pdus.db().write(batch)?;
        drop(pending);
        self.meta_cache.lock().insert(room_id.to_owned(), (shortroomid, meta.clone()));
        self.membership_changed(room_id);
        // The prev events of the join are known to the other server only: give the join the
        // state this server was sent as its parents' state.
        let stored = outlier_record(room_id, join.0, join.1)?;
        let pdu = PduEvent::from_stored(stored)?;
        self.check_remote_event(&pdu, &state_map, &rules)?;
        drop(guard);
        self.append_with_state(room_id, join.0, join.1, state_map)
    }

    /// Appends an event whose state before is given (its parents are not in this server's DAG).
    fn append_with_state(
        &self,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        object: &CanonicalJsonObject,
        state_before: StateMap,
    ) -> Result<Arc<PduEvent>, RoomError> {
        let lock = self.room_lock(room_id);
        let _guard = lock.lock();
        let (shortroomid, meta) = self.require_meta(room_id)?;
        let stored = outlier_record(room_id, event_id, object)?;
        let rules = rules_of(&meta.version)?;
        self.write_in_timeline(shortroomid, &meta, stored, state_before, &rules, None)
    }

    /// Writes an event into the room's timeline with its state and indexes, in one batch, and
    /// wakes the members' syncs. With the room's `current` state, the event joins the forward
    /// extremities it did not extend and the current state is resolved with the event's; without,
    /// the event becomes the room's only extremity and its state the room's.
    fn write_in_timeline(
        &self,
        shortroomid: u64,
        meta: &RoomMeta,
        mut stored: StoredPdu,
        state_before: StateMap,
        rules: &RoomVersionRules,
        current: Option<&StateMap>,
    ) -> Result<Arc<PduEvent>, RoomError> {
        let room_id = meta.room_id.clone();
        let event_id = stored.event_id.clone();
        let mut batch = Batch::default();
        let shorteventid = match self.short.shorteventid(&event_id)? {
            Some(short) => short,
            None => {
                let short = self.globals.next_short_id()?;
                self.short.put_event(&mut batch, &event_id, short);
                short
            }
        };
        let pending = self.globals.next_count()?;
        let count = pending.count;
        stored.count = count;
        stored.state_before = self.state.save(&mut batch, meta.state, state_before.clone())?;
        let mut state_after = state_before;
        let probe = PduEvent::from_stored(stored.clone())?;
        stored.state_after = match probe.state_key() {
            Some(state_key) => {
                let kind = StateEventType::from(probe.kind().to_string());
                let shortstatekey = self.short.get_or_create_shortstatekey(&kind, state_key)?;
                if let Some(previous) = state_after.insert(shortstatekey, shorteventid) {
                    stored.replaces_state = self.short.eventid(previous)?;
                }
                self.state.save(&mut batch, stored.state_before, state_after.clone())?
            }
            None => stored.state_before,
        };
        let pdu = PduEvent::from_stored(stored.clone())?;

        // The room's new forward extremities and current state.
        let (extremities, new_state) = match current {
            Some(current) => {
                let mut extremities: Vec<OwnedEventId> = meta
                    .extremities
                    .iter()
                    .filter(|e| !pdu.fields.prev_events.contains(e))
                    .cloned()
                    .collect();
                let new_state = if extremities.is_empty() {
                    stored.state_after
                } else {
                    let resolved = self.resolve_states(rules, &[current, &state_after])?;
                    self.state.save(&mut batch, stored.state_after, resolved)?
                };
                extremities.push(event_id.clone());
                (extremities, new_state)
            }
            None => (vec![event_id.clone()], stored.state_after),
        };
        let depth: u64 = pdu.fields.depth.into();
        let new_meta = RoomMeta {
            room_id: room_id.clone(),
            version: meta.version.clone(),
            state: new_state,
            extremities,
            depth: meta.depth.max(depth),
            last_count: count,
        };
        batch.put(&self.pdus, &shorteventid, &Json(stored));
        batch.put(&self.timeline, &(shortroomid, count), &shorteventid);
        batch.put(&self.stream, &count, &shorteventid);
        batch.put(&self.meta, &shortroomid, &Json(new_meta.clone()));
        let membership_target = self.queue_membership(&mut batch, &pdu, count)?;
        self.queue_relation(&mut batch, &pdu, count, shorteventid)?;
        let redacted = self.queue_redaction(&mut batch, &pdu, rules)?;
        self.pdus.db().write(batch)?;
        if membership_target.is_some() {
            self.membership_changed(&room_id);
        }
        self.run_event_hooks(&pdu);
        drop(pending);

        self.meta_cache.lock().insert(room_id.clone(), (shortroomid, new_meta));
        self.pdu_cache.lock().put(shorteventid, pdu.clone());
        if let Some(short) = redacted {
            self.pdu_cache.lock().pop(&short);
        }
        let mut wake = self.joined_members(&room_id)?;
        wake.extend(membership_target);
        self.notifier.notify(wake.iter().map(|u| &**u), count);
        Ok(pdu)
    }

    /// The authorization rules against the event's own auth events, then against `state`.
    fn check_remote_event(
        &self,
        pdu: &Arc<PduEvent>,
        state: &StateMap,
        rules: &RoomVersionRules,
    ) -> Result<(), RoomError> {
        let fetch = |id: &ruma::EventId| self.pdu(&id.to_owned()).ok().flatten();
        check_state_independent_auth_rules(&rules.authorization, &**pdu, fetch)
            .map_err(|e| RoomError::Forbidden(format!("rejected: {e}")))?;
        let mut by_key: HashMap<(StateEventType, String), Arc<PduEvent>> = HashMap::new();
        let mut auth_ids = pdu.fields.auth_events.clone();
        if rules.authorization.room_create_event_id_as_room_id
            && let Some(create) = create_event_id(pdu.room_id())
        {
            // From room version 12 the create event is implied by the room ID, never listed.
            auth_ids.push(create);
        }
        for id in &auth_ids {
            let auth = self
                .pdu(id)?
                .ok_or_else(|| RoomError::BadRequest(format!("auth event {id} is not known")))?;
            if let Some(key) = auth.state_key() {
                by_key
                    .insert((StateEventType::from(auth.kind().to_string()), key.to_owned()), auth);
            }
        }
        check_state_dependent_auth_rules(&rules.authorization, &**pdu, |kind, key| {
            by_key.get(&(kind.clone(), key.to_owned())).cloned()
        })
        .map_err(|e| RoomError::Forbidden(format!("rejected by its auth events: {e}")))?;
        check_state_dependent_auth_rules(&rules.authorization, &**pdu, |kind, key| {
            self.lookup(state, kind, key).ok().flatten()
        })
        .map_err(|e| RoomError::Forbidden(format!("rejected by the state before it: {e}")))
    }
}

/// The stored record of an event that has no place in the timeline yet.
fn outlier_record(
    room_id: &RoomId,
    event_id: &OwnedEventId,
    object: &CanonicalJsonObject,
) -> Result<StoredPdu, RoomError> {
    let mut object = object.clone();
    object.remove("unsigned");
    let json = to_raw_value(&object).map_err(|e| RoomError::BadRequest(e.to_string()))?;
    Ok(StoredPdu {
        event_id: event_id.clone(),
        room_id: OwnedRoomId::from(room_id),
        count: 0,
        state_before: 0,
        state_after: 0,
        replaces_state: None,
        transaction: None,
        redacted_by: None,
        relay: false,
        json,
    })
}

/// The event IDs in a list field of an event (`prev_events`, `auth_events`).
pub fn ids_of(object: &CanonicalJsonObject, field: &str) -> Vec<OwnedEventId> {
    match object.get(field) {
        Some(CanonicalJsonValue::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                CanonicalJsonValue::String(s) => OwnedEventId::try_from(s.as_str()).ok(),
                // Room versions 1 and 2: `[event_id, {hashes}]`.
                CanonicalJsonValue::Array(pair) => match pair.first() {
                    Some(CanonicalJsonValue::String(s)) => OwnedEventId::try_from(s.as_str()).ok(),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The rules of a room version this server supports.
pub fn rules_of(version: &RoomVersionId) -> Result<RoomVersionRules, RoomError> {
    version.rules().ok_or_else(|| RoomError::UnsupportedVersion(version.clone()))
}

/// The ID of an event: its reference hash (room versions 3 and later) or its `event_id` field.
pub fn event_id_of(
    object: &CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<OwnedEventId, RoomError> {
    if let Some(CanonicalJsonValue::String(id)) = object.get("event_id")
        && matches!(rules.event_id_format, ruma::room_version_rules::EventIdFormatVersion::V1)
    {
        return OwnedEventId::try_from(id.as_str())
            .map_err(|e| RoomError::BadRequest(e.to_string()));
    }
    let hash = reference_hash(object, rules).map_err(|e| RoomError::Signing(e.to_string()))?;
    OwnedEventId::try_from(format!("${hash}")).map_err(|e| RoomError::Signing(e.to_string()))
}

/// Whether an event belongs to `room_id`: it names the room, or it is the room's create event of
/// room version 12, which names no room but whose ID is the room's.
pub fn belongs_to_room(
    object: &CanonicalJsonObject,
    event_id: &OwnedEventId,
    room_id: &RoomId,
) -> bool {
    match object.get("room_id") {
        Some(CanonicalJsonValue::String(id)) => id == room_id.as_str(),
        None => create_event_id(room_id).as_ref() == Some(event_id),
        Some(_) => false,
    }
}

/// The create event of a room version 12 room: its ID is the room ID's.
fn create_event_id(room_id: &RoomId) -> Option<OwnedEventId> {
    let hash = room_id.as_str().strip_prefix('!')?;
    OwnedEventId::try_from(format!("${hash}")).ok()
}

#[cfg(test)]
mod tests {
    use ruma::{owned_event_id, room_id};
    use serde_json::json;

    use super::*;

    fn object(value: serde_json::Value) -> CanonicalJsonObject {
        serde_json::from_value(value).expect("canonical object")
    }

    #[test]
    fn references_of_every_room_version_are_read() {
        let v3 = object(json!({ "prev_events": ["$a", "$b"] }));
        assert_eq!(ids_of(&v3, "prev_events"), vec![owned_event_id!("$a"), owned_event_id!("$b")]);
        // Room versions 1 and 2: `[event_id, {hashes}]`.
        let v1 = object(json!({ "auth_events": [["$c:x.org", { "sha256": "abc" }]] }));
        assert_eq!(ids_of(&v1, "auth_events"), vec![owned_event_id!("$c:x.org")]);
        assert!(ids_of(&v1, "prev_events").is_empty());
    }

    #[test]
    fn a_v12_create_event_belongs_to_the_room_its_id_names() {
        let room = room_id!("!abc");
        let create = object(json!({ "type": "m.room.create" }));
        assert!(belongs_to_room(&create, &owned_event_id!("$abc"), room));
        assert!(!belongs_to_room(&create, &owned_event_id!("$other"), room));
        let named = object(json!({ "room_id": "!abc", "type": "m.room.message" }));
        assert!(belongs_to_room(&named, &owned_event_id!("$x"), room));
        let elsewhere = object(json!({ "room_id": "!def", "type": "m.room.message" }));
        assert!(!belongs_to_room(&elsewhere, &owned_event_id!("$x"), room));
    }
}
