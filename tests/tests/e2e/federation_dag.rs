//! The room DAG across servers: concurrent events on two servers fork the room and merge again
//! (state resolution), every room version this server creates can be joined across servers, and
//! a server the room's ACL denies is ignored.

use std::time::{Duration, Instant};

use relais_tests::{
    Client, enc,
    federation::{FederatedServer, free_port, start_federation},
};
use serde_json::{Value, json};

async fn join_via(client: &Client, room: &str, via: &str) -> Value {
    client
        .post(&format!("/_matrix/client/v3/join/{}?via={}", enc(room), enc(via)), json!({}))
        .await
        .ok()
}

/// The message bodies of a room, oldest first, through `/messages`.
async fn history(client: &Client, room: &str) -> Vec<String> {
    let page = client
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500", enc(room)))
        .await
        .ok();
    let mut bodies: Vec<String> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    bodies.reverse();
    bodies
}

/// Polls until `check` holds for `client`'s history of `room`.
async fn until_history(client: &Client, room: &str, what: &str, check: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let bodies = history(client, room).await;
        if check(&bodies) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {bodies:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn state(client: &Client, room: &str, kind: &str) -> Value {
    client.get(&format!("/_matrix/client/v3/rooms/{}/state/{kind}/", enc(room))).await.body
}

#[tokio::test]
async fn concurrent_events_on_two_servers_converge() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    join_via(&bob, &room, &a.server_name).await;
    // Bob may change the topic too.
    let bob_id = bob.user_id().await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.power_levels/", enc(&room)),
            // Room version 12: the creator's power is implied, never listed.
            json!({ "users": { bob_id: 50 }, "state_default": 50 }),
        )
        .await
        .ok();
    until_history(&bob, &room, "the join to settle", |_| true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (room_a, room_b) = (room.clone(), room.clone());
    let (alice2, bob2) = (alice.clone(), bob.clone());
    let from_a = async move {
        for i in 0..20 {
            alice2.say(&room_a, &format!("a{i}"), &format!("from A {i}")).await;
            if i == 10 {
                alice2
                    .put(
                        &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room_a)),
                        json!({ "topic": "topic of A" }),
                    )
                    .await
                    .ok();
            }
        }
    };
    let from_b = async move {
        for i in 0..20 {
            bob2.say(&room_b, &format!("b{i}"), &format!("from B {i}")).await;
            if i == 10 {
                bob2.put(
                    &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room_b)),
                    json!({ "topic": "topic of B" }),
                )
                .await
                .ok();
            }
        }
    };
    tokio::join!(from_a, from_b);

    let complete = |bodies: &[String]| {
        (0..20).all(|i| {
            bodies.iter().filter(|b| **b == format!("from A {i}")).count() == 1
                && bodies.iter().filter(|b| **b == format!("from B {i}")).count() == 1
        })
    };
    until_history(&alice, &room, "all 40 messages on A", complete).await;
    until_history(&bob, &room, "all 40 messages on B", complete).await;
    // Each server's messages keep their order everywhere.
    for client in [&alice, &bob] {
        let bodies = history(client, &room).await;
        for tag in ["A", "B"] {
            let order: Vec<&String> =
                bodies.iter().filter(|b| b.starts_with(&format!("from {tag} "))).collect();
            let expected: Vec<String> = (0..20).map(|i| format!("from {tag} {i}")).collect();
            assert_eq!(order, expected.iter().collect::<Vec<_>>());
        }
    }
    // Both servers resolve the concurrent topics to the same one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (on_a, on_b) =
            (state(&alice, &room, "m.room.topic").await, state(&bob, &room, "m.room.topic").await);
        if on_a == on_b {
            assert!(on_a["topic"] == "topic of A" || on_a["topic"] == "topic of B", "{on_a}");
            break;
        }
        assert!(Instant::now() < deadline, "the servers disagree on the topic: {on_a} / {on_b}");
        // One more event from each side merges the forks.
        alice.say(&room, &format!("m{}", Instant::now().elapsed().as_nanos()), "merge").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn every_room_version_can_be_joined_across_servers() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    for version in ["6", "7", "8", "9", "10", "11", "12"] {
        let room =
            alice.create_room(json!({ "preset": "public_chat", "room_version": version })).await;
        join_via(&bob, &room, &a.server_name).await;
        bob.say(&room, &format!("v{version}"), &format!("hello in v{version}")).await;
        until_history(&alice, &room, &format!("bob's message in v{version}"), |b| {
            b.contains(&format!("hello in v{version}"))
        })
        .await;
    }
}

#[tokio::test]
async fn a_server_denied_by_the_room_acl_is_ignored() {
    // ACLs match host names without ports: the denied server is named by its IP literal, which
    // `allow_ip_literals: false` refuses, while the others are `localhost`.
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let port_c = free_port();
    let name_c = format!("127.0.0.1:{port_c}");
    let c = FederatedServer::start_on(port_c, &[("RELAIS_SERVER_NAME", &name_c)]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let carol = c.register("carol").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    join_via(&bob, &room, &a.server_name).await;
    join_via(&carol, &room, &a.server_name).await;
    carol.say(&room, "c0", "carol before the ACL").await;
    until_history(&alice, &room, "carol's first message", |b| {
        b.contains(&"carol before the ACL".to_owned())
    })
    .await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.server_acl/", enc(&room)),
            json!({ "allow": ["*"], "deny": [], "allow_ip_literals": false }),
        )
        .await
        .ok();
    tokio::time::sleep(Duration::from_secs(1)).await;
    carol.say(&room, "c1", "carol after the ACL").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.say(&room, "b1", "bob after the ACL").await;
    until_history(&alice, &room, "bob's message", |b| b.contains(&"bob after the ACL".to_owned()))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let bodies = history(&alice, &room).await;
    assert!(!bodies.contains(&"carol after the ACL".to_owned()), "{bodies:?}");
    // What the denied server does in its copy of the room does not reach the others: a new
    // member of it never joins on Alice's server.
    let dave = c.register("dave").await;
    join_via(&dave, &room, &a.server_name).await;
    let dave_id = dave.user_id().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let members =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room))).await.ok();
    assert!(members["joined"].get(&dave_id).is_none(), "{members}");
}

#[tokio::test]
async fn history_from_before_the_join_is_backfilled() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat", "name": "Archive" })).await;
    for i in 0..15 {
        alice.say(&room, &format!("old{i}"), &format!("old {i}")).await;
    }
    join_via(&bob, &room, &a.server_name).await;
    // Bob's server had none of it; paging back fetches it from Alice's server, in order.
    let bodies = history(&bob, &room).await;
    let expected: Vec<String> = (0..15).map(|i| format!("old {i}")).collect();
    assert_eq!(bodies, expected);
    // Paging again fetches nothing twice.
    assert_eq!(history(&bob, &room).await, expected);
    // The history reaches the room's creation.
    let page = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=500", enc(&room)))
        .await
        .ok();
    let kinds: Vec<&str> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds.last(), Some(&"m.room.create"), "{kinds:?}");
    // New messages still arrive after the history.
    alice.say(&room, "new", "new 0").await;
    until_history(&bob, &room, "the new message", |b| b.last().is_some_and(|l| l == "new 0")).await;
}

/// Alice (server 0), Bob (1) and Carol (2) in a public room of Alice's server, once Bob's server
/// knows Carol's is in it (so that Bob's messages are meant for Carol's server too).
async fn three_in_a_room() -> (Vec<relais_tests::federation::FederatedServer>, [Client; 3], String)
{
    let servers = start_federation(3);
    let alice = servers[0].register("alice").await;
    let bob = servers[1].register("bob").await;
    let carol = servers[2].register("carol").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    join_via(&bob, &room, &servers[0].server_name).await;
    join_via(&carol, &room, &servers[0].server_name).await;
    let carol_id = carol.user_id().await;
    relais_tests::sync_until(&bob, 30, "carol's join on bob's server", |r| {
        relais_tests::timeline(r, &room).iter().any(|e| e["state_key"] == carol_id.as_str())
    })
    .await;
    (servers, [alice, bob, carol], room)
}

#[tokio::test]
async fn a_gap_is_filled_from_the_server_that_sent_the_next_event() {
    let (mut servers, [alice, bob, carol], room) = three_in_a_room().await;

    // Bob's message reaches Alice's server only: Carol's is down, then Bob's goes down with the
    // message still queued for Carol.
    servers[2].server.kill();
    bob.say(&room, "b1", "while carol's server was down").await;
    until_history(&alice, &room, "bob's message on alice's server", |b| {
        b.contains(&"while carol's server was down".to_owned())
    })
    .await;
    servers[1].server.kill();
    servers[2].server.resume();
    let carol = carol.reconnect(&servers[2].server);

    // Alice's next message points at Bob's: Carol's server asks Alice's for what it missed.
    alice.say(&room, "a1", "after the gap").await;
    let both = |b: &[String]| {
        b.iter().filter(|m| *m == "while carol's server was down").count() == 1
            && b.iter().filter(|m| *m == "after the gap").count() == 1
    };
    until_history(&carol, &room, "both messages on carol's server", both).await;
    let bodies = history(&carol, &room).await;
    let gap = bodies.iter().position(|m| m == "while carol's server was down");
    let after = bodies.iter().position(|m| m == "after the gap");
    assert!(gap < after, "the missed message comes first: {bodies:?}");

    // Bob's server comes back and delivers its queued message: nothing is duplicated.
    servers[1].server.resume();
    let bob = bob.reconnect(&servers[1].server);
    bob.say(&room, "b2", "bob is back").await;
    until_history(&carol, &room, "bob's new message", |b| b.contains(&"bob is back".to_owned()))
        .await;
    assert!(both(&history(&carol, &room).await));
}

#[tokio::test]
async fn an_event_after_a_gap_too_wide_to_fill_takes_its_state_from_its_origin() {
    let (mut servers, [alice, bob, carol], room) = three_in_a_room().await;

    // More of Bob's messages than one `get_missing_events` returns (50) miss Carol's server.
    servers[2].server.kill();
    for i in 0..60 {
        bob.say(&room, &format!("g{i}"), &format!("missed {i}")).await;
    }
    until_history(&alice, &room, "bob's messages on alice's server", |b| {
        b.contains(&"missed 59".to_owned())
    })
    .await;
    servers[1].server.kill();
    servers[2].server.resume();
    let carol = carol.reconnect(&servers[2].server);

    // Alice's message is accepted with the state her server gives for it; the gap stays a gap.
    alice.say(&room, "a1", "after a wide gap").await;
    until_history(&carol, &room, "alice's message on carol's server", |b| {
        b.contains(&"after a wide gap".to_owned())
    })
    .await;
    // Carol's server still takes events that build on it, and Carol can answer.
    carol.say(&room, "c1", "carol answers").await;
    until_history(&alice, &room, "carol's answer", |b| b.contains(&"carol answers".to_owned()))
        .await;

    // Bob's server comes back and delivers what it kept for Carol's: nothing lost, nothing twice.
    servers[1].server.resume();
    let complete = |b: &[String]| {
        (0..60).all(|i| b.iter().filter(|m| **m == format!("missed {i}")).count() == 1)
            && b.iter().filter(|m| *m == "after a wide gap").count() == 1
    };
    until_history(&carol, &room, "bob's queued messages on carol's server", complete).await;
}
