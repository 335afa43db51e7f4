//! Membership indexes in both directions: a user's rooms, a room's members.

use std::sync::Arc;

use ruma::{
    OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId, events::room::member::MembershipState,
};
use serde::{Deserialize, Serialize};

use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column families owned by the membership index.
pub const COLUMN_FAMILIES: &[&str] = &["userroomid_membership", "roomuserid_membership"];

/// A user's membership of a room.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MembershipEntry {
    /// The membership.
    pub membership: MembershipState,
    /// Stream position of the latest member event (profile changes included).
    pub count: u64,
    /// Stream position at which the membership itself last changed (join, leave, ...).
    pub since: u64,
    /// The latest member event.
    pub event_id: OwnedEventId,
    /// The user forgot the room (after leaving it): it no longer appears in their sync.
    #[serde(default)]
    pub forgotten: bool,
}

/// The two membership tables.
pub struct MembershipIndex {
    by_user: Table<(OwnedUserId, OwnedRoomId), Json<MembershipEntry>>,
    by_room: Table<(OwnedRoomId, OwnedUserId), Json<MembershipEntry>>,
}

impl MembershipIndex {
    /// Opens the index.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self {
            by_user: db.table("userroomid_membership")?,
            by_room: db.table("roomuserid_membership")?,
        })
    }

    /// One membership.
    pub fn get(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
    ) -> Result<Option<MembershipEntry>, StorageError> {
        Ok(self.by_user.get(&(user_id.to_owned(), room_id.to_owned()))?.map(|Json(e)| e))
    }

    /// Queues a membership change.
    pub fn put(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        room_id: &RoomId,
        entry: &MembershipEntry,
    ) {
        batch.put(&self.by_user, &(user_id.to_owned(), room_id.to_owned()), &Json(entry.clone()));
        batch.put(&self.by_room, &(room_id.to_owned(), user_id.to_owned()), &Json(entry.clone()));
    }

    /// All rooms of a user.
    pub fn rooms_of(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<(OwnedRoomId, MembershipEntry)>, StorageError> {
        self.by_user
            .scan_prefix(&user_id.to_owned())?
            .map(|res| res.map(|((_, room), Json(entry))| (room, entry)))
            .collect()
    }

    /// All members of a room (any membership).
    pub fn members_of(
        &self,
        room_id: &RoomId,
    ) -> Result<Vec<(OwnedUserId, MembershipEntry)>, StorageError> {
        self.by_room
            .scan_prefix(&room_id.to_owned())?
            .map(|res| res.map(|((_, user), Json(entry))| (user, entry)))
            .collect()
    }

    /// Marks a left room as forgotten for the user.
    pub fn forget(&self, user_id: &UserId, room_id: &RoomId) -> Result<(), StorageError> {
        if let Some(mut entry) = self.get(user_id, room_id)? {
            entry.forgotten = true;
            let mut batch = Batch::default();
            self.put(&mut batch, user_id, room_id, &entry);
            self.by_user.db().write(batch)?;
        }
        Ok(())
    }
}
