//! The Application Service API end to end: an echo bridge built on mautrix-python (the framework
//! real bridges use) against the real binary, and raw requests where the detail matters (namespaces,
//! masquerading, exclusivity, retries of a failing service).

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode},
    routing::put,
};
use relais_tests::{Client, TestServer, enc, relais_binary};
use serde_json::{Value, json};

const AS_TOKEN: &str = "as-token-for-the-echo-bridge-0123456789";
const HS_TOKEN: &str = "hs-token-for-the-echo-bridge-9876543210";

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes the echo bridge's registration to `dir`.
fn registration(dir: &Path, url: Option<&str>, extra: &str) -> PathBuf {
    let path = dir.join("echo.yaml");
    let url = url.map_or("null".to_owned(), |u| format!("'{u}'"));
    let text = format!(
        "id: echo\nurl: {url}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\n\
         sender_localpart: echobot\nrate_limited: false\nreceive_ephemeral: true\n\
         namespaces:\n  users:\n    - exclusive: true\n      regex: '@echo_.*:localhost'\n  \
         aliases:\n    - exclusive: true\n      regex: '#echo_.*:localhost'\n  rooms: []\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A server with the echo bridge registered at `url`, and the directory holding the file.
fn server_with_bridge(url: Option<&str>, env: &[(&str, &str)]) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file =
        registration(dir.path(), url, "io.element.msc4190: true\norg.matrix.msc3202: true\n");
    let files = format!("[\"{}\"]", file.display());
    let mut all = vec![
        ("RELAIS_APPSERVICES__REGISTRATION_FILES", files.as_str()),
        ("RELAIS_APPSERVICES__MAX_RETRY_INTERVAL_SECS", "1"),
    ];
    all.extend_from_slice(env);
    (TestServer::start_with(&all), dir)
}

/// A client that authenticates with the bridge's `as_token`.
fn bridge_client(server: &TestServer) -> Client {
    let mut client = server.client();
    client.token = Some(AS_TOKEN.to_owned());
    client
}

/// The Python with mautrix: `RELAIS_TEST_PYTHON` (set by `scripts/test.sh`, which installs it),
/// else `python3`.
fn python() -> String {
    let python = std::env::var("RELAIS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import mautrix.appservice"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import mautrix: run the tests with scripts/test.sh, which installs it, \
         or set RELAIS_TEST_PYTHON to a Python with `pip install mautrix`"
    );
    python
}

/// The echo bridge process.
struct Bridge {
    child: Child,
    log: PathBuf,
}

impl Bridge {
    /// Starts the bridge against `server` on `port` and waits until it pinged itself through the
    /// homeserver.
    async fn start(server: &TestServer, port: u16, log: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("appservice/echo_bridge.py");
        let child = Command::new(python())
            .arg(script)
            .args([&server.url, &port.to_string(), AS_TOKEN, HS_TOKEN])
            .arg(log)
            .spawn()
            .expect("start the echo bridge");
        let mut bridge = Self { child, log: log.to_owned() };
        let ready_before = bridge.entries("ready").len();
        bridge.wait_for("the bridge to start", |b| b.entries("ready").len() > ready_before).await;
        bridge
    }

    /// The log entries of one kind.
    fn entries(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == kind)
            .collect()
    }

    async fn wait_for(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the echo bridge exited ({status}) while waiting for {what}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bodies of the room's messages, oldest first, with their senders.
async fn messages(client: &Client, room: &str) -> Vec<(String, String)> {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", enc(room));
    let mut out: Vec<(String, String)> = client.get(&path).await.ok()["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| {
            (
                e["sender"].as_str().unwrap().to_owned(),
                e["content"]["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

async fn wait_for_messages(
    client: &Client,
    room: &str,
    what: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let list = messages(client, room).await;
        if done(&list) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; messages: {list:?}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn mautrix_bridge_echoes_and_gets_queued_events_exactly_once_after_a_crash() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (mut server, dir) = server_with_bridge(Some(&url), &[]);
    let log = dir.path().join("bridge.jsonl");
    let mut bridge = Bridge::start(&server, port, &log).await;
    // The ping went homeserver -> bridge and back.
    assert!(bridge.entries("ping")[0]["ms"].as_u64().is_some(), "{:?}", bridge.entries("ping"));

    let mut alice = server.register("alice").await;
    let room = alice.create_room(json!({ "invite": ["@echobot:localhost"] })).await;
    let members_path = format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room));
    let deadline = Instant::now() + Duration::from_secs(30);
    while alice.get(&members_path).await.ok()["joined"].get("@echobot:localhost").is_none() {
        assert!(Instant::now() < deadline, "the bot did not join on invite");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.say(&room, "t1", "hello").await;
    wait_for_messages(&alice, &room, "the echo of hello", |m| {
        m.contains(&("@echo_puppet:localhost".into(), "echo: hello".into()))
    })
    .await;

    // Ephemeral events reach a bridge registered with receive_ephemeral.
    let typing = format!("/_matrix/client/v3/rooms/{}/typing/@alice:localhost", enc(&room));
    alice.put(&typing, json!({ "typing": true, "timeout": 10000 })).await.ok();
    bridge
        .wait_for("a typing EDU", |b| b.entries("edu").iter().any(|e| e["type"] == "m.typing"))
        .await;

    // The bridge goes down; messages queue up; the homeserver crashes and comes back.
    bridge.stop();
    let queued = ["one", "two", "three"];
    for (i, text) in queued.iter().enumerate() {
        alice.say(&room, &format!("q{i}"), text).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.crash_and_restart();
    alice.url = server.url.clone();
    let mut bridge = Bridge::start(&server, port, &log).await;
    wait_for_messages(&alice, &room, "the echoes of the queued messages", |m| {
        queued.iter().all(|t| m.contains(&("@echo_puppet:localhost".into(), format!("echo: {t}"))))
    })
    .await;
    // Give a duplicate every chance to arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    bridge.wait_for("nothing", |_| true).await;

    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in bridge.entries("event") {
        if entry["sender"] == "@alice:localhost" {
            *seen.entry(entry["event_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 4, "every message of alice's reached the bridge: {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "each exactly once: {seen:?}");
    let echoes = messages(&alice, &room).await;
    for text in ["hello", "one", "two", "three"] {
        let n = echoes.iter().filter(|(_, body)| *body == format!("echo: {text}")).count();
        assert_eq!(n, 1, "one echo of {text}: {echoes:?}");
    }
}

/// What the test application service saw: `(txn_id, event IDs, authorization header)`.
type Seen = Arc<Mutex<Vec<(String, Vec<String>, String)>>>;

/// An application service that fails its first `failures` transactions with a 500.
async fn flaky_appservice(failures: usize) -> (String, Seen) {
    let (url, seen, _) = recording_appservice(failures).await;
    (url, seen)
}

/// Every transaction body an application service received.
type Bodies = Arc<Mutex<Vec<Value>>>;

/// Like [`flaky_appservice`], also keeping every body.
async fn recording_appservice(failures: usize) -> (String, Seen, Bodies) {
    let seen: Seen = Arc::default();
    let bodies: Bodies = Arc::default();
    let failures = Arc::new(Mutex::new(failures));
    let app = Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn}",
            put(
                |State((seen, failures, kept)): State<(Seen, Arc<Mutex<usize>>, Bodies)>,
                 UrlPath(txn): UrlPath<String>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let ids = body["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["event_id"].as_str().unwrap().to_owned())
                        .collect();
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().unwrap().push((txn, ids, auth));
                    kept.lock().unwrap().push(body.clone());
                    let mut left = failures.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
                    }
                    (StatusCode::OK, Json(json!({})))
                },
            ),
        )
        .with_state((seen.clone(), failures, bodies.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen, bodies)
}

#[tokio::test]
async fn a_failed_transaction_is_sent_again_unchanged_then_the_next_one_follows() {
    let (url, seen) = flaky_appservice(2).await;
    let (server, _dir) = server_with_bridge(Some(&url), &[]);
    let bridge = bridge_client(&server);
    bridge
        .post(
            "/_matrix/client/v3/register",
            json!({ "type": "m.login.application_service", "username": "echo_carol" }),
        )
        .await
        .ok();
    let carol = &bridge;
    let as_carol = |path: &str| format!("{path}?user_id=%40echo_carol%3Alocalhost");
    let room =
        carol.post(&as_carol("/_matrix/client/v3/createRoom"), json!({})).await.ok()["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the transaction was not retried: {:?}", seen.lock());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let send = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/x1", enc(&room));
    let sent = carol
        .put(&as_carol(&send), json!({ "msgtype": "m.text", "body": "after" }))
        .await
        .ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.lock().unwrap().iter().any(|(_, ids, _)| ids.contains(&sent)) {
        assert!(Instant::now() < deadline, "the later event was not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, _, auth)| *auth == format!("Bearer {HS_TOKEN}")), "{seen:?}");
    // The first three attempts are one transaction: same ID, same events.
    assert_eq!(seen[0].0, seen[1].0);
    assert_eq!(seen[1].0, seen[2].0);
    assert_eq!(seen[0].1, seen[2].1);
    assert!(!seen[0].1.is_empty(), "the room creation events are in it");
    let later: Vec<_> = seen.iter().skip(3).collect();
    assert!(later.iter().all(|(txn, _, _)| *txn != seen[0].0), "a new transaction ID: {seen:?}");
    let mut all: Vec<&String> =
        std::iter::once(&seen[2]).chain(later).flat_map(|(_, ids, _)| ids).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no event delivered twice once accepted: {seen:?}");
}

#[tokio::test]
async fn namespaces_masquerading_and_exclusivity() {
    let (server, _dir) = server_with_bridge(
        None,
        &[
            ("RELAIS_RATE_LIMITS__SEND__BURST", "3"),
            ("RELAIS_RATE_LIMITS__SEND__PER_SECOND", "0.1"),
        ],
    );
    let bridge = bridge_client(&server);
    // The service's own user exists and is who the token is.
    assert_eq!(bridge.user_id().await, "@echobot:localhost");
    let whoami = bridge.get("/_matrix/client/v3/account/whoami").await.ok();
    assert!(whoami.get("device_id").is_none(), "no device was named: {whoami}");

    // Registration in the namespace, without password or UIA.
    let reply = bridge
        .post(
            "/_matrix/client/v3/register",
            json!({ "type": "m.login.application_service", "username": "echo_dave", "inhibit_login": true }),
        )
        .await
        .ok();
    assert_eq!(reply["user_id"], "@echo_dave:localhost");
    assert!(reply.get("access_token").is_none(), "inhibit_login: {reply}");
    bridge
        .post(
            "/_matrix/client/v3/register",
            json!({ "type": "m.login.application_service", "username": "mallory" }),
        )
        .await
        .err(400, "M_EXCLUSIVE");
    // The type is required with the token, and the token with the type.
    bridge
        .post("/_matrix/client/v3/register", json!({ "username": "echo_erin" }))
        .await
        .err(400, "M_INVALID_PARAM");
    server
        .client()
        .post(
            "/_matrix/client/v3/register",
            json!({ "type": "m.login.application_service", "username": "echo_erin" }),
        )
        .await
        .err(401, "M_MISSING_TOKEN");

    // Everyone else is kept out of the exclusive namespace.
    let mut other = server.client();
    let reply = other
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "echo_eve", "password": "pw-pw-pw-pw" }),
        )
        .await
        .err(400, "M_EXCLUSIVE");
    assert!(reply["error"].as_str().unwrap().contains("echo"), "{reply}");
    other
        .get("/_matrix/client/v3/register/available?username=echo_eve")
        .await
        .err(400, "M_EXCLUSIVE");
    other.register("frank", "pw-pw-pw-pw").await;
    let room = other.create_room(json!({ "preset": "public_chat" })).await;
    other
        .put(
            &format!("/_matrix/client/v3/directory/room/{}", enc("#echo_room:localhost")),
            json!({ "room_id": room }),
        )
        .await
        .err(400, "M_EXCLUSIVE");
    other
        .post("/_matrix/client/v3/createRoom", json!({ "room_alias_name": "echo_other" }))
        .await
        .err(400, "M_EXCLUSIVE");

    // Masquerading: inside the namespace only, and only as registered users.
    let as_user = |user: &str, path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}user_id={}", enc(user))
    };
    let whoami = bridge
        .get(&as_user("@echo_dave:localhost", "/_matrix/client/v3/account/whoami"))
        .await
        .ok();
    assert_eq!(whoami["user_id"], "@echo_dave:localhost");
    bridge
        .get(&as_user("@frank:localhost", "/_matrix/client/v3/account/whoami"))
        .await
        .err(403, "M_FORBIDDEN");
    bridge
        .get(&as_user("@echo_nobody:localhost", "/_matrix/client/v3/account/whoami"))
        .await
        .err(403, "M_FORBIDDEN");
    let mut wrong = server.client();
    wrong.token = Some("not-a-token".into());
    wrong.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");

    // The service's users are not rate-limited (rate_limited: false), others are.
    bridge
        .post(
            &as_user("@echo_dave:localhost", &format!("/_matrix/client/v3/join/{}", enc(&room))),
            json!({}),
        )
        .await
        .ok();
    for i in 0..10 {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/b{i}", enc(&room));
        bridge
            .put(
                &as_user("@echo_dave:localhost", &path),
                json!({ "msgtype": "m.text", "body": "hi" }),
            )
            .await
            .ok();
    }
    let mut limited = false;
    for i in 0..10 {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/f{i}", enc(&room));
        limited |=
            other.put(&path, json!({ "msgtype": "m.text", "body": "hi" })).await.status == 429;
    }
    assert!(limited, "an ordinary user still meets the limit");

    // Timestamp massaging, for the service only.
    let path =
        format!("/_matrix/client/v3/rooms/{}/send/m.room.message/ts1?ts=1234567890", enc(&room));
    let event = bridge
        .put(&as_user("@echo_dave:localhost", &path), json!({ "msgtype": "m.text", "body": "old" }))
        .await
        .ok()["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fetched = other
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&event)))
        .await
        .ok();
    assert_eq!(fetched["origin_server_ts"], 1_234_567_890);

    // Login as a namespaced user.
    let login = server
        .client()
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": "echo_dave" } }),
        )
        .await
        .err(401, "M_MISSING_TOKEN");
    drop(login);
    let login = bridge
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": "echo_dave" } }),
        )
        .await
        .ok();
    assert_eq!(login["user_id"], "@echo_dave:localhost");
    bridge
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.application_service", "identifier": { "type": "m.id.user", "user": "frank" } }),
        )
        .await
        .err(403, "M_FORBIDDEN");

    // MSC4190: devices created and deleted by the service, then named with `device_id`.
    let device = as_user("@echo_dave:localhost", "/_matrix/client/v3/devices/BRIDGEDEV");
    bridge.put(&device, json!({ "display_name": "bridge" })).await.ok();
    let whoami = bridge
        .get(&as_user(
            "@echo_dave:localhost",
            "/_matrix/client/v3/account/whoami?device_id=BRIDGEDEV",
        ))
        .await
        .ok();
    assert_eq!(whoami["device_id"], "BRIDGEDEV");
    bridge
        .get(&as_user("@echo_dave:localhost", "/_matrix/client/v3/account/whoami?device_id=NOPE"))
        .await
        .err(403, "M_FORBIDDEN");
    bridge.request(reqwest::Method::DELETE, &device, Some(json!({}))).await.ok();

    // Ping: this service has no URL.
    bridge
        .post("/_matrix/client/v1/appservice/echo/ping", json!({}))
        .await
        .err(400, "M_URL_NOT_SET");
    bridge
        .post("/_matrix/client/v1/appservice/other/ping", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    other
        .post("/_matrix/client/v1/appservice/echo/ping", json!({}))
        .await
        .err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn ping_reports_an_unreachable_service() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (server, _dir) = server_with_bridge(Some(&url), &[]);
    bridge_client(&server)
        .post("/_matrix/client/v1/appservice/echo/ping", json!({ "transaction_id": "t" }))
        .await
        .err(502, "M_CONNECTION_FAILED");
}

#[test]
fn overlapping_exclusive_namespaces_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let first = registration(dir.path(), None, "");
    let second = dir.path().join("second.yaml");
    let mut file = std::fs::File::create(&second).unwrap();
    write!(
        file,
        "id: other\nurl: null\nas_token: a2\nhs_token: h2\nsender_localpart: other\n\
         namespaces:\n  users:\n    - exclusive: true\n      regex: '@echo_irc_.*'\n"
    )
    .unwrap();
    let output = Command::new(relais_binary())
        .arg("serve")
        .env_clear()
        .env("RELAIS_DATABASE__PATH", dir.path().join("db"))
        .env("RELAIS_LISTEN__PORT", "0")
        .env(
            "RELAIS_APPSERVICES__REGISTRATION_FILES",
            format!("[\"{}\", \"{}\"]", first.display(), second.display()),
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("overlap") && stderr.contains("second.yaml"), "{stderr}");
    assert!(!stderr.contains(AS_TOKEN), "no token in the message: {stderr}");
}

#[tokio::test]
async fn to_device_messages_and_key_counts_reach_the_service_once() {
    let (url, _, bodies) = recording_appservice(0).await;
    let (server, _dir) = server_with_bridge(Some(&url), &[]);
    let bridge = bridge_client(&server);
    bridge
        .post(
            "/_matrix/client/v3/register",
            json!({ "type": "m.login.application_service", "username": "echo_dave", "inhibit_login": true }),
        )
        .await
        .ok();
    let as_dave = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}user_id=%40echo_dave%3Alocalhost&device_id=BRIDGEDEV")
    };
    bridge
        .put("/_matrix/client/v3/devices/BRIDGEDEV?user_id=%40echo_dave%3Alocalhost", json!({}))
        .await
        .ok();
    // The bridge uploads one-time keys for its puppet's device: the counts come back in a
    // transaction (MSC3202).
    bridge
        .post(
            &as_dave("/_matrix/client/v3/keys/upload"),
            json!({ "one_time_keys": { "curve25519:AAAA": "k1" } }),
        )
        .await
        .ok();
    // Alice sends the puppet's device a to-device message (MSC2409).
    let alice = server.register("alice").await;
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.room_key_request/td1",
            json!({ "messages": { "@echo_dave:localhost": { "BRIDGEDEV": { "action": "request", "n": 1 } } } }),
        )
        .await
        .ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = |bodies: &[Value]| {
        bodies
            .iter()
            .filter(|b| {
                b["de.sorunome.msc2409.to_device"].as_array().is_some_and(|t| !t.is_empty())
            })
            .count()
    };
    loop {
        let seen = bodies.lock().unwrap().clone();
        if delivered(&seen) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no to-device message delivered: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A later event: the message is not sent again once accepted.
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.room_key_request/td2",
            json!({ "messages": { "@echo_dave:localhost": { "BRIDGEDEV": { "action": "request", "n": 2 } } } }),
        )
        .await
        .ok();
    loop {
        let seen = bodies.lock().unwrap().clone();
        if delivered(&seen) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the second message was not delivered: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = bodies.lock().unwrap().clone();
    let messages: Vec<&Value> = seen
        .iter()
        .filter_map(|b| b["de.sorunome.msc2409.to_device"].as_array())
        .flatten()
        .collect();
    let first = messages.iter().filter(|m| m["content"]["n"] == 1).count();
    let second = messages.iter().filter(|m| m["content"]["n"] == 2).count();
    assert_eq!((first, second), (1, 1), "each message exactly once: {messages:?}");
    let message = messages.last().unwrap();
    assert_eq!(message["to_user_id"], "@echo_dave:localhost");
    assert_eq!(message["to_device_id"], "BRIDGEDEV");
    assert_eq!(message["sender"], "@alice:localhost");
    assert_eq!(message["type"], "m.room_key_request");
    // Alice comes to share a room with the puppet: its device list changes for the bridge.
    let room = bridge
        .post(&as_dave("/_matrix/client/v3/createRoom"), json!({ "invite": ["@alice:localhost"] }))
        .await
        .ok()["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.join(&room).await;
    loop {
        let seen = bodies.lock().unwrap().clone();
        let changed = seen.iter().any(|b| {
            b["org.matrix.msc3202.device_lists"]["changed"]
                .as_array()
                .is_some_and(|c| c.iter().any(|u| u == "@alice:localhost"))
        });
        if changed {
            break;
        }
        assert!(Instant::now() < deadline, "no device list change delivered: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = bodies.lock().unwrap().clone();
    let counts = seen
        .iter()
        .find_map(|b| {
            b.pointer(
                "/org.matrix.msc3202.device_one_time_keys_count/@echo_dave:localhost/BRIDGEDEV",
            )
        })
        .cloned();
    assert_eq!(counts.as_ref().and_then(|c| c.get("curve25519")), Some(&json!(1)), "{seen:?}");
}
