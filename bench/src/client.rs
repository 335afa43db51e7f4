//! A minimal Matrix client: just what the scenarios need, over plain HTTP.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A logged-in user.
#[derive(Clone)]
pub struct User {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Percent-encodes a path segment.
pub fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn send_json(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.send().await.context("request failed")?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    Ok(body)
}

/// Registers `username` with the dummy stage (the server must allow open registration).
pub async fn register(http: &reqwest::Client, base: &str, username: &str) -> anyhow::Result<User> {
    let url = format!("{base}/_matrix/client/v3/register");
    let first = http
        .post(&url)
        .json(&json!({ "username": username, "password": "load-test-password" }))
        .send()
        .await?;
    let challenge: Value = first.json().await?;
    let session = challenge["session"].as_str().unwrap_or_default().to_owned();
    let body = send_json(http.post(&url).json(&json!({
        "username": username,
        "password": "load-test-password",
        "auth": { "type": "m.login.dummy", "session": session },
    })))
    .await
    .with_context(|| format!("registering {username}"))?;
    Ok(User {
        http: http.clone(),
        base: base.to_owned(),
        token: body["access_token"].as_str().context("no access token")?.to_owned(),
    })
}

impl User {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send_json(request).await.with_context(|| path.to_owned())
    }

    /// Creates a room; returns its ID.
    pub async fn create_room(&self, body: Value) -> anyhow::Result<String> {
        let reply =
            self.call(reqwest::Method::POST, "/_matrix/client/v3/createRoom", Some(body)).await?;
        Ok(reply["room_id"].as_str().context("no room_id")?.to_owned())
    }

    /// Joins a room.
    pub async fn join(&self, room: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/_matrix/client/v3/join/{}", enc(room)),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// Sends a text message; returns the request's latency.
    pub async fn send(&self, room: &str, txn: &str, body: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.call(
            reqwest::Method::PUT,
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", enc(room)),
            Some(json!({ "msgtype": "m.text", "body": body })),
        )
        .await?;
        Ok(started.elapsed())
    }

    /// One simplified sliding sync request (MSC4186).
    pub async fn sliding_sync(
        &self,
        pos: Option<&str>,
        timeout_ms: u64,
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut path = format!(
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout={timeout_ms}"
        );
        if let Some(pos) = pos {
            path.push_str(&format!("&pos={}", enc(pos)));
        }
        self.call(reqwest::Method::POST, &path, Some(body)).await
    }

    /// One `/sync`.
    pub async fn sync(
        &self,
        since: Option<&str>,
        timeout_ms: u64,
        filter: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        if let Some(filter) = filter {
            path.push_str(&format!("&filter={}", enc(filter)));
        }
        self.call(reqwest::Method::GET, &path, None).await
    }
}
