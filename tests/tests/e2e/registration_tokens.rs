//! Synapse's registration token admin API over the policy's invitations: create (with a chosen
//! token or a generated one), list, look up, change, delete; registration with a token in
//! Element's flow counts its uses; only admins list tokens.

use relais_tests::{Client, TestServer};
use serde_json::{Value, json};

use crate::policy::{create_account, login, start};

const TOKENS: &str = "/_synapse/admin/v1/registration_tokens";

/// Registers `username` with a registration token through the user-interactive flow.
async fn register_with_token(server: &TestServer, username: &str, token: &str) -> u16 {
    let client = server.client();
    let first = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": username, "password": "pw-pw-pw-pw" }),
        )
        .await;
    let session = first.body["session"].as_str().unwrap_or_default().to_owned();
    let reply = client
        .post(
            "/_matrix/client/v3/register",
            json!({
                "username": username,
                "password": "pw-pw-pw-pw",
                "auth": { "type": "m.login.registration_token", "token": token, "session": session },
            }),
        )
        .await;
    reply.status
}

fn find<'a>(list: &'a Value, token: &str) -> Option<&'a Value> {
    list["registration_tokens"].as_array()?.iter().find(|t| t["token"] == token)
}

#[tokio::test]
async fn registration_tokens_through_the_synapse_admin_api() {
    let server = start();
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;

    // A generated token, two uses, never expiring: shown once, then listed by its ID.
    let created = root
        .post(&format!("{TOKENS}/new"), json!({ "uses_allowed": 2, "expiry_time": null }))
        .await
        .ok();
    let token = created["token"].as_str().expect("token").to_owned();
    assert_eq!(created["uses_allowed"], 2);
    assert_eq!(created["completed"], 0);
    assert!(created["expiry_time"].is_null());
    assert_eq!(created["fr.relais.tier"], "guest");
    let listed = root.get(TOKENS).await.ok();
    assert!(find(&listed, &token).is_none(), "the token itself is never shown again: {listed}");
    assert_eq!(listed["registration_tokens"].as_array().map(Vec::len), Some(1));

    assert_eq!(register_with_token(&server, "gina", &token).await, 200);
    let shown = root.get(&format!("{TOKENS}/{token}")).await.ok();
    assert_eq!(shown["completed"], 1);
    assert_eq!(shown["uses_allowed"], 2);
    let id = shown["token"].as_str().expect("id").to_owned();

    // Down to the one use already taken: the token is spent.
    let changed = root.put(&format!("{TOKENS}/{id}"), json!({ "uses_allowed": 1 })).await.ok();
    assert_eq!(changed["completed"], 1);
    let valid = root.get(&format!("{TOKENS}?valid=true")).await.ok();
    assert_eq!(valid["registration_tokens"].as_array().map(Vec::len), Some(0), "{valid}");
    assert_ne!(register_with_token(&server, "gino", &token).await, 200);

    // A chosen token, once; deleting it makes it unknown.
    let chosen = root.post(&format!("{TOKENS}/new"), json!({ "token": "crise-2026_x" })).await.ok();
    assert_eq!(chosen["token"], "crise-2026_x");
    assert!(chosen["uses_allowed"].is_null());
    root.post(&format!("{TOKENS}/new"), json!({ "token": "crise-2026_x" }))
        .await
        .err(400, "M_INVALID_PARAM");
    root.post(&format!("{TOKENS}/new"), json!({ "token": "not a token!" }))
        .await
        .err(400, "M_INVALID_PARAM");
    root.post(&format!("{TOKENS}/new"), json!({ "expiry_time": 1000 }))
        .await
        .err(400, "M_INVALID_PARAM");
    let deleted =
        root.request(reqwest::Method::DELETE, &format!("{TOKENS}/crise-2026_x"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    root.get(&format!("{TOKENS}/crise-2026_x")).await.err(404, "M_NOT_FOUND");
    assert_ne!(register_with_token(&server, "gaspard", "crise-2026_x").await, 200);

    // An agent who administers nothing does not list tokens.
    create_account(&root, "alice", "agent", "interior").await.ok();
    let alice: Client = login(&server, "alice").await;
    alice.get(TOKENS).await.err(403, "M_FORBIDDEN");
}
