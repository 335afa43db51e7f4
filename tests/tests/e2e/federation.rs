//! Rooms across servers: two and three `relais` instances federating over TLS on loopback join
//! each other's rooms, talk, edit, redact, invite, and catch up after a server was down.

use std::time::{Duration, Instant};

use relais_tests::{
    Client, enc,
    federation::{FederatedServer, free_port, start_federation},
    timeline,
};
use serde_json::{Value, json};

/// Syncs `client` until `found` sees what it waits for in a response, or fails after `secs`.
async fn sync_until(
    client: &Client,
    secs: u64,
    what: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut since: Option<String> = None;
    loop {
        let response = client.sync(since.as_deref(), 1_000).await;
        if found(&response) {
            return response;
        }
        since = response["next_batch"].as_str().map(str::to_owned);
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

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
