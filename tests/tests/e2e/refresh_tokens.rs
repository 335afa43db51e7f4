//! Refresh tokens: `refresh_token: true` at login and registration, `expires_in_ms`, expired
//! access tokens answered with `soft_logout`, `/refresh` single-use; and matrix-sdk refreshing by
//! itself.

use std::time::Duration;

use relais_tests::{Client, TestServer};
use serde_json::{Value, json};

/// Access tokens issued with a refresh token live one second on these servers.
const SHORT_LIVED: &[(&str, &str)] =
    &[("RELAIS_TOKENS__REFRESHABLE_ACCESS_TOKEN_LIFETIME_SECS", "1")];

fn with_token(server: &TestServer, token: &Value) -> Client {
    let mut client = server.client();
    client.token = Some(token.as_str().expect("a token").to_owned());
    client
}

async fn login(server: &TestServer, refresh: bool) -> Value {
    let body = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "alice" },
        "password": "correct horse battery",
        "refresh_token": refresh,
    });
    server.client().post("/_matrix/client/v3/login", body).await.ok()
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once() {
    let server = TestServer::start_with(SHORT_LIVED);
    server.register("alice").await;
    let first = login(&server, true).await;
    assert_eq!(first["expires_in_ms"], 1000, "{first}");
    let access = with_token(&server, &first["access_token"]);
    access.get("/_matrix/client/v3/account/whoami").await.ok();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let expired = access.get("/_matrix/client/v3/account/whoami").await;
    let expired = expired.err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(expired["soft_logout"], true, "{expired}");

    let anonymous = server.client();
    let refresh = json!({ "refresh_token": first["refresh_token"] });
    let lost = anonymous.post("/_matrix/client/v3/refresh", refresh.clone()).await.ok();
    // The answer is lost: the client asks again with the same refresh token, which stays valid
    // until the new tokens are used, and the unused ones are revoked.
    let second = anonymous.post("/_matrix/client/v3/refresh", refresh.clone()).await.ok();
    assert_eq!(second["expires_in_ms"], 1000, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let unused = with_token(&server, &lost["access_token"]);
    unused.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    let whoami =
        with_token(&server, &second["access_token"]).get("/_matrix/client/v3/account/whoami").await;
    assert_eq!(whoami.ok()["device_id"], first["device_id"]);

    // Once the new tokens are used, the old refresh token and access token are gone for good.
    let reused = anonymous.post("/_matrix/client/v3/refresh", refresh).await;
    assert_ne!(reused.err(401, "M_UNKNOWN_TOKEN")["soft_logout"], true);
    let old = access.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    assert_ne!(old["soft_logout"], true, "{old}");
    // A refresh token is no access token.
    let misused = with_token(&server, &second["refresh_token"]);
    misused.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    let bogus = json!({ "refresh_token": "never issued" });
    anonymous.post("/_matrix/client/v3/refresh", bogus).await.err(401, "M_UNKNOWN_TOKEN");

    // Logging out revokes the refresh token too.
    let current = with_token(&server, &second["access_token"]);
    current.post("/_matrix/client/v3/logout", json!({})).await.ok();
    let after_logout = json!({ "refresh_token": second["refresh_token"] });
    anonymous.post("/_matrix/client/v3/refresh", after_logout).await.err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn tokens_without_refresh_do_not_expire() {
    let server = TestServer::start_with(SHORT_LIVED);
    server.register("alice").await;
    let plain = login(&server, false).await;
    assert!(
        plain.get("expires_in_ms").is_none() && plain.get("refresh_token").is_none(),
        "{plain}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    with_token(&server, &plain["access_token"]).get("/_matrix/client/v3/account/whoami").await.ok();
}

#[tokio::test]
async fn registration_can_ask_for_a_refresh_token() {
    let server = TestServer::start_with(SHORT_LIVED);
    let client = server.client();
    let body = json!({ "username": "bob", "password": "correct horse battery",
                       "refresh_token": true });
    let first = client.post("/_matrix/client/v3/register", body.clone()).await;
    let session = first.body["session"].as_str().expect("a UIA session").to_owned();
    let mut body = body;
    body["auth"] = json!({ "type": "m.login.dummy", "session": session });
    let registered = client.post("/_matrix/client/v3/register", body).await.ok();
    assert_eq!(registered["expires_in_ms"], 1000, "{registered}");
    let refresh = json!({ "refresh_token": registered["refresh_token"] });
    client.post("/_matrix/client/v3/refresh", refresh).await.ok();
}

#[tokio::test]
async fn matrix_sdk_refreshes_by_itself() {
    let server = TestServer::start_with(SHORT_LIVED);
    server.register("alice").await;
    let client = matrix_sdk::Client::builder()
        .homeserver_url(&server.url)
        .handle_refresh_tokens()
        .build()
        .await
        .expect("client");
    let login = client
        .matrix_auth()
        .login_username("alice", "correct horse battery")
        .request_refresh_token()
        .send()
        .await
        .expect("login");
    assert!(login.refresh_token.is_some());
    let first = client.access_token().expect("an access token");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let whoami = client.whoami().await.expect("whoami after the access token expired");
    assert_eq!(whoami.user_id.as_str(), "@alice:localhost");
    assert_ne!(client.access_token().expect("an access token"), first, "the SDK refreshed");
}
