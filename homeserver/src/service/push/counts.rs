//! Notification counts and the notification history.
//!
//! For each user, an event that notified them leaves:
//! - an *unread* entry `(user, room, count)` with its thread and whether it highlighted, deleted
//!   when a receipt (or the user's own message) covers it;
//! - a running *tally* per `(user, room, thread)` (the thread is `""` for the main timeline) of
//!   the unread entries, so a `/sync` reads one small key per room and thread instead of counting;
//! - a *notification* record `(user, count)` for `/notifications`, trimmed to the newest
//!   [`KEPT_NOTIFICATIONS`].
//!
//! Tallies are read-modify-written: writers of a room hold that room's stripe lock.

use std::{
    collections::{BTreeMap, HashMap},
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use parking_lot::Mutex;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId, push::Action};
use serde::{Deserialize, Serialize};

use super::evaluate::highlights;
use crate::storage::{Batch, Db, Json, StorageError, Table};

/// `(user, room, count)` → the unread entry.
pub const UNREAD_TABLE: &str = "userroomcount_unread";
/// `(user, room, thread)` → the tally of unread entries.
pub const TALLY_TABLE: &str = "userroomthread_tally";
/// `(user, count)` → the notification record.
pub const NOTIFICATION_TABLE: &str = "usercount_notification";

/// Notifications kept per user for `/notifications`.
pub const KEPT_NOTIFICATIONS: usize = 1_000;
/// The history of a user is trimmed on one receipt in this many.
const TRIM_EVERY: u64 = 32;
const STRIPES: usize = 64;

/// Unread notifications and highlights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Unread notifications.
    pub notifications: u64,
    /// Unread highlights among them.
    pub highlights: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.notifications += other.notifications;
        self.highlights += other.highlights;
    }

    fn sub(&mut self, other: Tally) {
        self.notifications = self.notifications.saturating_sub(other.notifications);
        self.highlights = self.highlights.saturating_sub(other.highlights);
    }

    fn one(highlight: bool) -> Self {
        Self { notifications: 1, highlights: u64::from(highlight) }
    }
}

/// A user's unread counts in one room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomCounts {
    /// The main timeline (events outside threads, thread roots included).
    pub main: Tally,
    /// Per thread, by thread root.
    pub threads: BTreeMap<OwnedEventId, Tally>,
}

impl RoomCounts {
    /// Main timeline and threads together.
    pub fn total(&self) -> Tally {
        let mut total = self.main;
        for tally in self.threads.values() {
            total.add(*tally);
        }
        total
    }
}

/// What a receipt covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadScope {
    /// An unthreaded receipt: everything.
    All,
    /// The main timeline.
    Main,
    /// One thread, by root.
    Thread(OwnedEventId),
}

impl ReadScope {
    /// The scope of an event in `thread` (`None` for the main timeline).
    pub fn of_thread(thread: Option<&OwnedEventId>) -> Self {
        thread.map_or(Self::Main, |root| Self::Thread(root.clone()))
    }

    fn covers(&self, thread: Option<&OwnedEventId>) -> bool {
        match self {
            Self::All => true,
            Self::Main => thread.is_none(),
            Self::Thread(root) => thread == Some(root),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Unread {
    thread: Option<OwnedEventId>,
    highlight: bool,
}

/// One notification of the history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notification {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The event.
    pub event_id: OwnedEventId,
    /// The actions of the rule that matched.
    pub actions: Vec<Action>,
    /// When the notification was made, in milliseconds.
    pub ts: u64,
    /// Whether the actions highlight.
    pub highlight: bool,
}

/// A page of `/notifications`.
#[derive(Debug, Default)]
pub struct NotificationPage {
    /// The notifications, newest first, with whether they were read.
    pub notifications: Vec<(Notification, bool)>,
    /// The token of the next page, if there may be one.
    pub next: Option<u64>,
}

/// What one event left for its recipients.
#[derive(Debug)]
pub struct NewNotifications<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// The event.
    pub event_id: &'a OwnedEventId,
    /// Its stream position.
    pub count: u64,
    /// Its thread (root), if in a thread.
    pub thread: Option<&'a OwnedEventId>,
    /// When, in milliseconds.
    pub ts: u64,
}

/// The count tables.
pub struct Counts {
    unread: Table<(OwnedUserId, OwnedRoomId, u64), Json<Unread>>,
    tallies: Table<(OwnedUserId, OwnedRoomId, String), Json<Tally>>,
    history: Table<(OwnedUserId, u64), Json<Notification>>,
    stripes: [Mutex<()>; STRIPES],
    receipts: AtomicU64,
}

fn thread_key(thread: Option<&OwnedEventId>) -> String {
    thread.map(|t| t.to_string()).unwrap_or_default()
}

impl Counts {
    /// Opens the tables.
    pub fn new(db: &Arc<Db>) -> Result<Self, StorageError> {
        Ok(Self {
            unread: db.table(UNREAD_TABLE)?,
            tallies: db.table(TALLY_TABLE)?,
            history: db.table(NOTIFICATION_TABLE)?,
            stripes: std::array::from_fn(|_| Mutex::new(())),
            receipts: AtomicU64::new(0),
        })
    }

    fn stripe(&self, room: &RoomId) -> &Mutex<()> {
        let mut hasher = std::hash::DefaultHasher::new();
        room.hash(&mut hasher);
        &self.stripes[(hasher.finish() % STRIPES as u64) as usize]
    }

    /// Records an event's notifications, and the sender's implicit read of what came before it in
    /// the same thread, in one batch.
    pub fn record(
        &self,
        event: &NewNotifications<'_>,
        recipients: &[(OwnedUserId, Vec<Action>)],
        sender: &UserId,
    ) -> Result<(), StorageError> {
        let room = event.room_id.to_owned();
        let _guard = self.stripe(event.room_id).lock();
        let mut batch = Batch::default();
        let thread = thread_key(event.thread);
        let keys: Vec<_> = recipients
            .iter()
            .map(|(user, _)| (user.clone(), room.clone(), thread.clone()))
            .collect();
        let tallies = self.tallies.multi_get(&keys)?;
        for (((user, actions), key), tally) in recipients.iter().zip(&keys).zip(tallies) {
            let highlight = highlights(actions);
            let mut tally = tally.map(|Json(t)| t).unwrap_or_default();
            tally.add(Tally::one(highlight));
            batch.put(&self.tallies, key, &Json(tally));
            batch.put(
                &self.unread,
                &(user.clone(), room.clone(), event.count),
                &Json(Unread { thread: event.thread.cloned(), highlight }),
            );
            let record = Notification {
                room_id: room.clone(),
                event_id: event.event_id.clone(),
                actions: actions.clone(),
                ts: event.ts,
                highlight,
            };
            batch.put(&self.history, &(user.clone(), event.count), &Json(record));
        }
        self.queue_read(
            &mut batch,
            sender,
            event.room_id,
            event.count,
            &ReadScope::of_thread(event.thread),
        )?;
        self.unread.db().write(batch)
    }

    /// Deletes what `scope` covers up to `count` from the user's unread entries in `room`.
    pub fn mark_read(
        &self,
        user: &UserId,
        room: &RoomId,
        count: u64,
        scope: &ReadScope,
    ) -> Result<(), StorageError> {
        {
            let _guard = self.stripe(room).lock();
            let mut batch = Batch::default();
            self.queue_read(&mut batch, user, room, count, scope)?;
            if !batch.is_empty() {
                self.unread.db().write(batch)?;
            }
        }
        if self.receipts.fetch_add(1, Ordering::Relaxed).is_multiple_of(TRIM_EVERY) {
            self.trim_history(user)?;
        }
        Ok(())
    }

    /// Queues the deletion of covered unread entries and the matching tally updates. The caller
    /// holds the room's stripe lock.
    fn queue_read(
        &self,
        batch: &mut Batch,
        user: &UserId,
        room: &RoomId,
        count: u64,
        scope: &ReadScope,
    ) -> Result<(), StorageError> {
        let prefix = (user.to_owned(), room.to_owned());
        let mut read: HashMap<String, Tally> = HashMap::new();
        for entry in self.unread.scan_prefix(&prefix)? {
            let ((user, room, at), Json(unread)) = entry?;
            if at > count {
                break;
            }
            if scope.covers(unread.thread.as_ref()) {
                batch.delete(&self.unread, &(user, room, at));
                read.entry(thread_key(unread.thread.as_ref()))
                    .or_default()
                    .add(Tally::one(unread.highlight));
            }
        }
        for (thread, done) in read {
            let key = (user.to_owned(), room.to_owned(), thread);
            let mut tally = self.tallies.get(&key)?.map(|Json(t)| t).unwrap_or_default();
            tally.sub(done);
            if tally.notifications == 0 {
                batch.delete(&self.tallies, &key);
            } else {
                batch.put(&self.tallies, &key, &Json(tally));
            }
        }
        Ok(())
    }

    /// The user's unread counts in a room.
    pub fn room_counts(&self, user: &UserId, room: &RoomId) -> Result<RoomCounts, StorageError> {
        let mut counts = RoomCounts::default();
        for entry in self.tallies.scan_prefix(&(user.to_owned(), room.to_owned()))? {
            let ((_, _, thread), Json(tally)) = entry?;
            if thread.is_empty() {
                counts.main = tally;
            } else if let Ok(root) = OwnedEventId::try_from(thread) {
                counts.threads.insert(root, tally);
            }
        }
        Ok(counts)
    }

    /// The number of rooms where the user has unread notifications (the badge of push gateways).
    pub fn rooms_with_unread(&self, user: &UserId) -> Result<u64, StorageError> {
        let mut rooms = 0;
        let mut last: Option<OwnedRoomId> = None;
        for entry in self.tallies.scan_prefix(&user.to_owned())? {
            let ((_, room, _), Json(tally)) = entry?;
            if tally.notifications > 0 && last.as_ref() != Some(&room) {
                rooms += 1;
                last = Some(room);
            }
        }
        Ok(rooms)
    }

    /// A page of the user's notifications, newest first, starting below `from`.
    pub fn notifications(
        &self,
        user: &UserId,
        from: Option<u64>,
        limit: usize,
        only_highlight: bool,
    ) -> Result<NotificationPage, StorageError> {
        let owner = user.to_owned();
        let mut page = NotificationPage::default();
        let entries: Box<dyn Iterator<Item = _>> = match from {
            Some(0) => return Ok(page),
            Some(from) => Box::new(self.history.scan_prefix_from(
                &owner,
                &(owner.clone(), from - 1),
                false,
            )?),
            None => Box::new(self.history.scan_prefix_rev(&owner)?),
        };
        for entry in entries {
            let ((_, count), Json(notification)) = entry?;
            if only_highlight && !notification.highlight {
                continue;
            }
            if page.notifications.len() == limit {
                break;
            }
            let read =
                !self.unread.contains(&(owner.clone(), notification.room_id.clone(), count))?;
            page.notifications.push((notification, read));
            page.next = Some(count);
        }
        if page.notifications.len() < limit {
            page.next = None;
        }
        Ok(page)
    }

    /// Deletes the user's notification records beyond the newest [`KEPT_NOTIFICATIONS`].
    fn trim_history(&self, user: &UserId) -> Result<(), StorageError> {
        let owner = user.to_owned();
        let mut batch = Batch::default();
        for entry in self.history.scan_prefix_rev(&owner)?.skip(KEPT_NOTIFICATIONS) {
            let (key, _) = entry?;
            batch.delete(&self.history, &key);
        }
        if !batch.is_empty() {
            self.history.db().write(batch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ruma::{owned_event_id, owned_room_id, owned_user_id};

    use super::*;

    fn open(dir: &std::path::Path) -> Counts {
        let cfs = [UNREAD_TABLE, TALLY_TABLE, NOTIFICATION_TABLE];
        let db = Db::open(
            dir,
            &cfs,
            &crate::storage::OpenOptions { sync_writes: false, cache_bytes: 1 << 20 },
        )
        .unwrap();
        Counts::new(&db).unwrap()
    }

    fn notify(
        counts: &Counts,
        room: &RoomId,
        count: u64,
        thread: Option<&OwnedEventId>,
        users: &[(&str, bool)],
    ) {
        let event_id = OwnedEventId::try_from(format!("$e{count}")).unwrap();
        let recipients: Vec<_> = users
            .iter()
            .map(|(u, highlight)| {
                let mut actions = vec![Action::Notify];
                if *highlight {
                    actions.push(Action::SetTweak(ruma::push::Tweak::Highlight(
                        ruma::push::HighlightTweakValue::Yes,
                    )));
                }
                (OwnedUserId::try_from(*u).unwrap(), actions)
            })
            .collect();
        let event =
            NewNotifications { room_id: room, event_id: &event_id, count, thread, ts: count };
        counts.record(&event, &recipients, &owned_user_id!("@sender:x")).unwrap();
    }

    #[test]
    fn receipts_reset_their_scope_only() {
        let dir = tempfile::tempdir().unwrap();
        let counts = open(dir.path());
        let room = owned_room_id!("!r:x");
        let alice = owned_user_id!("@alice:x");
        let root = owned_event_id!("$root");
        notify(&counts, &room, 1, None, &[("@alice:x", false)]);
        notify(&counts, &room, 2, Some(&root), &[("@alice:x", true)]);
        notify(&counts, &room, 3, None, &[("@alice:x", true), ("@bob:x", false)]);
        let before = counts.room_counts(&alice, &room).unwrap();
        assert_eq!(before.main, Tally { notifications: 2, highlights: 1 });
        assert_eq!(before.threads[&root], Tally { notifications: 1, highlights: 1 });
        assert_eq!(before.total(), Tally { notifications: 3, highlights: 2 });

        counts.mark_read(&alice, &room, 2, &ReadScope::Main).unwrap();
        let after = counts.room_counts(&alice, &room).unwrap();
        assert_eq!(after.main, Tally { notifications: 1, highlights: 1 });
        assert_eq!(after.threads[&root].notifications, 1);

        counts.mark_read(&alice, &room, 3, &ReadScope::Thread(root.clone())).unwrap();
        assert!(counts.room_counts(&alice, &room).unwrap().threads.is_empty());
        counts.mark_read(&alice, &room, 3, &ReadScope::All).unwrap();
        assert_eq!(counts.room_counts(&alice, &room).unwrap(), RoomCounts::default());
        assert_eq!(counts.rooms_with_unread(&owned_user_id!("@bob:x")).unwrap(), 1);
    }

    #[test]
    fn notifications_page_newest_first_with_read_flags() {
        let dir = tempfile::tempdir().unwrap();
        let counts = open(dir.path());
        let room = owned_room_id!("!r:x");
        let alice = owned_user_id!("@alice:x");
        for count in 1..=5 {
            notify(&counts, &room, count, None, &[("@alice:x", count % 2 == 0)]);
        }
        counts.mark_read(&alice, &room, 2, &ReadScope::All).unwrap();
        let first = counts.notifications(&alice, None, 2, false).unwrap();
        let ids: Vec<_> =
            first.notifications.iter().map(|(n, read)| (n.event_id.to_string(), *read)).collect();
        assert_eq!(ids, [("$e5".to_owned(), false), ("$e4".to_owned(), false)]);
        let second = counts.notifications(&alice, first.next, 10, false).unwrap();
        let ids: Vec<_> =
            second.notifications.iter().map(|(n, read)| (n.event_id.to_string(), *read)).collect();
        assert_eq!(
            ids,
            [("$e3".to_owned(), false), ("$e2".to_owned(), true), ("$e1".to_owned(), true)]
        );
        assert_eq!(second.next, None);
        let highlights = counts.notifications(&alice, None, 10, true).unwrap();
        assert_eq!(highlights.notifications.len(), 2);
    }
}
