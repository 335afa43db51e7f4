//! Delivering events to application services in transactions.
//!
//! Each service with a URL has one task that follows the global event stream from the position it
//! last delivered. A transaction is written to disk (its number, the stream position it covers and
//! its event IDs) *before* it is sent, and sent again unchanged until the service accepts it; only
//! then does the position move on. So a crash or a service that is down loses nothing, and a
//! transaction the service already processed comes back with the same ID, which the spec tells
//! services to acknowledge without processing it again: every event is delivered exactly once.
//!
//! Ephemeral events (typing, receipts) are not part of the stream; they wait in memory for the next
//! transaction and are then persisted with it.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use ruma::{
    OwnedDeviceId, OwnedEventId, OwnedTransactionId, OwnedUserId, RoomId,
    api::appservice::event::push_events, serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{Appservice, AppserviceError, interest::InterestCache};
use crate::{service::Services, storage::Json};

/// Events read from the stream at a time while looking for interesting ones.
const SCAN_CHUNK: usize = 500;
/// How often the position is saved while no event interests the service (saving is only an
/// optimisation then: the events in between would be scanned again and found uninteresting).
const SAVE_IDLE_POSITION_EVERY: Duration = Duration::from_secs(5);
/// The first wait after a failed delivery.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How often device-list changes are computed for a service's users: computing them reads the
/// rooms of each of its users with encryption, too much to do for every event of the server.
const DEVICE_LISTS_EVERY: Duration = Duration::from_secs(1);

/// Where a service's delivery stands, saved in `appserviceid_queue`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueState {
    /// Every event up to this stream position was delivered or was of no interest.
    pub delivered: u64,
    /// Number of the next transaction.
    pub next_txn: u64,
    /// Device-list changes up to this position were delivered (MSC3202).
    #[serde(default)]
    pub device_lists_upto: u64,
    /// The transaction being delivered.
    pub in_flight: Option<InFlight>,
}

/// A transaction sent (or about to be) and not yet accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InFlight {
    /// Its number, the transaction ID.
    pub txn: u64,
    /// The stream position it covers up to.
    pub upto: u64,
    /// Its events.
    pub events: Vec<OwnedEventId>,
    /// Its ephemeral events.
    #[serde(default)]
    pub ephemeral: Vec<Value>,
    /// To-device messages for the service's users (MSC2409), each with `to_user_id` and
    /// `to_device_id`.
    #[serde(default)]
    pub to_device: Vec<Value>,
    /// The inbox positions those messages are deleted up to once the transaction is accepted.
    #[serde(default)]
    pub to_device_acks: Vec<(OwnedUserId, OwnedDeviceId, u64)>,
    /// One-time key counts of the service's users' devices (MSC3202): user -> device ->
    /// algorithm -> count.
    #[serde(default)]
    pub one_time_key_counts: Value,
    /// Unused fallback key types of those devices (MSC3202): user -> device -> algorithms.
    #[serde(default)]
    pub fallback_key_types: Value,
    /// Users whose devices changed, for the service's users (MSC3202).
    #[serde(default)]
    pub device_lists_changed: Vec<OwnedUserId>,
    /// Users who no longer share a room with any of the service's users (MSC3202).
    #[serde(default)]
    pub device_lists_left: Vec<OwnedUserId>,
    /// The position the device-list changes were computed up to.
    #[serde(default)]
    pub device_lists_upto: u64,
}

/// What the request handlers share with a service's sender task.
#[derive(Debug, Default)]
pub struct SenderHandle {
    ephemeral: Mutex<Vec<Value>>,
    /// Devices of the service's users with to-device messages waiting or changed key counts.
    devices: Mutex<BTreeSet<(OwnedUserId, OwnedDeviceId)>>,
    /// The service's users with devices taking part in end-to-end encryption: whose viewpoint
    /// device-list changes are computed from.
    e2ee_users: Mutex<BTreeSet<OwnedUserId>>,
    wake: Notify,
    /// Set when the service answered a ping: a transaction waiting to be sent again goes now.
    reachable: Notify,
}

impl SenderHandle {
    /// Marks a device of one of the service's users for the next transaction.
    pub fn push_device(&self, user: OwnedUserId, device: OwnedDeviceId) {
        self.e2ee_users.lock().insert(user.clone());
        self.devices.lock().insert((user, device));
        self.wake.notify_one();
    }

    /// Queues an ephemeral event for the next transaction.
    pub fn push_ephemeral(&self, edu: Value) {
        self.ephemeral.lock().push(edu);
        self.wake.notify_one();
    }

    /// The service answered a ping, so it is up again: a transaction waiting out its retry delay
    /// is sent at once, and the delay starts over. A service that restarts and pings (as bridges
    /// do at start-up) gets its backlog without waiting up to `max_retry_interval_secs`.
    pub fn mark_reachable(&self) {
        self.reachable.notify_one();
    }
}

impl Services {
    /// Queues a typing or receipt EDU of `room_id` for the services that receive ephemeral events
    /// and follow the room.
    pub fn appservice_ephemeral(&self, room_id: &RoomId, edu: &Value) {
        for service in self.appservices.all() {
            if !service.registration.receive_ephemeral {
                continue;
            }
            let Some(handle) = self.appservices.handle(service.id()) else { continue };
            match self.appservice_wants_room(service, room_id) {
                Ok(true) => {
                    let mut edu = edu.clone();
                    if let Some(obj) = edu.as_object_mut() {
                        obj.insert("room_id".into(), room_id.as_str().into());
                    }
                    handle.push_ephemeral(edu);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not route an ephemeral event"),
            }
        }
    }

    /// Tells the services that receive device events (MSC2409/MSC3202) and whose namespace holds
    /// `user` that this device has to-device messages waiting or changed key counts.
    pub fn appservice_device_event(&self, user: &ruma::UserId, device: &ruma::DeviceId) {
        for service in self.appservices.all() {
            if service.features.device_events
                && service.is_user_in_namespace(user)
                && let Some(handle) = self.appservices.handle(service.id())
            {
                handle.push_device(user.to_owned(), device.to_owned());
            }
        }
    }

    /// Starts one sender task per service that has a URL.
    pub fn start_appservice_senders(self: &Arc<Self>) {
        for service in self.appservices.all() {
            if service.registration.url.is_none() {
                continue;
            }
            let (services, service) = (self.clone(), service.clone());
            tokio::spawn(async move {
                let id = service.id().to_owned();
                if let Err(e) = services.run_sender(service).await {
                    tracing::error!(appservice = id, error = %e, "application service sender stopped");
                }
            });
        }
    }

    async fn run_sender(self: Arc<Self>, service: Arc<Appservice>) -> Result<(), AppserviceError> {
        let id = service.id().to_owned();
        let Some(handle) = self.appservices.handle(&id) else { return Ok(()) };
        let mut wake = self.notifier.subscribe_stream();
        let mut cache = InterestCache::default();
        let mut state = match self.appservices.queue.get(&id)? {
            Some(Json(state)) => state,
            // A new service starts at the present: it gets no history.
            None => QueueState {
                delivered: self.globals.visible_count(),
                next_txn: 1,
                device_lists_upto: self.globals.visible_count(),
                in_flight: None,
            },
        };
        if state.device_lists_upto == 0 {
            // A queue saved before device lists were tracked: start at the present.
            state.device_lists_upto = state.delivered;
        }
        self.appservices.queue.put(&id, &Json(state.clone()))?;
        if service.features.device_events {
            // Messages that arrived while the sender was not running.
            for (user, device) in self.keys.to_device_recipients()? {
                if service.is_user_in_namespace(&user) {
                    handle.devices.lock().insert((user, device));
                }
            }
            let users = self.keys.users_with_device_keys()?;
            handle
                .e2ee_users
                .lock()
                .extend(users.into_iter().filter(|u| service.is_user_in_namespace(u)));
        }
        let mut last_saved = Instant::now();
        let mut last_device_lists = Instant::now() - DEVICE_LISTS_EVERY;
        let mut retry = FIRST_RETRY;
        let max_retry = Duration::from_secs(self.config.appservices.max_retry_interval_secs.max(1));
        loop {
            if state.in_flight.is_none() {
                let before = state.delivered;
                let device_lists_due = last_device_lists.elapsed() >= DEVICE_LISTS_EVERY;
                if device_lists_due {
                    last_device_lists = Instant::now();
                }
                let txn = self.next_transaction(
                    &service,
                    handle,
                    &mut state,
                    &mut cache,
                    device_lists_due,
                )?;
                if txn.is_none() {
                    if state.delivered != before && last_saved.elapsed() > SAVE_IDLE_POSITION_EVERY
                    {
                        self.appservices.queue.put(&id, &Json(state.clone()))?;
                        last_saved = Instant::now();
                    }
                    wake.mark_unchanged();
                    if self.globals.visible_count() > state.delivered {
                        continue;
                    }
                    // Device-list changes not yet computed are looked at again shortly.
                    let lists_pending = state.device_lists_upto < self.globals.visible_count()
                        && !handle.e2ee_users.lock().is_empty();
                    let idle =
                        if lists_pending { DEVICE_LISTS_EVERY } else { Duration::from_secs(30) };
                    tokio::select! {
                        _ = wake.changed() => {}
                        () = handle.wake.notified() => {}
                        () = tokio::time::sleep(idle) => {}
                    }
                    continue;
                }
                state.in_flight = txn;
                // On disk before it leaves: a restart sends the same transaction again.
                self.appservices.queue.put(&id, &Json(state.clone()))?;
                last_saved = Instant::now();
            }
            let Some(in_flight) = state.in_flight.clone() else { continue };
            match self.deliver(&service, &in_flight).await {
                Ok(()) => {
                    for (user, device, upto) in &in_flight.to_device_acks {
                        self.keys.acknowledge_to_device(user, device, *upto)?;
                    }
                    tracing::debug!(
                        appservice = id,
                        txn = in_flight.txn,
                        events = in_flight.events.len(),
                        "transaction delivered"
                    );
                    state.delivered = state.delivered.max(in_flight.upto);
                    state.device_lists_upto =
                        state.device_lists_upto.max(in_flight.device_lists_upto);
                    state.next_txn = in_flight.txn + 1;
                    state.in_flight = None;
                    self.appservices.queue.put(&id, &Json(state.clone()))?;
                    last_saved = Instant::now();
                    retry = FIRST_RETRY;
                }
                Err(e) => {
                    tracing::warn!(
                        appservice = id,
                        txn = in_flight.txn,
                        error = %e,
                        retry_in_secs = retry.as_secs(),
                        "transaction not delivered; it will be sent again"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(retry) => retry = (retry * 2).min(max_retry),
                        () = handle.reachable.notified() => retry = FIRST_RETRY,
                    }
                }
            }
        }
    }

    /// Collects the next transaction from the stream after `state.delivered`, advancing
    /// `state.delivered` over events of no interest. `None` when there is nothing to send.
    fn next_transaction(
        &self,
        service: &Appservice,
        handle: &SenderHandle,
        state: &mut QueueState,
        cache: &mut InterestCache,
        device_lists_due: bool,
    ) -> Result<Option<InFlight>, AppserviceError> {
        let max_events = self.config.appservices.max_events_per_transaction.max(1);
        let visible = self.globals.visible_count();
        let mut events = Vec::new();
        let mut scanned = state.delivered;
        'scan: while scanned < visible {
            let chunk = self.rooms.stream_events(scanned, visible, SCAN_CHUNK)?;
            if chunk.is_empty() {
                scanned = visible;
                break;
            }
            let full = chunk.len() == SCAN_CHUNK;
            for (count, pdu) in chunk {
                if self.appservice_wants_event(service, &pdu, cache)? {
                    events.push(pdu.event_id().to_owned());
                }
                scanned = count;
                if events.len() >= max_events {
                    break 'scan;
                }
            }
            if !full {
                scanned = visible;
            }
        }
        let ephemeral = std::mem::take(&mut *handle.ephemeral.lock());
        let devices = std::mem::take(&mut *handle.devices.lock());
        let device_data = self.device_data(devices, visible)?;
        let e2ee_users: Vec<OwnedUserId> = handle.e2ee_users.lock().iter().cloned().collect();
        let lists_upto = if device_lists_due { visible } else { state.device_lists_upto };
        let (changed, left) =
            self.appservice_device_lists(&e2ee_users, state.device_lists_upto, lists_upto)?;
        let nothing = events.is_empty()
            && ephemeral.is_empty()
            && device_data.is_empty()
            && changed.is_empty()
            && left.is_empty();
        if nothing {
            state.delivered = scanned;
            state.device_lists_upto = state.device_lists_upto.max(lists_upto);
            return Ok(None);
        }
        Ok(Some(InFlight {
            txn: state.next_txn,
            upto: scanned,
            events,
            ephemeral,
            to_device: device_data.to_device,
            to_device_acks: device_data.acks,
            one_time_key_counts: device_data.counts.into(),
            fallback_key_types: device_data.fallback.into(),
            device_lists_changed: changed,
            device_lists_left: left,
            device_lists_upto: lists_upto,
        }))
    }

    /// Sends a transaction once.
    async fn deliver(
        &self,
        service: &Appservice,
        in_flight: &InFlight,
    ) -> Result<(), AppserviceError> {
        let mut events = Vec::with_capacity(in_flight.events.len());
        for event_id in &in_flight.events {
            // An event stays in the database once written; a missing one is a bug, not a reason to
            // hold the queue forever.
            let Some(pdu) = self.rooms.pdu(event_id)? else {
                tracing::error!(%event_id, "queued event is missing; skipped");
                continue;
            };
            let json = self.client_event(&pdu, None)?;
            events.push(Raw::from_json(to_raw(&json)?));
        }
        let txn_id = OwnedTransactionId::from(in_flight.txn.to_string());
        let mut request = push_events::v1::Request::new(txn_id, events);
        request.ephemeral = in_flight
            .ephemeral
            .iter()
            .map(|edu| to_raw(edu).map(Raw::from_json))
            .collect::<Result<_, _>>()?;
        request.to_device = in_flight
            .to_device
            .iter()
            .map(|message| to_raw(message).map(Raw::from_json))
            .collect::<Result<_, _>>()?;
        if !in_flight.one_time_key_counts.is_null() {
            request.device_one_time_keys_count =
                serde_json::from_value(in_flight.one_time_key_counts.clone()).unwrap_or_default();
        }
        request.device_lists.changed = in_flight.device_lists_changed.clone();
        request.device_lists.left = in_flight.device_lists_left.clone();
        if !in_flight.fallback_key_types.is_null() {
            request.device_unused_fallback_key_types =
                serde_json::from_value(in_flight.fallback_key_types.clone()).unwrap_or_default();
        }
        self.appservices.send_transaction(service, request).await
    }
}

fn to_raw(value: &Value) -> Result<Box<serde_json::value::RawValue>, AppserviceError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| AppserviceError::ConnectionFailed(format!("could not serialise: {e}")))
}

/// What a transaction carries about the service's users' devices.
#[derive(Default)]
struct DeviceData {
    to_device: Vec<Value>,
    acks: Vec<(OwnedUserId, OwnedDeviceId, u64)>,
    counts: serde_json::Map<String, Value>,
    fallback: serde_json::Map<String, Value>,
}

impl DeviceData {
    fn is_empty(&self) -> bool {
        self.to_device.is_empty() && self.counts.is_empty()
    }
}

impl Services {
    /// The device-list changes between `since` and `upto` that the service's users with
    /// encryption must hear of: the union of what each of them would get in `/sync`.
    fn appservice_device_lists(
        &self,
        users: &[OwnedUserId],
        since: u64,
        upto: u64,
    ) -> Result<(Vec<OwnedUserId>, Vec<OwnedUserId>), AppserviceError> {
        let (mut changed, mut left) = (BTreeSet::new(), BTreeSet::new());
        if since >= upto {
            return Ok((Vec::new(), Vec::new()));
        }
        for user in users {
            let changes = self.device_list_changes(user, since, upto)?;
            changed.extend(changes.changed);
            left.extend(changes.left);
        }
        // Someone still sharing a room with one of the service's users has not left for it.
        let left = left.difference(&changed).cloned().collect();
        Ok((changed.into_iter().collect(), left))
    }

    /// The to-device messages waiting for `devices` up to `upto`, and their key counts.
    fn device_data(
        &self,
        devices: BTreeSet<(OwnedUserId, OwnedDeviceId)>,
        upto: u64,
    ) -> Result<DeviceData, AppserviceError> {
        let mut data = DeviceData::default();
        for (user, device) in devices {
            let messages = self.keys.pending_to_device(&user, &device, upto)?;
            if let Some((last, _)) = messages.last() {
                data.acks.push((user.clone(), device.clone(), *last));
            }
            for (_, mut message) in messages {
                if let Some(obj) = message.as_object_mut() {
                    obj.insert("to_user_id".into(), user.as_str().into());
                    obj.insert("to_device_id".into(), device.as_str().into());
                }
                data.to_device.push(message);
            }
            let counts = self.keys.one_time_key_counts(&user, &device)?;
            let fallback = self.keys.unused_fallback_key_types(&user, &device)?;
            let entry = |map: &mut serde_json::Map<String, Value>, value: Value| {
                if let Some(devices) =
                    map.entry(user.as_str()).or_insert_with(|| json!({})).as_object_mut()
                {
                    devices.insert(device.as_str().to_owned(), value);
                }
            };
            entry(&mut data.counts, serde_json::to_value(counts).unwrap_or_default());
            entry(&mut data.fallback, serde_json::to_value(fallback).unwrap_or_default());
        }
        Ok(data)
    }
}
