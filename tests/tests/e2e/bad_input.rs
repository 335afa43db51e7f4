use relais_tests::{TestServer, enc};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn errors_have_the_right_codes() {
    let server = TestServer::start();
    let anonymous = server.client();
    // Unknown endpoint and wrong method.
    anonymous.get("/_matrix/client/v3/no/such/endpoint").await.err(404, "M_UNRECOGNIZED");
    anonymous
        .request(Method::DELETE, "/_matrix/client/v3/login", None)
        .await
        .err(405, "M_UNRECOGNIZED");
    // Missing and unknown tokens.
    anonymous.get("/_matrix/client/v3/account/whoami").await.err(401, "M_MISSING_TOKEN");
    let mut forged = server.client();
    forged.token = Some("not-a-real-token".into());
    forged.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");

    let alice = server.register("alice").await;
    // Not JSON, and JSON of the wrong shape, both naming the problem.
    let not_json = alice
        .raw(Method::POST, "/_matrix/client/v3/createRoom", "{not json")
        .await
        .err(400, "M_NOT_JSON");
    assert!(not_json["error"].as_str().unwrap().contains("JSON"));
    let bad = alice
        .post("/_matrix/client/v3/createRoom", json!({ "invite": "not-a-list" }))
        .await
        .err(400, "M_BAD_JSON");
    assert!(
        bad["error"].as_str().unwrap().contains("invite")
            || bad["error"].as_str().unwrap().contains("sequence"),
        "{bad}"
    );

    // An event over 65536 bytes.
    let room = alice.create_room(json!({})).await;
    let big = "x".repeat(70_000);
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/big", enc(&room)),
            json!({ "msgtype": "m.text", "body": big }),
        )
        .await
        .err(413, "M_TOO_LARGE");
    // Nothing half-written: the room's history has no trace of it.
    let messages = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(&room)))
        .await
        .ok();
    assert!(messages["chunk"].as_array().unwrap().iter().all(|e| e["type"] != "m.room.message"));

    // Forbidden by the auth rules, with a reason.
    let bob = server.register("bob").await;
    let denied = bob
        .post(&format!("/_matrix/client/v3/rooms/{}/join", enc(&room)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    assert!(!denied["error"].as_str().unwrap().is_empty());
    bob.put(
        &format!("/_matrix/client/v3/rooms/{}/send/m.room.message/1", enc(&room)),
        json!({ "body": "hi", "msgtype": "m.text" }),
    )
    .await
    .err(403, "M_FORBIDDEN");
    // Unknown room and alias.
    alice
        .get("/_matrix/client/v3/directory/room/%23nothing:localhost")
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .post("/_matrix/client/v3/join/%21nope:localhost", json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    // Unsupported room version.
    alice
        .post("/_matrix/client/v3/createRoom", json!({ "room_version": "1" }))
        .await
        .err(400, "M_UNSUPPORTED_ROOM_VERSION");
    // Bad pagination token.
    alice
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&from=zzz", enc(&room)))
        .await
        .err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn cors_on_every_response() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let preflight = http
        .request(Method::OPTIONS, format!("{}/_matrix/client/v3/login", server.url))
        .header("origin", "http://element.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let error = http
        .get(format!("{}/_matrix/client/v3/account/whoami", server.url))
        .header("origin", "http://element.example")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 401);
    assert_eq!(error.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn discovery() {
    let server = TestServer::start();
    let client = server.client();
    let versions = client.get("/_matrix/client/versions").await.ok();
    assert!(versions["versions"].as_array().unwrap().iter().any(|v| v == "v1.12"));
    let well_known = client.get("/.well-known/matrix/client").await.ok();
    // The address actually bound, even when the configuration said port 0.
    assert_eq!(well_known["m.homeserver"]["base_url"], server.url.as_str());
    let alice = server.register("alice").await;
    let caps = alice.get("/_matrix/client/v3/capabilities").await.ok();
    assert_eq!(caps["capabilities"]["m.room_versions"]["default"], "12");
    assert_eq!(caps["capabilities"]["m.room_versions"]["available"]["10"], "stable");
    let rules = alice.get("/_matrix/client/v3/pushrules/").await.ok();
    assert!(
        rules["global"]["override"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule_id"] == ".m.rule.master")
    );
}
