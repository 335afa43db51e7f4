//! Removing devices: the device and its token, its encryption keys and inbox, and its pushers,
//! together, whichever endpoint asks (logout, device deletion, password change, deactivation).

use ruma::{DeviceId, UserId};

use super::Services;
use crate::storage::StorageError;

impl Services {
    /// Removes one device of `user` with everything attached to it.
    pub fn remove_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StorageError> {
        self.accounts.delete_device(user, device)?;
        self.remove_device_keys(user, device)?;
        self.sliding_sync.forget_device(user, device)?;
        self.push.pushers().delete_for_device(user, device)
    }

    /// Removes every device of `user` except `keep` (the caller's, when they stay logged in).
    pub fn remove_devices(
        &self,
        user: &UserId,
        keep: Option<&DeviceId>,
    ) -> Result<(), StorageError> {
        for device in self.accounts.devices(user)? {
            if Some(&*device.device_id) != keep {
                self.remove_device(user, &device.device_id)?;
            }
        }
        // Pushers not tied to a device (set without one) go with a full logout.
        self.push.pushers().delete_all(user, keep)
    }
}
