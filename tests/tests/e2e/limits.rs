//! Rate limits and the login back-off, on servers started with tight limits.

use std::time::Duration;

use relais_tests::{Reply, TestServer, enc};
use serde_json::json;

/// Asserts a 429 `M_LIMIT_EXCEEDED` and returns its `retry_after_ms`.
#[track_caller]
fn limited(reply: Reply) -> u64 {
    let body = reply.err(429, "M_LIMIT_EXCEEDED");
    let retry = body["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(retry > 0, "{body}");
    retry
}

#[tokio::test]
async fn sends_beyond_the_burst_are_refused_until_the_bucket_refills() {
    let server = TestServer::start_with(&[
        ("RELAIS_RATE_LIMITS__SEND__PER_SECOND", "2"),
        ("RELAIS_RATE_LIMITS__SEND__BURST", "3"),
    ]);
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let path =
        |txn: &str| format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}", enc(&room));
    let content = json!({ "msgtype": "m.text", "body": "hi" });
    for i in 0..3 {
        alice.put(&path(&format!("t{i}")), content.clone()).await.ok();
    }
    let retry = limited(alice.put(&path("t3"), content.clone()).await);
    assert!(retry <= 500, "2 per second: {retry}");
    tokio::time::sleep(Duration::from_millis(retry + 20)).await;
    alice.put(&path("t3"), content.clone()).await.ok();
    // Another device of the same user has its own bucket.
    let mut second = server.client();
    let login = second
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                    "password": "correct horse battery" }),
        )
        .await
        .ok();
    second.token = Some(login["access_token"].as_str().unwrap().to_owned());
    second.put(&path("d2"), content).await.ok();
}

#[tokio::test]
async fn joins_invites_and_uploads_are_limited_per_user() {
    let server = TestServer::start_with(&[
        ("RELAIS_RATE_LIMITS__JOIN__PER_SECOND", "0.01"),
        ("RELAIS_RATE_LIMITS__JOIN__BURST", "1"),
        ("RELAIS_RATE_LIMITS__INVITE__PER_SECOND", "0.01"),
        ("RELAIS_RATE_LIMITS__INVITE__BURST", "1"),
        ("RELAIS_RATE_LIMITS__MEDIA_UPLOAD__PER_SECOND", "0.01"),
        ("RELAIS_RATE_LIMITS__MEDIA_UPLOAD__BURST", "1"),
    ]);
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    server.register("carol").await;
    let first = alice.create_room(json!({ "preset": "public_chat" })).await;
    let second = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&first).await;
    limited(bob.post(&format!("/_matrix/client/v3/join/{}", enc(&second)), json!({})).await);
    // Alice's own bucket is untouched by bob's joins.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&first)),
            json!({ "user_id": "@carol:localhost" }),
        )
        .await
        .ok();
    limited(
        alice
            .post(
                &format!("/_matrix/client/v3/rooms/{}/invite", enc(&second)),
                json!({ "user_id": "@carol:localhost" }),
            )
            .await,
    );
    alice.post("/_matrix/media/v1/create", json!({})).await.ok();
    limited(alice.post("/_matrix/media/v1/create", json!({})).await);
}

#[tokio::test]
async fn registration_is_limited_per_address() {
    let server = TestServer::start_with(&[
        ("RELAIS_RATE_LIMITS__REGISTRATION__PER_SECOND", "0.01"),
        ("RELAIS_RATE_LIMITS__REGISTRATION__BURST", "2"),
    ]);
    // One registration is two requests (the UIA round trip).
    server.register("alice").await;
    let reply = server
        .client()
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "bob", "password": "correct horse battery" }),
        )
        .await;
    limited(reply);
}

#[tokio::test]
async fn failed_logins_back_off_and_the_wait_is_short() {
    let server = TestServer::start_with(&[
        ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_ACCOUNT", "3"),
        ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_IP", "100"),
        ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__BASE_DELAY_MS", "300"),
        ("RELAIS_RATE_LIMITS__LOGIN_BACKOFF__MAX_DELAY_SECS", "1"),
    ]);
    server.register("alice").await;
    let client = server.client();
    let login = |password: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(
                    "/_matrix/client/v3/login",
                    json!({ "type": "m.login.password",
                            "identifier": { "type": "m.id.user", "user": "alice" },
                            "password": password }),
                )
                .await
        }
    };
    for _ in 0..3 {
        login("wrong").await.err(403, "M_FORBIDDEN");
    }
    // In the back-off even the right password is refused, without being checked.
    let retry = limited(login("correct horse battery").await);
    assert!(retry <= 300, "{retry}");
    tokio::time::sleep(Duration::from_millis(retry + 20)).await;
    login("wrong").await.err(403, "M_FORBIDDEN");
    let retry = limited(login("wrong").await);
    assert!(retry <= 600, "the wait doubles: {retry}");
    // However many failures, the wait is capped (1 s here).
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(limited_or_zero(login("wrong").await) + 20)).await;
        login("wrong").await;
    }
    let retry = limited_or_zero(login("correct horse battery").await);
    assert!(retry <= 1000, "{retry}");
    tokio::time::sleep(Duration::from_millis(retry + 20)).await;
    login("correct horse battery").await.ok();
    // Once logged in from this address, the account's back-off no longer applies to it.
    for _ in 0..5 {
        login("wrong").await.err(403, "M_FORBIDDEN");
    }
    login("correct horse battery").await.ok();
}

/// The `retry_after_ms` of a 429, or 0 for any other answer.
fn limited_or_zero(reply: Reply) -> u64 {
    if reply.status == 429 { reply.body["retry_after_ms"].as_u64().unwrap_or(0) } else { 0 }
}

#[tokio::test]
async fn login_attempts_are_limited_per_address() {
    let server = TestServer::start_with(&[
        ("RELAIS_RATE_LIMITS__LOGIN__PER_SECOND", "0.01"),
        ("RELAIS_RATE_LIMITS__LOGIN__BURST", "2"),
    ]);
    let client = server.client();
    let body = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "nobody" },
                       "password": "x" });
    for _ in 0..2 {
        client.post("/_matrix/client/v3/login", body.clone()).await.err(403, "M_FORBIDDEN");
    }
    limited(client.post("/_matrix/client/v3/login", body).await);
}
