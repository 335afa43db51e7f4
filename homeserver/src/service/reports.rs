//! Content reports (`/report`): kept for the server's administrators.

use std::sync::Arc;

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::{ephemeral::now_ms, globals::Globals};
use crate::storage::{Db, Json, StorageError, Table};

/// Column families owned by the report store.
pub const COLUMN_FAMILIES: &[&str] = &["reportid_report"];

/// One report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Who reported.
    pub reporter: OwnedUserId,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The event, when an event is reported.
    pub event_id: Option<OwnedEventId>,
    /// The reported user, when a user is reported.
    pub user_id: Option<OwnedUserId>,
    /// The reporter's reason.
    pub reason: Option<String>,
    /// When.
    pub ts: u64,
}

/// The report store.
pub struct Reports {
    globals: Arc<Globals>,
    table: Table<u64, Json<Report>>,
}

impl Reports {
    /// Opens the store.
    pub fn new(db: &Arc<Db>, globals: Arc<Globals>) -> Result<Self, StorageError> {
        Ok(Self { globals, table: db.table("reportid_report")? })
    }

    /// Records a report; returns its ID.
    pub fn add(&self, mut report: Report) -> Result<u64, StorageError> {
        report.ts = now_ms();
        let id = self.globals.next_short_id()?;
        self.table.put(&id, &Json(report))?;
        Ok(id)
    }

    /// All reports, oldest first.
    pub fn all(&self) -> Result<Vec<(u64, Report)>, StorageError> {
        self.table.scan_all()?.map(|res| res.map(|(id, Json(r))| (id, r))).collect()
    }
}
