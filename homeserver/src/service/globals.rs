//! Server-wide state: the global stream counter and the signing key.
//!
//! The counter orders everything a client syncs. Writers take a position with [`Globals::next_count`]
//! and hold the returned [`PendingCount`] until their batch is written; [`Globals::visible_count`] is
//! the highest position below which nothing is still being written, so a sync never skips an event
//! that a slower writer commits after a faster one.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use parking_lot::Mutex;
use ruma::{OwnedServerName, signatures::Ed25519KeyPair};

use crate::storage::{Db, StorageError, Table};

/// Column families owned by this service.
pub const COLUMN_FAMILIES: &[&str] = &["global"];

/// How many counter values are reserved on disk at a time: a crash skips at most this many
/// positions, and a restart never reuses one that was handed out.
const RESERVE_STEP: u64 = 1_000;
const RESERVED_KEY: &str = "counter_reserved";
const SIGNING_KEY: &str = "signing_key_pkcs8";
const SIGNING_KEY_VERSION: &str = "a_relais";

/// Errors of this service.
#[derive(Debug, thiserror::Error)]
pub enum GlobalsError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored signing key could not be read.
    #[error("the stored signing key is invalid: {0}")]
    SigningKey(String),
}

/// Server-wide state.
pub struct Globals {
    /// This server's name.
    pub server_name: OwnedServerName,
    table: Table<String, Vec<u8>>,
    counter: AtomicU64,
    reserved: Mutex<u64>,
    in_flight: Mutex<BTreeSet<u64>>,
    /// The latest position of each [`ChangeKind`], indexed by the kind.
    last_change: [AtomicU64; 3],
    keypair: Ed25519KeyPair,
    last_create_ts: AtomicU64,
}

impl std::fmt::Debug for Globals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Globals").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Globals {
    /// Loads the counter and signing key, creating the key at first start.
    pub fn new(db: &Arc<Db>, server_name: OwnedServerName) -> Result<Self, GlobalsError> {
        let table: Table<String, Vec<u8>> = db.table("global")?;
        let reserved = match table.get(&RESERVED_KEY.to_owned())? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| GlobalsError::SigningKey("counter is corrupt".into()))?,
            ),
            None => 0,
        };
        let pkcs8 = match table.get(&SIGNING_KEY.to_owned())? {
            Some(key) => key,
            None => {
                let key = Ed25519KeyPair::generate().to_vec();
                table.put(&SIGNING_KEY.to_owned(), &key)?;
                key
            }
        };
        let keypair = Ed25519KeyPair::from_der(&pkcs8, SIGNING_KEY_VERSION.to_owned())
            .map_err(|e| GlobalsError::SigningKey(e.to_string()))?;
        Ok(Self {
            server_name,
            table,
            // Everything up to `reserved` may have been handed out before a crash.
            counter: AtomicU64::new(reserved),
            reserved: Mutex::new(reserved),
            in_flight: Mutex::new(BTreeSet::new()),
            // Changes before this start are not tracked in memory: count them as recent, so that
            // a client syncing from before the restart gets the full computation.
            last_change: [
                AtomicU64::new(reserved),
                AtomicU64::new(reserved),
                AtomicU64::new(reserved),
            ],
            keypair,
            last_create_ts: AtomicU64::new(0),
        })
    }

    /// The signing key.
    pub fn keypair(&self) -> &Ed25519KeyPair {
        &self.keypair
    }

    /// Takes the next stream position. It becomes visible to syncs once the guard is dropped,
    /// which the writer does after its batch is written.
    pub fn next_count(&self) -> Result<PendingCount<'_>, StorageError> {
        let mut in_flight = self.in_flight.lock();
        let count = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut reserved = self.reserved.lock();
            if count > *reserved {
                let next = count + RESERVE_STEP;
                self.table.put(&RESERVED_KEY.to_owned(), &next.to_be_bytes().to_vec())?;
                *reserved = next;
            }
        }
        in_flight.insert(count);
        Ok(PendingCount { globals: self, count })
    }

    /// Leaves `n` stream positions unused. A room joined over federation is given such a gap
    /// before its first event here, where the history fetched later (backfill) takes its place:
    /// below every position a member of the room can have seen, so `/sync` never shows it as new.
    pub fn skip_counts(&self, n: u64) -> Result<(), StorageError> {
        let _in_flight = self.in_flight.lock();
        let count = self.counter.fetch_add(n, Ordering::SeqCst) + n;
        let mut reserved = self.reserved.lock();
        if count > *reserved {
            let next = count + RESERVE_STEP;
            self.table.put(&RESERVED_KEY.to_owned(), &next.to_be_bytes().to_vec())?;
            *reserved = next;
        }
        Ok(())
    }

    /// A fresh unique number for short IDs (shares the counter: uniqueness is all that matters).
    pub fn next_short_id(&self) -> Result<u64, StorageError> {
        Ok(self.next_count()?.count)
    }

    /// A timestamp for a new room's create event, strictly greater than the previous one. From
    /// room version 12 the room ID is the create event's hash, so two rooms created by the same
    /// user with the same content in the same millisecond would otherwise get the same ID.
    pub fn next_create_ts(&self, now: u64) -> u64 {
        let previous = self
            .last_create_ts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)))
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Records a change of `kind` at stream position `count`. Call it before the position
    /// becomes visible (while its [`PendingCount`] is held), so that a sync that can see the
    /// position also sees the record.
    pub fn note_change(&self, kind: ChangeKind, count: u64) {
        self.last_change[kind as usize].fetch_max(count, Ordering::SeqCst);
    }

    /// Whether a change of `kind` may have happened after stream position `since` (since this
    /// process started, exactly; before, always yes). Lets `/sync` skip a scan that would find
    /// nothing: most incremental syncs follow a message, not a membership or key change.
    pub fn changed_since(&self, kind: ChangeKind, since: u64) -> bool {
        self.last_change[kind as usize].load(Ordering::SeqCst) > since
    }

    /// The highest stream position such that every position up to it is written.
    pub fn visible_count(&self) -> u64 {
        let in_flight = self.in_flight.lock();
        match in_flight.first() {
            Some(first) => first - 1,
            None => self.counter.load(Ordering::SeqCst),
        }
    }
}

/// Kinds of change that syncs look for with scans, tracked by [`Globals::note_change`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A membership of any user in any room changed (written by the event pipeline).
    Membership = 0,
    /// Someone's device list or cross-signing keys changed, publicly or for one viewer.
    DeviceKeys = 1,
    /// Someone's presence changed.
    Presence = 2,
}

/// A stream position being written; dropping it makes the position visible.
#[derive(Debug)]
pub struct PendingCount<'a> {
    globals: &'a Globals,
    /// The position.
    pub count: u64,
}

impl Drop for PendingCount<'_> {
    fn drop(&mut self) {
        self.globals.in_flight.lock().remove(&self.count);
    }
}
