//! Room aliases and the public room directory.

use std::sync::Arc;

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId};
use serde::{Deserialize, Serialize};

use crate::storage::{Batch, Db, Json, StorageError, Table};

/// Column families owned by the alias service.
pub const COLUMN_FAMILIES: &[&str] = &["alias_roomid", "roomid_alias", "publicroomid"];

/// Where an alias points, and who made it (they may delete it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AliasEntry {
    /// The room.
    pub room_id: OwnedRoomId,
    /// Who created the alias.
    pub creator: OwnedUserId,
}

/// Aliases and the directory.
pub struct Aliases {
    alias_room: Table<OwnedRoomAliasId, Json<AliasEntry>>,
    room_alias: Table<(OwnedRoomId, OwnedRoomAliasId), ()>,
    public: Table<OwnedRoomId, ()>,
    /// Serialises alias creation: the "is it free" check and the write must not interleave.
    create_lock: parking_lot::Mutex<()>,
}

impl Aliases {
    /// Opens the tables.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self {
            alias_room: db.table("alias_roomid")?,
            room_alias: db.table("roomid_alias")?,
            public: db.table("publicroomid")?,
            create_lock: parking_lot::Mutex::new(()),
        })
    }

    /// Resolves an alias.
    pub fn resolve(&self, alias: &RoomAliasId) -> Result<Option<AliasEntry>, StorageError> {
        Ok(self.alias_room.get(&alias.to_owned())?.map(|Json(e)| e))
    }

    /// Creates an alias; returns `false` if it is taken.
    pub fn create(
        &self,
        alias: &RoomAliasId,
        room_id: &RoomId,
        creator: &ruma::UserId,
    ) -> Result<bool, StorageError> {
        let _creating = self.create_lock.lock();
        if self.alias_room.contains(&alias.to_owned())? {
            return Ok(false);
        }
        let mut batch = Batch::default();
        batch.put(
            &self.alias_room,
            &alias.to_owned(),
            &Json(AliasEntry { room_id: room_id.to_owned(), creator: creator.to_owned() }),
        );
        batch.put(&self.room_alias, &(room_id.to_owned(), alias.to_owned()), &());
        self.alias_room.db().write(batch)?;
        Ok(true)
    }

    /// Deletes an alias.
    pub fn delete(&self, alias: &RoomAliasId, room_id: &RoomId) -> Result<(), StorageError> {
        let mut batch = Batch::default();
        batch.delete(&self.alias_room, &alias.to_owned());
        batch.delete(&self.room_alias, &(room_id.to_owned(), alias.to_owned()));
        self.alias_room.db().write(batch)
    }

    /// The local aliases of a room.
    pub fn aliases_of(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>, StorageError> {
        self.room_alias
            .scan_prefix(&room_id.to_owned())?
            .map(|res| res.map(|((_, alias), ())| alias))
            .collect()
    }

    /// Publishes or unpublishes a room in the directory.
    pub fn set_public(&self, room_id: &RoomId, public: bool) -> Result<(), StorageError> {
        if public {
            self.public.put(&room_id.to_owned(), &())
        } else {
            self.public.remove(&room_id.to_owned())
        }
    }

    /// Whether a room is in the directory.
    pub fn is_public(&self, room_id: &RoomId) -> Result<bool, StorageError> {
        self.public.contains(&room_id.to_owned())
    }

    /// All rooms in the directory.
    pub fn public_rooms(&self) -> Result<Vec<OwnedRoomId>, StorageError> {
        self.public.scan_all()?.map(|res| res.map(|(room, ())| room)).collect()
    }
}
