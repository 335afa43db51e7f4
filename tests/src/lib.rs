//! The end-to-end test harness: starts the real `relais` binary on a free port with a temporary
//! data directory, and talks to it over HTTP like a client does.

pub mod federation;
pub mod smtp;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

/// A running `relais serve`.
pub struct TestServer {
    child: Option<Child>,
    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    data: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Where the server's stderr (its logs) goes; `None`: inherited.
    log_file: Option<PathBuf>,
}

/// Rate limits generous enough that no test trips them by accident; tests of the limits set their
/// own with [`TestServer::start_with`], which override these.
const GENEROUS_RATE_LIMITS: &[(&str, &str)] = &[
    ("RELAIS_RATE_LIMITS__LOGIN__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__LOGIN__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__REGISTRATION__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__REGISTRATION__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__SEND__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__SEND__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__JOIN__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__JOIN__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__INVITE__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__INVITE__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__MEDIA_UPLOAD__PER_SECOND", "10000"),
    ("RELAIS_RATE_LIMITS__MEDIA_UPLOAD__BURST", "100000"),
    ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_ACCOUNT", "1000"),
    ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_IP", "1000"),
];

/// Where cargo put the `relais` binary (the test script builds it before the tests).
pub fn relais_binary() -> PathBuf {
    if let Ok(path) = std::env::var("RELAIS_BIN") {
        return PathBuf::from(path);
    }
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let bin = profile_dir.join("relais");
    assert!(bin.exists(), "{} not found: build it with `cargo build --bin relais`", bin.display());
    bin
}

/// Where cargo put the `relais-policy-service` binary (built with relais-appservice's tests).
pub fn policy_service_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let bin = profile_dir.join("relais-policy-service");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --bin relais-policy-service`",
        bin.display()
    );
    bin
}

impl TestServer {
    /// Starts a server with open registration.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `RELAIS_*` environment settings.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::start_inner(env, false)
    }

    /// Like [`TestServer::start_with`], with the server's stderr (its logs) appended to a file
    /// in the data directory instead of inherited: see [`TestServer::logs`].
    pub fn start_capturing_logs(env: &[(&str, &str)]) -> Self {
        Self::start_inner(env, true)
    }

    fn start_inner(env: &[(&str, &str)], capture_logs: bool) -> Self {
        let data = tempfile::tempdir().expect("temporary data dir");
        let log_file = capture_logs.then(|| data.path().join("relais.log"));
        let mut server = Self {
            child: None,
            url: String::new(),
            data,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            log_file,
        };
        server.spawn();
        server
    }

    /// Everything the server wrote to stderr so far (empty unless started with
    /// [`TestServer::start_capturing_logs`]).
    pub fn logs(&self) -> String {
        self.log_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// The server's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        let mut command = Command::new(relais_binary());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RELAIS_SERVER_NAME", "localhost")
            .env("RELAIS_LISTEN__PORT", "0")
            .env("RELAIS_DATABASE__PATH", self.data.path().join("db"))
            .env("RELAIS_REGISTRATION__OPEN", "true")
            .env("RELAIS_DATABASE__CACHE_CAPACITY_MB", "16")
            .env("RELAIS_LOG", std::env::var("RELAIS_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped());
        match &self.log_file {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file");
                command.stderr(Stdio::from(file));
            }
            None => {
                command.stderr(Stdio::inherit());
            }
        }
        for (k, v) in GENEROUS_RATE_LIMITS {
            command.env(k, v);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start relais");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read relais output");
            assert!(n > 0, "relais exited before listening");
            if let Some(url) = line.trim().strip_prefix("relais listening on ") {
                self.url = url.to_owned();
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        self.child = Some(child);
    }

    /// Stops the server with SIGKILL (a crash) and starts it again on the same data.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
        self.spawn();
    }

    /// Stops the server with SIGKILL and leaves it down (a server that is offline for a while);
    /// [`TestServer::resume`] starts it again on the same data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reap");
        }
    }

    /// Starts a server stopped by [`TestServer::kill`] again.
    pub fn resume(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// Stops the server with SIGTERM (graceful) and starts it again on the same data.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while child.try_wait().expect("wait").is_none() {
                assert!(std::time::Instant::now() < deadline, "relais did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.spawn();
    }

    /// A raw HTTP client for this server.
    pub fn client(&self) -> Client {
        Client { http: reqwest::Client::new(), url: self.url.clone(), token: None }
    }

    /// Registers a user and returns a client logged in as them.
    pub async fn register(&self, username: &str) -> Client {
        let mut client = self.client();
        client.register(username, "correct horse battery").await;
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw Matrix client over HTTP.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server's base URL.
    pub url: String,
    /// The access token, once logged in.
    pub token: Option<String>,
}

/// A status and a JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`Null` if the body is not JSON).
    pub body: Value,
}

impl Reply {
    /// Asserts a 200 and returns the body.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "expected 200, got {}: {}", self.status, self.body);
        self.body
    }

    /// Asserts an error status and errcode.
    #[track_caller]
    pub fn err(self, status: u16, errcode: &str) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.body["errcode"], errcode, "unexpected errcode; body: {}", self.body);
        self.body
    }
}

impl Client {
    /// Sends a request with an optional JSON body.
    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// Sends raw bytes as the body.
    pub async fn raw(&self, method: reqwest::Method, path: &str, body: &'static str) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    /// Registers through the user-interactive flow and keeps the token.
    pub async fn register(&mut self, username: &str, password: &str) -> Value {
        let first = self
            .post(
                "/_matrix/client/v3/register",
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(first.status, 401, "{}", first.body);
        let session = first.body["session"].as_str().expect("UIA session").to_owned();
        let body = self
            .post(
                "/_matrix/client/v3/register",
                json!({
                    "username": username,
                    "password": password,
                    "auth": { "type": "m.login.dummy", "session": session },
                }),
            )
            .await
            .ok();
        self.token = Some(body["access_token"].as_str().expect("access token").to_owned());
        body
    }

    /// The same session against `server` (a restarted server listens on a new port).
    pub fn reconnect(&self, server: &TestServer) -> Client {
        Client { http: self.http.clone(), url: server.url.clone(), token: self.token.clone() }
    }

    /// This client's user ID.
    pub async fn user_id(&self) -> String {
        self.get("/_matrix/client/v3/account/whoami").await.ok()["user_id"]
            .as_str()
            .expect("user_id")
            .to_owned()
    }

    /// Creates a room and returns its ID.
    pub async fn create_room(&self, body: Value) -> String {
        self.post("/_matrix/client/v3/createRoom", body).await.ok()["room_id"]
            .as_str()
            .expect("room_id")
            .to_owned()
    }

    /// Sends a message event and returns its ID.
    pub async fn send(&self, room: &str, kind: &str, txn: &str, content: Value) -> String {
        self.put(&format!("/_matrix/client/v3/rooms/{}/send/{kind}/{txn}", enc(room)), content)
            .await
            .ok()["event_id"]
            .as_str()
            .expect("event_id")
            .to_owned()
    }

    /// Sends a text message.
    pub async fn say(&self, room: &str, txn: &str, text: &str) -> String {
        self.send(room, "m.room.message", txn, json!({ "msgtype": "m.text", "body": text })).await
    }

    /// Syncs; `since` is the previous `next_batch`.
    pub async fn sync(&self, since: Option<&str>, timeout_ms: u64) -> Value {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        self.get(&path).await.ok()
    }

    /// Joins a room.
    pub async fn join(&self, room: &str) -> Value {
        self.post(&format!("/_matrix/client/v3/join/{}", enc(room)), json!({})).await.ok()
    }
}

/// Percent-encodes a path segment (room IDs, aliases, event IDs).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The timeline events of a room in a sync response.
pub fn timeline<'a>(sync: &'a Value, room: &str) -> Vec<&'a Value> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// Syncs `client` incrementally until `found` accepts a response, or fails after `secs`.
pub async fn sync_until(
    client: &Client,
    secs: u64,
    what: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut since: Option<String> = None;
    loop {
        let response = client.sync(since.as_deref(), 1_000).await;
        if found(&response) {
            return response;
        }
        since = response["next_batch"].as_str().map(str::to_owned);
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
    }
}
