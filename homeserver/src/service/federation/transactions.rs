//! The transactions other servers sent that were processed, so that a retry of one (the sender
//! did not get the answer) is acknowledged without processing it twice.

use std::sync::Arc;

use ruma::{MilliSecondsSinceUnixEpoch, ServerName, TransactionId};

use crate::storage::{Db, StorageError, Table};

/// Column families of the processed-transactions record.
pub const COLUMN_FAMILIES: &[&str] = &["origintxn_processedts"];

/// The record of processed incoming transactions.
#[derive(Debug)]
pub struct IncomingTransactions {
    processed: Table<(String, String), u64>,
}

impl IncomingTransactions {
    /// Opens the record.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self { processed: db.table("origintxn_processedts")? })
    }

    /// Whether `origin`'s transaction `txn` was already processed.
    pub fn seen(&self, origin: &ServerName, txn: &TransactionId) -> Result<bool, StorageError> {
        self.processed.contains(&(origin.to_string(), txn.to_string()))
    }

    /// Records `origin`'s transaction `txn` as processed.
    pub fn mark(&self, origin: &ServerName, txn: &TransactionId) -> Result<(), StorageError> {
        let now: u64 = MilliSecondsSinceUnixEpoch::now().0.into();
        self.processed.put(&(origin.to_string(), txn.to_string()), &now)
    }
}
