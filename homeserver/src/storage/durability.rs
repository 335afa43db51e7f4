//! Group commit: many writes, one write-ahead-log fsync.
//!
//! With `sync_writes`, each batch used to wait for its own fsync of the WAL. A writer that holds a
//! lock while it waits (the per-room lock of the event pipeline) then serialises every writer of
//! that lock on the disk: one fsync per event. A [`SyncScope`] lets such a writer write without
//! the fsync while it holds its lock (the batch still reaches the WAL file, so a killed process
//! loses nothing), release the lock, and only then wait for an fsync that covers its writes. The
//! fsync is shared: whoever waits first runs it for every write completed before it started, the
//! others wait for it (or for the next one, if their write came too late for it).

use std::{
    cell::Cell,
    marker::PhantomData,
    sync::atomic::{AtomicU64, Ordering},
};

use parking_lot::{Condvar, Mutex};

use super::{Db, StorageError};

thread_local! {
    /// The database of this thread's innermost open [`SyncScope`] (its address; 0 if none): only
    /// writes to that database are deferred, so a scope never waits for another database's fsync.
    static SCOPE: Cell<usize> = const { Cell::new(0) };
    /// The ticket of the last deferred write of this thread's innermost open scope.
    static TICKET: Cell<u64> = const { Cell::new(0) };
}

/// The identity of a database in [`SCOPE`].
fn address(db: &Db) -> usize {
    std::ptr::from_ref(db) as usize
}

/// The shared WAL syncer of a database.
#[derive(Debug, Default)]
pub(super) struct GroupSync {
    /// Tickets of deferred writes, in completion order: a write takes its ticket after RocksDB has
    /// put it in the WAL file, so an fsync that starts after a ticket was taken covers its write.
    written: AtomicU64,
    state: Mutex<SyncState>,
    synced_cond: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// An fsync is running; waiters wait for it instead of starting another.
    syncing: bool,
}

impl GroupSync {
    /// Whether the calling thread is inside a [`SyncScope`] of `db`.
    pub(super) fn deferring(db: &Db) -> bool {
        SCOPE.with(Cell::get) == address(db)
    }

    /// Records a deferred write that has just completed, for the calling thread's scope.
    pub(super) fn written(&self) {
        let ticket = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        TICKET.with(|t| t.set(ticket));
    }

    /// Waits until every deferred write up to `ticket` is on disk, running the fsync itself if
    /// none is running. One fsync covers every write whose ticket was taken before it started.
    fn wait(&self, db: &rocksdb::DB, ticket: u64) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        loop {
            if state.synced >= ticket {
                return Ok(());
            }
            if state.syncing {
                self.synced_cond.wait(&mut state);
                continue;
            }
            state.syncing = true;
            let target = self.written.load(Ordering::SeqCst);
            // The fsync runs without the lock, so that later writers can take their tickets and
            // queue for the next one meanwhile.
            let result = parking_lot::MutexGuard::unlocked(&mut state, || db.flush_wal(true));
            state.syncing = false;
            if result.is_ok() {
                state.synced = state.synced.max(target);
            }
            // Wake everyone: the covered ones return, the others run the next fsync (after an
            // error, each waiter tries again and reports its own failure).
            self.synced_cond.notify_all();
            result?;
        }
    }
}

/// A scope in which this thread's writes to the database are not fsynced one by one: see the
/// module documentation. [`SyncScope::commit`] waits for one shared fsync covering all of them;
/// dropping the scope without committing waits for nothing (the writes will reach the disk with
/// the next fsync, but nobody may be told they are durable).
#[must_use = "commit the scope to wait for the writes to be durable"]
pub struct SyncScope<'a> {
    db: &'a Db,
    /// The enclosing scope's database and ticket, restored when this one ends.
    outer_scope: usize,
    outer_ticket: u64,
    ended: bool,
    /// The scope lives in thread-local state: it must end on the thread that opened it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> SyncScope<'a> {
    pub(super) fn open(db: &'a Db) -> Self {
        let outer_scope = SCOPE.with(|s| s.replace(address(db)));
        let outer_ticket = TICKET.with(|t| t.replace(0));
        Self { db, outer_scope, outer_ticket, ended: false, _not_send: PhantomData }
    }

    /// Ends the scope and returns the ticket of its last deferred write (0 if none). An
    /// enclosing scope of the same database inherits it, so that its own commit covers these
    /// writes too.
    fn end(&mut self) -> u64 {
        self.ended = true;
        SCOPE.with(|s| s.set(self.outer_scope));
        let ticket = TICKET.with(Cell::get);
        let inherited = if self.outer_scope == address(self.db) {
            self.outer_ticket.max(ticket)
        } else {
            self.outer_ticket
        };
        TICKET.with(|t| t.set(inherited));
        ticket
    }

    /// Ends the scope and waits until every write made in it is on disk. Returns at once if
    /// `sync_writes` is off or nothing was written.
    pub fn commit(mut self) -> Result<(), StorageError> {
        let ticket = self.end();
        if ticket == 0 {
            return Ok(());
        }
        self.db.group_sync.wait(&self.db.inner, ticket)
    }
}

impl Drop for SyncScope<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.end();
        }
    }
}

impl Db {
    /// Opens a [`SyncScope`] on the calling thread.
    pub fn defer_sync(&self) -> SyncScope<'_> {
        SyncScope::open(self)
    }

    /// Waits until every write made so far in any [`SyncScope`] is on disk: for a reader that
    /// is about to tell a client that something it found is stored (an idempotent retry finding
    /// the first attempt's event, which may still be waiting for its fsync).
    pub fn wait_deferred_writes(&self) -> Result<(), StorageError> {
        let ticket = self.group_sync.written.load(Ordering::SeqCst);
        if ticket == 0 {
            return Ok(());
        }
        self.group_sync.wait(&self.inner, ticket)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{Batch, OpenOptions};

    fn open(dir: &std::path::Path, sync_writes: bool) -> Arc<Db> {
        Db::open(dir, &["t"], &OpenOptions { sync_writes, cache_bytes: 1 << 20 })
            .expect("open database")
    }

    #[test]
    fn deferred_writes_are_readable_and_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), true);
        let table: crate::storage::Table<u64, u64> = db.table("t").expect("table");
        let scope = db.defer_sync();
        let mut batch = Batch::default();
        batch.put(&table, &1, &10);
        db.write(batch).expect("write");
        table.put(&2, &20).expect("put");
        assert_eq!(TICKET.with(Cell::get), 2);
        assert_eq!(table.get(&1).expect("get"), Some(10));
        scope.commit().expect("commit");
        assert_eq!(db.group_sync.state.lock().synced, 2);
        assert_eq!(SCOPE.with(Cell::get), 0);
        // Outside a scope, writes are synced by RocksDB itself and take no ticket.
        table.put(&3, &30).expect("put");
        assert_eq!(db.group_sync.written.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn nested_scopes_hand_their_writes_to_the_outer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), true);
        let table: crate::storage::Table<u64, u64> = db.table("t").expect("table");
        let outer = db.defer_sync();
        {
            let inner = db.defer_sync();
            table.put(&1, &1).expect("put");
            drop(inner);
        }
        assert_eq!(TICKET.with(Cell::get), 1);
        outer.commit().expect("commit");
        assert_eq!(db.group_sync.state.lock().synced, 1);
    }

    #[test]
    fn concurrent_waiters_share_fsyncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), true);
        let table: crate::storage::Table<u64, u64> = db.table("t").expect("table");
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                let table = table.clone();
                let db = db.clone();
                std::thread::spawn(move || {
                    for j in 0..20u64 {
                        let scope = db.defer_sync();
                        table.put(&(i * 100 + j), &j).expect("put");
                        scope.commit().expect("commit");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("join");
        }
        assert_eq!(db.group_sync.state.lock().synced, 160);
        db.wait_deferred_writes().expect("nothing left to sync");
    }

    #[test]
    fn a_scope_defers_only_its_own_database() {
        let (dir_a, dir_b) =
            (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let (a, b) = (open(dir_a.path(), true), open(dir_b.path(), true));
        let table_b: crate::storage::Table<u64, u64> = b.table("t").expect("table");
        let scope = a.defer_sync();
        // Synced by RocksDB at once: no ticket, and `a`'s commit does not wait for `b`.
        table_b.put(&1, &1).expect("put");
        assert_eq!(b.group_sync.written.load(Ordering::SeqCst), 0);
        assert_eq!(TICKET.with(Cell::get), 0);
        scope.commit().expect("commit");
    }

    #[test]
    fn without_sync_writes_nothing_is_deferred() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(dir.path(), false);
        let table: crate::storage::Table<u64, u64> = db.table("t").expect("table");
        let scope = db.defer_sync();
        table.put(&1, &1).expect("put");
        assert_eq!(TICKET.with(Cell::get), 0);
        scope.commit().expect("commit");
    }
}
