//! Operations: `/health`, Prometheus `/metrics`, and no secret in the logs.

use relais_tests::{TestServer, enc};
use serde_json::json;

#[tokio::test]
async fn health_answers_liveness_and_readiness() {
    let server = TestServer::start();
    let client = server.client();
    let health = client.get("/health").await.ok();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["live"], true);
    assert_eq!(health["ready"], true);
    assert_eq!(client.get("/health/live").await.ok()["live"], true);
    assert_eq!(client.get("/health/ready").await.ok()["ready"], true);
}

#[tokio::test]
async fn metrics_count_requests_by_route_without_identifiers() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let event = alice.say(&room, "m1", "hello").await;
    alice.get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&event))).await.ok();
    alice.get("/_matrix/client/v3/no/such/endpoint").await;
    let response = reqwest::get(format!("{}/metrics", server.url)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    let send = text
        .lines()
        .find(|l| {
            l.starts_with("relais_http_requests_total{")
                && l.contains("/send/{")
                && l.contains("method=\"PUT\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no send counter in:\n{text}"));
    assert!(send.ends_with(" 1"), "{send}");
    assert!(text.contains("route=\"unmatched\",method=\"GET\",status=\"404\""), "{text}");
    assert!(text.contains("relais_http_request_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("le=\"+Inf\""), "{text}");
    assert!(text.contains("\nrelais_sync_waiting_users 0\n"), "{text}");
    assert!(text.contains("\nrelais_rocksdb_estimated_keys "), "{text}");
    assert!(text.contains("\nrelais_rocksdb_block_cache_usage_bytes "), "{text}");
    for secret in [
        alice.token.as_deref().unwrap(),
        "@alice:localhost",
        room.as_str(),
        event.as_str(),
        "no/such",
    ] {
        assert!(!text.contains(secret), "the metrics expose {secret}");
    }
}

#[tokio::test]
async fn no_token_or_password_appears_in_the_logs() {
    let password = "Zebra-Quartz-7781-password";
    let server = TestServer::start_capturing_logs(&[("RELAIS_LOG", "debug")]);
    let mut alice = server.client();
    alice.register("alice", password).await;
    let registered_token = alice.token.clone().unwrap();
    let login = alice
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                    "password": password }),
        )
        .await
        .ok();
    let login_token = login["access_token"].as_str().unwrap().to_owned();
    // A wrong password, a token in the deprecated query parameter, an unknown token.
    alice
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                    "password": "Wrong-Walrus-4412" }),
        )
        .await
        .err(403, "M_FORBIDDEN");
    let mut anonymous = server.client();
    anonymous
        .get(&format!("/_matrix/client/v3/account/whoami?access_token={login_token}"))
        .await
        .ok();
    anonymous.token = Some("Unknown-Token-Quokka-99".to_owned());
    anonymous.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    let room = alice.create_room(json!({})).await;
    alice.say(&room, "t1", "hello").await;
    alice.post("/_matrix/client/v3/account/password", json!({ "new_password": "New-Narwhal-5531",
        "auth": { "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" },
                  "password": password } }))
        .await;
    alice.post("/_matrix/client/v3/logout", json!({})).await;
    let logs = server.logs();
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "logs were not captured at debug level:\n{logs}"
    );
    for secret in [
        password,
        "Wrong-Walrus-4412",
        "New-Narwhal-5531",
        "Unknown-Token-Quokka-99",
        registered_token.as_str(),
        login_token.as_str(),
    ] {
        assert!(!logs.contains(secret), "the logs contain the secret {secret}");
    }
}

#[tokio::test]
async fn other_servers_can_fetch_the_signing_keys_and_version() {
    let server =
        TestServer::start_with(&[("RELAIS_FEDERATION__WELL_KNOWN_SERVER", "matrix.localhost:443")]);
    let client = server.client();
    let keys = client.get("/_matrix/key/v2/server").await.ok();
    assert_eq!(keys["server_name"], "localhost");
    let (key_id, key) = keys["verify_keys"].as_object().unwrap().iter().next().unwrap();
    assert!(key_id.starts_with("ed25519:"), "{keys}");
    assert!(key["key"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(keys["signatures"]["localhost"][key_id].is_string(), "self-signed: {keys}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!(keys["valid_until_ts"].as_u64().unwrap() > now.as_millis() as u64 + 3_600_000);
    let version = client.get("/_matrix/federation/v1/version").await.ok();
    assert_eq!(version["server"]["name"], "Relais");
    let delegation = client.get("/.well-known/matrix/server").await.ok();
    assert_eq!(delegation["m.server"], "matrix.localhost:443");
    // The other federation endpoints need a signed request.
    client
        .get("/_matrix/federation/v1/state_ids/!room:localhost?event_id=%24e")
        .await
        .err(401, "M_UNAUTHORIZED");
}
