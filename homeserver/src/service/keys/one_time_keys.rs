//! One-time keys and fallback keys: uploaded by a device, claimed by others to start an Olm
//! session. A one-time key is handed out at most once: claims take the service lock and delete
//! the key in the same critical section. When a device has none left, its fallback key is
//! handed out (as often as needed) and reported used until the device uploads a new one.

use std::collections::BTreeMap;

use ruma::{
    DeviceId, OneTimeKeyAlgorithm, OwnedDeviceId, OwnedOneTimeKeyId, OwnedUserId, UInt, UserId,
    encryption::OneTimeKey, serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{super::rooms::pdu::to_raw, KeyError, Keys, verify};
use crate::storage::{Batch, Json, StorageError};

/// A stored fallback key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FallbackKey {
    /// The full key ID, `<algorithm>:<name>`.
    pub key_id: String,
    /// The key object as uploaded.
    pub key: Value,
    /// Whether it was handed out since it was uploaded.
    pub used: bool,
}

/// Keys claimed for one device.
pub type Claimed = BTreeMap<OwnedOneTimeKeyId, Raw<OneTimeKey>>;

/// One-time or fallback keys as a device uploads them.
pub type UploadedKeys = BTreeMap<OwnedOneTimeKeyId, Raw<OneTimeKey>>;

/// Checks uploaded one-time or fallback keys: each parses, and signed keys carry a valid
/// signature by the device's ed25519 key `signing_key`, when it is known.
pub(super) fn check_one_time_keys<'a>(
    user: &UserId,
    device: &DeviceId,
    signing_key: Option<&str>,
    keys: &'a UploadedKeys,
) -> Result<Vec<(&'a OwnedOneTimeKeyId, Value)>, KeyError> {
    let key_id = format!("ed25519:{device}");
    let mut out = Vec::with_capacity(keys.len());
    for (id, raw) in keys {
        let invalid = |e: serde_json::Error| {
            KeyError::InvalidParam(format!("invalid one-time key {id}: {e}"))
        };
        raw.deserialize().map_err(invalid)?;
        let value: Value = serde_json::from_str(raw.json().get()).map_err(invalid)?;
        if let (Some(public), true) = (signing_key, value.is_object()) {
            verify::check_signature(&value, user, &key_id, public)?;
        }
        out.push((id, value));
    }
    Ok(out)
}

impl Keys {
    /// Queues checked one-time keys and fallback keys. A one-time key ID already stored with
    /// other content is refused; a new fallback key replaces the old one and is unused.
    pub(super) fn queue_one_time_keys(
        &self,
        batch: &mut Batch,
        user: &UserId,
        device: &DeviceId,
        one_time: Vec<(&OwnedOneTimeKeyId, Value)>,
        fallback: Vec<(&OwnedOneTimeKeyId, Value)>,
    ) -> Result<(), KeyError> {
        for (id, value) in one_time {
            let key =
                ((user.to_owned(), device.to_owned()), id.algorithm().to_string(), id.to_string());
            match self.one_time_keys.get(&key)? {
                Some(Json(old)) if old == value => {}
                Some(_) => {
                    return Err(KeyError::InvalidParam(format!(
                        "one-time key {id} already exists with different content"
                    )));
                }
                None => batch.put(&self.one_time_keys, &key, &Json(value)),
            }
        }
        for (id, value) in fallback {
            let key = (user.to_owned(), device.to_owned(), id.algorithm().to_string());
            let unchanged = matches!(
                self.fallback_keys.get(&key)?,
                Some(Json(old)) if old.key_id == id.as_str() && old.key == value
            );
            if !unchanged {
                let entry = FallbackKey { key_id: id.to_string(), key: value, used: false };
                batch.put(&self.fallback_keys, &key, &Json(entry));
            }
        }
        Ok(())
    }

    /// The number of unclaimed one-time keys of a device, per algorithm. `signed_curve25519` is
    /// always present, so clients know when to upload more.
    pub fn one_time_key_counts(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<BTreeMap<OneTimeKeyAlgorithm, UInt>, StorageError> {
        let mut counts: BTreeMap<OneTimeKeyAlgorithm, u64> = BTreeMap::new();
        counts.insert(OneTimeKeyAlgorithm::SignedCurve25519, 0);
        for entry in self.one_time_keys.scan_prefix(&(user.to_owned(), device.to_owned()))? {
            let ((_, algorithm, _), _) = entry?;
            *counts.entry(OneTimeKeyAlgorithm::from(algorithm.as_str())).or_default() += 1;
        }
        Ok(counts.into_iter().map(|(algorithm, n)| (algorithm, UInt::new_saturating(n))).collect())
    }

    /// The algorithms for which the device has a fallback key not handed out yet.
    pub fn unused_fallback_key_types(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Vec<OneTimeKeyAlgorithm>, StorageError> {
        let mut out = Vec::new();
        for entry in self.fallback_keys.scan_prefix(&(user.to_owned(), device.to_owned()))? {
            let ((_, _, algorithm), Json(key)) = entry?;
            if !key.used {
                out.push(OneTimeKeyAlgorithm::from(algorithm.as_str()));
            }
        }
        Ok(out)
    }

    /// Claims one key per requested device: a one-time key, deleted as it is handed out, else
    /// the fallback key. Devices with neither are left out.
    pub fn claim(
        &self,
        wanted: &[(OwnedUserId, OwnedDeviceId, OneTimeKeyAlgorithm)],
    ) -> Result<BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Claimed>>, StorageError> {
        let mut out: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Claimed>> = BTreeMap::new();
        // Held while each claimed key is read and deleted on disk: no other claim can see it.
        let _guard = self.lock.lock();
        for (user, device, algorithm) in wanted {
            let Some((id, value)) = self.claim_one(user, device, algorithm)? else { continue };
            let Ok(id) = OwnedOneTimeKeyId::try_from(id.as_str()) else {
                tracing::warn!(%user, %device, key_id = %id, "stored one-time key ID is invalid");
                continue;
            };
            out.entry(user.clone())
                .or_default()
                .entry(device.clone())
                .or_default()
                .insert(id, to_raw(&value));
        }
        Ok(out)
    }

    /// Takes one key of a device; the caller holds the lock.
    fn claim_one(
        &self,
        user: &OwnedUserId,
        device: &OwnedDeviceId,
        algorithm: &OneTimeKeyAlgorithm,
    ) -> Result<Option<(String, Value)>, StorageError> {
        let prefix = ((user.clone(), device.clone()), algorithm.to_string());
        let first = self.one_time_keys.scan_prefix(&prefix)?.next().transpose()?;
        if let Some((key, Json(value))) = first {
            self.one_time_keys.remove(&key)?;
            return Ok(Some((key.2, value)));
        }
        let key = (user.clone(), device.clone(), algorithm.to_string());
        let Some(Json(mut fallback)) = self.fallback_keys.get(&key)? else { return Ok(None) };
        if !fallback.used {
            fallback.used = true;
            self.fallback_keys.put(&key, &Json(fallback.clone()))?;
        }
        Ok(Some((fallback.key_id, fallback.key)))
    }
}
