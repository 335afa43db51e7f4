//! Ephemeral data units between servers: typing, receipts, presence, device-list and
//! signing-key updates, to-device messages.
//!
//! Incoming EDUs ([`handle_edu`]) are checked against their origin: the user they speak for must
//! belong to the sending server, and a room EDU must name a room that user is joined to, whose
//! server ACL allows the origin. What passes feeds the same services local updates feed (typing
//! and receipts, presence, to-device inboxes, the device-list change index), which wake the
//! `/sync` long-polls concerned. Anything else is dropped (logged at debug level): an EDU has no
//! answer to give.
//!
//! Outgoing EDUs (`federate_*`) go to every remote server concerned, through the federation
//! sender's per-destination queue: the servers of a room's joined members for typing and receipts,
//! the servers of the users who share a room with the user for presence and key changes, the
//! recipients' servers for to-device messages.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use ruma::{
    DeviceId, EventId, MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedServerName,
    OwnedTransactionId, OwnedUserId, RoomId, ServerName, UInt, UserId,
    api::federation::transactions::edu::{
        DeviceListUpdateContent, DirectDeviceContent, DirectDeviceMessages, Edu, PresenceContent,
        PresenceUpdate, ReceiptContent, ReceiptData, ReceiptMap, SigningKeyUpdateContent,
        TypingContent,
    },
    events::{
        ToDeviceEventType,
        receipt::{Receipt as ReceiptInfo, ReceiptThread},
        room::member::MembershipState,
    },
    serde::Raw,
    to_device::DeviceIdOrAllDevices,
};
use serde_json::{Value, json};

use crate::{
    service::{
        Services,
        ephemeral::{Receipt, now_ms},
        keys::ToDeviceMessage,
    },
    storage::StorageError,
};

/// How long a remote user shows as typing when their server says they are (servers send a new
/// `m.typing` at least this often while the user types; Synapse uses the same).
const REMOTE_TYPING_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an incoming EDU, or part of one, is dropped.
#[derive(Debug, thiserror::Error)]
pub enum EduError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the room failed.
    #[error(transparent)]
    Room(#[from] crate::service::rooms::RoomError),
    /// The EDU speaks for a user of another server, or for a room its user is not in.
    #[error("{0}")]
    Refused(String),
    /// The EDU is malformed.
    #[error("{0}")]
    Malformed(String),
}

/// Handles one EDU received from `origin` in a transaction. EDUs have no answer: what is refused
/// is logged and dropped.
pub async fn handle_edu(services: &Services, origin: &ServerName, edu: Edu) {
    let kind = edu_kind(&edu);
    let result = match edu {
        Edu::Typing(typing) => services.incoming_typing(origin, typing),
        Edu::Receipt(receipts) => services.incoming_receipts(origin, receipts),
        Edu::Presence(presence) => services.incoming_presence(origin, presence),
        Edu::DeviceListUpdate(update) => services.incoming_device_list_update(origin, update),
        Edu::SigningKeyUpdate(update) => services.incoming_signing_key_update(origin, update),
        Edu::DirectToDevice(content) => services.incoming_to_device(origin, content),
        _ => Ok(()),
    };
    match result {
        Ok(()) => {}
        Err(e @ (EduError::Storage(_) | EduError::Room(_))) => {
            tracing::error!(%origin, edu = kind, error = %e, "handling an EDU failed");
        }
        Err(e) => tracing::debug!(%origin, edu = kind, error = %e, "EDU dropped"),
    }
}

/// The `edu_type` of an EDU, for logs.
fn edu_kind(edu: &Edu) -> &'static str {
    match edu {
        Edu::Typing(_) => "m.typing",
        Edu::Receipt(_) => "m.receipt",
        Edu::Presence(_) => "m.presence",
        Edu::DeviceListUpdate(_) => "m.device_list_update",
        Edu::SigningKeyUpdate(_) => "m.signing_key_update",
        Edu::DirectToDevice(_) => "m.direct_to_device",
        _ => "custom",
    }
}

/// Refuses a user that does not belong to `origin`.
fn check_origin(origin: &ServerName, user: &UserId) -> Result<(), EduError> {
    if user.server_name() == origin {
        Ok(())
    } else {
        Err(EduError::Refused(format!("{origin} cannot speak for {user}")))
    }
}

/// The receipt thread as the ephemeral service stores it.
fn thread_id(thread: &ReceiptThread) -> Option<String> {
    match thread {
        ReceiptThread::Main => Some("main".to_owned()),
        ReceiptThread::Thread(id) => Some(id.to_string()),
        _ => None,
    }
}

impl Services {
    /// Refuses a room EDU from `origin` about `user` unless `user` belongs to `origin`, is
    /// joined to `room_id`, and the room's ACL allows `origin`.
    fn check_room_edu(
        &self,
        origin: &ServerName,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<(), EduError> {
        check_origin(origin, user)?;
        if self.check_server_acl(room_id, origin).is_err() {
            return Err(EduError::Refused(format!("{origin} is denied by the ACL of {room_id}")));
        }
        if !self.rooms.is_joined(room_id, user)? {
            return Err(EduError::Refused(format!("{user} is not joined to {room_id}")));
        }
        Ok(())
    }

    fn incoming_typing(&self, origin: &ServerName, typing: TypingContent) -> Result<(), EduError> {
        self.check_room_edu(origin, &typing.user_id, &typing.room_id)?;
        let members = self.rooms.joined_members(&typing.room_id)?;
        let timeout = typing.typing.then_some(REMOTE_TYPING_TIMEOUT);
        self.ephemeral.set_typing(&typing.room_id, &typing.user_id, timeout, &members)?;
        if let Some(edu) = self.ephemeral.typing_since(&typing.room_id, 0) {
            self.appservice_ephemeral(&typing.room_id, &edu);
        }
        Ok(())
    }

    fn incoming_receipts(
        &self,
        origin: &ServerName,
        content: ReceiptContent,
    ) -> Result<(), EduError> {
        for (room_id, map) in content.receipts {
            for (user, data) in map.read {
                if let Err(e) = self.incoming_receipt(origin, &room_id, &user, data) {
                    match e {
                        EduError::Storage(_) | EduError::Room(_) => return Err(e),
                        e => tracing::debug!(%origin, %room_id, %user, error = %e,
                            "receipt dropped"),
                    }
                }
            }
        }
        Ok(())
    }

    fn incoming_receipt(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
        data: ReceiptData,
    ) -> Result<(), EduError> {
        self.check_room_edu(origin, user, room_id)?;
        // One receipt per user and thread: the last event named is the one read up to.
        let Some(event_id) = data.event_ids.last() else {
            return Err(EduError::Malformed("a receipt names no event".into()));
        };
        let thread = thread_id(&data.data.thread);
        let ts = data.data.ts.map_or_else(now_ms, |ts| u64::from(ts.0));
        let members = self.rooms.joined_members(room_id)?;
        let mut receipt = json!({ "ts": ts });
        if let Some(thread) = &thread {
            receipt["thread_id"] = thread.as_str().into();
        }
        let edu = json!({
            "type": "m.receipt",
            "content": { event_id.as_str(): { "m.read": { user.as_str(): receipt } } },
        });
        self.appservice_ephemeral(room_id, &edu);
        self.ephemeral.set_receipt(
            room_id,
            Receipt {
                user_id: user.to_owned(),
                event_id: event_id.clone(),
                kind: "m.read".to_owned(),
                thread_id: thread,
                ts,
            },
            &members,
        )?;
        Ok(())
    }

    fn incoming_presence(
        &self,
        origin: &ServerName,
        content: PresenceContent,
    ) -> Result<(), EduError> {
        for update in content.push {
            if let Err(e) = check_origin(origin, &update.user_id) {
                tracing::debug!(%origin, error = %e, "presence update dropped");
                continue;
            }
            let audience = self.key_audience(&update.user_id)?;
            // Nobody here shares a room with the user: nobody to tell.
            if !audience.iter().any(|u| u.server_name() == self.globals.server_name) {
                continue;
            }
            self.presence.set(&update.user_id, update.presence, update.status_msg, &audience)?;
        }
        Ok(())
    }

    fn incoming_device_list_update(
        &self,
        origin: &ServerName,
        update: DeviceListUpdateContent,
    ) -> Result<(), EduError> {
        check_origin(origin, &update.user_id)?;
        self.remote_keys_changed(&update.user_id)
    }

    fn incoming_signing_key_update(
        &self,
        origin: &ServerName,
        update: SigningKeyUpdateContent,
    ) -> Result<(), EduError> {
        check_origin(origin, &update.user_id)?;
        self.remote_keys_changed(&update.user_id)
    }

    /// Records that a remote user's devices or cross-signing keys changed, so that the local
    /// users who share a room with them see it in `device_lists.changed` and query the keys
    /// again (local `keys/query` asks the user's server: nothing stale is kept here).
    fn remote_keys_changed(&self, user: &UserId) -> Result<(), EduError> {
        let audience = self.key_audience(user)?;
        if !audience.iter().any(|u| u.server_name() == self.globals.server_name) {
            return Err(EduError::Refused(format!("nobody here shares a room with {user}")));
        }
        self.keys.remote_keys_changed(user, &audience)?;
        Ok(())
    }

    fn incoming_to_device(
        &self,
        origin: &ServerName,
        content: DirectDeviceContent,
    ) -> Result<(), EduError> {
        check_origin(origin, &content.sender)?;
        let mut messages = Vec::new();
        for (user, targets) in &content.messages {
            if user.server_name() != self.globals.server_name {
                continue;
            }
            for (target, raw) in targets {
                let Ok(body) = serde_json::from_str::<Value>(raw.json().get()) else { continue };
                if !body.is_object() {
                    continue;
                }
                let devices: Vec<OwnedDeviceId> = match target {
                    DeviceIdOrAllDevices::DeviceId(device) => self
                        .accounts
                        .device(user, device)?
                        .map(|d| d.device_id)
                        .into_iter()
                        .collect(),
                    DeviceIdOrAllDevices::AllDevices => {
                        self.accounts.devices(user)?.into_iter().map(|d| d.device_id).collect()
                    }
                };
                for device in devices {
                    messages.push(ToDeviceMessage {
                        user: user.clone(),
                        device,
                        content: body.clone(),
                    });
                }
            }
        }
        if messages.is_empty() {
            return Ok(());
        }
        let recipients: Vec<(OwnedUserId, OwnedDeviceId)> =
            messages.iter().map(|m| (m.user.clone(), m.device.clone())).collect();
        // The origin's message ID is unique per sending server: a transaction retried by the
        // origin delivers nothing twice.
        let sender_device: OwnedDeviceId = origin.as_str().into();
        let sent = self.keys.send_to_device(
            &content.sender,
            &sender_device,
            content.message_id.as_str(),
            &content.ev_type.to_string(),
            messages,
        )?;
        if sent {
            for (user, device) in recipients {
                self.appservice_device_event(&user, &device);
            }
        }
        Ok(())
    }

    /// The remote servers of the users who share a joined room with `user`.
    pub fn remote_servers_of_user(
        &self,
        user: &UserId,
    ) -> Result<Vec<OwnedServerName>, StorageError> {
        let mut servers: BTreeSet<OwnedServerName> = BTreeSet::new();
        for (room_id, entry) in self.rooms.rooms_of(user)? {
            if entry.membership == MembershipState::Join {
                servers.extend(self.remote_servers_in_room(&room_id)?);
            }
        }
        Ok(servers.into_iter().collect())
    }

    /// Whether EDUs are sent at all.
    fn federates(&self) -> bool {
        self.config.federation.enabled
    }

    /// Tells the other servers in `room_id` that local `user` started or stopped typing.
    pub fn federate_typing(&self, room_id: &RoomId, user: &UserId, typing: bool) {
        if !self.federates() {
            return;
        }
        self.send_to_room_servers(room_id, || {
            Edu::Typing(TypingContent::new(room_id.to_owned(), user.to_owned(), typing))
        });
    }

    /// Tells the other servers in `room_id` that local `user` read up to `event_id` (public
    /// receipts only: private ones never leave this server).
    pub fn federate_receipt(
        &self,
        room_id: &RoomId,
        user: &UserId,
        event_id: &EventId,
        thread: &ReceiptThread,
        ts: u64,
    ) {
        if !self.federates() {
            return;
        }
        self.send_to_room_servers(room_id, || {
            let mut info =
                ReceiptInfo::new(MilliSecondsSinceUnixEpoch(UInt::new(ts).unwrap_or(UInt::MAX)));
            info.thread = thread.clone();
            let data = ReceiptData::new(info, vec![event_id.to_owned()]);
            let map = ReceiptMap::new(BTreeMap::from([(user.to_owned(), data)]));
            Edu::Receipt(ReceiptContent::new(BTreeMap::from([(room_id.to_owned(), map)])))
        });
    }

    /// Queues the EDU `make` builds for every remote server with a user joined to `room_id`.
    fn send_to_room_servers(&self, room_id: &RoomId, make: impl Fn() -> Edu) {
        match self.remote_servers_in_room(room_id) {
            Ok(servers) => {
                for server in servers {
                    self.federation_sender.send_edu(&server, make());
                }
            }
            Err(e) => tracing::error!(%room_id, error = %e, "finding the servers of a room failed"),
        }
    }

    /// Queues the EDU `make` builds for every remote server sharing a room with `user`.
    fn send_to_user_servers(&self, user: &UserId, make: impl Fn() -> Option<Edu>) {
        if !self.federates() {
            return;
        }
        let servers = match self.remote_servers_of_user(user) {
            Ok(servers) => servers,
            Err(e) => {
                tracing::error!(%user, error = %e, "finding the servers of a user failed");
                return;
            }
        };
        for server in servers {
            let Some(edu) = make() else { return };
            self.federation_sender.send_edu(&server, edu);
        }
    }

    /// Tells the servers that share a room with local `user` their new presence.
    pub fn federate_presence(&self, user: &UserId) {
        self.send_to_user_servers(user, || {
            let presence = self.presence.get(user)?;
            let ago = now_ms().saturating_sub(presence.last_active_ts);
            let mut update = PresenceUpdate::new(
                user.to_owned(),
                presence.state.clone(),
                UInt::new(ago).unwrap_or(UInt::MAX),
            );
            update.currently_active = presence.state == ruma::presence::PresenceState::Online;
            update.status_msg = presence.status_msg;
            Some(Edu::Presence(PresenceContent::new(vec![update])))
        });
    }

    /// Tells the servers that share a room with local `user` that `device` changed (new keys or
    /// signatures) or was `deleted`. Device names are not shared over federation.
    pub fn federate_device_change(&self, user: &UserId, device: &DeviceId, deleted: bool) {
        self.send_to_user_servers(user, || {
            let stream_id = self
                .keys
                .last_changes(&[user.to_owned()])
                .ok()
                .and_then(|c| c.first().copied())
                .unwrap_or_default();
            let mut update = DeviceListUpdateContent::new(
                user.to_owned(),
                device.to_owned(),
                UInt::new(stream_id).unwrap_or(UInt::MAX),
            );
            if deleted {
                update.deleted = Some(true);
            } else {
                update.keys = self
                    .keys
                    .device_keys(user, device)
                    .ok()
                    .flatten()
                    .and_then(|keys| serde_json::value::to_raw_value(&keys).ok())
                    .map(Raw::from_json);
            }
            Some(Edu::DeviceListUpdate(update))
        });
    }

    /// Tells the servers that share a room with local `user` their new cross-signing keys
    /// (master and self-signing: the user-signing key is never shared).
    pub fn federate_signing_keys(&self, user: &UserId) {
        self.send_to_user_servers(user, || {
            let raw = |kind: &str| {
                self.keys
                    .cross_signing_key(user, kind)
                    .ok()
                    .flatten()
                    .and_then(|key| serde_json::value::to_raw_value(&key).ok())
                    .map(Raw::from_json)
            };
            let mut update = SigningKeyUpdateContent::new(user.to_owned());
            update.master_key = raw("master");
            update.self_signing_key = raw("self_signing");
            Some(Edu::SigningKeyUpdate(update))
        });
    }

    /// Sends to-device messages of local `sender` to remote users, one EDU per server. The
    /// message ID joins the sending device and its transaction ID, unique for this server.
    pub fn federate_to_device(
        &self,
        sender: &UserId,
        sender_device: &DeviceId,
        txn_id: &str,
        event_type: &str,
        messages: DirectDeviceMessages,
    ) {
        if !self.federates() {
            return;
        }
        let mut by_server: BTreeMap<OwnedServerName, DirectDeviceMessages> = BTreeMap::new();
        for (user, targets) in messages {
            if user.server_name() == self.globals.server_name {
                continue;
            }
            by_server.entry(user.server_name().to_owned()).or_default().insert(user, targets);
        }
        let message_id: OwnedTransactionId = format!("{sender_device}/{txn_id}").into();
        for (server, messages) in by_server {
            let mut content = DirectDeviceContent::new(
                sender.to_owned(),
                ToDeviceEventType::from(event_type),
                message_id.clone(),
            );
            content.messages = messages;
            self.federation_sender.send_edu(&server, Edu::DirectToDevice(content));
        }
    }
}

#[cfg(test)]
mod tests {
    use ruma::{server_name, user_id};

    use super::*;

    #[test]
    fn an_origin_speaks_only_for_its_users() {
        assert!(check_origin(server_name!("a.test"), user_id!("@u:a.test")).is_ok());
        assert!(check_origin(server_name!("a.test"), user_id!("@u:b.test")).is_err());
        assert!(check_origin(server_name!("a.test"), user_id!("@u:a.test:8448")).is_err());
    }

    #[test]
    fn receipt_threads_map_to_stored_thread_ids() {
        assert_eq!(thread_id(&ReceiptThread::Unthreaded), None);
        assert_eq!(thread_id(&ReceiptThread::Main).as_deref(), Some("main"));
    }
}
