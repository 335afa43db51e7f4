//! Sending events and EDUs to other servers in transactions.
//!
//! Each destination has one task. It follows the global event stream (`count_shorteventid`, written
//! in each event's own batch) from the position it last delivered, and picks the events the
//! destination must receive: events of this server's users in rooms where the destination has a
//! joined member (or whose membership the event changes), and events another server joined through
//! this one (`StoredPdu::relay`). Durable EDUs (to-device messages, device-list and signing-key
//! updates, receipts) wait on disk; typing and presence wait in memory.
//!
//! A transaction is saved before it is sent and sent again unchanged, with the same ID, until the
//! destination answers 2xx; only then does the position move on. A crash or an unreachable server
//! loses nothing, and the receiving server deduplicates a transaction it already processed by its
//! ID. Retries back off exponentially up to `federation.max_retry_interval_secs`.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Weak},
    time::Duration,
};

use parking_lot::Mutex;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedServerName, OwnedTransactionId, ServerName,
    api::federation::transactions::{edu::Edu, send_transaction_message},
    events::{TimelineEventType, room::member::MembershipState},
    serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue as RawJsonValue;
use tokio::sync::Notify;

use crate::{
    service::{
        Services,
        rooms::{Rooms, hook::EventHook, pdu::PduEvent},
    },
    storage::{Batch, Db, Json, StorageError, Table},
};

/// Column families of the sender.
pub const COLUMN_FAMILIES: &[&str] = &["servername_federationqueue", "servernameseq_federationedu"];

/// The spec's limits per transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;
/// Events read from the stream at a time.
const SCAN_CHUNK: usize = 500;
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Where delivery to a destination stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct DestinationState {
    /// Every event up to this stream position was delivered or is not for the destination.
    sent_upto: u64,
    /// Number of the next transaction.
    next_txn: u64,
    /// The transaction being delivered.
    in_flight: Option<InFlight>,
}

/// A transaction saved before it is sent, retried unchanged until accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct InFlight {
    txn_id: String,
    /// The stream position its events cover up to.
    upto: u64,
    /// The durable EDUs it carries, deleted once it is accepted.
    edu_keys: Vec<u64>,
    pdus: Vec<Box<RawJsonValue>>,
    edus: Vec<Box<RawJsonValue>>,
}

/// What the request handlers share with one destination's task.
#[derive(Debug, Default)]
struct Destination {
    /// Typing and presence: not worth keeping across a restart.
    ephemeral: Mutex<Vec<Box<RawJsonValue>>>,
    wake: Notify,
}

/// The federation sender: one task per destination.
pub struct Sender {
    server_name: OwnedServerName,
    enabled: bool,
    max_retry: Duration,
    services: std::sync::OnceLock<Weak<Services>>,
    destinations: Mutex<HashMap<OwnedServerName, Arc<Destination>>>,
    state: Table<String, Json<DestinationState>>,
    edus: Table<(String, u64), Json<Box<RawJsonValue>>>,
    globals: Arc<crate::service::globals::Globals>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("destinations", &self.destinations.lock().len()).finish()
    }
}

/// Errors of the sender's storage.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An EDU could not be serialized.
    #[error("could not serialize an EDU: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Sender {
    /// Opens the sender's tables.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<crate::service::globals::Globals>,
        enabled: bool,
        max_retry: Duration,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            server_name: globals.server_name.clone(),
            enabled,
            max_retry,
            services: std::sync::OnceLock::new(),
            destinations: Mutex::new(HashMap::new()),
            state: db.table("servername_federationqueue")?,
            edus: db.table("servernameseq_federationedu")?,
            globals,
        })
    }

    /// Queues an EDU for `destination`, delivered in its next transaction. Typing and presence
    /// are kept in memory only; the others are saved first.
    pub fn send_edu(&self, destination: &ServerName, edu: Edu) {
        if let Err(e) = self.try_send_edu(destination, &edu) {
            tracing::error!(%destination, error = %e, "queueing an EDU failed");
        }
    }

    fn try_send_edu(&self, destination: &ServerName, edu: &Edu) -> Result<(), SenderError> {
        if !self.enabled || destination == self.server_name {
            return Ok(());
        }
        let raw = serde_json::value::to_raw_value(edu)?;
        let handle = self.destination(destination, None)?;
        if matches!(edu, Edu::Typing(_) | Edu::Presence(_)) {
            handle.ephemeral.lock().push(raw);
        } else {
            let seq = self.globals.next_short_id()?;
            self.edus.put(&(destination.to_string(), seq), &Json(raw))?;
        }
        handle.wake.notify_one();
        Ok(())
    }

    /// The handle of a destination, creating (and saving) it with delivery starting after
    /// `start_after` (the current stream position when `None`) and starting its task.
    fn destination(
        &self,
        destination: &ServerName,
        start_after: Option<u64>,
    ) -> Result<Arc<Destination>, SenderError> {
        if let Some(handle) = self.destinations.lock().get(destination) {
            return Ok(handle.clone());
        }
        let key = destination.to_string();
        if self.state.get(&key)?.is_none() {
            let start = match start_after {
                Some(position) => position,
                None => self.globals.visible_count(),
            };
            let state = DestinationState { sent_upto: start, ..DestinationState::default() };
            self.state.put(&key, &Json(state))?;
        }
        let handle = {
            let mut map = self.destinations.lock();
            if let Some(existing) = map.get(destination) {
                return Ok(existing.clone());
            }
            let handle = Arc::new(Destination::default());
            map.insert(destination.to_owned(), handle.clone());
            handle
        };
        if let Some(services) = self.services.get().and_then(Weak::upgrade) {
            tokio::spawn(run_destination(services, destination.to_owned(), handle.clone()));
        }
        Ok(handle)
    }

    /// Makes sure every server in `servers` has a task that will see stream position `count`.
    fn ensure_destinations<'a>(
        &self,
        servers: impl IntoIterator<Item = &'a ServerName>,
        count: u64,
    ) {
        for server in servers {
            if server == self.server_name {
                continue;
            }
            let known = self.destinations.lock().get(server).cloned();
            match known {
                Some(handle) => handle.wake.notify_one(),
                None => {
                    if let Err(e) = self.destination(server, Some(count.saturating_sub(1))) {
                        tracing::error!(%server, error = %e, "starting a federation sender failed");
                    }
                }
            }
        }
    }
}

/// The servers with a joined member in a room, and for a membership event the target's server.
fn destinations_of(rooms: &Rooms, pdu: &PduEvent) -> HashSet<OwnedServerName> {
    let mut servers: HashSet<OwnedServerName> = rooms
        .joined_members(pdu.room_id())
        .map(|members| members.iter().map(|u| u.server_name().to_owned()).collect())
        .unwrap_or_default();
    if *pdu.kind() == TimelineEventType::RoomMember
        && let Some(target) = pdu.state_key().and_then(|k| ruma::UserId::parse(k).ok())
    {
        servers.insert(target.server_name().to_owned());
    }
    servers
}

/// Whether `destination` must receive `pdu` from this server.
fn is_for(
    rooms: &Rooms,
    own: &ServerName,
    destination: &ServerName,
    pdu: &PduEvent,
    cache: &mut HashMap<ruma::OwnedRoomId, HashSet<OwnedServerName>>,
) -> bool {
    let origin = pdu.sender().server_name();
    if origin == destination || (origin != own && !pdu.stored.relay) {
        return false;
    }
    if *pdu.kind() == TimelineEventType::RoomMember
        && pdu.state_key().and_then(|k| ruma::UserId::parse(k).ok()).is_some_and(|target| {
            target.server_name() == destination
                && !matches!(membership_of(pdu), Some(MembershipState::Invite))
        })
    {
        return true;
    }
    cache
        .entry(pdu.room_id().to_owned())
        .or_insert_with(|| {
            rooms
                .joined_members(pdu.room_id())
                .map(|m| m.iter().map(|u| u.server_name().to_owned()).collect())
                .unwrap_or_default()
        })
        .contains(destination)
}

fn membership_of(pdu: &PduEvent) -> Option<MembershipState> {
    #[derive(Deserialize)]
    struct Content {
        membership: MembershipState,
    }
    pdu.content_as::<Content>().ok().map(|c| c.membership)
}

/// Registers destinations as events are written, so that a server that just joined gets the
/// events from its join on.
struct FederationHook {
    sender: Arc<Sender>,
}

impl EventHook for FederationHook {
    fn event_written(&self, rooms: &Rooms, pdu: &PduEvent) {
        let origin = pdu.sender().server_name();
        if origin != self.sender.server_name && !pdu.stored.relay {
            return;
        }
        let servers = destinations_of(rooms, pdu);
        self.sender.ensure_destinations(servers.iter().map(|s| &**s), pdu.stored.count);
    }
}

impl Services {
    /// Starts the federation sender: a task per destination with something pending, and the hook
    /// that finds new destinations.
    pub fn start_federation_sender(self: &Arc<Self>) {
        let sender = &self.federation_sender;
        if !sender.enabled {
            return;
        }
        let _ = sender.services.set(Arc::downgrade(self));
        self.rooms.add_event_hook(Arc::new(FederationHook { sender: sender.clone() }));
        let saved: Vec<String> = match sender.state.scan_all() {
            Ok(entries) => entries.filter_map(Result::ok).map(|(k, _)| k).collect(),
            Err(e) => {
                tracing::error!(error = %e, "reading the federation queues failed");
                return;
            }
        };
        for name in saved {
            if let Ok(server) = OwnedServerName::try_from(name.as_str())
                && let Err(e) = sender.destination(&server, None)
            {
                tracing::error!(%server, error = %e, "starting a federation sender failed");
            }
        }
    }
}

async fn run_destination(
    services: Arc<Services>,
    destination: OwnedServerName,
    handle: Arc<Destination>,
) {
    let mut stream = services.notifier.subscribe_stream();
    let mut retry = FIRST_RETRY;
    loop {
        let sent = match deliver_once(&services, &destination, &handle).await {
            Ok(sent) => {
                retry = FIRST_RETRY;
                sent
            }
            Err(e) => {
                tracing::warn!(%destination, error = %e, retry_secs = retry.as_secs(), "federation transaction failed");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(services.federation_sender.max_retry);
                continue;
            }
        };
        if sent {
            continue;
        }
        tokio::select! {
            _ = stream.changed() => {}
            () = handle.wake.notified() => {}
        }
    }
}

/// Errors of one delivery attempt.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Sender(#[from] SenderError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Room(#[from] crate::service::rooms::RoomError),
    #[error("{0}")]
    Remote(String),
}

/// Sends the transaction in flight, or builds and sends the next one. Returns whether anything
/// was sent.
async fn deliver_once(
    services: &Arc<Services>,
    destination: &ServerName,
    handle: &Destination,
) -> Result<bool, DeliveryError> {
    let sender = &services.federation_sender;
    let key = destination.to_string();
    let mut state = sender.state.get(&key)?.map(|Json(s)| s).unwrap_or_default();
    let in_flight = match state.in_flight.clone() {
        Some(in_flight) => in_flight,
        None => {
            let Some(in_flight) = next_transaction(services, destination, handle, &mut state)?
            else {
                return Ok(false);
            };
            state.in_flight = Some(in_flight.clone());
            sender.state.put(&key, &Json(state.clone()))?;
            in_flight
        }
    };
    let mut request = send_transaction_message::v1::Request::new(
        OwnedTransactionId::from(in_flight.txn_id.as_str()),
        sender.server_name.clone(),
        MilliSecondsSinceUnixEpoch::now(),
    );
    request.pdus = in_flight.pdus.clone();
    request.edus = in_flight.edus.iter().map(|e| Raw::from_json(e.clone())).collect();
    let response = services
        .federation
        .client
        .send(destination, request)
        .await
        .map_err(|e| DeliveryError::Remote(e.to_string()))?;
    for (event_id, result) in response.pdus {
        if let Err(error) = result {
            tracing::info!(%destination, %event_id, %error, "the destination refused an event");
        }
    }
    let mut batch = Batch::default();
    for seq in &in_flight.edu_keys {
        batch.delete(&sender.edus, &(key.clone(), *seq));
    }
    state.sent_upto = state.sent_upto.max(in_flight.upto);
    state.in_flight = None;
    batch.put(&sender.state, &key, &Json(state));
    sender.state.db().write(batch)?;
    Ok(true)
}

/// The next transaction for `destination`, or `None` when nothing is pending. Advances
/// `state.sent_upto` past events that are not for the destination.
fn next_transaction(
    services: &Services,
    destination: &ServerName,
    handle: &Destination,
    state: &mut DestinationState,
) -> Result<Option<InFlight>, DeliveryError> {
    let sender = &services.federation_sender;
    let upto = services.globals.visible_count();
    let mut pdus = Vec::new();
    let mut position = state.sent_upto;
    let mut rooms_cache = HashMap::new();
    'scan: while position < upto {
        let events = services.rooms.stream_events(position, upto, SCAN_CHUNK)?;
        if events.is_empty() {
            position = upto;
            break;
        }
        for (count, pdu) in events {
            if is_for(&services.rooms, &sender.server_name, destination, &pdu, &mut rooms_cache) {
                if pdus.len() >= MAX_PDUS {
                    break 'scan;
                }
                pdus.push(pdu.stored.json.clone());
            }
            position = count;
        }
    }
    let key = destination.to_string();
    let mut edus = Vec::new();
    let mut edu_keys = Vec::new();
    for entry in sender.edus.scan_prefix(&key)? {
        let ((_, seq), Json(edu)) = entry?;
        if edus.len() >= MAX_EDUS {
            break;
        }
        edus.push(edu);
        edu_keys.push(seq);
    }
    {
        let mut ephemeral = handle.ephemeral.lock();
        let room = MAX_EDUS.saturating_sub(edus.len()).min(ephemeral.len());
        edus.extend(ephemeral.drain(..room));
    }
    if pdus.is_empty() && edus.is_empty() {
        if position > state.sent_upto {
            state.sent_upto = position;
            sender.state.put(&key, &Json(state.clone()))?;
        }
        return Ok(None);
    }
    // The time makes the ID unique even if the database is recreated under the same name.
    let now: u64 = MilliSecondsSinceUnixEpoch::now().0.into();
    let txn_id = format!("{now}-{}", state.next_txn);
    state.next_txn += 1;
    Ok(Some(InFlight { txn_id, upto: position, edu_keys, pdus, edus }))
}
