//! End-to-end encryption, server side: device keys, one-time and fallback keys, cross-signing
//! keys and signatures, to-device messages, server-side key backups, and the device-list change
//! index that `/sync` and `keys/changes` read.
//!
//! The server never holds a private key or a plaintext. It stores what clients upload, checks the
//! signatures it can check (a device's self-signature, cross-signing chains), hands one-time keys
//! out at most once, and tells users when the devices of someone they share a room with change.
//!
//! Every write that changes what another user sees of a device list takes a stream position from
//! [`Globals::next_count`], records it in the change index in the same batch, and wakes the
//! users the caller names (see `device_lists.rs`, which computes who shares a room).

pub mod backup;
mod cross_signing;
mod device_keys;
mod device_lists;
mod one_time_keys;
mod query;
mod to_device;
mod verify;

use std::sync::Arc;

use parking_lot::Mutex;
use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use serde_json::Value;

pub use self::{
    device_lists::DeviceListChanges, one_time_keys::FallbackKey, to_device::ToDeviceMessage,
};
use super::{
    globals::{ChangeKind, Globals},
    notifier::Notifier,
};
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column families owned by the keys service.
pub const COLUMN_FAMILIES: &[&str] = &[
    "userdeviceid_devicekeys",
    "userdevicealgorithmkeyid_onetimekey",
    "userdevicealgorithm_fallbackkey",
    "useridkeytype_crosssigningkey",
    "signertargetkeyid_signatures",
    "userid_keychangecount",
    "viewertarget_keychangecount",
    "userdevicecount_todevice",
    "userdevicetxnid_todevice",
    "userversion_backup",
    "userversionroomsession_backupkey",
];

/// Errors of key operations.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The uploaded keys are malformed or claim another user or device.
    #[error("{0}")]
    InvalidParam(String),
    /// A signature does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// A required key is missing.
    #[error("{0}")]
    MissingParam(String),
    /// The backup version, key or session does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Keys were uploaded to a backup version that is not the current one.
    #[error("wrong backup version")]
    WrongBackupVersion {
        /// The current version, if any.
        current: Option<String>,
    },
}

/// The keys service.
pub struct Keys {
    globals: Arc<Globals>,
    notifier: Arc<Notifier>,
    /// Device keys as uploaded, with the signatures added by the owner's cross-signing keys.
    device_keys: Table<(OwnedUserId, OwnedDeviceId), Json<Value>>,
    /// Unclaimed one-time keys: (user, device), algorithm, full key ID.
    one_time_keys: Table<((OwnedUserId, OwnedDeviceId), String, String), Json<Value>>,
    /// One fallback key per device and algorithm.
    fallback_keys: Table<(OwnedUserId, OwnedDeviceId, String), Json<FallbackKey>>,
    /// `master`, `self_signing` and `user_signing` keys, with the owner's signatures.
    cross_signing: Table<(OwnedUserId, String), Json<Value>>,
    /// Signatures a user made on another user's master key with their user-signing key; only
    /// the signer sees them.
    user_signatures: Table<(OwnedUserId, OwnedUserId, String), Json<Value>>,
    /// The last stream position at which a user's devices or cross-signing keys changed.
    changes: Table<OwnedUserId, u64>,
    /// Changes only one viewer sees (their own signature on another user's key).
    private_changes: Table<(OwnedUserId, OwnedUserId), u64>,
    /// To-device inboxes.
    to_device: Table<(OwnedUserId, OwnedDeviceId, u64), Json<Value>>,
    /// Transaction IDs of sent to-device messages, per sending device.
    to_device_txns: Table<(OwnedUserId, OwnedDeviceId, String), ()>,
    /// Serialises read-modify-write of keys, and one-time key claims: a key is handed out once.
    lock: Mutex<()>,
    /// Server-side key backups.
    pub backups: backup::Backups,
}

impl Keys {
    /// Opens the service.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<Globals>,
        notifier: Arc<Notifier>,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            globals,
            notifier,
            device_keys: db.table("userdeviceid_devicekeys")?,
            one_time_keys: db.table("userdevicealgorithmkeyid_onetimekey")?,
            fallback_keys: db.table("userdevicealgorithm_fallbackkey")?,
            cross_signing: db.table("useridkeytype_crosssigningkey")?,
            user_signatures: db.table("signertargetkeyid_signatures")?,
            changes: db.table("userid_keychangecount")?,
            private_changes: db.table("viewertarget_keychangecount")?,
            to_device: db.table("userdevicecount_todevice")?,
            to_device_txns: db.table("userdevicetxnid_todevice")?,
            lock: Mutex::new(()),
            backups: backup::Backups::new(db)?,
        })
    }

    /// Writes `batch` together with a device-list change of `user` at a new stream position,
    /// then wakes `wake` (the users who share a room with `user`, and `user`).
    fn write_with_change(
        &self,
        user: &UserId,
        mut batch: Batch,
        wake: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        let pending = self.globals.next_count()?;
        self.globals.note_change(ChangeKind::DeviceKeys, pending.count);
        batch.put(&self.changes, &user.to_owned(), &pending.count);
        self.changes.db().write(batch)?;
        let count = pending.count;
        drop(pending);
        self.notifier.notify(wake.iter().map(|u| &**u), count);
        Ok(())
    }

    /// Records that a remote user's devices or cross-signing keys changed (their server sent a
    /// device-list or signing-key update) and wakes `wake`, the users who share a room with them.
    pub fn remote_keys_changed(
        &self,
        user: &UserId,
        wake: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        self.write_with_change(user, Batch::default(), wake)
    }

    /// Writes `batch` together with a change of `target`'s keys that only `viewer` sees.
    fn write_with_private_change(
        &self,
        viewer: &UserId,
        target: &UserId,
        mut batch: Batch,
    ) -> Result<(), StorageError> {
        let pending = self.globals.next_count()?;
        self.globals.note_change(ChangeKind::DeviceKeys, pending.count);
        batch.put(&self.private_changes, &(viewer.to_owned(), target.to_owned()), &pending.count);
        self.changes.db().write(batch)?;
        let count = pending.count;
        drop(pending);
        self.notifier.notify([viewer], count);
        Ok(())
    }

    /// The last stream position at which each of `users`' keys changed (0 if never).
    pub fn last_changes(&self, users: &[OwnedUserId]) -> Result<Vec<u64>, StorageError> {
        Ok(self.changes.multi_get(users)?.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Users whose keys changed after `since` in a way only `viewer` sees.
    pub fn private_changes_since(
        &self,
        viewer: &UserId,
        since: u64,
    ) -> Result<Vec<OwnedUserId>, StorageError> {
        let mut out = Vec::new();
        for entry in self.private_changes.scan_prefix(&viewer.to_owned())? {
            let ((_, target), count) = entry?;
            if count > since {
                out.push(target);
            }
        }
        Ok(out)
    }
}
