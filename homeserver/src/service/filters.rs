//! Stored filters (`POST /user/{userId}/filter`) and event matching against them.

use std::sync::Arc;

use ruma::{
    OwnedUserId, UserId,
    api::client::filter::{FilterDefinition, RoomEventFilter},
};

use super::{globals::Globals, rooms::pdu::PduEvent};
use crate::storage::{Db, Json, StorageError, Table};

/// Column families owned by the filter service.
pub const COLUMN_FAMILIES: &[&str] = &["userfilterid_filter"];

/// Stored filters.
pub struct Filters {
    globals: Arc<Globals>,
    table: Table<(OwnedUserId, String), Json<FilterDefinition>>,
}

impl Filters {
    /// Opens the service.
    pub fn new(db: &Arc<Db>, globals: Arc<Globals>) -> Result<Self, StorageError> {
        Ok(Self { globals, table: db.table("userfilterid_filter")? })
    }

    /// Stores a filter; returns its ID.
    pub fn create(&self, user: &UserId, filter: &FilterDefinition) -> Result<String, StorageError> {
        let id = self.globals.next_short_id()?.to_string();
        self.table.put(&(user.to_owned(), id.clone()), &Json(filter.clone()))?;
        Ok(id)
    }

    /// Loads a filter of `user`.
    pub fn get(&self, user: &UserId, id: &str) -> Result<Option<FilterDefinition>, StorageError> {
        Ok(self.table.get(&(user.to_owned(), id.to_owned()))?.map(|Json(f)| f))
    }
}

/// Whether a type or sender pattern (with `*` wildcards) matches.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            let Some(rest) = value.strip_prefix(head) else { return false };
            (0..=rest.len()).filter(|i| rest.is_char_boundary(*i)).any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// Whether an event passes a room event filter.
pub fn matches(filter: &RoomEventFilter, pdu: &PduEvent) -> bool {
    let kind = pdu.kind().to_string();
    if filter.not_types.iter().any(|t| glob(t, &kind)) {
        return false;
    }
    if let Some(types) = &filter.types
        && !types.iter().any(|t| glob(t, &kind))
    {
        return false;
    }
    if filter.not_senders.iter().any(|s| s == pdu.sender()) {
        return false;
    }
    if let Some(senders) = &filter.senders
        && !senders.iter().any(|s| s == pdu.sender())
    {
        return false;
    }
    if filter.not_rooms.iter().any(|r| r == pdu.room_id()) {
        return false;
    }
    if let Some(rooms) = &filter.rooms
        && !rooms.iter().any(|r| r == pdu.room_id())
    {
        return false;
    }
    if let Some(url) = &filter.url_filter {
        let has_url = pdu.content_object().contains_key("url");
        let wants = matches!(url, ruma::api::client::filter::UrlFilter::EventsWithUrl);
        if has_url != wants {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn wildcards() {
        assert!(glob("m.*", "m.room.message"));
        assert!(glob("*", "anything"));
        assert!(glob("m.room.*.x", "m.room.a.x"));
        assert!(!glob("m.room.*.x", "m.room.a.y"));
        assert!(!glob("m.room.message", "m.room.member"));
    }
}
