//! Room state snapshots, stored as deltas.
//!
//! A snapshot maps short state keys to short event IDs. Each snapshot is stored as a diff against a
//! parent snapshot (what was added or replaced, what was removed); every [`MAX_CHAIN`] layers a full
//! copy is stored instead, so rebuilding a snapshot reads a bounded number of rows. Rebuilt
//! snapshots are kept in an LRU cache: the current state of active rooms is nearly always there.

use std::{collections::BTreeMap, num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{
    service::globals::Globals,
    storage::{Batch, Db, Json, StorageError, Table},
};

/// Column families owned by the state store.
pub const COLUMN_FAMILIES: &[&str] = &["shortstatehash_statediff"];

/// Longest chain of diffs before a full copy is stored.
const MAX_CHAIN: u32 = 24;

/// A full state snapshot: short state key -> short event ID.
pub type StateMap = BTreeMap<u64, u64>;

#[derive(Debug, Serialize, Deserialize)]
struct StateDiff {
    parent: Option<u64>,
    depth: u32,
    added: Vec<(u64, u64)>,
    removed: Vec<u64>,
}

/// The state snapshot store.
pub struct StateStore {
    globals: Arc<Globals>,
    diffs: Table<u64, Json<StateDiff>>,
    cache: Mutex<LruCache<u64, (Arc<StateMap>, u32)>>,
}

impl StateStore {
    /// Opens the store with a cache of `cache_entries` full snapshots.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<Globals>,
        cache_entries: usize,
    ) -> Result<Self, StorageError> {
        let cap = NonZeroUsize::new(cache_entries).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            globals,
            diffs: db.table("shortstatehash_statediff")?,
            cache: Mutex::new(LruCache::new(cap)),
        })
    }

    /// The full state of a snapshot (empty for the snapshot 0, "no state").
    pub fn load(&self, shortstatehash: u64) -> Result<Arc<StateMap>, StorageError> {
        Ok(self.load_with_depth(shortstatehash)?.0)
    }

    fn load_with_depth(&self, shortstatehash: u64) -> Result<(Arc<StateMap>, u32), StorageError> {
        if shortstatehash == 0 {
            return Ok((Arc::new(StateMap::new()), 0));
        }
        if let Some(hit) = self.cache.lock().get(&shortstatehash) {
            return Ok(hit.clone());
        }
        // Walk up to the nearest full copy or cached ancestor, then apply diffs downwards.
        let mut chain = Vec::new();
        let mut cursor = Some(shortstatehash);
        let mut base: (Arc<StateMap>, u32) = (Arc::new(StateMap::new()), 0);
        while let Some(hash) = cursor {
            if let Some(hit) = self.cache.lock().get(&hash) {
                base = hit.clone();
                break;
            }
            let Some(Json(diff)) = self.diffs.get(&hash)? else {
                return Err(StorageError::Codec(crate::storage::CodecError::Truncated));
            };
            cursor = diff.parent;
            chain.push(diff);
        }
        let (base_map, _) = base;
        let mut state = Arc::unwrap_or_clone(base_map);
        let mut depth = 0;
        for diff in chain.iter().rev() {
            for removed in &diff.removed {
                state.remove(removed);
            }
            state.extend(diff.added.iter().copied());
            depth = diff.depth;
        }
        let state = Arc::new(state);
        self.cache.lock().put(shortstatehash, (state.clone(), depth));
        Ok((state, depth))
    }

    /// Queues a new snapshot `state`, derived from `parent`, and returns its short ID.
    pub fn save(
        &self,
        batch: &mut Batch,
        parent: u64,
        state: StateMap,
    ) -> Result<u64, StorageError> {
        let (parent_state, parent_depth) = self.load_with_depth(parent)?;
        let diff = if parent == 0 || parent_depth >= MAX_CHAIN {
            StateDiff {
                parent: None,
                depth: 0,
                added: state.iter().map(|(k, v)| (*k, *v)).collect(),
                removed: vec![],
            }
        } else {
            let added = state
                .iter()
                .filter(|(k, v)| parent_state.get(k) != Some(v))
                .map(|(k, v)| (*k, *v))
                .collect();
            let removed = parent_state.keys().filter(|k| !state.contains_key(k)).copied().collect();
            StateDiff { parent: Some(parent), depth: parent_depth + 1, added, removed }
        };
        let hash = self.globals.next_short_id()?;
        let depth = diff.depth;
        batch.put(&self.diffs, &hash, &Json(diff));
        self.cache.lock().put(hash, (Arc::new(state), depth));
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore, Arc<Db>) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfs = COLUMN_FAMILIES.to_vec();
        cfs.extend_from_slice(crate::service::globals::COLUMN_FAMILIES);
        let db = Db::open(
            dir.path(),
            &cfs,
            &crate::storage::OpenOptions { sync_writes: false, cache_bytes: 1 << 20 },
        )
        .unwrap();
        let globals = Arc::new(Globals::new(&db, ruma::server_name!("t.test").to_owned()).unwrap());
        let store = StateStore::new(&db, globals, 2).unwrap();
        (dir, store, db)
    }

    #[test]
    fn long_chains_round_trip_without_cache() {
        let (_dir, store, db) = store();
        let mut parent = 0;
        let mut expected = StateMap::new();
        let mut hashes = Vec::new();
        for i in 0..100u64 {
            expected.insert(i % 17, i);
            if i % 5 == 0 {
                expected.remove(&((i + 3) % 17));
            }
            let mut batch = Batch::default();
            parent = store.save(&mut batch, parent, expected.clone()).unwrap();
            db.write(batch).unwrap();
            hashes.push((parent, expected.clone()));
        }
        // A fresh store has an empty cache: every snapshot is rebuilt from its diffs.
        let fresh = StateStore::new(&db, store.globals.clone(), 2).unwrap();
        for (hash, state) in hashes {
            assert_eq!(*fresh.load(hash).unwrap(), state);
        }
    }
}
