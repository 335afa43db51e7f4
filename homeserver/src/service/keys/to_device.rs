//! To-device messages: per-device inboxes ordered by stream position. `/sync` delivers what is
//! after `since`, again and again, until a later `since` acknowledges it; then it is deleted.

use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId, events::AnyToDeviceEvent, serde::Raw};
use serde_json::{Value, json};

use super::{super::rooms::pdu::to_raw, Keys};
use crate::storage::{Batch, Json, StorageError};

/// One message to deliver to one device.
#[derive(Debug)]
pub struct ToDeviceMessage {
    /// The recipient.
    pub user: OwnedUserId,
    /// The recipient's device.
    pub device: OwnedDeviceId,
    /// The event content.
    pub content: Value,
}

impl Keys {
    /// Queues messages of type `event_type` from `sender`, once per transaction ID of the sending
    /// device: a retried request sends nothing twice. Returns whether this call sent them.
    pub fn send_to_device(
        &self,
        sender: &UserId,
        sender_device: &DeviceId,
        txn_id: &str,
        event_type: &str,
        messages: Vec<ToDeviceMessage>,
    ) -> Result<bool, StorageError> {
        let txn_key = (sender.to_owned(), sender_device.to_owned(), txn_id.to_owned());
        let _guard = self.lock.lock();
        if self.to_device_txns.contains(&txn_key)? {
            return Ok(false);
        }
        let pending = self.globals.next_count()?;
        let mut batch = Batch::default();
        batch.put(&self.to_device_txns, &txn_key, &());
        let mut recipients: Vec<OwnedUserId> = Vec::new();
        for message in messages {
            let event = json!({ "type": event_type, "sender": sender, "content": message.content });
            batch.put(
                &self.to_device,
                &(message.user.clone(), message.device, pending.count),
                &Json(event),
            );
            if !recipients.contains(&message.user) {
                recipients.push(message.user);
            }
        }
        self.to_device.db().write(batch)?;
        let count = pending.count;
        drop(pending);
        self.notifier.notify(recipients.iter().map(|u| &**u), count);
        Ok(true)
    }

    /// The messages for a device after `since` and at most `upto`. Messages at or before
    /// `since` were delivered in the response that `since` came from and are deleted now.
    pub fn to_device_events(
        &self,
        user: &UserId,
        device: &DeviceId,
        since: u64,
        upto: u64,
    ) -> Result<Vec<Raw<AnyToDeviceEvent>>, StorageError> {
        let prefix = (user.to_owned(), device.to_owned());
        let mut acknowledged = Batch::default();
        let mut events = Vec::new();
        for entry in self.to_device.scan_prefix(&prefix)? {
            let (key, Json(event)) = entry?;
            if key.2 <= since {
                acknowledged.delete(&self.to_device, &key);
            } else if key.2 <= upto {
                events.push(to_raw(&event));
            } else {
                break;
            }
        }
        if !acknowledged.is_empty() {
            self.to_device.db().write(acknowledged)?;
        }
        Ok(events)
    }

    /// The messages waiting for a device up to `upto`, with their positions, without
    /// acknowledging any: for application services, which acknowledge with
    /// [`Keys::acknowledge_to_device`] once their transaction is accepted.
    pub fn pending_to_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        upto: u64,
    ) -> Result<Vec<(u64, Value)>, StorageError> {
        let prefix = (user.to_owned(), device.to_owned());
        let mut out = Vec::new();
        for entry in self.to_device.scan_prefix(&prefix)? {
            let (key, Json(event)) = entry?;
            if key.2 > upto {
                break;
            }
            out.push((key.2, event));
        }
        Ok(out)
    }

    /// Deletes a device's messages up to `upto`: they were delivered.
    pub fn acknowledge_to_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        upto: u64,
    ) -> Result<(), StorageError> {
        self.to_device_events(user, device, upto, upto).map(drop)
    }

    /// Every device with messages waiting, for a sender that starts and must find what it missed.
    pub fn to_device_recipients(&self) -> Result<Vec<(OwnedUserId, OwnedDeviceId)>, StorageError> {
        let mut out: Vec<(OwnedUserId, OwnedDeviceId)> = Vec::new();
        for entry in self.to_device.scan_all()? {
            let ((user, device, _), _) = entry?;
            if out.last().is_none_or(|(u, d)| *u != user || *d != device) {
                out.push((user, device));
            }
        }
        Ok(out)
    }
}
