//! Pushers: where to send a user's push notifications.
//!
//! Pushers are keyed by user, app ID and pushkey, remember the device that created them (so that
//! logging that device out removes them) and are indexed by app ID and pushkey, because setting a
//! pusher without `append` removes the same pushkey's pushers of other users. The set of users
//! with pushers is kept in memory: the send path asks for each notified member.

use std::{collections::HashSet, sync::Arc};

use parking_lot::RwLock;
use ruma::{
    DeviceId, OwnedDeviceId, OwnedUserId, UserId,
    api::client::push::{Pusher, PusherIds, PusherKind},
};
use serde::{Deserialize, Serialize};

use super::PushError;
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// `(user, app_id, pushkey)` → the pusher.
pub const PUSHER_TABLE: &str = "userapppushkey_pusher";
/// `(app_id, pushkey, user)` → nothing: who uses a pushkey.
pub const PUSHKEY_TABLE: &str = "apppushkeyuser_present";

/// The path every push gateway URL must have.
pub const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// A stored pusher.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredPusher {
    /// The pusher as the client set it.
    pub pusher: Pusher,
    /// The device whose access token set it.
    pub device_id: Option<OwnedDeviceId>,
    /// When the pushkey was last set, in seconds (sent to the gateway as `pushkey_ts`).
    pub pushkey_ts: u64,
}

/// Pusher storage.
pub struct Pushers {
    pushers: Table<(OwnedUserId, String, String), Json<StoredPusher>>,
    by_pushkey: Table<(String, String, OwnedUserId), ()>,
    users: RwLock<HashSet<OwnedUserId>>,
}

/// Checks a pusher the way the spec asks: an HTTP pusher needs a gateway URL whose path is
/// [`NOTIFY_PATH`]; IDs have length limits. Email pushers are not supported.
pub fn validate(pusher: &Pusher) -> Result<(), PushError> {
    if pusher.ids.app_id.len() > 64 {
        return Err(PushError::InvalidParam("app_id is longer than 64 bytes".into()));
    }
    if pusher.ids.pushkey.len() > 512 {
        return Err(PushError::InvalidParam("pushkey is longer than 512 bytes".into()));
    }
    let PusherKind::Http(data) = &pusher.kind else {
        return Err(PushError::InvalidParam("only `http` pushers are supported".into()));
    };
    if data.url.is_empty() {
        return Err(PushError::MissingParam("an http pusher needs data.url".into()));
    }
    let uri: http::Uri = data
        .url
        .parse()
        .map_err(|e| PushError::InvalidParam(format!("data.url is not a URL: {e}")))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
        return Err(PushError::InvalidParam("data.url must be an http(s) URL".into()));
    }
    if uri.path() != NOTIFY_PATH {
        return Err(PushError::InvalidParam(format!("data.url must have the path {NOTIFY_PATH}")));
    }
    Ok(())
}

impl Pushers {
    /// Opens the tables and loads the users with pushers.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        let pushers: Table<(OwnedUserId, String, String), Json<StoredPusher>> =
            db.table(PUSHER_TABLE)?;
        let mut users = HashSet::new();
        for entry in pushers.scan_all()? {
            let ((user, _, _), _) = entry?;
            users.insert(user);
        }
        Ok(Self { pushers, by_pushkey: db.table(PUSHKEY_TABLE)?, users: RwLock::new(users) })
    }

    /// Whether the user has at least one pusher.
    pub fn has_pushers(&self, user: &UserId) -> bool {
        self.users.read().contains(user)
    }

    /// The user's pushers.
    pub fn list(&self, user: &UserId) -> Result<Vec<StoredPusher>, StorageError> {
        self.pushers.scan_prefix(&user.to_owned())?.map(|e| e.map(|(_, Json(p))| p)).collect()
    }

    /// Creates or replaces a pusher; without `append`, other users' pushers with the same app ID
    /// and pushkey are removed.
    pub fn set(
        &self,
        user: &UserId,
        device: Option<&DeviceId>,
        pusher: Pusher,
        append: bool,
        now_secs: u64,
    ) -> Result<(), PushError> {
        validate(&pusher)?;
        let ids = pusher.ids.clone();
        let mut batch = Batch::default();
        let mut removed = Vec::new();
        if !append {
            for entry in self.by_pushkey.scan_prefix(&(ids.app_id.clone(), ids.pushkey.clone()))? {
                let ((_, _, other), ()) = entry?;
                if other != user {
                    self.queue_delete(&mut batch, &other, &ids);
                    removed.push(other);
                }
            }
        }
        let stored =
            StoredPusher { pusher, device_id: device.map(ToOwned::to_owned), pushkey_ts: now_secs };
        batch.put(
            &self.pushers,
            &(user.to_owned(), ids.app_id.clone(), ids.pushkey.clone()),
            &Json(stored),
        );
        batch.put(&self.by_pushkey, &(ids.app_id, ids.pushkey, user.to_owned()), &());
        self.pushers.db().write(batch)?;
        self.users.write().insert(user.to_owned());
        for other in removed {
            self.refresh_user(&other)?;
        }
        Ok(())
    }

    /// Deletes one pusher of the user (no error if it does not exist, as the spec asks).
    pub fn delete(&self, user: &UserId, ids: &PusherIds) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        self.queue_delete(&mut batch, user, ids);
        self.pushers.db().write(batch)?;
        self.refresh_user(user)
    }

    /// Deletes the pushers a device set (at logout or device deletion).
    pub fn delete_for_device(&self, user: &UserId, device: &DeviceId) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        for pusher in self.list(user)? {
            if pusher.device_id.as_deref() == Some(device) {
                self.queue_delete(&mut batch, user, &pusher.pusher.ids);
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.pushers.db().write(batch)?;
        self.refresh_user(user)
    }

    /// Deletes all the user's pushers but those of device `keep` (logout from all devices,
    /// password change, deactivation).
    pub fn delete_all(&self, user: &UserId, keep: Option<&DeviceId>) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        for pusher in self.list(user)? {
            if keep.is_none() || pusher.device_id.as_deref() != keep {
                self.queue_delete(&mut batch, user, &pusher.pusher.ids);
            }
        }
        self.pushers.db().write(batch)?;
        self.refresh_user(user)
    }

    fn queue_delete(&self, batch: &mut Batch, user: &UserId, ids: &PusherIds) {
        batch.delete(&self.pushers, &(user.to_owned(), ids.app_id.clone(), ids.pushkey.clone()));
        batch.delete(&self.by_pushkey, &(ids.app_id.clone(), ids.pushkey.clone(), user.to_owned()));
    }

    fn refresh_user(&self, user: &UserId) -> Result<(), StorageError> {
        let any = self.pushers.scan_prefix(&user.to_owned())?.next().is_some();
        let mut users = self.users.write();
        if any {
            users.insert(user.to_owned());
        } else {
            users.remove(user);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ruma::{api::client::push::PusherInit, owned_user_id, push::HttpPusherData};

    use super::*;

    fn pusher(url: &str, pushkey: &str) -> Pusher {
        PusherInit {
            ids: PusherIds::new(pushkey.into(), "org.example.app".into()),
            kind: PusherKind::Http(HttpPusherData::new(url.into())),
            app_display_name: "App".into(),
            device_display_name: "Phone".into(),
            profile_tag: None,
            lang: "en".into(),
        }
        .into()
    }

    #[test]
    fn gateway_urls_are_checked() {
        assert!(validate(&pusher("https://push.example.org/_matrix/push/v1/notify", "k")).is_ok());
        assert!(validate(&pusher("http://127.0.0.1:5000/_matrix/push/v1/notify", "k")).is_ok());
        assert!(validate(&pusher("https://push.example.org/notify", "k")).is_err());
        assert!(validate(&pusher("ftp://push.example.org/_matrix/push/v1/notify", "k")).is_err());
        assert!(matches!(validate(&pusher("", "k")), Err(PushError::MissingParam(_))));
    }

    #[test]
    fn a_pushkey_moves_between_users_unless_appended() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path(),
            &[PUSHER_TABLE, PUSHKEY_TABLE],
            &crate::storage::OpenOptions { sync_writes: false, cache_bytes: 1 << 20 },
        )
        .unwrap();
        let pushers = Pushers::new(&db).unwrap();
        let (alice, bob) = (owned_user_id!("@alice:x"), owned_user_id!("@bob:x"));
        let url = "https://gw.example.org/_matrix/push/v1/notify";
        pushers.set(&alice, None, pusher(url, "key"), false, 1).unwrap();
        pushers.set(&bob, None, pusher(url, "key"), true, 1).unwrap();
        assert!(pushers.has_pushers(&alice) && pushers.has_pushers(&bob));
        pushers.set(&bob, None, pusher(url, "key"), false, 2).unwrap();
        assert!(!pushers.has_pushers(&alice));
        assert_eq!(pushers.list(&bob).unwrap()[0].pushkey_ts, 2);
        let reopened = Pushers::new(&db).unwrap();
        assert!(reopened.has_pushers(&bob));
    }
}
