//! Request limits (`[limits]`): JSON shape, event size, items per request, header size and slow
//! clients.

use std::time::{Duration, Instant};

use relais_tests::{Client, TestServer, enc};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
}

/// `PUT /user/{userId}/account_data/{type}` with `content`: any JSON object is accepted there,
/// so only the generic limits can refuse it.
async fn put_account_data(client: &Client, content: Value) -> relais_tests::Reply {
    let user = client.user_id().await;
    client
        .put(
            &format!("/_matrix/client/v3/user/{}/account_data/org.example.test", enc(&user)),
            content,
        )
        .await
}

#[tokio::test]
async fn json_bodies_are_limited_in_depth_string_length_and_items() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    // 63 nested objects inside the body object: 64 levels, the default limit.
    put_account_data(&alice, nested(63)).await.ok();
    let deep = put_account_data(&alice, nested(64)).await.err(400, "M_BAD_JSON");
    assert!(deep["error"].as_str().unwrap().contains("max_json_depth"), "{deep}");
    // Deeper than serde_json's own limit: the same answer.
    let deeper = put_account_data(&alice, nested(200)).await.err(400, "M_BAD_JSON");
    assert!(deeper["error"].as_str().unwrap().contains("max_json_depth"), "{deeper}");

    put_account_data(&alice, json!({ "s": "x".repeat(65_536) })).await.ok();
    let long =
        put_account_data(&alice, json!({ "s": "x".repeat(65_537) })).await.err(413, "M_TOO_LARGE");
    assert!(long["error"].as_str().unwrap().contains("max_json_string_bytes"), "{long}");

    put_account_data(&alice, json!({ "list": vec![0; 10_000] })).await.ok();
    let many =
        put_account_data(&alice, json!({ "list": vec![0; 10_001] })).await.err(413, "M_TOO_LARGE");
    assert!(many["error"].as_str().unwrap().contains("max_json_items"), "{many}");
}

#[tokio::test]
async fn a_body_that_makes_ruma_panic_is_a_client_error() {
    let server = TestServer::start();
    // ruma's `/login` parser indexes `type` without checking it is there (found by fuzzing).
    let reply = server.client().post("/_matrix/client/v3/login", json!({ "user": "alice" })).await;
    reply.err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn events_over_65536_bytes_are_refused() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let send = |txn: &str, content: Value| {
        let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", enc(&room));
        let alice = alice.clone();
        async move { alice.put(&path, content).await }
    };
    // Every string is within the JSON limits; the event as a whole is not.
    let half = "x".repeat(35_000);
    let big = send("big", json!({ "msgtype": "m.text", "body": half, "extra": half })).await;
    let big = big.err(413, "M_TOO_LARGE");
    assert!(big["error"].as_str().unwrap().contains("65536"), "{big}");
    send("fits", json!({ "msgtype": "m.text", "body": "x".repeat(60_000) })).await.ok();
}

#[tokio::test]
async fn lists_are_limited_per_request() {
    let server = TestServer::start_with(&[
        ("RELAIS_LIMITS__MAX_KEYS_QUERY_USERS", "2"),
        ("RELAIS_LIMITS__MAX_KEYS_CLAIM_DEVICES", "2"),
        ("RELAIS_LIMITS__MAX_TO_DEVICE_MESSAGES", "2"),
        ("RELAIS_LIMITS__MAX_DELETE_DEVICES", "2"),
    ]);
    let alice = server.register("alice").await;
    let users = |n: usize| (0..n).map(|i| format!("@u{i}:localhost")).collect::<Vec<_>>();
    let map = |n: usize, value: Value| -> Value {
        users(n).into_iter().map(|u| (u, value.clone())).collect::<serde_json::Map<_, _>>().into()
    };
    let query = |n| json!({ "device_keys": map(n, json!([])) });
    alice.post("/_matrix/client/v3/keys/query", query(2)).await.ok();
    let refused = alice.post("/_matrix/client/v3/keys/query", query(3)).await;
    let refused = refused.err(400, "M_INVALID_PARAM");
    assert!(refused["error"].as_str().unwrap().contains("max_keys_query_users"), "{refused}");

    let claim = json!({ "one_time_keys": map(1, json!({ "A": "signed_curve25519",
        "B": "signed_curve25519", "C": "signed_curve25519" })) });
    alice.post("/_matrix/client/v3/keys/claim", claim).await.err(400, "M_INVALID_PARAM");

    let to_device = |n| json!({ "messages": map(n, json!({ "*": { "body": "hi" } })) });
    let path = "/_matrix/client/v3/sendToDevice/org.example.test/";
    alice.put(&format!("{path}t1"), to_device(2)).await.ok();
    alice.put(&format!("{path}t2"), to_device(3)).await.err(400, "M_INVALID_PARAM");

    let delete = json!({ "devices": ["A", "B", "C"] });
    alice.post("/_matrix/client/v3/delete_devices", delete).await.err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let url = format!("{}/_matrix/client/versions", server.url);
    let ok = http.get(&url).header("x-padding", "x".repeat(16 * 1024)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = http.get(&url).header("x-padding", "x".repeat(40 * 1024)).send().await;
    // hyper answers 431 and closes the connection; a client may see either.
    if let Ok(response) = refused {
        assert_eq!(response.status(), 431);
    }
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let server = TestServer::start_with(&[("RELAIS_LIMITS__HEADER_READ_TIMEOUT_SECS", "1")]);
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    // The head is never finished: the server must close the connection by itself.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open for 10 s");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
