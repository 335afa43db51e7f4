//! What other servers may read of this server's users and rooms outside a room's DAG: profiles,
//! room aliases, device lists, device and one-time keys.
//!
//! Only local users and aliases are answered; device display names are not shared over
//! federation (Synapse's default, `allow_device_name_lookup_over_federation: false`), nor are
//! user-signing keys, which only their owner ever sees.

use std::collections::BTreeMap;

use ruma::{
    OneTimeKeyAlgorithm, OwnedDeviceId, OwnedUserId, RoomAliasId, UInt, UserId,
    api::federation::{
        device::get_devices,
        keys::{claim_keys, get_keys},
        query::{get_profile_information, get_room_information},
    },
    profile::ProfileFieldName,
};
use serde_json::Value;

use super::reads::ReadError;
use crate::service::{Services, rooms::pdu::to_raw};

impl Services {
    /// Refuses a user of another server (`M_INVALID_PARAM`) or an unknown or deactivated local
    /// user (`M_NOT_FOUND`).
    fn require_local_user(&self, user: &UserId) -> Result<(), ReadError> {
        if user.server_name() != self.globals.server_name {
            return Err(ReadError::InvalidParam(format!("{user} is not a user of this server")));
        }
        match self.accounts.account(user)? {
            Some(account) if !account.deactivated => Ok(()),
            _ => Err(ReadError::NotFound(format!("user {user} does not exist"))),
        }
    }

    /// `GET /query/profile`: a local user's display name and avatar, or the one `field`.
    pub fn federation_profile(
        &self,
        user: &UserId,
        field: Option<&ProfileFieldName>,
    ) -> Result<get_profile_information::v1::Response, ReadError> {
        self.require_local_user(user)?;
        let Some(account) = self.accounts.account(user)? else {
            return Err(ReadError::NotFound(format!("user {user} does not exist")));
        };
        let mut response = get_profile_information::v1::Response::new();
        let fields = [
            (ProfileFieldName::DisplayName, account.displayname),
            (ProfileFieldName::AvatarUrl, account.avatar_url),
        ];
        for (name, value) in fields {
            if field.is_some_and(|wanted| *wanted != name) {
                continue;
            }
            if let Some(value) = value {
                response.set(name.as_str().to_owned(), Value::String(value));
            }
        }
        Ok(response)
    }

    /// `GET /query/directory`: the room a local alias names, and the servers to join it through
    /// (this one first, then the servers of its joined members).
    pub fn federation_directory(
        &self,
        alias: &RoomAliasId,
    ) -> Result<get_room_information::v1::Response, ReadError> {
        if alias.server_name() != self.globals.server_name {
            return Err(ReadError::InvalidParam(format!("{alias} is not an alias of this server")));
        }
        let entry = self
            .rooms
            .aliases
            .resolve(alias)?
            .ok_or_else(|| ReadError::NotFound(format!("room alias {alias} is not known")))?;
        let mut servers = vec![self.globals.server_name.clone()];
        servers.extend(self.remote_servers_in_room(&entry.room_id)?);
        Ok(get_room_information::v1::Response::new(entry.room_id, servers))
    }

    /// `GET /user/devices/{userId}`: a local user's devices with keys, and cross-signing keys.
    pub fn federation_user_devices(
        &self,
        user: &UserId,
    ) -> Result<get_devices::v1::Response, ReadError> {
        self.require_local_user(user)?;
        let stream_id =
            self.keys.last_changes(&[user.to_owned()])?.first().copied().unwrap_or_default();
        let mut response = get_devices::v1::Response::new(
            user.to_owned(),
            UInt::new(stream_id).unwrap_or(UInt::MAX),
        );
        for (device_id, keys) in self.keys.all_device_keys(user)? {
            if self.accounts.device(user, &device_id)?.is_none() {
                continue;
            }
            response.devices.push(get_devices::v1::UserDevice::new(device_id, to_raw(&keys)));
        }
        response.master_key = self.keys.cross_signing_key(user, "master")?.map(|k| to_raw(&k));
        response.self_signing_key =
            self.keys.cross_signing_key(user, "self_signing")?.map(|k| to_raw(&k));
        Ok(response)
    }

    /// `POST /user/keys/query`: device keys (all devices when the list is empty) and master and
    /// self-signing keys of the wanted local users; other users are left out.
    pub fn federation_query_keys(
        &self,
        wanted: &BTreeMap<OwnedUserId, Vec<OwnedDeviceId>>,
    ) -> Result<get_keys::v1::Response, ReadError> {
        let mut response = get_keys::v1::Response::default();
        for (user, devices) in wanted {
            if user.server_name() != self.globals.server_name {
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
            for (device_id, keys) in stored {
                if self.accounts.device(user, &device_id)?.is_some() {
                    device_keys.insert(device_id, to_raw(&keys));
                }
            }
            response.device_keys.insert(user.clone(), device_keys);
            if let Some(master) = self.keys.cross_signing_key(user, "master")? {
                response.master_keys.insert(user.clone(), to_raw(&master));
            }
            if let Some(self_signing) = self.keys.cross_signing_key(user, "self_signing")? {
                response.self_signing_keys.insert(user.clone(), to_raw(&self_signing));
            }
        }
        Ok(response)
    }

    /// `POST /user/keys/claim`: one key per wanted device of a local user, never the same
    /// one-time key twice; other users are left out.
    pub fn federation_claim_keys(
        &self,
        wanted: &BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, OneTimeKeyAlgorithm>>,
    ) -> Result<claim_keys::v1::Response, ReadError> {
        let mut local = Vec::new();
        for (user, devices) in wanted {
            if user.server_name() != self.globals.server_name {
                continue;
            }
            for (device, algorithm) in devices {
                local.push((user.clone(), device.clone(), algorithm.clone()));
            }
        }
        let claimed = self.keys.claim(&local)?;
        for (user, devices) in &claimed {
            for device in devices.keys() {
                self.appservice_device_event(user, device);
            }
        }
        Ok(claim_keys::v1::Response::new(claimed))
    }
}
