//! Wakes the `/sync` long-polls of the users concerned by a change; nobody polls.
//!
//! Each user with a waiting sync has a `watch` channel holding the last stream position that
//! concerns them. A waiter subscribes *before* it computes its response, so a change committed
//! while it computes is never missed.

use std::collections::HashMap;

use parking_lot::Mutex;
use ruma::{OwnedUserId, UserId};
use tokio::sync::watch;

/// The per-user wake-up channels.
#[derive(Debug)]
pub struct Notifier {
    users: Mutex<HashMap<OwnedUserId, watch::Sender<u64>>>,
    /// The last position signalled to anyone: for consumers of the whole stream.
    stream: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self { users: Mutex::default(), stream: watch::channel(0).0 }
    }
}

impl Notifier {
    /// Subscribes to changes for `user`.
    pub fn subscribe(&self, user: &UserId) -> watch::Receiver<u64> {
        let mut users = self.users.lock();
        users.entry(user.to_owned()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Subscribes to every change of the stream, whoever it concerns.
    pub fn subscribe_stream(&self) -> watch::Receiver<u64> {
        self.stream.subscribe()
    }

    /// Signals `users` that stream position `count` concerns them. Channels nobody listens to any
    /// more are dropped here, so the map only holds users with a sync in flight.
    pub fn notify<'a>(&self, users: impl IntoIterator<Item = &'a UserId>, count: u64) {
        self.stream.send_if_modified(|last| {
            let newer = count > *last;
            *last = (*last).max(count);
            newer
        });
        let mut map = self.users.lock();
        for user in users {
            if let Some(sender) = map.get(user) {
                if sender.receiver_count() == 0 {
                    map.remove(user);
                } else {
                    sender.send_replace(count);
                }
            }
        }
    }

    /// Number of users with a sync waiting, for metrics.
    pub fn waiting_users(&self) -> usize {
        self.users.lock().values().filter(|s| s.receiver_count() > 0).count()
    }
}
