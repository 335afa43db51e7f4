//! Device keys: the identity keys a device uploads, self-signed with its ed25519 key.

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId, encryption::DeviceKeys, serde::Raw};
use serde_json::Value;

use super::{
    KeyError, Keys,
    one_time_keys::{UploadedKeys, check_one_time_keys},
    verify,
};
use crate::storage::{Batch, Json, StorageError};

/// Checks uploaded device keys: they name the caller's user and device and carry a valid
/// signature by the device's own ed25519 key. Returns the keys to store and that public key.
pub(super) fn check_device_keys(
    user: &UserId,
    device: &DeviceId,
    keys: &Raw<DeviceKeys>,
) -> Result<(Value, String), KeyError> {
    let parsed: DeviceKeys = keys
        .deserialize()
        .map_err(|e| KeyError::InvalidParam(format!("invalid device keys: {e}")))?;
    if parsed.user_id != user {
        return Err(KeyError::InvalidParam(format!(
            "device keys are for {}, not for the caller {user}",
            parsed.user_id
        )));
    }
    if parsed.device_id != device {
        return Err(KeyError::InvalidParam(format!(
            "device keys are for device {}, not for the caller's device {device}",
            parsed.device_id
        )));
    }
    let key_id = format!("ed25519:{device}");
    let public_key = parsed
        .keys
        .iter()
        .find(|(id, _)| id.as_str() == key_id)
        .map(|(_, key)| key.clone())
        .ok_or_else(|| KeyError::InvalidParam(format!("device keys have no {key_id} key")))?;
    let mut value: Value = serde_json::from_str(keys.json().get())
        .map_err(|e| KeyError::InvalidParam(format!("invalid device keys: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        // The server fills `unsigned` itself when it answers queries.
        object.remove("unsigned");
    }
    verify::check_signature(&value, user, &key_id, &public_key)?;
    Ok((value, public_key))
}

impl Keys {
    /// Stores what a device uploads: its device keys, one-time keys and fallback keys. Every
    /// key is checked first (see [`check_device_keys`]; signed one-time keys must be signed by
    /// the device key) and all are written in one batch: on any error nothing is stored.
    pub fn upload_keys(
        &self,
        user: &UserId,
        device: &DeviceId,
        device_keys: Option<&Raw<DeviceKeys>>,
        one_time: &UploadedKeys,
        fallback: &UploadedKeys,
        wake: &[OwnedUserId],
    ) -> Result<(), KeyError> {
        let device_keys =
            device_keys.map(|raw| check_device_keys(user, device, raw)).transpose()?;
        let signing_key = match &device_keys {
            Some((_, public)) => Some(public.clone()),
            None => self.device_signing_key(user, device)?,
        };
        let one_time = check_one_time_keys(user, device, signing_key.as_deref(), one_time)?;
        let fallback = check_one_time_keys(user, device, signing_key.as_deref(), fallback)?;

        let _guard = self.lock.lock();
        let mut batch = Batch::default();
        let changed = match device_keys {
            Some((value, _)) => self.queue_device_keys(&mut batch, user, device, value)?,
            None => false,
        };
        self.queue_one_time_keys(&mut batch, user, device, one_time, fallback)?;
        if changed {
            self.write_with_change(user, batch, wake)?;
        } else if !batch.is_empty() {
            self.device_keys.db().write(batch)?;
        }
        Ok(())
    }

    /// Queues checked device keys; re-uploading identical keys keeps the signatures
    /// cross-signing added to them. Returns whether anything changed.
    fn queue_device_keys(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device: &DeviceId,
        mut value: Value,
    ) -> Result<bool, StorageError> {
        let key = (user.to_owned(), device.to_owned());
        if let Some(Json(old)) = self.device_keys.get(&key)? {
            if verify::same_content(&old, &value) {
                verify::merge_signatures(&mut value, &old);
                if value == old {
                    return Ok(false);
                }
            } else {
                tracing::info!(%user, %device, "device replaced its identity keys");
            }
        }
        batch.put(&self.device_keys, &key, &Json(value));
        Ok(true)
    }

    /// The keys of one device, with the signatures cross-signing added.
    pub fn device_keys(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<Value>, StorageError> {
        Ok(self.device_keys.get(&(user.to_owned(), device.to_owned()))?.map(|Json(v)| v))
    }

    /// The keys of every device of a user that uploaded some.
    pub fn all_device_keys(
        &self,
        user: &UserId,
    ) -> Result<Vec<(OwnedDeviceId, Value)>, StorageError> {
        self.device_keys
            .scan_prefix(&user.to_owned())?
            .map(|res| res.map(|((_, device), Json(v))| (device, v)))
            .collect()
    }

    /// Every user with uploaded device keys, for an application service sender that starts and
    /// must know which of its users take part in end-to-end encryption.
    pub fn users_with_device_keys(&self) -> Result<Vec<OwnedUserId>, StorageError> {
        let mut out: Vec<OwnedUserId> = Vec::new();
        for entry in self.device_keys.scan_all()? {
            let ((user, _), _) = entry?;
            if out.last() != Some(&user) {
                out.push(user);
            }
        }
        Ok(out)
    }

    /// The ed25519 public key of a device, from its uploaded keys.
    pub(super) fn device_signing_key(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Option<String>, StorageError> {
        Ok(self.device_keys(user, device)?.and_then(|keys| {
            keys.get("keys")?.get(format!("ed25519:{device}"))?.as_str().map(str::to_owned)
        }))
    }

    /// Removes everything a deleted device left: its keys, one-time and fallback keys, to-device
    /// inbox and transaction IDs. The users in `wake` see its owner's device list change.
    pub fn remove_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        wake: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        let _guard = self.lock.lock();
        let prefix = (user.to_owned(), device.to_owned());
        let mut batch = Batch::default();
        let had_keys = self.device_keys.contains(&prefix)?;
        batch.delete(&self.device_keys, &prefix);
        for entry in self.one_time_keys.scan_prefix(&prefix)? {
            let (key, _) = entry?;
            batch.delete(&self.one_time_keys, &key);
        }
        for entry in self.fallback_keys.scan_prefix(&prefix)? {
            let (key, _) = entry?;
            batch.delete(&self.fallback_keys, &key);
        }
        for entry in self.to_device.scan_prefix(&prefix)? {
            let (key, _) = entry?;
            batch.delete(&self.to_device, &key);
        }
        for entry in self.to_device_txns.scan_prefix(&prefix)? {
            let (key, ()) = entry?;
            batch.delete(&self.to_device_txns, &key);
        }
        if had_keys {
            self.write_with_change(user, batch, wake)
        } else {
            self.device_keys.db().write(batch)
        }
    }
}
