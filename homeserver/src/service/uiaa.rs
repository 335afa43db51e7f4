//! User-interactive authentication sessions (registration, device deletion, password change).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use super::accounts::new_token;

/// How long a UIA session lives.
const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
struct Session {
    completed: Vec<String>,
    /// What the session is for (a request kind and user), so a session cannot be replayed for
    /// another action.
    purpose: String,
    created: Instant,
}

/// Open UIA sessions, in memory.
#[derive(Debug, Default)]
pub struct Uiaa {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Uiaa {
    /// Opens a session for `purpose`; returns its ID.
    pub fn open(&self, purpose: &str) -> String {
        let id = new_token();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
        sessions.insert(
            id.clone(),
            Session { completed: Vec::new(), purpose: purpose.to_owned(), created: Instant::now() },
        );
        id
    }

    /// Records a completed stage; `false` if the session is unknown, expired or for another purpose.
    pub fn complete(&self, id: &str, purpose: &str, stage: &str) -> bool {
        let mut sessions = self.sessions.lock();
        match sessions.get_mut(id) {
            Some(s) if s.purpose == purpose && s.created.elapsed() < SESSION_LIFETIME => {
                if !s.completed.iter().any(|c| c == stage) {
                    s.completed.push(stage.to_owned());
                }
                true
            }
            _ => false,
        }
    }

    /// The stages completed in a session.
    pub fn completed(&self, id: &str) -> Vec<String> {
        self.sessions.lock().get(id).map(|s| s.completed.clone()).unwrap_or_default()
    }

    /// Closes a session once its action is done.
    pub fn close(&self, id: &str) {
        self.sessions.lock().remove(id);
    }
}
