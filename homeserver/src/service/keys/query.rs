//! Answering `keys/query` and `keys/claim`: stored keys with what the server adds (device
//! display names, the viewer's own signatures) and `failures` for remote servers when this
//! server does not federate.

use std::collections::BTreeMap;

use ruma::{
    OneTimeKeyAlgorithm, OwnedDeviceId, OwnedUserId, UserId,
    api::client::keys::{claim_keys, get_keys},
};
use serde_json::{Value, json};

use super::super::{Services, rooms::pdu::to_raw};
use crate::storage::StorageError;

/// What `failures` says about a server this one cannot ask (federation is disabled; when it is
/// enabled, remote users are asked of their servers: `service/federation/remote.rs`).
fn unreachable() -> Value {
    json!({ "errcode": "M_UNKNOWN", "error": "this server does not federate" })
}

impl Services {
    /// Device keys and cross-signing keys of the wanted users (all devices when the list is
    /// empty), as `requester` sees them: user-signing keys only of the requester.
    pub fn query_keys(
        &self,
        requester: &UserId,
        wanted: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    ) -> Result<get_keys::v3::Response, StorageError> {
        let mut response = get_keys::v3::Response::new();
        for (user, devices) in wanted {
            if user.server_name() != self.globals.server_name {
                response.failures.insert(user.server_name().to_string(), unreachable());
                continue;
            }
            let stored = if devices.is_empty() {
                self.keys.all_device_keys(user)?
            } else {
                let mut found = Vec::new();
                for device in devices {
                    if let Some(keys) = self.keys.device_keys(user, device)? {
                        found.push((device.clone(), keys));
                    }
                }
                found
            };
            let mut device_keys = BTreeMap::new();
            for (device_id, mut keys) in stored {
                let Some(device) = self.accounts.device(user, &device_id)? else { continue };
                if let (Some(name), Some(object)) = (device.display_name, keys.as_object_mut()) {
                    object.insert("unsigned".into(), json!({ "device_display_name": name }));
                }
                device_keys.insert(device_id, to_raw(&keys));
            }
            response.device_keys.insert(user.clone(), device_keys);

            let view = self.keys.cross_signing_view(user, requester)?;
            if let Some(master) = view.master {
                response.master_keys.insert(user.clone(), to_raw(&master));
            }
            if let Some(self_signing) = view.self_signing {
                response.self_signing_keys.insert(user.clone(), to_raw(&self_signing));
            }
            if let Some(user_signing) = view.user_signing {
                response.user_signing_keys.insert(user.clone(), to_raw(&user_signing));
            }
        }
        Ok(response)
    }

    /// Claims one key for each wanted device of a local user; remote users go to `failures`.
    pub fn claim_keys(
        &self,
        wanted: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, OneTimeKeyAlgorithm>>,
    ) -> Result<claim_keys::v3::Response, StorageError> {
        let mut failures = BTreeMap::new();
        let mut local = Vec::new();
        for (user, devices) in wanted {
            if user.server_name() != self.globals.server_name {
                failures.insert(user.server_name().to_string(), unreachable());
                continue;
            }
            for (device, algorithm) in devices {
                local.push((user.clone(), device.clone(), algorithm.clone()));
            }
        }
        let mut response = claim_keys::v3::Response::new(self.keys.claim(&local)?);
        response.failures = failures;
        Ok(response)
    }
}
