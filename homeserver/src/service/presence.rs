//! Presence: online, unavailable or offline, with a status message. Kept in memory: presence is
//! ephemeral by nature and every client re-announces it when it syncs.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;
use ruma::{OwnedUserId, UserId, presence::PresenceState};
use serde_json::{Value, json};

use super::{
    ephemeral::now_ms,
    globals::{ChangeKind, Globals},
    notifier::Notifier,
};
use crate::storage::StorageError;

/// A user's presence.
#[derive(Clone, Debug)]
pub struct Presence {
    /// The state.
    pub state: PresenceState,
    /// Free-text status.
    pub status_msg: Option<String>,
    /// Last activity, in milliseconds since the epoch.
    pub last_active_ts: u64,
    /// Stream position of the last change.
    pub count: u64,
}

/// The presence service.
pub struct PresenceService {
    globals: Arc<Globals>,
    notifier: Arc<Notifier>,
    users: Mutex<HashMap<OwnedUserId, Presence>>,
}

impl PresenceService {
    /// A new, empty service.
    pub fn new(globals: Arc<Globals>, notifier: Arc<Notifier>) -> Self {
        Self { globals, notifier, users: Mutex::new(HashMap::new()) }
    }

    /// Sets a user's presence and wakes the users who share a room with them (`audience`).
    pub fn set(
        &self,
        user: &UserId,
        state: PresenceState,
        status_msg: Option<String>,
        audience: &[OwnedUserId],
    ) -> Result<(), StorageError> {
        {
            let users = self.users.lock();
            if let Some(current) = users.get(user) {
                // Repeating the same state is the common case (every sync announces it): no wake-up.
                if current.state == state
                    && (status_msg.is_none() || current.status_msg == status_msg)
                {
                    return Ok(());
                }
            }
        }
        let pending = self.globals.next_count()?;
        let count = pending.count;
        self.globals.note_change(ChangeKind::Presence, count);
        {
            let mut users = self.users.lock();
            let previous_msg = users.get(user).and_then(|p| p.status_msg.clone());
            users.insert(
                user.to_owned(),
                Presence {
                    state,
                    status_msg: status_msg.or(previous_msg),
                    last_active_ts: now_ms(),
                    count,
                },
            );
        }
        drop(pending);
        self.notifier.notify(audience.iter().map(|u| &**u).chain([user]), count);
        Ok(())
    }

    /// A user's presence.
    pub fn get(&self, user: &UserId) -> Option<Presence> {
        self.users.lock().get(user).cloned()
    }

    /// The `m.presence` event of `user` if it changed after `since`.
    pub fn event_since(&self, user: &UserId, since: u64, upto: u64) -> Option<Value> {
        let presence = self.get(user)?;
        if presence.count <= since || presence.count > upto {
            return None;
        }
        Some(json!({
            "type": "m.presence",
            "sender": user,
            "content": presence_content(&presence),
        }))
    }
}

/// The content of an `m.presence` event.
pub fn presence_content(presence: &Presence) -> Value {
    let mut content = json!({
        "presence": presence.state.as_str(),
        "last_active_ago": now_ms().saturating_sub(presence.last_active_ts),
        "currently_active": presence.state == PresenceState::Online,
    });
    if let Some(msg) = &presence.status_msg {
        content["status_msg"] = msg.as_str().into();
    }
    content
}
