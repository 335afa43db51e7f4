//! Rooms: events, state, timeline, membership, aliases.

pub mod alias;
mod builder;
pub mod create;
pub mod hook;
pub mod membership;
pub mod pdu;
pub mod power;
pub mod remote;
mod resolve;
pub mod short;
pub mod state;
pub mod timeline;

use std::{collections::HashMap, num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;
use ruma::{
    OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId,
    events::{StateEventType, room::member::MembershipState},
};
use serde::{Deserialize, Serialize};

pub use self::builder::PduTemplate;
use self::{
    membership::MembershipEntry,
    pdu::{PduEvent, StoredPdu},
    short::ShortIds,
    state::{StateMap, StateStore},
};
use crate::{
    service::{globals::Globals, notifier::Notifier},
    storage::{Db, Json, StorageError, Table},
};

/// Rooms whose joined members are kept in memory.
const JOINED_CACHE_ROOMS: usize = 4096;

/// Column families owned by the room service and its parts.
pub fn column_families() -> Vec<&'static str> {
    let mut cfs = vec![
        "roomid_shortroomid",
        "shortroomid_meta",
        "shorteventid_pdu",
        "roomcount_shorteventid",
        "count_shorteventid",
        "txn_eventid",
        "relatesto_shorteventid",
    ];
    cfs.extend_from_slice(short::COLUMN_FAMILIES);
    cfs.extend_from_slice(state::COLUMN_FAMILIES);
    cfs.extend_from_slice(membership::COLUMN_FAMILIES);
    cfs.extend_from_slice(alias::COLUMN_FAMILIES);
    cfs
}

/// Errors of room operations.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The room is not known to this server.
    #[error("room {0} is not known to this server")]
    UnknownRoom(OwnedRoomId),
    /// The event is not known, or not visible.
    #[error("event not found")]
    UnknownEvent,
    /// The authorization rules of the room refuse the event.
    #[error("{0}")]
    Forbidden(String),
    /// The event is larger than the 65536 bytes a PDU may be.
    #[error("event is too large: {0} bytes, the limit is 65536")]
    TooLarge(usize),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The room version is not supported.
    #[error("room version {0} is not supported by this server")]
    UnsupportedVersion(RoomVersionId),
    /// An alias is already taken.
    #[error("room alias {0} is already in use")]
    AliasInUse(String),
    /// Signing or hashing the event failed.
    #[error("could not sign event: {0}")]
    Signing(String),
    /// A stored event is corrupt.
    #[error(transparent)]
    Malformed(#[from] pdu::MalformedPdu),
}

/// Per-room metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomMeta {
    /// The room ID.
    pub room_id: OwnedRoomId,
    /// The room version.
    pub version: RoomVersionId,
    /// Short ID of the current state.
    pub state: u64,
    /// The forward extremities: the `prev_events` of the next event.
    pub extremities: Vec<OwnedEventId>,
    /// Depth of the deepest event.
    pub depth: u64,
    /// Stream position of the newest event.
    pub last_count: u64,
}

/// The room service.
pub struct Rooms {
    globals: Arc<Globals>,
    notifier: Arc<Notifier>,
    /// Short IDs.
    pub short: ShortIds,
    /// State snapshots.
    pub state: StateStore,
    roomid_short: Table<OwnedRoomId, u64>,
    meta: Table<u64, Json<RoomMeta>>,
    pdus: Table<u64, Json<StoredPdu>>,
    timeline: Table<(u64, u64), u64>,
    /// Every event of every room by stream position, for consumers that follow the whole stream
    /// (application service transactions).
    stream: Table<u64, u64>,
    txns: Table<(String, String, String), OwnedEventId>,
    relations: Table<(u64, u64), u64>,
    membership: membership::MembershipIndex,
    /// Room aliases and the public room directory.
    pub aliases: alias::Aliases,
    room_locks: Mutex<HashMap<OwnedRoomId, Arc<Mutex<()>>>>,
    event_hooks: parking_lot::RwLock<Vec<Arc<dyn hook::EventHook>>>,
    pdu_cache: Mutex<LruCache<u64, Arc<PduEvent>>>,
    meta_cache: Mutex<HashMap<OwnedRoomId, (u64, RoomMeta)>>,
    joined_cache: Mutex<LruCache<OwnedRoomId, Arc<Vec<ruma::OwnedUserId>>>>,
    membership_generation: std::sync::atomic::AtomicU64,
}

impl Rooms {
    /// Opens the room service.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<Globals>,
        notifier: Arc<Notifier>,
        state_cache_entries: usize,
        pdu_cache_entries: usize,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            short: ShortIds::new(db, globals.clone())?,
            state: StateStore::new(db, globals.clone(), state_cache_entries)?,
            roomid_short: db.table("roomid_shortroomid")?,
            meta: db.table("shortroomid_meta")?,
            pdus: db.table("shorteventid_pdu")?,
            timeline: db.table("roomcount_shorteventid")?,
            stream: db.table("count_shorteventid")?,
            txns: db.table("txn_eventid")?,
            relations: db.table("relatesto_shorteventid")?,
            membership: membership::MembershipIndex::new(db)?,
            aliases: alias::Aliases::new(db)?,
            room_locks: Mutex::new(HashMap::new()),
            event_hooks: parking_lot::RwLock::new(Vec::new()),
            pdu_cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(pdu_cache_entries).unwrap_or(NonZeroUsize::MIN),
            )),
            meta_cache: Mutex::new(HashMap::new()),
            joined_cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(JOINED_CACHE_ROOMS).unwrap_or(NonZeroUsize::MIN),
            )),
            membership_generation: std::sync::atomic::AtomicU64::new(0),
            globals,
            notifier,
        })
    }

    /// The short ID of a room.
    pub fn shortroomid(&self, room_id: &RoomId) -> Result<Option<u64>, StorageError> {
        if let Some((short, _)) = self.meta_cache.lock().get(room_id) {
            return Ok(Some(*short));
        }
        self.roomid_short.get(&room_id.to_owned())
    }

    /// The metadata of a room, if this server knows it.
    pub fn meta(&self, room_id: &RoomId) -> Result<Option<(u64, RoomMeta)>, StorageError> {
        if let Some(hit) = self.meta_cache.lock().get(room_id) {
            return Ok(Some(hit.clone()));
        }
        let Some(short) = self.roomid_short.get(&room_id.to_owned())? else { return Ok(None) };
        let Some(Json(meta)) = self.meta.get(&short)? else { return Ok(None) };
        self.meta_cache.lock().insert(room_id.to_owned(), (short, meta.clone()));
        Ok(Some((short, meta)))
    }

    /// The metadata of a room, or [`RoomError::UnknownRoom`].
    pub fn require_meta(&self, room_id: &RoomId) -> Result<(u64, RoomMeta), RoomError> {
        self.meta(room_id)?.ok_or_else(|| RoomError::UnknownRoom(room_id.to_owned()))
    }

    /// Whether the room exists here.
    pub fn exists(&self, room_id: &RoomId) -> Result<bool, StorageError> {
        Ok(self.shortroomid(room_id)?.is_some())
    }

    /// Loads an event by short ID.
    pub fn pdu_by_short(&self, short: u64) -> Result<Option<Arc<PduEvent>>, RoomError> {
        if let Some(pdu) = self.pdu_cache.lock().get(&short) {
            return Ok(Some(pdu.clone()));
        }
        let Some(Json(stored)) = self.pdus.get(&short)? else { return Ok(None) };
        let pdu = PduEvent::from_stored(stored)?;
        self.pdu_cache.lock().put(short, pdu.clone());
        Ok(Some(pdu))
    }

    /// Loads an event by ID.
    pub fn pdu(&self, event_id: &OwnedEventId) -> Result<Option<Arc<PduEvent>>, RoomError> {
        match self.short.shorteventid(event_id)? {
            Some(short) => self.pdu_by_short(short),
            None => Ok(None),
        }
    }

    /// The full state map of a snapshot.
    pub fn state_map(&self, shortstatehash: u64) -> Result<Arc<StateMap>, StorageError> {
        self.state.load(shortstatehash)
    }

    /// One state event of a snapshot.
    pub fn state_event(
        &self,
        shortstatehash: u64,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Arc<PduEvent>>, RoomError> {
        let Some(statekey) = self.short.shortstatekey(kind, state_key)? else { return Ok(None) };
        let state = self.state.load(shortstatehash)?;
        match state.get(&statekey) {
            Some(short) => self.pdu_by_short(*short),
            None => Ok(None),
        }
    }

    /// One event of the current state of a room.
    pub fn current_state_event(
        &self,
        room_id: &RoomId,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Arc<PduEvent>>, RoomError> {
        let Some((_, meta)) = self.meta(room_id)? else { return Ok(None) };
        self.state_event(meta.state, kind, state_key)
    }

    /// All events of a snapshot.
    pub fn state_events(&self, shortstatehash: u64) -> Result<Vec<Arc<PduEvent>>, RoomError> {
        let state = self.state.load(shortstatehash)?;
        let mut events = Vec::with_capacity(state.len());
        for short in state.values() {
            if let Some(pdu) = self.pdu_by_short(*short)? {
                events.push(pdu);
            }
        }
        Ok(events)
    }

    /// The current membership of a user in a room.
    pub fn membership(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
    ) -> Result<Option<MembershipEntry>, StorageError> {
        self.membership.get(user_id, room_id)
    }

    /// Whether a user is joined to a room.
    pub fn is_joined(&self, room_id: &RoomId, user_id: &UserId) -> Result<bool, StorageError> {
        Ok(
            matches!(self.membership(room_id, user_id)?, Some(m) if m.membership == MembershipState::Join),
        )
    }

    /// The user's rooms with their membership.
    pub fn rooms_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<(OwnedRoomId, MembershipEntry)>, StorageError> {
        self.membership.rooms_of(user_id)
    }

    /// The members of a room with their membership.
    pub fn members(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<(ruma::OwnedUserId, MembershipEntry)>, StorageError> {
        self.membership.members_of(room_id)
    }

    /// The joined members of a room. Every event asks (to wake the members' syncs, to evaluate
    /// their push rules), so the list is cached per room and dropped at each membership change.
    pub fn joined_members(&self, room_id: &RoomId) -> Result<Vec<ruma::OwnedUserId>, StorageError> {
        if let Some(hit) = self.joined_cache.lock().get(room_id) {
            return Ok(hit.as_ref().clone());
        }
        // A membership change while the index is read makes the result possibly stale: it is
        // then not cached (the writer bumps the generation after its write, then drops the entry).
        let generation = self.membership_generation.load(std::sync::atomic::Ordering::SeqCst);
        let joined: Vec<ruma::OwnedUserId> = self
            .members(room_id)?
            .into_iter()
            .filter(|(_, m)| m.membership == MembershipState::Join)
            .map(|(u, _)| u)
            .collect();
        let mut cache = self.joined_cache.lock();
        if self.membership_generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            cache.put(room_id.to_owned(), Arc::new(joined.clone()));
        }
        Ok(joined)
    }

    /// Drops a room's cached joined members after a membership change was written.
    pub(super) fn membership_changed(&self, room_id: &RoomId) {
        self.membership_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.joined_cache.lock().pop(room_id);
    }

    /// Forgets a room for a user (after leaving).
    pub fn forget(&self, room_id: &RoomId, user_id: &UserId) -> Result<(), StorageError> {
        self.membership.forget(user_id, room_id)
    }

    fn room_lock(&self, room_id: &RoomId) -> Arc<Mutex<()>> {
        self.room_locks.lock().entry(room_id.to_owned()).or_default().clone()
    }
}
