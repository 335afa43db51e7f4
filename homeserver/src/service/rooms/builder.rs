//! Building, authorising and storing new events.
//!
//! Every event this server creates is a full PDU: its `prev_events` are the room's forward
//! extremities, its `auth_events` are selected from the current state, it carries a content hash
//! and this server's signature, and its ID is the reference hash. It is checked against the
//! authorization rules of the room version (ruma-state-res) before anything is written, and then
//! written in one atomic batch with every index it touches.

use std::sync::Arc;

use parking_lot::MutexGuard;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, MilliSecondsSinceUnixEpoch, OwnedDeviceId,
    OwnedEventId, OwnedRoomId, OwnedTransactionId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType, room::member::MembershipState},
    room_version_rules::RoomVersionRules,
    signatures::{hash_and_sign_event, reference_hash},
    state_res::{
        auth_types_for_event, check_state_dependent_auth_rules, check_state_independent_auth_rules,
        events::RoomPowerLevelsIntField,
    },
};
use serde_json::value::to_raw_value;

use super::{
    RoomError, RoomMeta, Rooms,
    membership::MembershipEntry,
    pdu::{PduEvent, StoredPdu},
    power,
    state::StateMap,
};
use crate::{
    service::globals::ChangeKind,
    storage::{Batch, Json},
};

/// The largest PDU the spec allows.
pub const MAX_PDU_BYTES: usize = 65_536;

/// What a new event says; the builder adds everything else.
#[derive(Clone, Debug)]
pub struct PduTemplate {
    /// The event type.
    pub kind: TimelineEventType,
    /// The content: a JSON object.
    pub content: serde_json::Value,
    /// The state key, for state events.
    pub state_key: Option<String>,
    /// For redactions: the event to redact.
    pub redacts: Option<OwnedEventId>,
    /// The `origin_server_ts` to give the event instead of now: application services bridging
    /// history set it ("timestamp massaging"). Ignored for `m.room.create`.
    pub origin_server_ts: Option<u64>,
}

impl PduTemplate {
    /// A state event.
    pub fn state(kind: StateEventType, state_key: &str, content: serde_json::Value) -> Self {
        Self {
            kind: kind.to_string().into(),
            content,
            state_key: Some(state_key.to_owned()),
            redacts: None,
            origin_server_ts: None,
        }
    }

    /// A message-like event.
    pub fn message(kind: TimelineEventType, content: serde_json::Value) -> Self {
        Self { kind, content, state_key: None, redacts: None, origin_server_ts: None }
    }
}

/// Where the event goes.
pub(super) enum Target {
    /// An existing room.
    Existing { shortroomid: u64, meta: RoomMeta },
    /// A new room, whose first event this is (`m.room.create`). Before room version 12 the room
    /// ID is chosen by the server; from 12 it is derived from the create event's hash.
    New { version: RoomVersionId, room_id: Option<OwnedRoomId> },
}

impl Rooms {
    /// Builds, authorises and stores an event from `sender` in an existing room.
    pub fn append(
        &self,
        room_id: &ruma::RoomId,
        sender: &UserId,
        template: PduTemplate,
        transaction: Option<(OwnedDeviceId, OwnedTransactionId)>,
    ) -> Result<Arc<PduEvent>, RoomError> {
        let lock = self.room_lock(room_id);
        let guard = lock.lock();
        let (shortroomid, meta) = self.require_meta(room_id)?;
        // The room lock is released once the event is written, before the wait for its fsync:
        // the room's next event is built while this one reaches the disk (group commit).
        let target = Target::Existing { shortroomid, meta };
        self.build_and_store_unlocking(target, sender, template, transaction, Some(guard))
    }

    /// The event a transaction ID of a device produced in a room, for idempotent retries.
    /// Transactions are scoped to the device and the room, as the request path is.
    pub fn transaction_event(
        &self,
        room_id: &ruma::RoomId,
        sender: &UserId,
        device: &ruma::DeviceId,
        txn_id: &ruma::TransactionId,
    ) -> Result<Option<OwnedEventId>, RoomError> {
        let event = self.txns.get(&transaction_key(room_id, sender, device, txn_id))?;
        if event.is_some() {
            // The first attempt may still be waiting for its fsync: answer once it is durable.
            self.pdus.db().wait_deferred_writes()?;
        }
        Ok(event)
    }

    pub(super) fn build_and_store(
        &self,
        target: Target,
        sender: &UserId,
        template: PduTemplate,
        transaction: Option<(OwnedDeviceId, OwnedTransactionId)>,
    ) -> Result<Arc<PduEvent>, RoomError> {
        self.build_and_store_unlocking(target, sender, template, transaction, None)
    }

    /// [`Rooms::build_and_store`], releasing `room_guard` (the caller's room lock) as soon as the
    /// event is written and the room's caches are updated, before waiting for the fsync.
    fn build_and_store_unlocking(
        &self,
        target: Target,
        sender: &UserId,
        template: PduTemplate,
        transaction: Option<(OwnedDeviceId, OwnedTransactionId)>,
        room_guard: Option<MutexGuard<'_, ()>>,
    ) -> Result<Arc<PduEvent>, RoomError> {
        let (existing, meta) = match target {
            Target::Existing { shortroomid, meta } => (Some(shortroomid), meta),
            Target::New { version, room_id } => {
                let placeholder = match room_id {
                    Some(id) => id,
                    None => {
                        OwnedRoomId::try_from(format!("!placeholder:{}", self.globals.server_name))
                            .map_err(|e| RoomError::BadRequest(e.to_string()))?
                    }
                };
                let meta = RoomMeta {
                    room_id: placeholder,
                    version,
                    state: 0,
                    extremities: vec![],
                    depth: 0,
                    last_count: 0,
                };
                (None, meta)
            }
        };
        let rules = meta
            .version
            .rules()
            .ok_or_else(|| RoomError::UnsupportedVersion(meta.version.clone()))?;
        let state = self.state.load(meta.state)?;
        let is_create = template.kind == TimelineEventType::RoomCreate;
        if is_create != existing.is_none() {
            return Err(RoomError::Forbidden(
                "m.room.create must be the first event of a room, and only the first".into(),
            ));
        }

        let mut template = template;
        if let Some(redacts) = &template.redacts {
            self.check_redaction(&meta, &state, sender, redacts, &rules)?;
            if rules.redaction.content_field_redacts
                && let Some(obj) = template.content.as_object_mut()
            {
                obj.insert("redacts".into(), redacts.as_str().into());
            }
        }

        let (object, event_id, room_id) =
            self.build_object(&meta, &state, sender, &template, &rules, is_create)?;
        let json = to_raw_value(&object).map_err(|e| RoomError::BadRequest(e.to_string()))?;
        let shortstatehash_before = meta.state;
        let mut pdu = PduEvent::from_stored(StoredPdu {
            event_id: event_id.clone(),
            room_id: room_id.clone(),
            count: 0,
            state_before: shortstatehash_before,
            state_after: shortstatehash_before,
            replaces_state: None,
            transaction,
            redacted_by: None,
            relay: false,
            json,
        })?;
        self.authorize(&pdu, &state, &rules)?;

        // Everything is checked: allocate positions and write.
        let mut batch = Batch::default();
        let shortroomid = match existing {
            Some(short) => short,
            None => {
                if self.exists(&room_id)? {
                    return Err(RoomError::BadRequest("room already exists".into()));
                }
                let short = self.globals.next_short_id()?;
                batch.put(&self.roomid_short, &room_id, &short);
                short
            }
        };
        let shorteventid = self.globals.next_short_id()?;
        let pending = self.globals.next_count()?;
        let count = pending.count;

        let mut stored = pdu.stored.clone();
        stored.count = count;
        if let Some(state_key) = pdu.state_key() {
            let kind = StateEventType::from(pdu.kind().to_string());
            let shortstatekey = self.short.get_or_create_shortstatekey(&kind, state_key)?;
            let mut new_state: StateMap = (*state).clone();
            if let Some(previous) = new_state.insert(shortstatekey, shorteventid) {
                stored.replaces_state = self.short.eventid(previous)?;
            }
            stored.state_after = self.state.save(&mut batch, meta.state, new_state)?;
        }
        pdu = PduEvent::from_stored(stored.clone())?;

        batch.put(&self.pdus, &shorteventid, &Json(stored.clone()));
        self.short.put_event(&mut batch, &event_id, shorteventid);
        batch.put(&self.timeline, &(shortroomid, count), &shorteventid);
        batch.put(&self.stream, &count, &shorteventid);
        if let Some((device, txn)) = &stored.transaction {
            batch.put(&self.txns, &transaction_key(&room_id, sender, device, txn), &event_id);
        }
        let new_meta = RoomMeta {
            room_id: room_id.clone(),
            version: meta.version.clone(),
            state: stored.state_after,
            extremities: vec![event_id.clone()],
            depth: meta.depth + 1,
            last_count: count,
        };
        batch.put(&self.meta, &shortroomid, &Json(new_meta.clone()));

        let membership_target = self.queue_membership(&mut batch, &pdu, count)?;
        self.queue_relation(&mut batch, &pdu, count, shorteventid)?;
        let redacted = self.queue_redaction(&mut batch, &pdu, &rules)?;

        // Group commit: the event and what the hooks derive from it go to the WAL without an
        // fsync each; one shared fsync covers them after the room lock is released.
        let durable = self.pdus.db().defer_sync();
        self.pdus.db().write(batch)?;
        if membership_target.is_some() {
            self.membership_changed(&room_id);
        }
        self.run_event_hooks(&pdu);
        self.meta_cache.lock().insert(room_id.clone(), (shortroomid, new_meta));
        self.pdu_cache.lock().put(shorteventid, pdu.clone());
        if let Some(short) = redacted {
            self.pdu_cache.lock().pop(&short);
        }
        drop(room_guard);
        // Only a durable event becomes visible to /sync, wakes anyone or is acknowledged.
        durable.commit()?;
        drop(pending);

        let mut wake = self.joined_members(&room_id)?;
        wake.extend(membership_target);
        self.notifier.notify(wake.iter().map(|u| &**u), count);
        Ok(pdu)
    }

    /// The unsigned event: what `make_join` returns, and what this server signs for its own
    /// users' events.
    pub(super) fn event_skeleton(
        &self,
        meta: &RoomMeta,
        state: &StateMap,
        sender: &UserId,
        template: &PduTemplate,
        rules: &RoomVersionRules,
        is_create: bool,
    ) -> Result<CanonicalJsonObject, RoomError> {
        let content_raw =
            to_raw_value(&template.content).map_err(|e| RoomError::BadRequest(e.to_string()))?;
        let auth_types = auth_types_for_event(
            &template.kind,
            sender,
            template.state_key.as_deref(),
            &content_raw,
            &rules.authorization,
        )
        .map_err(RoomError::BadRequest)?;
        let mut auth_events = Vec::new();
        for (kind, state_key) in &auth_types {
            if let Some(pdu) = self.lookup(state, kind, state_key)? {
                auth_events.push(self.event_reference(&pdu, rules));
            }
        }
        let content = CanonicalJsonValue::try_from(template.content.clone())
            .map_err(|e| RoomError::BadRequest(format!("content is not canonical JSON: {e}")))?;
        if !matches!(content, CanonicalJsonValue::Object(_)) {
            return Err(RoomError::BadRequest("content must be a JSON object".into()));
        }

        let mut object = CanonicalJsonObject::new();
        object.insert("auth_events".into(), CanonicalJsonValue::Array(auth_events));
        let mut prev_events = Vec::with_capacity(meta.extremities.len());
        for id in &meta.extremities {
            match self.pdu(id)? {
                Some(prev) => prev_events.push(self.event_reference(&prev, rules)),
                None => prev_events.push(CanonicalJsonValue::String(id.to_string())),
            }
        }
        object.insert("prev_events".into(), CanonicalJsonValue::Array(prev_events));
        object.insert("content".into(), content);
        object.insert(
            "depth".into(),
            CanonicalJsonValue::Integer((meta.depth + 1).try_into().unwrap_or_default()),
        );
        let now: u64 = MilliSecondsSinceUnixEpoch::now().0.into();
        let ts = match template.origin_server_ts {
            _ if is_create => self.globals.next_create_ts(now),
            Some(ts) => ts,
            None => now,
        };
        object.insert(
            "origin_server_ts".into(),
            CanonicalJsonValue::Integer(ruma::Int::new_saturating(ts as i64)),
        );
        object.insert("sender".into(), CanonicalJsonValue::String(sender.to_string()));
        object.insert("type".into(), CanonicalJsonValue::String(template.kind.to_string()));
        if let Some(state_key) = &template.state_key {
            object.insert("state_key".into(), CanonicalJsonValue::String(state_key.clone()));
        }
        if let Some(redacts) = &template.redacts
            && !rules.redaction.content_field_redacts
        {
            object.insert("redacts".into(), CanonicalJsonValue::String(redacts.to_string()));
        }
        let derived_room_id = is_create && rules.authorization.room_create_event_id_as_room_id;
        if !derived_room_id {
            object.insert("room_id".into(), CanonicalJsonValue::String(meta.room_id.to_string()));
        }
        Ok(object)
    }

    fn build_object(
        &self,
        meta: &RoomMeta,
        state: &StateMap,
        sender: &UserId,
        template: &PduTemplate,
        rules: &RoomVersionRules,
        is_create: bool,
    ) -> Result<(CanonicalJsonObject, OwnedEventId, OwnedRoomId), RoomError> {
        let mut object = self.event_skeleton(meta, state, sender, template, rules, is_create)?;
        let derived_room_id = is_create && rules.authorization.room_create_event_id_as_room_id;
        if rules.event_format.require_event_id {
            // Room versions 1 and 2: the ID is chosen by the server and part of the event.
            let id = format!("${}:{}", ruma::TransactionId::new(), self.globals.server_name);
            object.insert("event_id".into(), CanonicalJsonValue::String(id));
            object.insert(
                "origin".into(),
                CanonicalJsonValue::String(self.globals.server_name.to_string()),
            );
        }
        hash_and_sign_event(
            self.globals.server_name.as_str(),
            self.globals.keypair(),
            &mut object,
            &rules.redaction,
        )
        .map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => RoomError::TooLarge(pdu_size(&object)),
            other => RoomError::Signing(other.to_string()),
        })?;
        let size = pdu_size(&object);
        if size > MAX_PDU_BYTES {
            return Err(RoomError::TooLarge(size));
        }
        let hash = reference_hash(&object, rules).map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => RoomError::TooLarge(size),
            other => RoomError::Signing(other.to_string()),
        })?;
        let event_id = if rules.event_format.require_event_id {
            super::remote::event_id_of(&object, rules)?
        } else {
            OwnedEventId::try_from(format!("${hash}"))
                .map_err(|e| RoomError::Signing(e.to_string()))?
        };
        let room_id = if derived_room_id {
            OwnedRoomId::try_from(format!("!{hash}"))
                .map_err(|e| RoomError::Signing(e.to_string()))?
        } else {
            meta.room_id.clone()
        };
        Ok((object, event_id, room_id))
    }

    /// How an event names another in `prev_events` and `auth_events`: its ID, or in room
    /// versions 1 and 2 the pair of its ID and its hashes.
    fn event_reference(&self, event: &PduEvent, rules: &RoomVersionRules) -> CanonicalJsonValue {
        let id = CanonicalJsonValue::String(event.event_id().to_string());
        if !rules.event_format.require_event_id {
            return id;
        }
        let hashes = event
            .canonical_object()
            .ok()
            .and_then(|mut o| o.remove("hashes"))
            .unwrap_or_else(|| CanonicalJsonValue::Object(CanonicalJsonObject::new()));
        CanonicalJsonValue::Array(vec![id, hashes])
    }

    fn authorize(
        &self,
        pdu: &Arc<PduEvent>,
        state: &StateMap,
        rules: &RoomVersionRules,
    ) -> Result<(), RoomError> {
        check_state_independent_auth_rules(&rules.authorization, &**pdu, |id: &ruma::EventId| {
            self.pdu(&id.to_owned()).ok().flatten()
        })
        .map_err(RoomError::Forbidden)?;
        check_state_dependent_auth_rules(
            &rules.authorization,
            &**pdu,
            |kind: &StateEventType, key: &str| self.lookup(state, kind, key).ok().flatten(),
        )
        .map_err(RoomError::Forbidden)
    }

    /// One event of a state map.
    pub(super) fn lookup(
        &self,
        state: &StateMap,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Arc<PduEvent>>, RoomError> {
        let Some(short) = self.short.shortstatekey(kind, state_key)? else { return Ok(None) };
        match state.get(&short) {
            Some(event) => self.pdu_by_short(*event),
            None => Ok(None),
        }
    }

    /// Redacting someone else's event needs the `redact` power level; the authorization rules
    /// leave this check to the server that applies the redaction.
    fn check_redaction(
        &self,
        meta: &RoomMeta,
        state: &StateMap,
        sender: &UserId,
        redacts: &OwnedEventId,
        rules: &RoomVersionRules,
    ) -> Result<(), RoomError> {
        let target = self.pdu(redacts)?.filter(|p| *p.room_id() == *meta.room_id);
        let Some(target) = target else { return Err(RoomError::UnknownEvent) };
        if target.sender() == sender {
            return Ok(());
        }
        let create = self
            .lookup(state, &StateEventType::RoomCreate, "")?
            .ok_or_else(|| RoomError::Forbidden("room has no create event".into()))?;
        let power_levels = self.lookup(state, &StateEventType::RoomPowerLevels, "")?;
        let power =
            power::user_power(sender, &create, power_levels.as_deref(), &rules.authorization)?;
        let needed = power::required_level(
            RoomPowerLevelsIntField::Redact,
            power_levels.as_deref(),
            &rules.authorization,
        )?;
        if power::reaches(power, needed) {
            Ok(())
        } else {
            Err(RoomError::Forbidden(format!(
                "redacting another user's event needs power level {needed}"
            )))
        }
    }

    pub(super) fn queue_membership(
        &self,
        batch: &mut Batch,
        pdu: &PduEvent,
        count: u64,
    ) -> Result<Option<ruma::OwnedUserId>, RoomError> {
        if *pdu.kind() != TimelineEventType::RoomMember {
            return Ok(None);
        }
        let Some(target) = pdu.state_key().and_then(|k| ruma::OwnedUserId::try_from(k).ok()) else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct Content {
            membership: MembershipState,
        }
        let membership = pdu
            .content_as::<Content>()
            .map_err(|e| RoomError::BadRequest(format!("invalid member event: {e}")))?
            .membership;
        // Before the position is visible: a sync skips the device-list scan without it.
        self.globals.note_change(ChangeKind::Membership, count);
        let previous = self.membership.get(&target, pdu.room_id())?;
        let since = match &previous {
            Some(prev) if prev.membership == membership => prev.since,
            _ => count,
        };
        let entry = MembershipEntry {
            membership,
            count,
            since,
            event_id: pdu.event_id().clone(),
            forgotten: false,
        };
        self.membership.put(batch, &target, pdu.room_id(), &entry);
        Ok(Some(target))
    }

    pub(super) fn queue_relation(
        &self,
        batch: &mut Batch,
        pdu: &PduEvent,
        count: u64,
        shorteventid: u64,
    ) -> Result<(), RoomError> {
        #[derive(serde::Deserialize)]
        struct RelatesTo {
            event_id: OwnedEventId,
        }
        #[derive(serde::Deserialize)]
        struct Content {
            #[serde(rename = "m.relates_to")]
            relates_to: Option<RelatesTo>,
        }
        let Ok(Content { relates_to: Some(relates_to) }) = pdu.content_as::<Content>() else {
            return Ok(());
        };
        if let Some(target) = self.short.shorteventid(&relates_to.event_id)? {
            batch.put(&self.relations, &(target, count), &shorteventid);
        }
        Ok(())
    }

    /// Applies a redaction to the stored copy of its target; returns the target's short ID.
    pub(super) fn queue_redaction(
        &self,
        batch: &mut Batch,
        pdu: &PduEvent,
        rules: &RoomVersionRules,
    ) -> Result<Option<u64>, RoomError> {
        let Some(redacts) = pdu.redacts() else { return Ok(None) };
        let Some(short) = self.short.shorteventid(redacts)? else { return Ok(None) };
        let Some(target) = self.pdu_by_short(short)? else { return Ok(None) };
        if target.room_id() != pdu.room_id() {
            return Ok(None);
        }
        let object = target.canonical_object().map_err(super::pdu::MalformedPdu)?;
        let redacted = ruma::canonical_json::redact(object, &rules.redaction, None)
            .map_err(|e| RoomError::Signing(e.to_string()))?;
        let mut stored = target.stored.clone();
        stored.json = to_raw_value(&redacted).map_err(|e| RoomError::Signing(e.to_string()))?;
        stored.redacted_by = Some(pdu.event_id().clone());
        batch.put(&self.pdus, &short, &Json(stored));
        Ok(Some(short))
    }
}

/// The key of a transaction: device, then room and transaction ID.
fn transaction_key(
    room_id: &ruma::RoomId,
    sender: &UserId,
    device: &ruma::DeviceId,
    txn_id: &ruma::TransactionId,
) -> (String, String, String) {
    (sender.to_string(), device.to_string(), format!("{room_id}|{txn_id}"))
}

fn pdu_size(object: &CanonicalJsonObject) -> usize {
    serde_json::to_vec(object).map(|v| v.len()).unwrap_or(usize::MAX)
}
