//! The policy layer end to end: tiers, access classes and delegated administration, enforced by the
//! embedded policy service at the choke points, with the directory and audit log in unit rooms
//! that survive a restart.

use relais_tests::{Client, Reply, TestServer, enc};
use serde_json::{Value, json};

/// The organisation tree of these tests.
pub(crate) const UNITS: &str =
    r#"[{id="state"},{id="interior",parent="state"},{id="culture",parent="state"}]"#;

/// A server with the policy on, the tree above and `@root:localhost` as server admin.
pub(crate) fn start() -> TestServer {
    TestServer::start_with(&[
        ("RELAIS_POLICY__ENABLED", "true"),
        ("RELAIS_POLICY__UNITS", UNITS),
        ("RELAIS_POLICY__SERVER_ADMINS", r#"["@root:localhost"]"#),
    ])
}

/// Logs in with a password.
pub(crate) async fn login(server: &TestServer, user: &str) -> Client {
    let mut client = server.client();
    let reply = client
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": user }, "password": "pw-pw-pw-pw" }),
        )
        .await
        .ok();
    client.token = Some(reply["access_token"].as_str().unwrap().to_owned());
    client
}

/// Creates an account through the admin API.
pub(crate) async fn create_account(
    admin: &Client,
    username: &str,
    tier: &str,
    unit: &str,
) -> Reply {
    admin
        .post(
            "/_relais/admin/v1/users",
            json!({ "username": username, "password": "pw-pw-pw-pw", "tier": tier, "unit": unit, "reason": "test" }),
        )
        .await
}

/// Registers through the dummy stage, with neither an invitation nor an e-mail address.
pub(crate) async fn register_without_invitation(server: &TestServer, username: &str) -> Reply {
    let client = server.client();
    let body = json!({ "username": username, "password": "pw-pw-pw-pw" });
    let first = client.post("/_matrix/client/v3/register", body.clone()).await;
    let mut with_auth = body;
    with_auth["auth"] = json!({ "type": "m.login.dummy", "session": first.body["session"] });
    client.post("/_matrix/client/v3/register", with_auth).await
}

/// A policy server with root, alice (agent) and bob (public agent) of the interior; root's and
/// alice's clients.
async fn with_alice_and_bob() -> (TestServer, Client, Client) {
    let server = start();
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    create_account(&root, "alice", "agent", "interior").await.ok();
    create_account(&root, "bob", "public", "interior").await.ok();
    let alice = login(&server, "alice").await;
    (server, root, alice)
}

fn rule(body: &Value) -> &str {
    body["fr.relais.rule"].as_str().unwrap_or_default()
}

async fn invite(client: &Client, room: &str, user: &str) -> Reply {
    client
        .post(&format!("/_matrix/client/v3/rooms/{}/invite", enc(room)), json!({ "user_id": user }))
        .await
}

async fn set_class(client: &Client, room: &str, class: &str) -> Reply {
    client
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/fr.relais.access/", enc(room)),
            json!({ "class": class }),
        )
        .await
}

#[tokio::test]
async fn tiers_classes_and_delegated_administration() {
    let mut server = start();
    // Self-registration needs an invitation; the configured server admin may register.
    let refused = register_without_invitation(&server, "stranger").await.err(403, "M_FORBIDDEN");
    assert!(refused["error"].as_str().unwrap().contains("R1"), "{refused}");
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;

    // The root creates an agent of the interior and makes her its delegated admin.
    create_account(&root, "alice", "agent", "interior").await.ok();
    root.put(
        "/_relais/admin/v1/units/interior/admins/@alice:localhost",
        json!({ "reason": "head of unit" }),
    )
    .await
    .ok();
    let alice = login(&server, "alice").await;
    let me = alice.get("/_relais/admin/v1/users/@alice:localhost").await.ok();
    assert_eq!(me["record"]["tier"], "agent");
    assert_eq!(me["administers"], json!(["interior"]));

    // Alice administers the interior, not culture.
    create_account(&alice, "bob", "public", "interior").await.ok();
    let outside = create_account(&alice, "carol", "agent", "culture").await.err(403, "M_FORBIDDEN");
    assert!(outside["error"].as_str().unwrap().contains("culture"), "{outside}");
    let guest = create_account(&alice, "gus", "guest", "interior").await.ok();
    assert_eq!(guest["record"]["sponsor"], "@alice:localhost");
    assert!(guest["record"]["expires_at_ms"].as_u64().is_some());
    let bob = login(&server, "bob").await;
    let gus = login(&server, "gus").await;
    // Bob, without a delegation, administers nothing.
    create_account(&bob, "dan", "public", "interior").await.err(403, "M_FORBIDDEN");

    // A new room of an agent is of class `agents`: a public agent cannot be invited (M1).
    let room = alice.create_room(json!({ "name": "Crisis cell" })).await;
    let class = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/state/fr.relais.access/", enc(&room)))
        .await
        .ok();
    assert_eq!(class["class"], "agents");
    let denied = invite(&alice, &room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "M1", "{denied}");

    // Opening the room (P2, room admins) lets Bob in.
    set_class(&alice, &room, "public").await.ok();
    invite(&alice, &room, "@bob:localhost").await.ok();
    bob.join(&room).await;
    // A `public` room may be listed in the directory (D1); guests see none of it (D2).
    let listing = format!("/_matrix/client/v3/directory/list/room/{}", enc(&room));
    alice.put(&listing, json!({ "visibility": "public" })).await.ok();
    let seen = bob.post("/_matrix/client/v3/publicRooms", json!({})).await.ok();
    assert_eq!(seen["chunk"].as_array().unwrap().len(), 1, "{seen}");
    let seen = gus.post("/_matrix/client/v3/publicRooms", json!({})).await.ok();
    assert!(seen["chunk"].as_array().is_none_or(|c| c.is_empty()), "{seen}");
    let anonymous = server.client().get("/_matrix/client/v3/publicRooms").await.ok();
    assert!(anonymous["chunk"].as_array().is_none_or(|c| c.is_empty()), "{anonymous}");
    // A public agent never invites a guest (M2), and a guest never joins a `public` room.
    let denied = invite(&bob, &room, "@gus:localhost").await.err(403, "M_FORBIDDEN");
    assert!(matches!(rule(&denied), "M1" | "M2" | "M3"), "{denied}");
    // Power: a public agent is at most a moderator (P1).
    let pl_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", enc(&room));
    let mut levels = alice.get(&pl_path).await.ok();
    levels["users"]["@bob:localhost"] = json!(100);
    let denied = alice.put(&pl_path, levels.clone()).await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "P1", "{denied}");
    levels["users"]["@bob:localhost"] = json!(50);
    alice.put(&pl_path, levels).await.ok();

    // Guests create no rooms (W2); invited into an `open` room by their sponsor, they join.
    gus.post("/_matrix/client/v3/createRoom", json!({})).await.err(403, "M_FORBIDDEN");
    set_class(&alice, &room, "open").await.ok();
    invite(&alice, &room, "@gus:localhost").await.ok();
    gus.join(&room).await;
    // Bob cannot close the room (P3); he is a moderator, not a delegated admin.
    let denied = set_class(&bob, &room, "agents").await;
    assert_eq!(denied.status, 403, "{:?}", denied.body);

    // Locking a guest ends their sessions at once; the lock is in the audit log.
    alice
        .put(
            "/_relais/admin/v1/users/@gus:localhost",
            json!({ "status": "locked", "reason": "contract ended" }),
        )
        .await
        .ok();
    let locked = gus.get("/_matrix/client/v3/account/whoami").await;
    assert!(locked.status == 401 || locked.status == 403, "{locked:?}");
    let log = alice.get("/_relais/admin/v1/units/interior/audit").await.ok();
    let actions: Vec<&str> =
        log["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"create_account") && actions.contains(&"appoint_admin"),
        "{actions:?}"
    );
    assert!(actions.contains(&"change_user"), "{actions:?}");
    let lock =
        log["entries"].as_array().unwrap().iter().find(|e| e["action"] == "change_user").unwrap();
    assert_eq!(lock["reason"], "contract ended");
    assert_eq!(lock["actor"], "@alice:localhost");
    // The export formats; and no audit log outside one's scope.
    let csv = alice.get("/_relais/admin/v1/units/interior/audit?format=csv").await;
    assert_eq!(csv.status, 200);
    alice.get("/_relais/admin/v1/units/culture/audit").await.err(403, "M_FORBIDDEN");
    bob.get("/_relais/admin/v1/units/interior/audit").await.err(403, "M_FORBIDDEN");

    // After a restart the directory is rebuilt from the unit rooms.
    server.restart();
    let mut alice = login(&server, "alice").await;
    alice.url = server.url.clone();
    create_account(&alice, "erin", "agent", "interior").await.ok();
    let agents_room = alice.create_room(json!({})).await;
    let denied = invite(&alice, &agents_room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "M1");
    let gus_again = server.client();
    let relogin = gus_again
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "gus" }, "password": "pw-pw-pw-pw" }),
        )
        .await;
    assert_eq!(relogin.status, 403, "a locked account stays locked: {:?}", relogin.body);
}

#[tokio::test]
async fn the_admin_api_is_unrecognised_without_the_policy() {
    let server = TestServer::start();
    let admin = server.register("someone").await;
    admin
        .post(
            "/_relais/admin/v1/users",
            json!({ "username": "x", "password": "p", "tier": "agent" }),
        )
        .await
        .err(404, "M_UNRECOGNIZED");
}

/// Registers through the registration-token stage, as Element does.
pub(crate) async fn register_with_token(server: &TestServer, username: &str, token: &str) -> Reply {
    let client = server.client();
    let first = client
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": username, "password": "pw-pw-pw-pw" }),
        )
        .await;
    assert_eq!(first.status, 401, "{:?}", first.body);
    let flows = first.body["flows"].to_string();
    assert!(flows.contains("m.login.registration_token"), "{flows}");
    let session = first.body["session"].as_str().unwrap().to_owned();
    client
        .post(
            "/_matrix/client/v3/register",
            json!({
                "username": username,
                "password": "pw-pw-pw-pw",
                "auth": { "type": "m.login.registration_token", "token": token, "session": session },
            }),
        )
        .await
}

#[tokio::test]
async fn registration_invitations_give_tier_unit_and_sponsor_once() {
    let server = start();
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    let issued = root
        .post(
            "/_relais/admin/v1/invitations",
            json!({ "tier": "public", "unit": "culture", "uses": 1 }),
        )
        .await
        .ok();
    let token = issued["token"].as_str().unwrap().to_owned();
    let validity = |token: String| {
        let client = server.client();
        async move {
            client
                .get(&format!(
                    "/_matrix/client/v1/register/m.login.registration_token/validity?token={}",
                    enc(&token)
                ))
                .await
                .ok()["valid"]
                .clone()
        }
    };
    assert_eq!(validity(token.clone()).await, true);
    assert_eq!(validity("made-up".into()).await, false);

    let registered = register_with_token(&server, "paula", &token).await.ok();
    assert_eq!(registered["user_id"], "@paula:localhost");
    let record = root.get("/_relais/admin/v1/users/@paula:localhost").await.ok();
    assert_eq!(record["record"]["tier"], "public");
    assert_eq!(record["record"]["unit"], "culture");
    // Single use: the token is spent.
    assert_eq!(validity(token.clone()).await, false);
    let again = register_with_token(&server, "pierre", &token).await;
    assert!(again.status == 401 || again.status == 403, "{:?}", again.body);

    // A guest invitation from an agent makes them the guest's sponsor; listing shows no token.
    create_account(&root, "alice", "agent", "interior").await.ok();
    let alice = login(&server, "alice").await;
    let issued = alice
        .post("/_relais/admin/v1/invitations", json!({ "tier": "guest", "guest_term_days": 30 }))
        .await;
    // M3: an agent may bring in a guest, whom they then sponsor.
    let issued = issued.ok();
    let guest_token = issued["token"].as_str().unwrap().to_owned();
    register_with_token(&server, "gina", &guest_token).await.ok();
    let record = root.get("/_relais/admin/v1/users/@gina:localhost").await.ok();
    assert_eq!(record["record"]["tier"], "guest");
    assert_eq!(record["record"]["sponsor"], "@alice:localhost");
    assert!(record["record"]["expires_at_ms"].as_u64().is_some());
    let listed = root.get("/_relais/admin/v1/invitations?unit=state").await.ok();
    assert!(!listed.to_string().contains(&token), "tokens are never stored: {listed}");
    // An admin can withdraw an unused invitation.
    let spare = root
        .post("/_relais/admin/v1/invitations", json!({ "tier": "agent", "unit": "interior" }))
        .await
        .ok();
    let spare_token = spare["token"].as_str().unwrap().to_owned();
    root.request(
        reqwest::Method::DELETE,
        &format!("/_relais/admin/v1/invitations/{}", enc(spare["id"].as_str().unwrap())),
        Some(json!({ "reason": "sent to the wrong person" })),
    )
    .await
    .ok();
    assert_eq!(validity(spare_token).await, false);
}

/// The policy bot's latest notice in a room, waiting up to ten seconds for one after `after`.
async fn bot_answer(client: &Client, room: &str, after: usize) -> String {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(room));
    for _ in 0..100 {
        let chunk = client.get(&path).await.ok()["chunk"].as_array().unwrap().clone();
        let notices: Vec<String> = chunk
            .iter()
            .rev()
            .filter(|e| {
                e["sender"] == "@relais-policy:localhost" && e["content"]["msgtype"] == "m.notice"
            })
            .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
            .collect();
        if notices.len() > after {
            return notices[notices.len() - 1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the policy bot did not answer");
}

#[tokio::test]
async fn the_bot_answers_delegated_admins_in_their_unit_room() {
    let server = start();
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    create_account(&root, "alice", "agent", "interior").await.ok();
    create_account(&root, "bob", "public", "interior").await.ok();
    root.put("/_relais/admin/v1/units/interior/admins/@alice:localhost", json!({})).await.ok();
    let alice = login(&server, "alice").await;
    // The new admin was invited to the unit's room.
    let alias = enc("#relais-unit-interior:localhost");
    let room =
        alice.get(&format!("/_matrix/client/v3/directory/room/{alias}")).await.ok()["room_id"]
            .as_str()
            .unwrap()
            .to_owned();
    alice.join(&room).await;

    alice.say(&room, "c1", "!relais whois @bob:localhost").await;
    let answer = bot_answer(&alice, &room, 0).await;
    assert!(answer.contains("public") && answer.contains("interior"), "{answer}");

    alice.say(&room, "c2", "!relais tier @bob:localhost agent promoted").await;
    let answer = bot_answer(&alice, &room, 1).await;
    assert!(answer.contains("now agent"), "{answer}");
    let record = root.get("/_relais/admin/v1/users/@bob:localhost").await.ok();
    assert_eq!(record["record"]["tier"], "agent");

    alice.say(&room, "c3", "!relais invite public 1").await;
    let answer = bot_answer(&alice, &room, 2).await;
    let token =
        answer.split_whitespace().find(|w| w.len() >= 40).unwrap().trim_end_matches('.').to_owned();
    register_with_token(&server, "newcomer", &token).await.ok();

    // Outside her scope the bot refuses, saying why.
    alice.say(&room, "c4", "!relais admin add @bob:localhost culture").await;
    let answer = bot_answer(&alice, &room, 3).await;
    assert!(answer.starts_with("Refused"), "{answer}");
    alice.say(&room, "c5", "!relais audit 3").await;
    let answer = bot_answer(&alice, &room, 4).await;
    assert!(answer.contains("register_with_invitation"), "{answer}");
}

#[tokio::test]
async fn a_space_made_with_create_room_is_a_workspace_the_bot_can_recover() {
    let (server, _root, alice) = with_alice_and_bob().await;
    let bob = login(&server, "bob").await;
    let space = alice
        .create_room(json!({ "name": "Floods", "creation_content": { "type": "m.space" } }))
        .await;
    let state = |kind: &str| format!("/_matrix/client/v3/rooms/{}/state/{kind}/", enc(&space));
    let workspace = alice.get(&state("fr.relais.workspace")).await.ok();
    assert_eq!(workspace["unit"], "interior");
    assert_eq!(alice.get(&state("fr.relais.access")).await.ok()["class"], "agents");
    let create = alice.get(&state("m.room.create")).await.ok();
    assert!(
        create["additional_creators"].to_string().contains("@relais-policy:localhost"),
        "{create}"
    );
    let members =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&space))).await.ok();
    assert!(members["joined"].get("@relais-policy:localhost").is_some(), "{members}");
    // A public agent creates no workspace (W1).
    bob.post("/_matrix/client/v3/createRoom", json!({ "creation_content": { "type": "m.space" } }))
        .await
        .err(403, "M_FORBIDDEN");
}

/// The room a user is invited to, waiting up to ten seconds.
async fn wait_for_invite(client: &Client) -> String {
    for _ in 0..100 {
        let sync = client.sync(None, 0).await;
        if let Some(invites) = sync["rooms"]["invite"].as_object()
            && let Some(room) = invites.keys().next()
        {
            return room.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no invite arrived");
}

#[tokio::test]
async fn guests_and_sponsors_are_reminded_once_before_the_account_ends() {
    let server = TestServer::start_with(&[
        ("RELAIS_POLICY__ENABLED", "true"),
        ("RELAIS_POLICY__UNITS", UNITS),
        ("RELAIS_POLICY__SERVER_ADMINS", r#"["@root:localhost"]"#),
        // Every guest is within the window; the task runs every second.
        ("RELAIS_POLICY__GUEST_REMINDER_DAYS", "1000"),
        ("RELAIS_POLICY__REMINDER_INTERVAL_SECS", "1"),
    ]);
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    create_account(&root, "alice", "agent", "interior").await.ok();
    let alice = login(&server, "alice").await;
    create_account(&alice, "gus", "guest", "interior").await.ok();
    let gus = login(&server, "gus").await;
    let room = wait_for_invite(&gus).await;
    gus.join(&room).await;
    let notice = bot_answer(&gus, &room, 0).await;
    assert!(notice.contains("guest account ends in"), "{notice}");
    let sponsor_room = wait_for_invite(&alice).await;
    alice.join(&sponsor_room).await;
    let notice = bot_answer(&alice, &sponsor_room, 0).await;
    assert!(notice.contains("@gus:localhost") && notice.contains("renew"), "{notice}");
    // Once per expiry: later passes send nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(notice_count(&gus, &room).await, 1);
}

#[tokio::test]
async fn a_refused_invitation_is_explained_in_a_notice() {
    let (_server, _root, alice) = with_alice_and_bob().await;
    let room = alice.create_room(json!({ "name": "Crisis cell" })).await;
    let denied = invite(&alice, &room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "M1", "{denied}");
    // Element shows a sentence of its own for any refused invite; the policy's reason reaches
    // Alice anyway, from the policy bot in her notices room.
    let notices = wait_for_invite(&alice).await;
    alice.join(&notices).await;
    let notice = bot_answer(&alice, &notices, 0).await;
    assert!(notice.contains("@bob:localhost") && notice.contains("\"Crisis cell\""), "{notice}");
    assert!(notice.contains("M1"), "{notice}");
    // Retrying at once explains nothing twice.
    invite(&alice, &room, "@bob:localhost").await.err(403, "M_FORBIDDEN");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(notice_count(&alice, &notices).await, 1);
}

/// The notices in the latest 50 events of a room.
async fn notice_count(client: &Client, room: &str) -> usize {
    let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50", enc(room));
    let chunk = client.get(&path).await.ok()["chunk"].as_array().cloned().unwrap_or_default();
    chunk.iter().filter(|e| e["content"]["msgtype"] == "m.notice").count()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn search_users(client: &Client, term: &str) -> Vec<String> {
    client
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": term }))
        .await
        .ok()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_levels_of_admins_links_knocks_search_and_guest_expiry() {
    let server = start();
    let mut root = server.client();
    root.register("root", "pw-pw-pw-pw").await;
    // Two levels: Sam administers the state, and appoints Alice for the interior.
    create_account(&root, "sam", "agent", "state").await.ok();
    root.put("/_relais/admin/v1/units/state/admins/@sam:localhost", json!({})).await.ok();
    let sam = login(&server, "sam").await;
    create_account(&sam, "alice", "agent", "interior").await.ok();
    sam.put("/_relais/admin/v1/units/interior/admins/@alice:localhost", json!({})).await.ok();
    let alice = login(&server, "alice").await;
    create_account(&alice, "erin", "agent", "interior").await.ok();
    create_account(&alice, "bob", "public", "interior").await.ok();
    create_account(&sam, "carl", "public", "culture").await.ok();
    // Alice's attempt outside her subtree is refused, and the refusal is in culture's log.
    create_account(&alice, "mallory", "agent", "culture").await.err(403, "M_FORBIDDEN");
    alice
        .put("/_relais/admin/v1/units/culture/admins/@erin:localhost", json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    let log = sam.get("/_relais/admin/v1/units/culture/audit").await.ok();
    let refused: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("refused:"))
        .collect();
    assert!(refused.iter().any(|e| e["actor"] == "@alice:localhost"), "{log}");
    // Sam, higher up, may act in culture.
    create_account(&sam, "cleo", "agent", "culture").await.ok();

    let gus_expiry = now_ms() + 3000;
    alice
        .post(
            "/_relais/admin/v1/users",
            json!({ "username": "gus", "password": "pw-pw-pw-pw", "tier": "guest", "expires_at_ms": gus_expiry }),
        )
        .await
        .ok();
    let erin = login(&server, "erin").await;
    let bob = login(&server, "bob").await;
    let gus = login(&server, "gus").await;

    // Join by link: an open room with a public join rule admits agents, not uninvited guests.
    let open = alice
        .create_room(json!({ "preset": "public_chat", "initial_state": [
            { "type": "fr.relais.access", "state_key": "", "content": { "class": "open" } }
        ] }))
        .await;
    erin.join(&open).await;
    let denied = gus
        .post(&format!("/_matrix/client/v3/join/{}", enc(&open)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(rule(&denied), "M1", "{denied}");
    // Knocking: a public agent may knock on a `public` room; a guest's knock is refused.
    let knockable = alice
        .create_room(json!({ "initial_state": [
            { "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } },
            { "type": "fr.relais.access", "state_key": "", "content": { "class": "public" } }
        ], "room_version": "12" }))
        .await;
    bob.post(&format!("/_matrix/client/v3/knock/{}", enc(&knockable)), json!({})).await.ok();
    gus.post(&format!("/_matrix/client/v3/knock/{}", enc(&knockable)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");

    // User search: a guest finds only people they share a room with (D3); agents find anyone.
    assert!(search_users(&erin, "carl").await.contains(&"@carl:localhost".to_owned()));
    assert!(!search_users(&gus, "erin").await.contains(&"@erin:localhost".to_owned()));
    invite(&alice, &open, "@gus:localhost").await.ok();
    gus.join(&open).await;
    assert!(search_users(&gus, "erin").await.contains(&"@erin:localhost".to_owned()));

    // Expiry: the guest's requests are refused once the term is over, until the sponsor renews.
    while now_ms() < gus_expiry + 200 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let expired = gus.get("/_matrix/client/v3/account/whoami").await.err(403, "M_FORBIDDEN");
    assert!(expired["error"].as_str().unwrap().contains("R2"), "{expired}");
    alice
        .put(
            "/_relais/admin/v1/users/@gus:localhost",
            json!({ "expires_at_ms": now_ms() + 86_400_000, "reason": "project extended" }),
        )
        .await
        .ok();
    gus.get("/_matrix/client/v3/account/whoami").await.ok();
    let log = alice.get("/_relais/admin/v1/units/interior/audit").await.ok();
    assert!(log.to_string().contains("project extended"), "the renewal is audited");
}
