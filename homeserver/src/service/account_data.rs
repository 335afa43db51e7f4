//! Global and per-room account data (`m.direct`, `m.tag`, `m.fully_read`, client settings...).

use std::sync::Arc;

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{globals::Globals, notifier::Notifier};
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column families owned by the account-data service.
pub const COLUMN_FAMILIES: &[&str] = &["userroomtype_accountdata", "usercount_accountdatakey"];

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    count: u64,
    content: Value,
}

/// Account data storage with a change index for sync.
pub struct AccountData {
    globals: Arc<Globals>,
    notifier: Arc<Notifier>,
    data: Table<(OwnedUserId, String, String), Json<Entry>>,
    changes: Table<(OwnedUserId, u64), Json<(String, String)>>,
}

/// A changed piece of account data.
#[derive(Debug)]
pub struct Change {
    /// The room, or `None` for global account data.
    pub room_id: Option<OwnedRoomId>,
    /// The event type.
    pub kind: String,
    /// The content.
    pub content: Value,
}

impl AccountData {
    /// Opens the service.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<Globals>,
        notifier: Arc<Notifier>,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            globals,
            notifier,
            data: db.table("userroomtype_accountdata")?,
            changes: db.table("usercount_accountdatakey")?,
        })
    }

    fn key(user: &UserId, room: Option<&RoomId>, kind: &str) -> (OwnedUserId, String, String) {
        (user.to_owned(), room.map(|r| r.to_string()).unwrap_or_default(), kind.to_owned())
    }

    /// Reads one entry.
    pub fn get(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
        kind: &str,
    ) -> Result<Option<Value>, StorageError> {
        Ok(self.data.get(&Self::key(user, room, kind))?.map(|Json(e)| e.content))
    }

    /// Writes one entry and wakes the user's syncs.
    pub fn set(
        &self,
        user: &UserId,
        room: Option<&RoomId>,
        kind: &str,
        content: Value,
    ) -> Result<(), StorageError> {
        let key = Self::key(user, room, kind);
        let pending = self.globals.next_count()?;
        let mut batch = Batch::default();
        if let Some(Json(old)) = self.data.get(&key)? {
            batch.delete(&self.changes, &(user.to_owned(), old.count));
        }
        batch.put(&self.data, &key, &Json(Entry { count: pending.count, content }));
        batch.put(
            &self.changes,
            &(user.to_owned(), pending.count),
            &Json((key.1.clone(), key.2.clone())),
        );
        self.data.db().write(batch)?;
        let count = pending.count;
        drop(pending);
        self.notifier.notify([user], count);
        Ok(())
    }

    /// Entries changed after `since` and at most `upto`.
    pub fn changes_since(
        &self,
        user: &UserId,
        since: u64,
        upto: u64,
    ) -> Result<Vec<Change>, StorageError> {
        let mut out = Vec::new();
        for entry in
            self.changes.scan_prefix_from(&user.to_owned(), &(user.to_owned(), since + 1), true)?
        {
            let ((_, count), Json((room, kind))) = entry?;
            if count > upto {
                break;
            }
            let room_id = if room.is_empty() { None } else { OwnedRoomId::try_from(room).ok() };
            if let Some(content) = self.get(user, room_id.as_deref(), &kind)? {
                out.push(Change { room_id, kind, content });
            }
        }
        Ok(out)
    }
}
