//! Ephemeral room data: typing notifications (memory only) and read receipts (stored).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{globals::Globals, notifier::Notifier};
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column families owned by the ephemeral service.
pub const COLUMN_FAMILIES: &[&str] = &["roomcount_receipt", "roomuserkind_receiptcount"];

/// One stored receipt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    /// Who read.
    pub user_id: OwnedUserId,
    /// Up to which event.
    pub event_id: OwnedEventId,
    /// `m.read` or `m.read.private`.
    pub kind: String,
    /// The thread, if a threaded receipt.
    pub thread_id: Option<String>,
    /// When.
    pub ts: u64,
}

#[derive(Default)]
struct RoomTyping {
    count: u64,
    users: HashMap<OwnedUserId, Instant>,
}

/// Typing and receipts.
pub struct Ephemeral {
    globals: Arc<Globals>,
    notifier: Arc<Notifier>,
    receipts: Table<(OwnedRoomId, u64), Json<Receipt>>,
    latest: Table<(OwnedRoomId, OwnedUserId, String), u64>,
    typing: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
}

impl Ephemeral {
    /// Opens the service.
    pub fn new(
        db: &Arc<Db>,
        globals: Arc<Globals>,
        notifier: Arc<Notifier>,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            globals,
            notifier,
            receipts: db.table("roomcount_receipt")?,
            latest: db.table("roomuserkind_receiptcount")?,
            typing: Mutex::new(HashMap::new()),
        })
    }

    /// Starts or stops `user` typing in `room`; `members` are woken.
    pub fn set_typing(
        &self,
        room: &RoomId,
        user: &UserId,
        timeout: Option<Duration>,
        members: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        let pending = self.globals.next_count()?;
        {
            let mut typing = self.typing.lock();
            let entry = typing.entry(room.to_owned()).or_default();
            match timeout {
                Some(t) => {
                    entry
                        .users
                        .insert(user.to_owned(), Instant::now() + t.min(Duration::from_secs(120)));
                }
                None => {
                    entry.users.remove(user);
                }
            }
            entry.count = pending.count;
        }
        let count = pending.count;
        drop(pending);
        self.notifier.notify(members.iter().map(|u| &**u), count);
        Ok(())
    }

    /// Removes expired typing entries; returns the rooms that changed, to wake their members.
    pub fn expire_typing(&self) -> Result<Vec<(OwnedRoomId, u64)>, StorageError> {
        let now = Instant::now();
        let mut changed = Vec::new();
        let rooms: Vec<OwnedRoomId> = {
            let typing = self.typing.lock();
            typing
                .iter()
                .filter(|(_, t)| t.users.values().any(|until| *until <= now))
                .map(|(r, _)| r.clone())
                .collect()
        };
        for room in rooms {
            let pending = self.globals.next_count()?;
            let mut typing = self.typing.lock();
            if let Some(entry) = typing.get_mut(&room) {
                entry.users.retain(|_, until| *until > now);
                entry.count = pending.count;
                changed.push((room, pending.count));
            }
        }
        Ok(changed)
    }

    /// The `m.typing` event of a room if it changed after `since`.
    pub fn typing_since(&self, room: &RoomId, since: u64) -> Option<Value> {
        let typing = self.typing.lock();
        let entry = typing.get(room)?;
        if entry.count <= since {
            return None;
        }
        let now = Instant::now();
        let users: Vec<&OwnedUserId> =
            entry.users.iter().filter(|(_, until)| **until > now).map(|(u, _)| u).collect();
        Some(json!({ "type": "m.typing", "content": { "user_ids": users } }))
    }

    /// Stores a receipt and wakes `members` (only the reader for a private receipt).
    pub fn set_receipt(
        &self,
        room: &RoomId,
        receipt: Receipt,
        members: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        let key = (
            room.to_owned(),
            receipt.user_id.clone(),
            format!("{}|{}", receipt.kind, receipt.thread_id.as_deref().unwrap_or("")),
        );
        let pending = self.globals.next_count()?;
        let mut batch = Batch::default();
        if let Some(old) = self.latest.get(&key)? {
            batch.delete(&self.receipts, &(room.to_owned(), old));
        }
        batch.put(&self.latest, &key, &pending.count);
        let private = receipt.kind == "m.read.private";
        let reader = receipt.user_id.clone();
        batch.put(&self.receipts, &(room.to_owned(), pending.count), &Json(receipt));
        self.receipts.db().write(batch)?;
        let count = pending.count;
        drop(pending);
        if private {
            self.notifier.notify([&*reader], count);
        } else {
            self.notifier.notify(members.iter().map(|u| &**u), count);
        }
        Ok(())
    }

    /// The `m.receipt` event of a room with receipts after `since` and at most `upto`, as `viewer`
    /// may see them (private receipts only their own).
    pub fn receipts_since(
        &self,
        room: &RoomId,
        viewer: &UserId,
        since: u64,
        upto: u64,
    ) -> Result<Option<Value>, StorageError> {
        let mut content: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>> =
            BTreeMap::new();
        for entry in
            self.receipts.scan_prefix_from(&room.to_owned(), &(room.to_owned(), since + 1), true)?
        {
            let ((_, count), Json(receipt)) = entry?;
            if count > upto {
                break;
            }
            if receipt.kind == "m.read.private" && receipt.user_id != viewer {
                continue;
            }
            let mut data = json!({ "ts": receipt.ts });
            if let Some(thread) = &receipt.thread_id {
                data["thread_id"] = thread.as_str().into();
            }
            content
                .entry(receipt.event_id.to_string())
                .or_default()
                .entry(receipt.kind.clone())
                .or_default()
                .insert(receipt.user_id.to_string(), data);
        }
        if content.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({ "type": "m.receipt", "content": content })))
    }

    /// The event a user last read in a room (`m.read` or `m.read.private`, unthreaded or main).
    pub fn read_up_to(
        &self,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<(OwnedEventId, u64)>, StorageError> {
        let mut best: Option<(OwnedEventId, u64)> = None;
        for kind in ["m.read|", "m.read.private|", "m.read|main", "m.read.private|main"] {
            if let Some(count) =
                self.latest.get(&(room.to_owned(), user.to_owned(), kind.to_owned()))?
                && let Some(Json(receipt)) = self.receipts.get(&(room.to_owned(), count))?
                && best.as_ref().is_none_or(|(_, c)| count > *c)
            {
                best = Some((receipt.event_id, count));
            }
        }
        Ok(best)
    }
}

/// Now, in milliseconds.
pub fn now_ms() -> u64 {
    MilliSecondsSinceUnixEpoch::now().0.into()
}
