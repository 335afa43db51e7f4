//! Dense u64 "short" IDs for state keys and events, so that state snapshots and indexes hold
//! 8-byte numbers instead of strings.

use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use ruma::{OwnedEventId, events::StateEventType};

use crate::{
    service::globals::Globals,
    storage::{Batch, Db, Json, StorageError, Table},
};

/// Column families owned by short-ID maps.
pub const COLUMN_FAMILIES: &[&str] = &[
    "statekey_shortstatekey",
    "shortstatekey_statekey",
    "eventid_shorteventid",
    "shorteventid_eventid",
];

/// A state key: the event type and the state key string.
pub type StateKey = (StateEventType, String);

/// Short-ID maps with in-memory caches.
pub struct ShortIds {
    globals: Arc<Globals>,
    statekey_short: Table<(String, String), u64>,
    short_statekey: Table<u64, Json<(String, String)>>,
    eventid_short: Table<OwnedEventId, u64>,
    short_eventid: Table<u64, OwnedEventId>,
    statekey_cache: Mutex<LruCache<(String, String), u64>>,
    short_statekey_cache: Mutex<LruCache<u64, Arc<StateKey>>>,
    eventid_cache: Mutex<LruCache<u64, OwnedEventId>>,
    /// Serialises the creation of state-key short IDs, so that two writers seeing the same new
    /// state key at once do not give it two IDs.
    create_lock: Mutex<()>,
}

impl ShortIds {
    /// Opens the maps.
    pub fn new(db: &Arc<Db>, globals: Arc<Globals>) -> Result<Self, StorageError> {
        let cap = std::num::NonZeroUsize::new(100_000).unwrap_or(std::num::NonZeroUsize::MIN);
        Ok(Self {
            globals,
            statekey_short: db.table("statekey_shortstatekey")?,
            short_statekey: db.table("shortstatekey_statekey")?,
            eventid_short: db.table("eventid_shorteventid")?,
            short_eventid: db.table("shorteventid_eventid")?,
            statekey_cache: Mutex::new(LruCache::new(cap)),
            short_statekey_cache: Mutex::new(LruCache::new(cap)),
            eventid_cache: Mutex::new(LruCache::new(cap)),
            create_lock: Mutex::new(()),
        })
    }

    /// The short ID of a state key, if it was ever used.
    pub fn shortstatekey(
        &self,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<u64>, StorageError> {
        let key = (kind.to_string(), state_key.to_owned());
        if let Some(short) = self.statekey_cache.lock().get(&key) {
            return Ok(Some(*short));
        }
        let short = self.statekey_short.get(&key)?;
        if let Some(short) = short {
            self.statekey_cache.lock().put(key, short);
        }
        Ok(short)
    }

    /// The short ID of a state key, allocated (and written at once) if new. State keys are few and
    /// immutable, so writing them outside the caller's batch is harmless.
    pub fn get_or_create_shortstatekey(
        &self,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<u64, StorageError> {
        if let Some(short) = self.shortstatekey(kind, state_key)? {
            return Ok(short);
        }
        let _creating = self.create_lock.lock();
        // Another writer may have created it while this one waited.
        if let Some(short) = self.shortstatekey(kind, state_key)? {
            return Ok(short);
        }
        let key = (kind.to_string(), state_key.to_owned());
        let short = self.globals.next_short_id()?;
        let mut batch = Batch::default();
        batch.put(&self.statekey_short, &key, &short);
        batch.put(&self.short_statekey, &short, &Json(key.clone()));
        self.statekey_short_db_write(batch)?;
        self.statekey_cache.lock().put(key, short);
        Ok(short)
    }

    fn statekey_short_db_write(&self, batch: Batch) -> Result<(), StorageError> {
        self.statekey_short.db().write(batch)
    }

    /// The state key of a short ID.
    pub fn statekey(&self, short: u64) -> Result<Option<Arc<StateKey>>, StorageError> {
        if let Some(key) = self.short_statekey_cache.lock().get(&short) {
            return Ok(Some(key.clone()));
        }
        let Some(Json((kind, state_key))) = self.short_statekey.get(&short)? else {
            return Ok(None);
        };
        let key = Arc::new((StateEventType::from(kind), state_key));
        self.short_statekey_cache.lock().put(short, key.clone());
        Ok(Some(key))
    }

    /// The short ID of a stored event.
    pub fn shorteventid(&self, event_id: &OwnedEventId) -> Result<Option<u64>, StorageError> {
        self.eventid_short.get(event_id)
    }

    /// The event ID of a short ID.
    pub fn eventid(&self, short: u64) -> Result<Option<OwnedEventId>, StorageError> {
        if let Some(id) = self.eventid_cache.lock().get(&short) {
            return Ok(Some(id.clone()));
        }
        let id = self.short_eventid.get(&short)?;
        if let Some(id) = &id {
            self.eventid_cache.lock().put(short, id.clone());
        }
        Ok(id)
    }

    /// Queues the two-way mapping of a new event's short ID.
    pub fn put_event(&self, batch: &mut Batch, event_id: &OwnedEventId, short: u64) {
        batch.put(&self.eventid_short, event_id, &short);
        batch.put(&self.short_eventid, &short, event_id);
    }
}
