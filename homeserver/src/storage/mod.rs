//! Storage: RocksDB behind typed tables. The only module that touches RocksDB.
//!
//! Services see [`Table`]s (a column family with a key type and a value type), [`Batch`]es (an
//! atomic write across tables) and nothing else: no raw keys, no RocksDB types.

pub mod codec;
mod durability;
mod table;

use std::{path::Path, sync::Arc};

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options};

pub use self::{
    codec::{CodecError, Json, KeyPart, Value},
    durability::SyncScope,
    table::{Batch, Table},
};

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error (I/O, corruption, lock held by another process).
    #[error("database error: {0}")]
    Engine(#[from] rocksdb::Error),
    /// Stored bytes could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The database directory could not be created.
    #[error("cannot create database directory {0}: {1}")]
    Io(String, std::io::Error),
    /// A column family asked for by a service does not exist.
    #[error("unknown column family {0}")]
    UnknownTable(&'static str),
}

/// Settings for opening the database.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Whether each write batch waits for the WAL fsync.
    pub sync_writes: bool,
    /// Shared block cache size in bytes.
    pub cache_bytes: usize,
}

/// An open database.
pub struct Db {
    inner: rocksdb::DB,
    column_families: Vec<&'static str>,
    write_options: rocksdb::WriteOptions,
    /// For writes inside a [`SyncScope`]: into the WAL file, without waiting for the fsync.
    deferred_options: rocksdb::WriteOptions,
    sync_writes: bool,
    group_sync: durability::GroupSync,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.inner.path()).finish()
    }
}

impl Db {
    /// Opens (or creates) the database at `path` with the given column families.
    pub fn open(
        path: &Path,
        column_families: &[&'static str],
        options: &OpenOptions,
    ) -> Result<Arc<Self>, StorageError> {
        let cache = Cache::new_lru_cache(options.cache_bytes);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(2);
        // One memory budget for the memtables of every table: with ~40 column families, the
        // per-family default (64 MiB each) would let write buffers alone grow past 2 GiB.
        db_options.set_db_write_buffer_size(MEMTABLE_BUDGET);
        db_options.set_keep_log_file_num(5);

        let descriptors = column_families
            .iter()
            .chain(std::iter::once(&"default"))
            .map(|name| ColumnFamilyDescriptor::new(*name, table_options(&cache)))
            .collect::<Vec<_>>();
        let inner = rocksdb::DB::open_cf_descriptors(&db_options, path, descriptors)?;

        let mut write_options = rocksdb::WriteOptions::default();
        write_options.set_sync(options.sync_writes);
        let mut deferred_options = rocksdb::WriteOptions::default();
        deferred_options.set_sync(false);
        Ok(Arc::new(Self {
            inner,
            column_families: column_families.to_vec(),
            write_options,
            deferred_options,
            sync_writes: options.sync_writes,
            group_sync: durability::GroupSync::default(),
        }))
    }

    /// Returns a typed handle on a column family.
    pub fn table<K: KeyPart, V: Value>(
        self: &Arc<Self>,
        name: &'static str,
    ) -> Result<Table<K, V>, StorageError> {
        if self.inner.cf_handle(name).is_none() {
            return Err(StorageError::UnknownTable(name));
        }
        Ok(Table::new(self.clone(), name))
    }

    /// Applies a batch atomically and durably (per `sync_writes`). Inside a [`SyncScope`] the
    /// batch is durable only once the scope is committed.
    pub fn write(&self, batch: Batch) -> Result<(), StorageError> {
        if let Some(name) = batch.missing_table() {
            return Err(StorageError::UnknownTable(name));
        }
        if self.sync_writes && durability::GroupSync::deferring(self) {
            self.inner.write_opt(batch.into_inner(), &self.deferred_options)?;
            self.group_sync.written();
        } else {
            self.inner.write_opt(batch.into_inner(), &self.write_options)?;
        }
        Ok(())
    }

    /// Flushes memtables and the WAL; called at shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush_wal(true)?;
        Ok(())
    }

    /// An integer RocksDB property of the database (e.g. `rocksdb.block-cache-usage`, which the
    /// column families share); `None` if RocksDB does not know it. Cheap: no I/O.
    pub fn int_property(&self, name: &str) -> Option<u64> {
        self.inner.property_int_value(name).ok().flatten()
    }

    /// An integer RocksDB property summed over every column family (e.g.
    /// `rocksdb.estimate-num-keys`, `rocksdb.total-sst-files-size`). Cheap: no I/O.
    pub fn int_property_sum(&self, name: &str) -> Option<u64> {
        let mut total = None;
        for cf in self.column_families.iter().filter_map(|name| self.inner.cf_handle(name)) {
            if let Ok(Some(value)) = self.inner.property_int_value_cf(cf, name) {
                *total.get_or_insert(0u64) += value;
            }
        }
        total
    }

    /// Raw access for the migration runner.
    pub fn migration_store(self: &Arc<Self>) -> MigrationStore {
        MigrationStore(self.clone())
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily, StorageError> {
        self.inner.cf_handle(name).ok_or(StorageError::UnknownTable(name))
    }
}

/// Memory all memtables together may use before RocksDB flushes the largest.
const MEMTABLE_BUDGET: usize = 64 << 20;
/// Size at which one table's memtable is flushed.
const MEMTABLE_BYTES: usize = 8 << 20;

/// Per-table tuning: one shared block cache, bloom filters for point lookups, LZ4 in the upper
/// levels and Zstd at the bottom, where most bytes live.
fn table_options(cache: &Cache) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_bloom_filter(10.0, false);
    block.set_cache_index_and_filter_blocks(true);
    let mut options = Options::default();
    options.set_block_based_table_factory(&block);
    // Small memtables with small arena blocks: most tables receive few writes, and an idle
    // table's memtable should not hold megabytes of resident memory.
    options.set_write_buffer_size(MEMTABLE_BYTES);
    options.set_arena_block_size(MEMTABLE_BYTES / 8);
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_bottommost_compression_type(DBCompressionType::Zstd);
    options
}

/// The database as the migration runner sees it: raw bytes by table name.
pub struct MigrationStore(Arc<Db>);

impl relais_migrations::Store for MigrationStore {
    fn get(
        &self,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, relais_migrations::StoreError> {
        let cf = self.0.cf(table).map_err(|e| relais_migrations::StoreError(e.to_string()))?;
        self.0.inner.get_cf(cf, key).map_err(|e| relais_migrations::StoreError(e.to_string()))
    }

    fn put(
        &mut self,
        table: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), relais_migrations::StoreError> {
        let cf = self.0.cf(table).map_err(|e| relais_migrations::StoreError(e.to_string()))?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put_cf(cf, key, value);
        self.0
            .inner
            .write_opt(batch, &self.0.write_options)
            .map_err(|e| relais_migrations::StoreError(e.to_string()))
    }

    fn is_empty(&self) -> Result<bool, relais_migrations::StoreError> {
        for name in self.0.column_families.iter() {
            let cf = self.0.cf(name).map_err(|e| relais_migrations::StoreError(e.to_string()))?;
            if self.0.inner.iterator_cf(cf, rocksdb::IteratorMode::Start).next().is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
