//! Typed tables and atomic batches.

use std::{marker::PhantomData, sync::Arc};

use rocksdb::{Direction, IteratorMode, ReadOptions};

use super::{
    Db, StorageError,
    codec::{KeyPart, Value, decode_key, encode_key},
};

/// A column family whose keys are `K` and values `V`.
pub struct Table<K, V> {
    db: Arc<Db>,
    name: &'static str,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self { db: self.db.clone(), name: self.name, _types: PhantomData }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl<K: KeyPart, V: Value> Table<K, V> {
    pub(super) fn new(db: Arc<Db>, name: &'static str) -> Self {
        Self { db, name, _types: PhantomData }
    }

    /// The database this table lives in, to write batches.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Reads one value.
    pub fn get(&self, key: &K) -> Result<Option<V>, StorageError> {
        let cf = self.db.cf(self.name)?;
        match self.db.inner.get_pinned_cf(cf, encode_key(key))? {
            Some(bytes) => Ok(Some(V::decode_value(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &K) -> Result<bool, StorageError> {
        let cf = self.db.cf(self.name)?;
        Ok(self.db.inner.get_pinned_cf(cf, encode_key(key))?.is_some())
    }

    /// Reads many values in one call (RocksDB multi-get), in the order of `keys`.
    pub fn multi_get<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a K>,
    ) -> Result<Vec<Option<V>>, StorageError>
    where
        K: 'a,
    {
        let cf = self.db.cf(self.name)?;
        let encoded: Vec<Vec<u8>> = keys.into_iter().map(encode_key).collect();
        self.db
            .inner
            .batched_multi_get_cf(cf, encoded.iter(), false)
            .into_iter()
            .map(|res| match res? {
                Some(bytes) => Ok(Some(V::decode_value(&bytes)?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes one value on its own (atomic by itself).
    pub fn put(&self, key: &K, value: &V) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.put(self, key, value);
        self.db.write(batch)
    }

    /// Deletes one key on its own.
    pub fn remove(&self, key: &K) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.delete(self, key);
        self.db.write(batch)
    }

    /// Iterates, in key order, over the entries whose key starts with `prefix` (a leading part of
    /// the key tuple).
    pub fn scan_prefix<P: KeyPart>(
        &self,
        prefix: &P,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        self.scan_from_bytes(encode_key(prefix), encode_key(prefix), Direction::Forward)
    }

    /// Iterates over the whole table in key order.
    pub fn scan_all(
        &self,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        self.scan_from_bytes(Vec::new(), Vec::new(), Direction::Forward)
    }

    /// Iterates over the whole table in key order, starting at `from` (inclusive).
    pub fn scan_from(
        &self,
        from: &K,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        self.scan_from_bytes(Vec::new(), encode_key(from), Direction::Forward)
    }

    /// Iterates over keys with `prefix`, starting at `from` (inclusive), forwards or backwards.
    /// Backwards from a key not present starts at the last key below it.
    pub fn scan_prefix_from<P: KeyPart>(
        &self,
        prefix: &P,
        from: &K,
        forward: bool,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        let direction = if forward { Direction::Forward } else { Direction::Reverse };
        self.scan_from_bytes(encode_key(prefix), encode_key(from), direction)
    }

    /// Iterates backwards over all keys with `prefix`, from the last one.
    pub fn scan_prefix_rev<P: KeyPart>(
        &self,
        prefix: &P,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        let prefix = encode_key(prefix);
        let mut upper = prefix.clone();
        upper.extend_from_slice(&[0xFF; 16]);
        self.scan_from_bytes(prefix, upper, Direction::Reverse)
    }

    fn scan_from_bytes(
        &self,
        prefix: Vec<u8>,
        from: Vec<u8>,
        direction: Direction,
    ) -> Result<impl Iterator<Item = Result<(K, V), StorageError>> + '_, StorageError> {
        let cf = self.db.cf(self.name)?;
        let mut read_options = ReadOptions::default();
        read_options.set_prefix_same_as_start(false);
        let iter =
            self.db.inner.iterator_cf_opt(cf, read_options, IteratorMode::From(&from, direction));
        Ok(iter
            .take_while(move |res| match res {
                Ok((key, _)) => key.starts_with(&prefix),
                Err(_) => true,
            })
            .map(|res| {
                let (key, value) = res?;
                Ok((decode_key(&key)?, V::decode_value(&value)?))
            }))
    }
}

/// An atomic write across tables.
#[derive(Default)]
pub struct Batch {
    inner: rocksdb::WriteBatch,
    missing_table: Option<&'static str>,
}

impl Batch {
    /// Queues a write.
    pub fn put<K: KeyPart, V: Value>(&mut self, table: &Table<K, V>, key: &K, value: &V) {
        match table.db.cf(table.name) {
            Ok(cf) => self.inner.put_cf(cf, encode_key(key), value.encode_value()),
            Err(_) => self.missing_table = Some(table.name),
        }
    }

    /// Queues a delete.
    pub fn delete<K: KeyPart, V: Value>(&mut self, table: &Table<K, V>, key: &K) {
        match table.db.cf(table.name) {
            Ok(cf) => self.inner.delete_cf(cf, encode_key(key)),
            Err(_) => self.missing_table = Some(table.name),
        }
    }

    /// Whether nothing was queued.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub(super) fn missing_table(&self) -> Option<&'static str> {
        self.missing_table
    }

    pub(super) fn into_inner(self) -> rocksdb::WriteBatch {
        self.inner
    }
}
