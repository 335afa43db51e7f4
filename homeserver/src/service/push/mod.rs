//! Push notifications: push rules, notification counts and pushers.
//!
//! Every new event is evaluated against the push rules of every joined member right after it is
//! written (an [`EventHook`](super::rooms::hook::EventHook), see `notify.rs`), before its stream
//! position becomes visible: a `/sync` never sees an event without the counts it produced.
//!
//! - `rules.rs`: each user's ruleset (the `m.push_rules` account data), cached in memory;
//! - `evaluate.rs`: ruma's evaluator run for many members at once, sharing work between members
//!   with the unchanged default rules;
//! - `counts.rs`: per-user unread notifications per room and thread, reset by receipts, and the
//!   `/notifications` history;
//! - `pushers.rs`: HTTP pushers; `gateway.rs`: delivery to push gateways, with retries.

mod counts;
pub mod evaluate;
mod gateway;
mod notify;
pub mod pushers;
pub mod rules;
mod sync_counts;

use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;
use ruma::{OwnedRoomId, OwnedUserId};

use self::{counts::Counts, gateway::Gateway, pushers::Pushers, rules::Rules};
pub use self::{
    counts::{Notification, NotificationPage, ReadScope, RoomCounts, Tally},
    pushers::StoredPusher,
    rules::UserRules,
};
use super::account_data::AccountData;
use crate::storage::{Db, StorageError};

/// Column families owned by the push service.
pub const COLUMN_FAMILIES: &[&str] = &[
    counts::UNREAD_TABLE,
    counts::TALLY_TABLE,
    counts::NOTIFICATION_TABLE,
    pushers::PUSHER_TABLE,
    pushers::PUSHKEY_TABLE,
];

/// Rooms whose joined members are kept in memory for the send path.
const MEMBER_CACHE_ROOMS: usize = 1_000;

/// Errors of push operations.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The push rule, or the rule named by `before`/`after`, does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A parameter is invalid (reserved rule ID, bad pusher URL...).
    #[error("{0}")]
    InvalidParam(String),
    /// A required parameter is missing.
    #[error("{0}")]
    MissingParam(String),
    /// The HTTP client for push gateways could not be built.
    #[error("cannot build the push gateway client: {0}")]
    HttpClient(String),
}

/// The push service.
pub struct Push {
    rules: Rules,
    counts: Arc<Counts>,
    pushers: Arc<Pushers>,
    gateway: Gateway,
    members: Mutex<LruCache<OwnedRoomId, Arc<Vec<OwnedUserId>>>>,
}

impl Push {
    /// Opens the service; push rules live in `account_data`.
    pub fn new(db: &Arc<Db>, account_data: Arc<AccountData>) -> Result<Self, PushError> {
        Ok(Self {
            rules: Rules::new(account_data),
            counts: Arc::new(Counts::new(db)?),
            pushers: Arc::new(Pushers::new(db)?),
            gateway: Gateway::new()?,
            members: Mutex::new(LruCache::new(
                NonZeroUsize::new(MEMBER_CACHE_ROOMS).unwrap_or(NonZeroUsize::MIN),
            )),
        })
    }

    /// The push rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The pushers.
    pub fn pushers(&self) -> &Pushers {
        &self.pushers
    }

    /// Unread notification counts of `user` in `room`, per thread.
    pub fn room_counts(
        &self,
        user: &ruma::UserId,
        room: &ruma::RoomId,
    ) -> Result<RoomCounts, StorageError> {
        self.counts.room_counts(user, room)
    }

    /// Marks what `user` read in `room` up to stream position `count` (a receipt's event).
    pub fn mark_read(
        &self,
        user: &ruma::UserId,
        room: &ruma::RoomId,
        count: u64,
        scope: &ReadScope,
    ) -> Result<(), StorageError> {
        self.counts.mark_read(user, room, count, scope)
    }

    /// A page of the user's notifications, newest first.
    pub fn notifications(
        &self,
        user: &ruma::UserId,
        from: Option<u64>,
        limit: usize,
        only_highlight: bool,
    ) -> Result<NotificationPage, StorageError> {
        self.counts.notifications(user, from, limit, only_highlight)
    }
}
