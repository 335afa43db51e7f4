//! Per-connection state: what a sliding sync client already has, kept per (user, device,
//! `conn_id`) in memory and in RocksDB, so that a reconnect after a restart is incremental.
//!
//! A connection keeps the state after its last response (`current`) and the one before
//! (`previous`): a client whose last response was lost retries with the older `pos`, and gets a
//! correct answer. Any other `pos` is unknown (`M_UNKNOWN_POS`) and the client starts over.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use parking_lot::Mutex;
use ruma::{DeviceId, OwnedDeviceId, OwnedRoomId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use super::SlidingSyncError;
use crate::service::ephemeral::now_ms;
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column family of the connection states.
pub(super) const TABLE: &str = "userdeviceconn_slidingsync";

/// A connection unused for this long is forgotten: its `pos` answers `M_UNKNOWN_POS`.
const CONNECTION_TTL_MS: u64 = 30 * 24 * 3600 * 1000;

/// Identifies a connection: user, device and the client's `conn_id` (empty when not given).
pub type ConnectionKey = (OwnedUserId, OwnedDeviceId, String);

/// How a room was sent: its `required_state` entries (type, state key, wildcards included) and
/// its timeline limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// `required_state` entries as (event type, state key).
    pub required_state: Vec<(String, String)>,
    /// Timeline events sent when the room is sent from scratch.
    pub timeline_limit: u64,
}

impl RoomConfig {
    /// Whether everything `self` asks for was already sent under `other`.
    pub fn covered_by(&self, other: &RoomConfig) -> bool {
        self.timeline_limit <= other.timeline_limit
            && self.required_state.iter().all(|entry| other.required_state.contains(entry))
    }

    /// Adds what `other` asks for (a room in several lists or also subscribed).
    pub fn merge(&mut self, other: &RoomConfig) {
        self.timeline_limit = self.timeline_limit.max(other.timeline_limit);
        for entry in &other.required_state {
            if !self.required_state.contains(entry) {
                self.required_state.push(entry.clone());
            }
        }
    }
}

/// Whether the client has a room as joined or as an invite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SentAs {
    /// Sent as a joined room.
    Joined,
    /// Sent as an invite (stripped state only).
    Invited,
}

/// What the client has of one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRoom {
    /// The stream position the client has the room up to.
    pub upto: u64,
    /// Index of the room's config in [`ConnState::configs`].
    pub config: u32,
    /// Joined or invited.
    pub sent_as: SentAs,
    /// Notification and highlight counts last sent, so a read receipt that clears them is sent.
    pub counts: (u64, u64),
}

/// The state of a connection after one response.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConnState {
    /// The `pos` of that response.
    pub pos: String,
    /// The stream position the response covered.
    pub upto: u64,
    /// Room configs, interned: rooms share a handful of them.
    pub configs: Vec<RoomConfig>,
    /// Rooms the client has.
    pub rooms: BTreeMap<OwnedRoomId, SentRoom>,
    /// The count of every list last sent.
    pub lists: BTreeMap<String, u64>,
}

impl ConnState {
    /// The config a room was sent with.
    pub fn config_of(&self, sent: &SentRoom) -> Option<&RoomConfig> {
        self.configs.get(sent.config as usize)
    }

    /// The index of `config`, added if new.
    pub fn intern(&mut self, config: &RoomConfig) -> u32 {
        match self.configs.iter().position(|c| c == config) {
            Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
            None => {
                self.configs.push(config.clone());
                u32::try_from(self.configs.len() - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Drops configs no room uses any more and renumbers the rooms.
    pub fn compact(&mut self) {
        let mut used: Vec<u32> = self.rooms.values().map(|r| r.config).collect();
        used.sort_unstable();
        used.dedup();
        if used.len() == self.configs.len() {
            return;
        }
        let configs: Vec<RoomConfig> =
            used.iter().filter_map(|i| self.configs.get(*i as usize).cloned()).collect();
        for room in self.rooms.values_mut() {
            room.config = u32::try_from(used.binary_search(&room.config).unwrap_or(0)).unwrap_or(0);
        }
        self.configs = configs;
    }
}

/// A connection as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Connection {
    /// Responses handed out so far; part of every `pos`, so no two responses share one.
    seq: u64,
    /// When the last response was handed out, in milliseconds since the epoch.
    #[serde(default)]
    last_used_ms: u64,
    current: Option<ConnState>,
    previous: Option<ConnState>,
}

/// The connection store.
pub struct Connections {
    table: Table<ConnectionKey, Json<Connection>>,
    cache: Mutex<HashMap<ConnectionKey, Arc<Connection>>>,
}

impl Connections {
    /// Opens the store.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self { table: db.table(TABLE)?, cache: Mutex::new(HashMap::new()) })
    }

    fn load(&self, key: &ConnectionKey) -> Result<Option<Arc<Connection>>, StorageError> {
        if let Some(conn) = self.cache.lock().get(key) {
            return Ok(Some(conn.clone()));
        }
        let Some(Json(conn)) = self.table.get(key)? else { return Ok(None) };
        let conn = Arc::new(conn);
        self.cache.lock().insert(key.clone(), conn.clone());
        Ok(Some(conn))
    }

    /// The state `pos` stands for: `None` without a `pos` (a new connection), else the state
    /// after the response that handed it out, or [`SlidingSyncError::UnknownPos`].
    pub fn resolve(
        &self,
        key: &ConnectionKey,
        pos: Option<&str>,
    ) -> Result<Option<ConnState>, SlidingSyncError> {
        let Some(pos) = pos else { return Ok(None) };
        let unknown = || SlidingSyncError::UnknownPos(pos.to_owned());
        let conn = self.load(key)?.ok_or_else(unknown)?;
        // 0: stored before connections recorded their last use; kept.
        if conn.last_used_ms > 0 && now_ms().saturating_sub(conn.last_used_ms) > CONNECTION_TTL_MS {
            self.cache.lock().remove(key);
            self.table.remove(key)?;
            return Err(unknown());
        }
        [&conn.current, &conn.previous]
            .into_iter()
            .flatten()
            .find(|state| state.pos == pos)
            .cloned()
            .map(Some)
            .ok_or_else(unknown)
    }

    /// Forgets every connection of a device (logged out or deleted).
    pub fn forget_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StorageError> {
        let prefix = (user.to_owned(), device.to_owned());
        let mut batch = Batch::default();
        for entry in self.table.scan_prefix(&prefix)? {
            let (key, _) = entry?;
            batch.delete(&self.table, &key);
        }
        self.cache.lock().retain(|(u, d, _), _| (u, d) != (&prefix.0, &prefix.1));
        if batch.is_empty() { Ok(()) } else { self.table.db().write(batch) }
    }

    /// Records `next`, computed from `base`, as the connection's state; returns its `pos`.
    pub fn commit(
        &self,
        key: &ConnectionKey,
        base: Option<ConnState>,
        mut next: ConnState,
    ) -> Result<String, StorageError> {
        let seq = self.load(key)?.map_or(0, |c| c.seq) + 1;
        next.pos = format!("{seq}_{}", next.upto);
        next.compact();
        let pos = next.pos.clone();
        let conn = Connection { seq, last_used_ms: now_ms(), current: Some(next), previous: base };
        self.table.put(key, &Json(conn.clone()))?;
        self.cache.lock().insert(key.clone(), Arc::new(conn));
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(limit: u64, entries: &[(&str, &str)]) -> RoomConfig {
        RoomConfig {
            required_state: entries
                .iter()
                .map(|(t, k)| ((*t).to_owned(), (*k).to_owned()))
                .collect(),
            timeline_limit: limit,
        }
    }

    #[test]
    fn a_smaller_config_is_covered() {
        let big = config(20, &[("m.room.name", ""), ("m.room.member", "$LAZY")]);
        let small = config(1, &[("m.room.name", "")]);
        assert!(small.covered_by(&big));
        assert!(!big.covered_by(&small));
        let mut merged = small.clone();
        merged.merge(&big);
        assert!(big.covered_by(&merged));
    }

    #[test]
    fn positions_resolve_from_memory_and_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = crate::storage::OpenOptions { sync_writes: false, cache_bytes: 1 << 20 };
        let db = Db::open(dir.path(), &[TABLE], &options).expect("open");
        let key: ConnectionKey = (
            ruma::owned_user_id!("@a:x"),
            ruma::OwnedDeviceId::from("DEV"),
            "room-list".to_owned(),
        );
        let store = Connections::new(&db).expect("store");
        assert!(store.resolve(&key, None).expect("no pos").is_none());
        let unknown = |r: Result<Option<ConnState>, SlidingSyncError>| {
            matches!(r, Err(SlidingSyncError::UnknownPos(_)))
        };
        assert!(unknown(store.resolve(&key, Some("1_5"))));

        let first = store.commit(&key, None, ConnState { upto: 5, ..Default::default() });
        let first = first.expect("commit");
        let base = store.resolve(&key, Some(&first)).expect("current").expect("state");
        assert_eq!(base.upto, 5);
        let second = store.commit(&key, Some(base), ConnState { upto: 9, ..Default::default() });
        let second = second.expect("commit");
        assert_ne!(first, second);

        // A new process: the store reads the table.
        let reopened = Connections::new(&db).expect("store");
        assert_eq!(reopened.resolve(&key, Some(&second)).expect("ok").map(|s| s.upto), Some(9));
        assert_eq!(reopened.resolve(&key, Some(&first)).expect("ok").map(|s| s.upto), Some(5));
        let base = reopened.resolve(&key, Some(&second)).expect("ok");
        reopened.commit(&key, base, ConnState { upto: 12, ..Default::default() }).expect("commit");
        assert!(unknown(reopened.resolve(&key, Some(&first))));
        reopened.forget_device(&key.0, &key.1).expect("forget");
        assert!(unknown(reopened.resolve(&key, Some(&second))));
        assert!(unknown(Connections::new(&db).expect("store").resolve(&key, Some(&second))));
    }

    #[test]
    fn compact_renumbers_rooms() {
        let mut state = ConnState::default();
        let a = state.intern(&config(1, &[]));
        let b = state.intern(&config(2, &[]));
        assert_eq!((a, b), (0, 1));
        let room = OwnedRoomId::try_from("!a:x").expect("room id");
        state.rooms.insert(
            room.clone(),
            SentRoom { upto: 1, config: b, sent_as: SentAs::Joined, counts: (0, 0) },
        );
        state.compact();
        assert_eq!(state.configs, vec![config(2, &[])]);
        assert_eq!(state.rooms[&room].config, 0);
    }
}
