//! Who needs to hear about whose devices: the users that share a room, device-list changes for
//! `/sync` and `keys/changes`, the end-to-end sections of a sync response, device removal.
//!
//! A user's device list "changed" for a viewer after `since` when its keys changed after
//! `since` (the change index of the keys service) or when the two started to share a room after
//! `since` (either joined a room the other is in: read from the membership index, so joins and
//! leaves need no extra bookkeeping). It is "left" when they shared a room and no longer do.

use std::collections::BTreeSet;

use ruma::{
    DeviceId, OwnedUserId, UserId, api::client::sync::sync_events::v3::Response,
    events::room::member::MembershipState,
};

use super::super::{Services, globals::ChangeKind, sync::SyncRequest};
use crate::storage::StorageError;

/// Device-list changes for one viewer.
#[derive(Debug, Default)]
pub struct DeviceListChanges {
    /// Users whose devices or keys changed, or who now share a room with the viewer.
    pub changed: BTreeSet<OwnedUserId>,
    /// Users who no longer share any room with the viewer.
    pub left: BTreeSet<OwnedUserId>,
}

impl Services {
    /// `user` and everyone joined to a room `user` is joined to: who sees `user`'s devices.
    pub fn key_audience(&self, user: &UserId) -> Result<Vec<OwnedUserId>, StorageError> {
        let mut audience: BTreeSet<OwnedUserId> = BTreeSet::new();
        audience.insert(user.to_owned());
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            if entry.membership == MembershipState::Join {
                audience.extend(self.rooms.joined_members(&room_id)?);
            }
        }
        Ok(audience.into_iter().collect())
    }

    /// The device-list changes `user` should hear about between `since` and `upto`.
    pub fn device_list_changes(
        &self,
        user: &UserId,
        since: u64,
        upto: u64,
    ) -> Result<DeviceListChanges, StorageError> {
        let mut out = DeviceListChanges::default();
        // Without a membership or key change after `since`, the scans below find nothing: skip
        // them (most incremental syncs follow a message).
        if !self.globals.changed_since(ChangeKind::Membership, since)
            && !self.globals.changed_since(ChangeKind::DeviceKeys, since)
        {
            return Ok(out);
        }
        let in_range = |count: u64| count > since && count <= upto;
        let mut sharing: BTreeSet<OwnedUserId> = BTreeSet::new();
        let mut maybe_left: BTreeSet<OwnedUserId> = BTreeSet::new();
        sharing.insert(user.to_owned());
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            match entry.membership {
                MembershipState::Join => {
                    let i_joined = in_range(entry.since);
                    for (member, m) in self.rooms.members(&room_id)? {
                        match m.membership {
                            MembershipState::Join => {
                                if i_joined || in_range(m.since) {
                                    out.changed.insert(member.clone());
                                }
                                sharing.insert(member);
                            }
                            MembershipState::Leave | MembershipState::Ban if in_range(m.since) => {
                                maybe_left.insert(member);
                            }
                            _ => {}
                        }
                    }
                }
                MembershipState::Leave | MembershipState::Ban if in_range(entry.since) => {
                    maybe_left.extend(self.rooms.joined_members(&room_id)?);
                }
                _ => {}
            }
        }
        let sharing: Vec<OwnedUserId> = sharing.into_iter().collect();
        for (member, last) in sharing.iter().zip(self.keys.last_changes(&sharing)?) {
            if last > since {
                out.changed.insert(member.clone());
            }
        }
        out.changed.extend(self.keys.private_changes_since(user, since)?);
        out.left = maybe_left.into_iter().filter(|u| sharing.binary_search(u).is_err()).collect();
        Ok(out)
    }

    /// Fills the end-to-end encryption sections of a sync response: to-device messages,
    /// device-list changes (incremental syncs only), one-time key counts and unused fallback
    /// key types of the syncing device.
    pub fn fill_e2ee_sync(
        &self,
        req: &SyncRequest,
        upto: u64,
        response: &mut Response,
    ) -> Result<(), StorageError> {
        response.to_device.events =
            self.keys.to_device_events(&req.user, &req.device, req.since, upto)?;
        if req.since > 0 {
            let changes = self.device_list_changes(&req.user, req.since, upto)?;
            response.device_lists.changed = changes.changed.into_iter().collect();
            response.device_lists.left = changes.left.into_iter().collect();
        }
        response.device_one_time_keys_count =
            self.keys.one_time_key_counts(&req.user, &req.device)?;
        response.device_unused_fallback_key_types =
            Some(self.keys.unused_fallback_key_types(&req.user, &req.device)?);
        Ok(())
    }

    /// Removes the keys and inbox of a deleted device and tells the users who share a room with
    /// its owner that the owner's device list changed. Call it after deleting the device.
    pub fn remove_device_keys(&self, user: &UserId, device: &DeviceId) -> Result<(), StorageError> {
        let audience = self.key_audience(user)?;
        self.keys.remove_device(user, device, &audience)?;
        self.federate_device_change(user, device, true);
        Ok(())
    }
}
