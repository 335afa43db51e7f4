//! Server-side key backups: versions (an algorithm and its public auth data) and, per version,
//! the encrypted room keys clients store there.
//!
//! Each version keeps a key `count` and an `etag` that changes whenever its keys change. A
//! session key is only replaced by a better one, by the spec's rules: a verified key beats an
//! unverified one, then a lower `first_message_index` wins, then a lower `forwarded_count`.
//! Deleted versions stay as tombstones, so deleting twice succeeds and numbers are not reused.

use std::{cmp::Ordering, collections::BTreeMap, sync::Arc};

use parking_lot::Mutex;
use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, UserId,
    api::client::backup::{BackupAlgorithm, KeyBackupData},
    serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{super::rooms::pdu::to_raw, KeyError};
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// A stored backup version.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Version {
    /// `{ "algorithm": ..., "auth_data": ... }` as the client sent it.
    algorithm: Value,
    etag: u64,
    count: u64,
    deleted: bool,
}

/// What clients see of a backup version.
#[derive(Debug)]
pub struct BackupInfo {
    /// The version.
    pub version: String,
    /// `{ "algorithm": ..., "auth_data": ... }`.
    pub algorithm: Raw<BackupAlgorithm>,
    /// The number of stored keys.
    pub count: u64,
    /// Changes whenever the stored keys change.
    pub etag: String,
}

/// Backed-up session keys, by room and session ID.
pub type BackedUpKeys = BTreeMap<OwnedRoomId, BTreeMap<String, Raw<KeyBackupData>>>;

/// Which keys of a version an operation concerns.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every key of the version.
    All,
    /// The keys of one room.
    Room(&'a RoomId),
    /// One session of one room.
    Session(&'a RoomId, &'a str),
}

/// The backup store.
pub struct Backups {
    versions: Table<(OwnedUserId, u64), Json<Version>>,
    keys: Table<((OwnedUserId, u64), OwnedRoomId, String), Json<Value>>,
    lock: Mutex<()>,
}

fn unknown_version() -> KeyError {
    KeyError::NotFound("unknown backup version".into())
}

impl Backups {
    /// Opens the store.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self {
            versions: db.table("userversion_backup")?,
            keys: db.table("userversionroomsession_backupkey")?,
            lock: Mutex::new(()),
        })
    }

    /// Creates a new version, which becomes the current one.
    pub fn create(
        &self,
        user: &UserId,
        algorithm: &Raw<BackupAlgorithm>,
    ) -> Result<String, KeyError> {
        let algorithm = parse_algorithm(algorithm)?;
        let _guard = self.lock.lock();
        let last = self.versions.scan_prefix_rev(&user.to_owned())?.next().transpose()?;
        let number = last.map_or(1, |((_, n), _)| n + 1);
        let version = Version { algorithm, etag: 0, count: 0, deleted: false };
        self.versions.put(&(user.to_owned(), number), &Json(version))?;
        Ok(number.to_string())
    }

    /// The latest live version.
    fn current(&self, user: &UserId) -> Result<Option<(u64, Version)>, StorageError> {
        for entry in self.versions.scan_prefix_rev(&user.to_owned())? {
            let ((_, number), Json(version)) = entry?;
            if !version.deleted {
                return Ok(Some((number, version)));
            }
        }
        Ok(None)
    }

    /// A live version by its number.
    fn live(&self, user: &UserId, version: &str) -> Result<(u64, Version), KeyError> {
        let number: u64 = version.parse().map_err(|_| unknown_version())?;
        match self.versions.get(&(user.to_owned(), number))? {
            Some(Json(v)) if !v.deleted => Ok((number, v)),
            _ => Err(unknown_version()),
        }
    }

    /// One version, or the current one when `version` is `None`.
    pub fn info(&self, user: &UserId, version: Option<&str>) -> Result<BackupInfo, KeyError> {
        let (number, v) = match version {
            Some(version) => self.live(user, version)?,
            None => self
                .current(user)?
                .ok_or_else(|| KeyError::NotFound("no key backup exists".into()))?,
        };
        Ok(BackupInfo {
            version: number.to_string(),
            algorithm: to_raw(&v.algorithm),
            count: v.count,
            etag: v.etag.to_string(),
        })
    }

    /// Replaces the auth data of a version; its algorithm cannot change.
    pub fn update(
        &self,
        user: &UserId,
        version: &str,
        algorithm: &Raw<BackupAlgorithm>,
    ) -> Result<(), KeyError> {
        let algorithm = parse_algorithm(algorithm)?;
        let _guard = self.lock.lock();
        let (number, mut v) = self.live(user, version)?;
        if v.algorithm.get("algorithm") != algorithm.get("algorithm") {
            return Err(KeyError::InvalidParam(
                "the algorithm of a backup version cannot change".into(),
            ));
        }
        v.algorithm = algorithm;
        self.versions.put(&(user.to_owned(), number), &Json(v))?;
        Ok(())
    }

    /// Deletes a version and its keys. Deleting an already deleted version succeeds.
    pub fn delete_version(&self, user: &UserId, version: &str) -> Result<(), KeyError> {
        let number: u64 = version.parse().map_err(|_| unknown_version())?;
        let _guard = self.lock.lock();
        let Some(Json(mut v)) = self.versions.get(&(user.to_owned(), number))? else {
            return Err(unknown_version());
        };
        if v.deleted {
            return Ok(());
        }
        let mut batch = Batch::default();
        for entry in self.keys.scan_prefix(&(user.to_owned(), number))? {
            let (key, _) = entry?;
            batch.delete(&self.keys, &key);
        }
        v.deleted = true;
        v.count = 0;
        batch.put(&self.versions, &(user.to_owned(), number), &Json(v));
        self.versions.db().write(batch)?;
        Ok(())
    }

    /// Stores session keys in the current version, each replacing a stored one only if it is
    /// better. Returns the new etag and count.
    pub fn put_keys(
        &self,
        user: &UserId,
        version: &str,
        keys: Vec<(OwnedRoomId, String, &Raw<KeyBackupData>)>,
    ) -> Result<(String, u64), KeyError> {
        let _guard = self.lock.lock();
        let current = self.current(user)?;
        let (number, mut v) = match current {
            Some((number, v)) if number.to_string() == version => (number, v),
            Some((number, _)) => {
                return Err(KeyError::WrongBackupVersion { current: Some(number.to_string()) });
            }
            None => return Err(unknown_version()),
        };
        let mut batch = Batch::default();
        let mut changed = false;
        for (room, session, raw) in keys {
            let new: KeyBackupData = raw.deserialize().map_err(|e| {
                KeyError::InvalidParam(format!("invalid key backup data for {session}: {e}"))
            })?;
            let value: Value = serde_json::from_str(raw.json().get())
                .map_err(|e| KeyError::InvalidParam(format!("invalid key backup data: {e}")))?;
            let key = ((user.to_owned(), number), room, session);
            match self.keys.get(&key)? {
                None => v.count += 1,
                Some(Json(old)) => {
                    let old: KeyBackupData = match serde_json::from_value(old) {
                        Ok(old) => old,
                        Err(_) => new.clone(),
                    };
                    if !is_better(&new, &old) {
                        continue;
                    }
                }
            }
            batch.put(&self.keys, &key, &Json(value));
            changed = true;
        }
        if changed {
            v.etag += 1;
            batch.put(&self.versions, &(user.to_owned(), number), &Json(v.clone()));
            self.versions.db().write(batch)?;
        }
        Ok((v.etag.to_string(), v.count))
    }

    /// The stored keys of a live version within `scope`.
    pub fn get_keys(
        &self,
        user: &UserId,
        version: &str,
        scope: Scope<'_>,
    ) -> Result<BackedUpKeys, KeyError> {
        let (number, _) = self.live(user, version)?;
        let mut out = BackedUpKeys::new();
        for entry in self.scan(user, number, scope)? {
            let ((_, room, session), value) = entry;
            out.entry(room).or_default().insert(session, to_raw(&value));
        }
        Ok(out)
    }

    /// Deletes the keys of a live version within `scope`. Returns the new etag and count.
    pub fn delete_keys(
        &self,
        user: &UserId,
        version: &str,
        scope: Scope<'_>,
    ) -> Result<(String, u64), KeyError> {
        let _guard = self.lock.lock();
        let (number, mut v) = self.live(user, version)?;
        let found = self.scan(user, number, scope)?;
        if found.is_empty() {
            return Ok((v.etag.to_string(), v.count));
        }
        let mut batch = Batch::default();
        for (key, _) in &found {
            batch.delete(&self.keys, key);
        }
        v.count = v.count.saturating_sub(found.len() as u64);
        v.etag += 1;
        batch.put(&self.versions, &(user.to_owned(), number), &Json(v.clone()));
        self.versions.db().write(batch)?;
        Ok((v.etag.to_string(), v.count))
    }

    #[allow(clippy::type_complexity, reason = "a key and value of the keys table")]
    fn scan(
        &self,
        user: &UserId,
        number: u64,
        scope: Scope<'_>,
    ) -> Result<Vec<(((OwnedUserId, u64), OwnedRoomId, String), Value)>, StorageError> {
        let version = (user.to_owned(), number);
        let entries: Vec<_> = match scope {
            Scope::All => self.keys.scan_prefix(&version)?.collect(),
            Scope::Room(room) => self.keys.scan_prefix(&(version, room.to_owned()))?.collect(),
            Scope::Session(room, session) => {
                let key = (version, room.to_owned(), session.to_owned());
                return Ok(self.keys.get(&key)?.map(|Json(v)| (key, v)).into_iter().collect());
            }
        };
        entries.into_iter().map(|res| res.map(|(k, Json(v))| (k, v))).collect()
    }
}

/// The algorithm and auth data as a JSON object, after checking they parse.
fn parse_algorithm(raw: &Raw<BackupAlgorithm>) -> Result<Value, KeyError> {
    raw.deserialize()
        .map_err(|e| KeyError::InvalidParam(format!("invalid backup algorithm: {e}")))?;
    let value: Value = serde_json::from_str(raw.json().get())
        .map_err(|e| KeyError::InvalidParam(format!("invalid backup algorithm: {e}")))?;
    let (Some(algorithm), Some(auth_data)) = (value.get("algorithm"), value.get("auth_data"))
    else {
        return Err(KeyError::MissingParam("algorithm and auth_data are required".into()));
    };
    Ok(serde_json::json!({ "algorithm": algorithm, "auth_data": auth_data }))
}

/// Whether `new` should replace `old` under the spec's rules.
fn is_better(new: &KeyBackupData, old: &KeyBackupData) -> bool {
    match new.is_verified.cmp(&old.is_verified) {
        Ordering::Greater => return true,
        Ordering::Less => return false,
        Ordering::Equal => {}
    }
    match new.first_message_index.cmp(&old.first_message_index) {
        Ordering::Less => return true,
        Ordering::Greater => return false,
        Ordering::Equal => {}
    }
    new.forwarded_count < old.forwarded_count
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(verified: bool, index: u32, forwarded: u32) -> KeyBackupData {
        serde_json::from_value(json!({
            "first_message_index": index,
            "forwarded_count": forwarded,
            "is_verified": verified,
            "session_data": { "ephemeral": "AAAA", "ciphertext": "AAAA", "mac": "AAAA" },
        }))
        .expect("key backup data")
    }

    #[test]
    fn replacement_follows_the_spec() {
        assert!(is_better(&data(true, 5, 5), &data(false, 0, 0)));
        assert!(!is_better(&data(false, 0, 0), &data(true, 5, 5)));
        assert!(is_better(&data(false, 1, 9), &data(false, 2, 0)));
        assert!(!is_better(&data(false, 3, 0), &data(false, 2, 9)));
        assert!(is_better(&data(true, 2, 0), &data(true, 2, 1)));
        assert!(!is_better(&data(true, 2, 1), &data(true, 2, 1)));
    }
}
