//! Rooms across servers: two and three `relais` instances federating over TLS on loopback join
//! each other's rooms, talk, edit, redact, invite, and catch up after a server was down.

use std::time::{Duration, Instant};

use relais_tests::{
    Client, enc,
    federation::{FederatedServer, free_port, start_federation},
    sync_until, timeline,
};
use serde_json::{Value, json};

/// Every message body a client has in a room, from an initial sync.
async fn bodies(client: &Client, room: &str) -> Vec<String> {
    let response = client.sync(None, 0).await;
    timeline(&response, room)
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `client` sees a message with `body` in `room`.
async fn wait_for_body(client: &Client, room: &str, body: &str) -> Value {
    let response = sync_until(client, 30, body, |r| {
        timeline(r, room).iter().any(|e| e["content"]["body"] == body)
    })
    .await;
    timeline(&response, room)
        .into_iter()
        .find(|e| e["content"]["body"] == body)
        .cloned()
        .expect("the message")
}

async fn join_via(client: &Client, room: &str, via: &str) -> Value {
    client
        .post(&format!("/_matrix/client/v3/join/{}?via={}", enc(room), enc(via)), json!({}))
        .await
        .ok()
}

#[tokio::test]
async fn users_of_two_servers_share_a_room() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room =
        alice.create_room(json!({ "preset": "public_chat", "name": "Interministerial" })).await;
    alice.say(&room, "t1", "before bob").await;

    let joined = join_via(&bob, &room, &a.server_name).await;
    assert_eq!(joined["room_id"], room.as_str());

    // Bob's server has the room's state: its name and both members.
    let name =
        bob.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room))).await;
    assert_eq!(name.ok()["name"], "Interministerial");
    let bob_id = bob.user_id().await;
    let alice_id = alice.user_id().await;

    // Alice's server learns of the join.
    sync_until(&alice, 30, "bob's join on alice's server", |r| {
        timeline(r, &room)
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob_id.as_str())
    })
    .await;

    // Messages both ways.
    alice.say(&room, "t2", "hello from A").await;
    let seen = wait_for_body(&bob, &room, "hello from A").await;
    assert_eq!(seen["sender"], alice_id.as_str());
    let bobs = bob.say(&room, "t3", "hello from B").await;
    wait_for_body(&alice, &room, "hello from B").await;

    // An edit and a redaction cross too.
    bob.send(
        &room,
        "m.room.message",
        "t4",
        json!({
            "msgtype": "m.text",
            "body": "* hello again from B",
            "m.new_content": { "msgtype": "m.text", "body": "hello again from B" },
            "m.relates_to": { "rel_type": "m.replace", "event_id": bobs },
        }),
    )
    .await;
    let edit = wait_for_body(&alice, &room, "* hello again from B").await;
    assert_eq!(edit["content"]["m.relates_to"]["event_id"], bobs.as_str());
    let redacted = alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/redact/{}/r1", enc(&room), enc(&bobs)),
            json!({}),
        )
        .await;
    // Alice may not redact Bob's message without the power level: she created the room.
    let redaction = redacted.ok()["event_id"].as_str().expect("redaction id").to_owned();
    sync_until(&bob, 30, "the redaction on bob's server", |r| {
        timeline(r, &room).iter().any(|e| e["event_id"] == redaction.as_str())
    })
    .await;
    let event =
        bob.get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&bobs))).await;
    let event = event.ok();
    assert!(event["content"].as_object().is_none_or(|c| c.is_empty()), "redacted: {event}");

    // State changes agree on both sides.
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room)),
            json!({ "topic": "shared work" }),
        )
        .await
        .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let topic =
            bob.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room))).await;
        if topic.status == 200 {
            assert_eq!(topic.ok()["topic"], "shared work");
            break;
        }
        assert!(Instant::now() < deadline, "the topic never reached bob's server");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let members = |c: &Client| {
        let room = room.clone();
        let c = c.clone();
        async move {
            let r = c.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room))).await;
            let mut ids: Vec<String> =
                r.ok()["joined"].as_object().expect("joined").keys().cloned().collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(members(&alice).await, members(&bob).await);
}

#[tokio::test]
async fn an_invite_crosses_servers_and_is_accepted() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let bob_id = bob.user_id().await;
    let room = alice.create_room(json!({ "preset": "private_chat", "name": "Private" })).await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            json!({ "user_id": bob_id }),
        )
        .await
        .ok();
    let response =
        sync_until(&bob, 30, "the invite", |r| r["rooms"]["invite"][&room].is_object()).await;
    let invite_state = &response["rooms"]["invite"][&room]["invite_state"]["events"];
    assert!(
        invite_state
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Private"),
        "the invite shows the room's name: {invite_state}"
    );
    // Joining an invite needs no `via`: the inviter's server is used.
    bob.post(&format!("/_matrix/client/v3/join/{}", enc(&room)), json!({})).await.ok();
    bob.say(&room, "t1", "thanks for the invite").await;
    wait_for_body(&alice, &room, "thanks for the invite").await;
}

#[tokio::test]
async fn a_rejected_invite_goes_back_to_the_inviting_server() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let bob_id = bob.user_id().await;
    let room = alice.create_room(json!({ "preset": "private_chat" })).await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            json!({ "user_id": bob_id }),
        )
        .await
        .ok();
    sync_until(&bob, 30, "the invite", |r| r["rooms"]["invite"][&room].is_object()).await;
    bob.post(&format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)), json!({})).await.ok();
    sync_until(&alice, 30, "bob's rejection on alice's server", |r| {
        timeline(r, &room).iter().any(|e| {
            e["type"] == "m.room.member"
                && e["state_key"] == bob_id.as_str()
                && e["content"]["membership"] == "leave"
        })
    })
    .await;
}

#[tokio::test]
async fn a_server_that_was_down_catches_up_without_loss_or_duplicates() {
    let mut servers = start_federation(2);
    let alice = servers[0].register("alice").await;
    let bob = servers[1].register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    join_via(&bob, &room, &servers[0].server_name).await;
    alice.say(&room, "t0", "before the outage").await;
    wait_for_body(&bob, &room, "before the outage").await;

    servers[1].server.kill();
    for i in 0..5 {
        alice.say(&room, &format!("down{i}"), &format!("while down {i}")).await;
    }
    // Give the sender time to fail and back off at least once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    servers[1].server.resume();
    let bob = bob.reconnect(&servers[1].server);
    wait_for_body(&bob, &room, "while down 4").await;
    let seen = bodies(&bob, &room).await;
    for i in 0..5 {
        let body = format!("while down {i}");
        assert_eq!(seen.iter().filter(|b| **b == body).count(), 1, "{body} exactly once: {seen:?}");
    }
}

#[tokio::test]
async fn a_server_outside_the_partner_list_is_refused() {
    let port_a = free_port();
    let partner = format!("localhost:{}", free_port());
    let a = FederatedServer::start_on(
        port_a,
        &[("RELAIS_FEDERATION__ALLOWED_SERVERS", &format!("[\"{partner}\"]"))],
    );
    let b = FederatedServer::start(&[]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    let refused = bob
        .post(
            &format!("/_matrix/client/v3/join/{}?via={}", enc(&room), enc(&a.server_name)),
            json!({}),
        )
        .await;
    let body = refused.err(403, "M_FORBIDDEN");
    assert!(body["error"].as_str().unwrap_or_default().contains("partner"), "{body}");
}

#[tokio::test]
async fn a_knock_crosses_servers_and_is_answered_by_an_invite() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let bob_id = bob.user_id().await;
    let room = alice
        .create_room(json!({
            "name": "Ask first",
            "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }],
        }))
        .await;
    bob.post(
        &format!("/_matrix/client/v3/knock/{}?via={}", enc(&room), enc(&a.server_name)),
        json!({ "reason": "I work on this too" }),
    )
    .await
    .ok();
    let knock =
        sync_until(&bob, 30, "the knock in bob's sync", |r| r["rooms"]["knock"][&room].is_object())
            .await;
    assert!(
        knock["rooms"]["knock"][&room]["knock_state"]["events"].to_string().contains("Ask first"),
        "the knock shows the room's name: {knock}"
    );
    sync_until(&alice, 30, "the knock on alice's server", |r| {
        timeline(r, &room)
            .iter()
            .any(|e| e["state_key"] == bob_id.as_str() && e["content"]["membership"] == "knock")
    })
    .await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            json!({ "user_id": bob_id }),
        )
        .await
        .ok();
    sync_until(&bob, 30, "the invite answering the knock", |r| {
        r["rooms"]["invite"][&room].is_object()
    })
    .await;
    bob.post(&format!("/_matrix/client/v3/join/{}", enc(&room)), json!({})).await.ok();
    bob.say(&room, "k1", "thanks for letting me in").await;
    wait_for_body(&alice, &room, "thanks for letting me in").await;
}

#[tokio::test]
async fn three_servers_share_a_space_and_a_restricted_room() {
    let servers = start_federation(3);
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    let space = alice
        .create_room(json!({ "preset": "public_chat", "name": "Ministries", "creation_content": { "type": "m.space" } }))
        .await;
    let restricted = alice
        .create_room(json!({
            "name": "Members of the space only",
            "initial_state": [{
                "type": "m.room.join_rules", "state_key": "",
                "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": space }] },
            }],
        }))
        .await;
    // Carol, not in the space, is refused by the resident server.
    let refused = carol
        .post(
            &format!("/_matrix/client/v3/join/{}?via={}", enc(&restricted), enc(&a.server_name)),
            json!({}),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    join_via(&bob, &space, &a.server_name).await;
    join_via(&carol, &space, &a.server_name).await;
    // Bob's server learns of Carol's join from Alice's server, which passed it on, and then
    // sends Bob's message to Carol's server itself.
    let carol_id = carol.user_id().await;
    sync_until(&bob, 30, "carol's join relayed to bob's server", |r| {
        timeline(r, &space)
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == carol_id.as_str())
    })
    .await;
    bob.say(&space, "s1", "hello both").await;
    wait_for_body(&carol, &space, "hello both").await;
    wait_for_body(&alice, &space, "hello both").await;

    // Bob, now in the space, joins the restricted room: Alice's server authorises it.
    join_via(&bob, &restricted, &a.server_name).await;
    bob.say(&restricted, "r1", "in through the space").await;
    wait_for_body(&alice, &restricted, "in through the space").await;
    let bob_id = bob.user_id().await;
    let members =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&restricted))).await;
    assert!(members.ok()["joined"][&bob_id].is_object());
}

#[tokio::test]
async fn remote_users_get_the_tier_of_their_server() {
    let (port_a, port_guest, port_agents) = (free_port(), free_port(), free_port());
    let name = |port: u16| format!("localhost:{port}");
    let servers_table =
        format!("{{\"{}\"=\"guest\",\"{}\"=\"agent\"}}", name(port_guest), name(port_agents));
    let admin = format!("[\"@root:{}\"]", name(port_a));
    let a = FederatedServer::start_on(
        port_a,
        &[
            ("RELAIS_POLICY__ENABLED", "true"),
            ("RELAIS_POLICY__UNITS", r#"[{id="state"}]"#),
            ("RELAIS_POLICY__SERVER_ADMINS", &admin),
            ("RELAIS_POLICY__SERVERS", &servers_table),
        ],
    );
    let partner_guest = FederatedServer::start_on(port_guest, &[]);
    let partner_agents = FederatedServer::start_on(port_agents, &[]);
    let mut root = a.client();
    root.register("root", "pw-pw-pw-pw").await;
    root.post(
        "/_relais/admin/v1/users",
        json!({ "username": "alice", "password": "pw-pw-pw-pw", "tier": "agent", "unit": "state", "reason": "test" }),
    )
    .await
    .ok();
    let mut alice = a.client();
    let login = alice
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "alice" }, "password": "pw-pw-pw-pw" }),
        )
        .await
        .ok();
    alice.token = login["access_token"].as_str().map(str::to_owned);
    let room = alice
        .create_room(json!({
            "name": "Agents only",
            "preset": "public_chat",
            "initial_state": [{ "type": "fr.relais.access", "state_key": "", "content": { "class": "agents" } }],
        }))
        .await;
    let guest = partner_guest.register("gus").await;
    let refused = guest
        .post(
            &format!("/_matrix/client/v3/join/{}?via={}", enc(&room), enc(&a.server_name)),
            json!({}),
        )
        .await;
    let body = refused.err(403, "M_FORBIDDEN");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("guest"),
        "the refusal says why: {body}"
    );
    let agent = partner_agents.register("agnes").await;
    join_via(&agent, &room, &a.server_name).await;
    agent.say(&room, "a1", "an agent of a partner ministry").await;
    wait_for_body(&alice, &room, "an agent of a partner ministry").await;
}

#[tokio::test]
async fn a_room_of_another_server_is_joined_by_its_alias() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room =
        alice.create_room(json!({ "preset": "public_chat", "room_alias_name": "crise" })).await;
    let alias = format!("#crise:{}", a.server_name);
    // No `via`: the alias's server says which room it names and where to join.
    let joined =
        bob.post(&format!("/_matrix/client/v3/join/{}", enc(&alias)), json!({})).await.ok();
    assert_eq!(joined["room_id"], room.as_str());
    bob.say(&room, "t1", "joined by the alias").await;
    wait_for_body(&alice, &room, "joined by the alias").await;
    // An alias nobody has is not found on its server.
    let missing = format!("#nothing:{}", a.server_name);
    bob.post(&format!("/_matrix/client/v3/join/{}", enc(&missing)), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
}
