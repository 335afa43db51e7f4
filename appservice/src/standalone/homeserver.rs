//! The calls the standalone service makes to the homeserver, as its application service (the
//! `as_token`, acting as the policy bot): the Client-Server API for the unit rooms the bot is in,
//! and Synapse's admin API for the other rooms (Relais and Synapse both serve it; the bot must be
//! a server admin, which it is on Relais).

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::config::HomeserverConfig;

/// Everything but the unreserved characters of RFC 3986 is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    /// The homeserver could not be reached, or did not answer in time.
    #[error("the homeserver could not be reached: {0}")]
    Unreachable(String),
    /// The homeserver answered with an error.
    #[error("the homeserver answered {status} to {what}: {body}")]
    Status {
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
}

/// A client of the homeserver.
#[derive(Clone)]
pub struct Homeserver {
    http: reqwest::Client,
    base: String,
    as_token: String,
    appservice_id: String,
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for Homeserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Homeserver").field("base", &self.base).finish_non_exhaustive()
    }
}

/// A path segment, percent-encoded.
pub fn segment(raw: &str) -> String {
    utf8_percent_encode(raw, SEGMENT).to_string()
}

impl Homeserver {
    /// A client of `config`, whose calls may each take `timeout`.
    pub fn new(config: &HomeserverConfig, timeout: Duration) -> Result<Self, HomeserverError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relais-policy-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HomeserverError::Unreachable(e.to_string()))?;
        Ok(Self {
            http,
            base: config.homeserver_url.trim_end_matches('/').to_owned(),
            as_token: config.as_token.clone(),
            appservice_id: config.id.clone(),
        })
    }

    /// `GET path`; `None` for a 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, HomeserverError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, HomeserverError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.as_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response =
            request.send().await.map_err(|e| HomeserverError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes =
            response.bytes().await.map_err(|e| HomeserverError::Unreachable(e.to_string()))?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            let body = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            // The path names rooms and users, never a token.
            return Err(HomeserverError::Status { what: format!("{method} {path}"), status, body });
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| HomeserverError::Status {
            what: format!("{method} {path}"),
            status,
            body: format!("not JSON: {e}"),
        })
    }

    /// The room an alias names, if it exists.
    pub async fn resolve_alias(&self, alias: &str) -> Result<Option<String>, HomeserverError> {
        let path = format!("/_matrix/client/v3/directory/room/{}", segment(alias));
        Ok(self
            .get(&path)
            .await?
            .and_then(|v| v.get("room_id").and_then(Value::as_str).map(str::to_owned)))
    }

    /// Registers the bot (the application service's sender), if it is not yet.
    pub async fn register_bot(&self, localpart: &str) -> Result<(), HomeserverError> {
        let body = json!({ "type": "m.login.application_service", "username": localpart,
                           "inhibit_login": true });
        match self.call(reqwest::Method::POST, "/_matrix/client/v3/register", Some(&body)).await {
            Ok(_) => Ok(()),
            // Already registered (by the homeserver itself, or an earlier start).
            Err(HomeserverError::Status { status: 400, ref body, .. })
                if body.contains("M_USER_IN_USE") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates a room as the bot; its ID.
    pub async fn create_room(&self, request: &Value) -> Result<String, HomeserverError> {
        let answer = self
            .call(reqwest::Method::POST, "/_matrix/client/v3/createRoom", Some(request))
            .await?;
        answer.and_then(|a| a.get("room_id").and_then(Value::as_str).map(str::to_owned)).ok_or_else(
            || HomeserverError::Status {
                what: "POST /_matrix/client/v3/createRoom".into(),
                status: 200,
                body: "no room_id in the answer".into(),
            },
        )
    }

    /// Sends a state event as the bot.
    pub async fn put_state(
        &self,
        room: &str,
        kind: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<(), HomeserverError> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            segment(room),
            segment(kind),
            segment(state_key)
        );
        self.call(reqwest::Method::PUT, &path, Some(content)).await.map(drop)
    }

    /// Sends a timeline event as the bot.
    pub async fn send_event(
        &self,
        room: &str,
        kind: &str,
        content: &Value,
    ) -> Result<(), HomeserverError> {
        // Unique per process and call: the bot sends from one process at a time.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let txn = format!("{}-{}-{n}", std::process::id(), crate::standalone::now_ms());
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            segment(room),
            segment(kind),
            segment(&txn)
        );
        self.call(reqwest::Method::PUT, &path, Some(content)).await.map(drop)
    }

    /// The current state of a room the bot is in.
    pub async fn joined_room_state(&self, room: &str) -> Result<Vec<Value>, HomeserverError> {
        let path = format!("/_matrix/client/v3/rooms/{}/state", segment(room));
        Ok(self.get(&path).await?.and_then(|v| v.as_array().cloned()).unwrap_or_default())
    }

    /// The current state of any room (admin API); `None` if the room is unknown.
    pub async fn room_state(&self, room: &str) -> Result<Option<Vec<Value>>, HomeserverError> {
        let path = format!("/_synapse/admin/v1/rooms/{}/state", segment(room));
        Ok(self.get(&path).await?.map(|mut answer| {
            match answer.get_mut("state").map(Value::take) {
                Some(Value::Array(events)) => events,
                _ => Vec::new(),
            }
        }))
    }

    /// The rooms a local user is joined to (admin API); empty for an unknown user.
    pub async fn joined_rooms(&self, user: &str) -> Result<Vec<String>, HomeserverError> {
        let path = format!("/_synapse/admin/v1/users/{}/joined_rooms", segment(user));
        let rooms = self.get(&path).await?.map(|v| v["joined_rooms"].clone());
        Ok(rooms.and_then(|r| serde_json::from_value(r).ok()).unwrap_or_default())
    }

    /// Whether a local user is a server admin (admin API).
    pub async fn is_admin(&self, user: &str) -> Result<bool, HomeserverError> {
        let path = format!("/_synapse/admin/v2/users/{}", segment(user));
        Ok(self.get(&path).await?.is_some_and(|v| v["admin"].as_bool() == Some(true)))
    }

    /// Asks the homeserver to ping this service, which also tells it the service is up, so that
    /// transactions waiting to be sent again go at once.
    pub async fn ping(&self) -> Result<(), HomeserverError> {
        let path = format!("/_matrix/client/v1/appservice/{}/ping", segment(&self.appservice_id));
        self.call(reqwest::Method::POST, &path, Some(&json!({}))).await.map(drop)
    }
}
