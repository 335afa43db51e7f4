use relais_tests::TestServer;
use serde_json::json;

#[tokio::test]
async fn register_login_whoami_logout() {
    let server = TestServer::start();
    let mut alice = server.client();
    let registered = alice.register("alice", "s3cret-password").await;
    assert_eq!(registered["user_id"], "@alice:localhost");
    assert!(registered["device_id"].is_string());
    assert_eq!(alice.user_id().await, "@alice:localhost");

    // Taken and available names.
    server
        .client()
        .get("/_matrix/client/v3/register/available?username=alice")
        .await
        .err(400, "M_USER_IN_USE");
    let free = server.client().get("/_matrix/client/v3/register/available?username=bob").await.ok();
    assert_eq!(free["available"], true);

    // Login flows and password login with a user identifier.
    let flows = server.client().get("/_matrix/client/v3/login").await.ok();
    assert_eq!(flows["flows"][0]["type"], "m.login.password");
    let login = server
        .client()
        .post(
            "/_matrix/client/v3/login",
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": "s3cret-password",
                "initial_device_display_name": "laptop",
            }),
        )
        .await
        .ok();
    assert_eq!(login["user_id"], "@alice:localhost");
    let mut second = server.client();
    second.token = Some(login["access_token"].as_str().unwrap().to_owned());
    let devices = second.get("/_matrix/client/v3/devices").await.ok();
    assert_eq!(devices["devices"].as_array().unwrap().len(), 2);

    // Wrong password.
    server
        .client()
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "nope" }),
        )
        .await
        .err(403, "M_FORBIDDEN");

    // Logout revokes only that token.
    second.post("/_matrix/client/v3/logout", json!({})).await.ok();
    second.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    alice.get("/_matrix/client/v3/account/whoami").await.ok();
    alice.post("/_matrix/client/v3/logout/all", json!({})).await.ok();
    alice.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn registration_closed_and_tokens() {
    let server = TestServer::start_with(&[
        ("RELAIS_REGISTRATION__OPEN", "false"),
        ("RELAIS_REGISTRATION__TOKENS", "[\"let-me-in\"]"),
    ]);
    let client = server.client();
    let first = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "carol", "password": "pw-pw-pw-pw" }),
        )
        .await;
    assert_eq!(first.status, 401);
    assert_eq!(first.body["flows"][0]["stages"][0], "m.login.registration_token");
    let session = first.body["session"].as_str().unwrap();
    let wrong = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "carol", "password": "pw-pw-pw-pw",
                    "auth": { "type": "m.login.registration_token", "token": "guess", "session": session } }),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    let ok = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "carol", "password": "pw-pw-pw-pw",
                    "auth": { "type": "m.login.registration_token", "token": "let-me-in", "session": session } }),
        )
        .await
        .ok();
    assert_eq!(ok["user_id"], "@carol:localhost");
    // The dummy stage is not offered when registration is closed.
    let dummy = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "dave", "password": "pw-pw-pw-pw", "auth": { "type": "m.login.dummy" } }),
        )
        .await;
    assert_eq!(dummy.status, 401);
}

#[tokio::test]
async fn devices_password_and_deactivation() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let devices = alice.get("/_matrix/client/v3/devices").await.ok();
    let device_id = devices["devices"][0]["device_id"].as_str().unwrap().to_owned();
    alice
        .put(&format!("/_matrix/client/v3/devices/{device_id}"), json!({ "display_name": "work" }))
        .await
        .ok();
    let device = alice.get(&format!("/_matrix/client/v3/devices/{device_id}")).await.ok();
    assert_eq!(device["display_name"], "work");
    alice.get("/_matrix/client/v3/devices/NOPE").await.err(404, "M_NOT_FOUND");

    // Deleting a device needs the password (UIA).
    let mut other = server.client();
    let login = other
        .post("/_matrix/client/v3/login", json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "correct horse battery" }))
        .await
        .ok();
    other.token = Some(login["access_token"].as_str().unwrap().to_owned());
    let other_device = login["device_id"].as_str().unwrap().to_owned();
    let challenge =
        alice.post("/_matrix/client/v3/delete_devices", json!({ "devices": [other_device] })).await;
    assert_eq!(challenge.status, 401);
    let session = challenge.body["session"].as_str().unwrap();
    alice
        .post(
            "/_matrix/client/v3/delete_devices",
            json!({ "devices": [other_device], "auth": { "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "@alice:localhost" }, "password": "correct horse battery", "session": session } }),
        )
        .await
        .ok();
    other.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");

    // Change the password, then log in with the new one only.
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "correct horse battery" });
    alice
        .post(
            "/_matrix/client/v3/account/password",
            json!({ "new_password": "new-pass-1234", "auth": auth, "logout_devices": false }),
        )
        .await
        .ok();
    let login = |password: &'static str| {
        let c = server.client();
        async move {
            c.post("/_matrix/client/v3/login", json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": password })).await
        }
    };
    assert_eq!(login("correct horse battery").await.status, 403);
    login("new-pass-1234").await.ok();

    // Deactivation leaves rooms and blocks login.
    let room = alice.create_room(json!({})).await;
    let auth = json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "new-pass-1234" });
    alice.post("/_matrix/client/v3/account/deactivate", json!({ "auth": auth })).await.ok();
    alice.get("/_matrix/client/v3/account/whoami").await.err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(login("new-pass-1234").await.status, 403);
    server
        .client()
        .get("/_matrix/client/v3/register/available?username=alice")
        .await
        .err(400, "M_USER_IN_USE");
    let bob = server.register("bob").await;
    let _ = room;
    bob.get("/_matrix/client/v3/profile/@alice:localhost").await.err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn profile_changes_reach_member_events() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({ "name": "Profile room" })).await;
    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            json!({ "displayname": "Alice A." }),
        )
        .await
        .ok();
    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/avatar_url",
            json!({ "avatar_url": "mxc://localhost/abc" }),
        )
        .await
        .ok();
    let profile = alice.get("/_matrix/client/v3/profile/@alice:localhost").await.ok();
    assert_eq!(profile["displayname"], "Alice A.");
    assert_eq!(profile["avatar_url"], "mxc://localhost/abc");
    let member = alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/@alice:localhost",
            relais_tests::enc(&room)
        ))
        .await
        .ok();
    assert_eq!(member["displayname"], "Alice A.");
    assert_eq!(member["avatar_url"], "mxc://localhost/abc");
    let bob = server.register("bob").await;
    bob.put(
        "/_matrix/client/v3/profile/@alice:localhost/displayname",
        json!({ "displayname": "Mallory" }),
    )
    .await
    .err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_give_one_account() {
    let server = TestServer::start();
    let client = server.client();
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let challenge = client
            .post(
                "/_matrix/client/v3/register",
                json!({ "username": "eve", "password": "pw-pw-pw-pw" }),
            )
            .await;
        sessions.push(challenge.body["session"].as_str().unwrap().to_owned());
    }
    let attempts = sessions.iter().map(|session| {
        client.post(
            "/_matrix/client/v3/register",
            json!({ "username": "eve", "password": "pw-pw-pw-pw", "auth": { "type": "m.login.dummy", "session": session } }),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let created = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(created, 1, "{replies:?}");
    assert!(
        replies.iter().filter(|r| r.status != 200).all(|r| r.body["errcode"] == "M_USER_IN_USE")
    );
}
