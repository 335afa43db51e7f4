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
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use ruma::{
    OwnedEventId, OwnedTransactionId, RoomId, api::appservice::event::push_events, serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// Where a service's delivery stands, saved in `appserviceid_queue`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueState {
    /// Every event up to this stream position was delivered or was of no interest.
    pub delivered: u64,
    /// Number of the next transaction.
    pub next_txn: u64,
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
}

/// What the request handlers share with a service's sender task.
#[derive(Debug, Default)]
pub struct SenderHandle {
    ephemeral: Mutex<Vec<Value>>,
    wake: Notify,
}

impl SenderHandle {
    /// Queues an ephemeral event for the next transaction.
    pub fn push_ephemeral(&self, edu: Value) {
        self.ephemeral.lock().push(edu);
        self.wake.notify_one();
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
            None => {
                QueueState { delivered: self.globals.visible_count(), next_txn: 1, in_flight: None }
            }
        };
        self.appservices.queue.put(&id, &Json(state.clone()))?;
        let mut last_saved = Instant::now();
        let mut retry = FIRST_RETRY;
        let max_retry = Duration::from_secs(self.config.appservices.max_retry_interval_secs.max(1));
        loop {
            if state.in_flight.is_none() {
                let before = state.delivered;
                let txn = self.next_transaction(&service, handle, &mut state, &mut cache)?;
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
                    tokio::select! {
                        _ = wake.changed() => {}
                        () = handle.wake.notified() => {}
                        () = tokio::time::sleep(Duration::from_secs(30)) => {}
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
                    tracing::debug!(
                        appservice = id,
                        txn = in_flight.txn,
                        events = in_flight.events.len(),
                        "transaction delivered"
                    );
                    state.delivered = state.delivered.max(in_flight.upto);
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
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(max_retry);
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
        if events.is_empty() && ephemeral.is_empty() {
            state.delivered = scanned;
            return Ok(None);
        }
        Ok(Some(InFlight { txn: state.next_txn, upto: scanned, events, ephemeral }))
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
        self.appservices.send_transaction(service, request).await
    }
}

fn to_raw(value: &Value) -> Result<Box<serde_json::value::RawValue>, AppserviceError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| AppserviceError::ConnectionFailed(format!("could not serialise: {e}")))
}
