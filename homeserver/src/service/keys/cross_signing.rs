//! Cross-signing: a user's master, self-signing and user-signing keys, and the signatures that
//! tie devices and other users' master keys to them.
//!
//! Signatures on one's own keys (a device signed by the self-signing key, the master key signed
//! by a device) are merged into the stored key and seen by everyone. A signature on another
//! user's master key (by one's user-signing key) is private: only the signer sees it.

use ruma::{
    OwnedUserId, UserId,
    encryption::{CrossSigningKey, KeyUsage},
    serde::Raw,
};
use serde_json::{Value, json, value::RawValue};

use super::{KeyError, Keys, verify};
use crate::storage::{Batch, Json, StorageError};

/// The stored kinds of cross-signing keys.
pub const MASTER: &str = "master";
const SELF_SIGNING: &str = "self_signing";
const USER_SIGNING: &str = "user_signing";

/// Cross-signing keys that passed their checks, ready to store.
#[derive(Debug)]
pub struct CheckedSigningKeys {
    keys: Vec<(&'static str, Value)>,
    /// Whether they replace different keys already stored (which needs user-interactive auth).
    pub replaces_existing: bool,
}

/// A user's cross-signing keys as one viewer sees them.
#[derive(Debug, Default)]
pub struct CrossSigningView {
    /// The master key, with the viewer's own signatures on it.
    pub master: Option<Value>,
    /// The self-signing key.
    pub self_signing: Option<Value>,
    /// The user-signing key, only when the viewer is the owner.
    pub user_signing: Option<Value>,
}

impl Keys {
    /// One stored cross-signing key (`master`, `self_signing` or `user_signing`).
    pub fn cross_signing_key(
        &self,
        user: &UserId,
        kind: &str,
    ) -> Result<Option<Value>, StorageError> {
        Ok(self.cross_signing.get(&(user.to_owned(), kind.to_owned()))?.map(|Json(v)| v))
    }

    /// Checks uploaded cross-signing keys: each names `user` and its usage, holds one ed25519
    /// key, and the self-signing and user-signing keys are signed by the master key (the new one
    /// if given, else the stored one).
    pub fn check_signing_keys(
        &self,
        user: &UserId,
        master: Option<&Raw<CrossSigningKey>>,
        self_signing: Option<&Raw<CrossSigningKey>>,
        user_signing: Option<&Raw<CrossSigningKey>>,
    ) -> Result<CheckedSigningKeys, KeyError> {
        let master = master.map(|raw| parse_key(user, raw, KeyUsage::Master)).transpose()?;
        let master_key = match &master {
            Some(value) => Some(value.clone()),
            None => self.cross_signing_key(user, MASTER)?,
        };
        let mut keys = Vec::new();
        for (kind, raw, usage) in [
            (SELF_SIGNING, self_signing, KeyUsage::SelfSigning),
            (USER_SIGNING, user_signing, KeyUsage::UserSigning),
        ] {
            let Some(raw) = raw else { continue };
            let value = parse_key(user, raw, usage)?;
            let Some((master_id, master_public)) =
                master_key.as_ref().and_then(verify::cross_signing_public_key)
            else {
                return Err(KeyError::MissingParam(format!("a {kind} key needs a master key")));
            };
            verify::check_signature(&value, user, &master_id, &master_public)?;
            keys.push((kind, value));
        }
        if let Some(master) = master {
            keys.insert(0, (MASTER, master));
        }
        let mut replaces_existing = false;
        if self.cross_signing_key(user, MASTER)?.is_some() {
            for (kind, value) in &keys {
                match self.cross_signing_key(user, kind)? {
                    Some(old) if verify::same_content(&old, value) => {}
                    _ => replaces_existing = true,
                }
            }
        }
        Ok(CheckedSigningKeys { keys, replaces_existing })
    }

    /// Stores checked cross-signing keys; identical re-uploads keep the signatures already made.
    pub fn store_signing_keys(
        &self,
        user: &UserId,
        checked: CheckedSigningKeys,
        wake: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        let _guard = self.lock.lock();
        let mut batch = Batch::default();
        let mut changed = false;
        for (kind, mut value) in checked.keys {
            let key = (user.to_owned(), kind.to_owned());
            if let Some(Json(old)) = self.cross_signing.get(&key)?
                && verify::same_content(&old, &value)
            {
                verify::merge_signatures(&mut value, &old);
                if value == old {
                    continue;
                }
            }
            batch.put(&self.cross_signing, &key, &Json(value));
            changed = true;
        }
        if changed { self.write_with_change(user, batch, wake) } else { Ok(()) }
    }

    /// Stores the signatures `caller` made on one key of `target`: `key_id` is a device ID or
    /// the public key of `target`'s master key. Only signatures that verify are kept.
    pub fn add_signatures(
        &self,
        caller: &UserId,
        target: &UserId,
        key_id: &str,
        signed: &RawValue,
        wake: &[OwnedUserId],
    ) -> Result<(), KeyError> {
        let value: Value = serde_json::from_str(signed.get())
            .map_err(|e| KeyError::InvalidParam(format!("invalid signed key: {e}")))?;
        let _guard = self.lock.lock();
        if caller != target {
            return self.sign_other_master(caller, target, key_id, &value);
        }
        let device: &ruma::DeviceId = key_id.into();
        if let Some(stored) = self.device_keys(caller, device)? {
            let signature = self.by_own_key(caller, SELF_SIGNING, &stored, &value)?;
            let mut merged = stored;
            verify::merge_signatures(&mut merged, &signature);
            let mut batch = Batch::default();
            batch.put(&self.device_keys, &(caller.to_owned(), device.to_owned()), &Json(merged));
            return Ok(self.write_with_change(caller, batch, wake)?);
        }
        let Some(master) = self.cross_signing_key(caller, MASTER)? else {
            return Err(KeyError::InvalidParam(format!("no device or master key {key_id}")));
        };
        if !matches!(verify::cross_signing_public_key(&master), Some((_, public)) if public == key_id)
        {
            return Err(KeyError::InvalidParam(format!("no device or master key {key_id}")));
        }
        let signature = self.by_own_device(caller, &master, &value)?;
        let mut merged = master;
        verify::merge_signatures(&mut merged, &signature);
        let mut batch = Batch::default();
        batch.put(&self.cross_signing, &(caller.to_owned(), MASTER.to_owned()), &Json(merged));
        Ok(self.write_with_change(caller, batch, wake)?)
    }

    /// A signature on `stored` by the caller's cross-signing key of `kind`, taken from `signed`.
    fn by_own_key(
        &self,
        caller: &UserId,
        kind: &str,
        stored: &Value,
        signed: &Value,
    ) -> Result<Value, KeyError> {
        if !verify::same_content(stored, signed) {
            return Err(KeyError::InvalidParam(
                "the signed object differs from the stored key".into(),
            ));
        }
        let (id, public) = self
            .cross_signing_key(caller, kind)?
            .as_ref()
            .and_then(verify::cross_signing_public_key)
            .ok_or_else(|| {
                KeyError::InvalidSignature(format!("no {kind} key to check the signature with"))
            })?;
        verify::check_signature(signed, caller, &id, &public)?;
        Ok(
            json!({ "signatures": { caller.as_str(): { id.clone(): signed["signatures"][caller.as_str()][&id] } } }),
        )
    }

    /// The signatures on the caller's master key made by the caller's devices.
    fn by_own_device(
        &self,
        caller: &UserId,
        master: &Value,
        signed: &Value,
    ) -> Result<Value, KeyError> {
        if !verify::same_content(master, signed) {
            return Err(KeyError::InvalidParam(
                "the signed object differs from the stored key".into(),
            ));
        }
        let mut valid = serde_json::Map::new();
        let mut last_error = None;
        let own = signed
            .get("signatures")
            .and_then(|s| s.get(caller.as_str()))
            .and_then(Value::as_object);
        for (id, signature) in own.into_iter().flatten() {
            let Some(device) = id.strip_prefix("ed25519:") else { continue };
            let device: &ruma::DeviceId = device.into();
            let Some(public) = self.device_signing_key(caller, device)? else { continue };
            match verify::check_signature(signed, caller, id, &public) {
                Ok(()) => {
                    valid.insert(id.clone(), signature.clone());
                }
                Err(e) => last_error = Some(e),
            }
        }
        if valid.is_empty() {
            return Err(last_error.unwrap_or_else(|| {
                KeyError::InvalidSignature("no signature by a known device".into())
            }));
        }
        Ok(json!({ "signatures": { caller.as_str(): valid } }))
    }

    /// Stores `caller`'s user-signing signature on `target`'s master key, seen only by `caller`.
    fn sign_other_master(
        &self,
        caller: &UserId,
        target: &UserId,
        key_id: &str,
        signed: &Value,
    ) -> Result<(), KeyError> {
        let master = self
            .cross_signing_key(target, MASTER)?
            .ok_or_else(|| KeyError::InvalidParam(format!("{target} has no master key")))?;
        self.sign_master(caller, target, key_id, signed, &master)
    }

    /// Stores `caller`'s user-signing signature on the master key of `target`, a user of another
    /// server whose current master key (`master`) their server just answered; seen only by
    /// `caller`.
    pub fn sign_remote_master(
        &self,
        caller: &UserId,
        target: &UserId,
        key_id: &str,
        signed: &RawValue,
        master: &Value,
    ) -> Result<(), KeyError> {
        let value: Value = serde_json::from_str(signed.get())
            .map_err(|e| KeyError::InvalidParam(format!("invalid signed key: {e}")))?;
        let _guard = self.lock.lock();
        self.sign_master(caller, target, key_id, &value, master)
    }

    /// Stores `caller`'s user-signing signature on `target`'s master key `master`.
    fn sign_master(
        &self,
        caller: &UserId,
        target: &UserId,
        key_id: &str,
        signed: &Value,
        master: &Value,
    ) -> Result<(), KeyError> {
        let Some((master_id, public)) = verify::cross_signing_public_key(master) else {
            return Err(KeyError::InvalidParam(format!("{target} has no usable master key")));
        };
        if public != key_id {
            return Err(KeyError::InvalidParam(format!(
                "{key_id} is not the master key of {target}"
            )));
        }
        let signature = self.by_own_key(caller, USER_SIGNING, master, signed)?;
        let key = (caller.to_owned(), target.to_owned(), master_id);
        let mut merged = self.user_signatures.get(&key)?.map_or_else(|| json!({}), |Json(v)| v);
        verify::merge_signatures(&mut merged, &signature);
        let mut batch = Batch::default();
        batch.put(&self.user_signatures, &key, &Json(merged));
        Ok(self.write_with_private_change(caller, target, batch)?)
    }

    /// Adds `viewer`'s own signatures to `master`, the master key of `user` (a user of another
    /// server, whose key their server answered).
    pub fn merge_viewer_signatures(
        &self,
        viewer: &UserId,
        user: &UserId,
        master: &mut Value,
    ) -> Result<(), StorageError> {
        if let Some((master_id, _)) = verify::cross_signing_public_key(master) {
            let key = (viewer.to_owned(), user.to_owned(), master_id);
            if let Some(Json(own)) = self.user_signatures.get(&key)? {
                verify::merge_signatures(master, &own);
            }
        }
        Ok(())
    }

    /// `user`'s cross-signing keys as `viewer` sees them.
    pub fn cross_signing_view(
        &self,
        user: &UserId,
        viewer: &UserId,
    ) -> Result<CrossSigningView, StorageError> {
        let mut master = self.cross_signing_key(user, MASTER)?;
        if let Some(master) = master.as_mut().filter(|_| user != viewer)
            && let Some((master_id, _)) = verify::cross_signing_public_key(master)
        {
            let key = (viewer.to_owned(), user.to_owned(), master_id);
            if let Some(Json(own)) = self.user_signatures.get(&key)? {
                verify::merge_signatures(master, &own);
            }
        }
        Ok(CrossSigningView {
            master,
            self_signing: self.cross_signing_key(user, SELF_SIGNING)?,
            user_signing: if user == viewer {
                self.cross_signing_key(user, USER_SIGNING)?
            } else {
                None
            },
        })
    }
}

/// Parses one uploaded cross-signing key and checks its owner, usage and key.
fn parse_key(
    user: &UserId,
    raw: &Raw<CrossSigningKey>,
    usage: KeyUsage,
) -> Result<Value, KeyError> {
    let parsed: CrossSigningKey = raw
        .deserialize()
        .map_err(|e| KeyError::InvalidParam(format!("invalid cross-signing key: {e}")))?;
    if parsed.user_id != user {
        return Err(KeyError::InvalidParam(format!(
            "cross-signing key is for {}, not for the caller {user}",
            parsed.user_id
        )));
    }
    if !parsed.usage.contains(&usage) {
        return Err(KeyError::InvalidParam(format!("cross-signing key lacks the usage {usage}")));
    }
    let value: Value = serde_json::from_str(raw.json().get())
        .map_err(|e| KeyError::InvalidParam(format!("invalid cross-signing key: {e}")))?;
    match verify::cross_signing_public_key(&value) {
        Some((id, public)) if id.strip_prefix("ed25519:") == Some(public.as_str()) => Ok(value),
        _ => Err(KeyError::InvalidParam(
            "a cross-signing key must hold exactly one ed25519 key, named by its public key".into(),
        )),
    }
}
