//! Unread counts in `/sync`: `unread_notifications`, and `unread_thread_notifications` when the
//! filter asks for them (then `unread_notifications` covers the main timeline only, as the spec
//! says).

use ruma::{
    RoomId, UInt, UserId,
    api::client::sync::sync_events::{UnreadNotificationsCount, v3::JoinedRoom},
};

use super::Tally;
use crate::{service::Services, storage::StorageError};

fn to_spec(tally: Tally) -> UnreadNotificationsCount {
    let mut count = UnreadNotificationsCount::new();
    count.notification_count = Some(UInt::new_saturating(tally.notifications));
    count.highlight_count = Some(UInt::new_saturating(tally.highlights));
    count
}

impl Services {
    /// Fills the unread counts of a joined room in a sync response.
    pub fn fill_unread_counts(
        &self,
        user: &UserId,
        room_id: &RoomId,
        threads_apart: bool,
        joined: &mut JoinedRoom,
    ) -> Result<(), StorageError> {
        let counts = self.push.room_counts(user, room_id)?;
        if threads_apart {
            joined.unread_notifications = to_spec(counts.main);
            joined.unread_thread_notifications =
                counts.threads.into_iter().map(|(root, tally)| (root, to_spec(tally))).collect();
        } else {
            joined.unread_notifications = to_spec(counts.total());
        }
        Ok(())
    }
}
