//! Simplified sliding sync (MSC4186) over raw HTTP: lists sorted by recency, incremental
//! responses, `required_state` wildcards and lazy members, invites and leaves, `pos` expiry,
//! extensions, long-polls and reconnecting after a restart. `element_x` drives it with the
//! Element X engine (`matrix-sdk-ui`).

mod element_x;

use std::time::{Duration, Instant};

use relais_tests::{Client, TestServer, enc};
use serde_json::{Value, json};

const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

/// One sliding sync request; returns the reply (status and body).
async fn request(
    client: &Client,
    pos: Option<&str>,
    timeout_ms: u64,
    body: &Value,
) -> relais_tests::Reply {
    let mut path = format!("{PATH}?timeout={timeout_ms}");
    if let Some(pos) = pos {
        path.push_str(&format!("&pos={pos}"));
    }
    client.post(&path, body.clone()).await
}

async fn sync(client: &Client, pos: Option<&str>, timeout_ms: u64, body: &Value) -> Value {
    request(client, pos, timeout_ms, body).await.ok()
}

fn pos(response: &Value) -> String {
    response["pos"].as_str().expect("pos").to_owned()
}

/// One list over every room, `end` + 1 rooms wide.
fn list(end: u64, timeline_limit: u64, required_state: Value) -> Value {
    json!({ "lists": { "all": {
        "ranges": [[0, end]],
        "timeline_limit": timeline_limit,
        "required_state": required_state,
    } } })
}

fn rooms(response: &Value) -> Vec<String> {
    response["rooms"].as_object().map(|r| r.keys().cloned().collect()).unwrap_or_default()
}

fn bodies(room: &Value) -> Vec<String> {
    room["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

fn state_keys(room: &Value, kind: &str) -> Vec<String> {
    room["required_state"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == kind)
        .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn lists_sort_by_recency_and_send_only_what_changed() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let a = alice.create_room(json!({ "name": "A" })).await;
    let b = alice.create_room(json!({ "name": "B" })).await;
    let c = alice.create_room(json!({ "name": "C" })).await;
    alice.say(&a, "t1", "hello A").await;

    let body = list(1, 1, json!([["m.room.name", ""]]));
    let first = sync(&alice, None, 0, &body).await;
    assert_eq!(first["lists"]["all"]["count"], 3);
    let mut sent = rooms(&first);
    sent.sort();
    let mut expected = vec![a.clone(), c.clone()];
    expected.sort();
    assert_eq!(sent, expected, "the two most recent rooms: {first}");
    let room_a = &first["rooms"][&a];
    assert_eq!(room_a["initial"], true);
    assert_eq!(room_a["name"], "A");
    assert_eq!(room_a["joined_count"], 1);
    assert_eq!(bodies(room_a), ["hello A"]);
    assert_eq!(room_a["limited"], true);
    assert!(room_a["bump_stamp"].as_u64() > first["rooms"][&c]["bump_stamp"].as_u64());
    assert_eq!(state_keys(room_a, "m.room.name"), [""]);
    assert!(room_a["prev_batch"].is_string());

    // Nothing changed: an empty incremental response.
    let quiet = sync(&alice, Some(&pos(&first)), 0, &body).await;
    assert!(rooms(&quiet).is_empty(), "{quiet}");

    // B becomes the most recent: it enters the window, from scratch.
    alice.say(&b, "t2", "hello B").await;
    let second = sync(&alice, Some(&pos(&quiet)), 0, &body).await;
    assert_eq!(rooms(&second), std::slice::from_ref(&b));
    assert_eq!(second["rooms"][&b]["initial"], true);

    // A message in a room the client has: only the new event, counted as live.
    alice.say(&b, "t3", "again B").await;
    let third = sync(&alice, Some(&pos(&second)), 0, &body).await;
    assert_eq!(rooms(&third), std::slice::from_ref(&b));
    let room_b = &third["rooms"][&b];
    assert!(room_b.get("initial").is_none(), "{room_b}");
    assert_eq!(bodies(room_b), ["again B"]);
    assert_eq!(room_b["num_live"], 1);
}

#[tokio::test]
async fn required_state_wildcards_me_and_lazy_members() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({ "name": "R", "topic": "a topic", "preset": "public_chat" }))
        .await;
    bob.join(&room).await;
    carol.join(&room).await;
    bob.say(&room, "t1", "from bob").await;

    let all = sync(&alice, None, 0, &list(0, 1, json!([["*", "*"]]))).await;
    let data = &all["rooms"][&room];
    assert_eq!(state_keys(data, "m.room.create"), [""]);
    assert_eq!(state_keys(data, "m.room.topic"), [""]);
    assert_eq!(state_keys(data, "m.room.member").len(), 3);
    assert_eq!(data["joined_count"], 3);

    let lazy = json!([["m.room.member", "$LAZY"], ["m.room.name", ""]]);
    let only_lazy = sync(&carol, None, 0, &list(0, 1, lazy)).await;
    let data = &only_lazy["rooms"][&room];
    assert_eq!(state_keys(data, "m.room.member"), [bob.user_id().await], "{data}");
    assert!(state_keys(data, "m.room.topic").is_empty());

    let me = sync(&carol, None, 0, &list(0, 0, json!([["m.room.member", "$ME"]]))).await;
    let data = &me["rooms"][&room];
    assert_eq!(state_keys(data, "m.room.member"), [carol.user_id().await]);
    assert!(data["timeline"].as_array().is_none_or(|t| t.is_empty()));

    // A new state event reaches a connection that asked for that type.
    let body = list(0, 1, json!([["m.room.topic", ""]]));
    let first = sync(&carol, None, 0, &body).await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic", enc(&room)),
            json!({ "topic": "new" }),
        )
        .await
        .ok();
    let next = sync(&carol, Some(&pos(&first)), 0, &body).await;
    let topics: Vec<&Value> = next["rooms"][&room]["required_state"]
        .as_array()
        .expect("state")
        .iter()
        .filter(|e| e["type"] == "m.room.topic")
        .collect();
    assert_eq!(topics[0]["content"]["topic"], "new");
}

#[tokio::test]
async fn filters_and_room_subscriptions() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let alice_id = alice.user_id().await;
    let dm = alice.create_room(json!({ "is_direct": true })).await;
    let plain = alice.create_room(json!({ "name": "plain" })).await;
    let space = alice.create_room(json!({ "creation_content": { "type": "m.space" } })).await;
    alice
        .put(
            &format!("/_matrix/client/v3/user/{}/account_data/m.direct", enc(&alice_id)),
            json!({ "@bob:localhost": [dm] }),
        )
        .await
        .ok();
    for i in 0..8 {
        alice.say(&plain, &format!("t{i}"), &format!("m{i}")).await;
    }

    let body = json!({
        "lists": {
            "dms": { "ranges": [[0, 9]], "timeline_limit": 0, "filters": { "is_dm": true } },
            "rooms": {
                "ranges": [[0, 9]], "timeline_limit": 0,
                "filters": { "is_dm": false, "not_room_types": ["m.space"] },
            },
            "spaces": { "ranges": [[0, 9]], "timeline_limit": 0, "filters": { "room_types": ["m.space"] } },
        },
        "room_subscriptions": { plain.clone(): { "timeline_limit": 5 } },
    });
    let response = sync(&alice, None, 0, &body).await;
    assert_eq!(response["lists"]["dms"]["count"], 1, "{response}");
    assert_eq!(response["lists"]["rooms"]["count"], 1);
    assert_eq!(response["lists"]["spaces"]["count"], 1);
    assert_eq!(response["rooms"][&dm]["is_dm"], true);
    assert!(response["rooms"].get(&space).is_some());
    // The subscription's timeline limit wins over the list's.
    assert_eq!(bodies(&response["rooms"][&plain]), ["m3", "m4", "m5", "m6", "m7"]);
}

#[tokio::test]
async fn unknown_or_expired_pos_is_refused() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    alice.create_room(json!({})).await;
    let body = list(9, 1, json!([]));
    request(&alice, Some("nonsense"), 0, &body).await.err(400, "M_UNKNOWN_POS");

    let first = sync(&alice, None, 0, &body).await;
    let _lost = sync(&alice, Some(&pos(&first)), 0, &body).await;
    // A retry of the previous request (its response lost) still works...
    let second = sync(&alice, Some(&pos(&first)), 0, &body).await;
    let third = sync(&alice, Some(&pos(&second)), 0, &body).await;
    let _fourth = sync(&alice, Some(&pos(&third)), 0, &body).await;
    // ...an older one does not.
    request(&alice, Some(&pos(&first)), 0, &body).await.err(400, "M_UNKNOWN_POS");
    // Connections are separate: another `conn_id` does not know this one's positions.
    let mut other = body.clone();
    other["conn_id"] = json!("other");
    request(&alice, Some(&pos(&third)), 0, &other).await.err(400, "M_UNKNOWN_POS");
}

#[tokio::test]
async fn invites_appear_and_left_rooms_go() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let alice_id = alice.user_id().await;
    let kept = bob.create_room(json!({ "name": "kept", "preset": "public_chat" })).await;
    alice.join(&kept).await;
    let body = list(9, 5, json!([["m.room.member", "$ME"]]));
    let first = sync(&alice, None, 0, &body).await;
    assert_eq!(first["lists"]["all"]["count"], 1);

    let invited = bob.create_room(json!({ "name": "secret", "invite": [alice_id] })).await;
    let second = sync(&alice, Some(&pos(&first)), 0, &body).await;
    assert_eq!(second["lists"]["all"]["count"], 2);
    let invite = &second["rooms"][&invited];
    let stripped = invite["invite_state"].as_array().expect("invite_state");
    assert!(
        stripped.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "secret")
    );
    assert!(invite.get("timeline").is_none(), "an invitee sees no timeline: {invite}");

    alice.post(&format!("/_matrix/client/v3/rooms/{}/leave", enc(&kept)), json!({})).await.ok();
    let third = sync(&alice, Some(&pos(&second)), 0, &body).await;
    assert_eq!(third["lists"]["all"]["count"], 1);
    let left = &third["rooms"][&kept];
    let me: Vec<&Value> = left["required_state"].as_array().expect("state").iter().collect();
    assert_eq!(me[0]["content"]["membership"], "leave", "{left}");
    let fourth = sync(&alice, Some(&pos(&third)), 0, &body).await;
    assert!(fourth["rooms"].get(&kept).is_none());
}

#[tokio::test]
async fn extensions_carry_to_device_keys_account_data_receipts_and_typing() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let alice_id = alice.user_id().await;
    let device = alice.get("/_matrix/client/v3/account/whoami").await.ok()["device_id"]
        .as_str()
        .expect("device")
        .to_owned();
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&room).await;
    let event = bob.say(&room, "t1", "read me").await;

    let mut body = list(9, 1, json!([]));
    body["extensions"] = json!({
        "to_device": { "enabled": true },
        "e2ee": { "enabled": true },
        "account_data": { "enabled": true },
        "receipts": { "enabled": true },
        "typing": { "enabled": true },
    });
    let first = sync(&alice, None, 0, &body).await;
    let ext = &first["extensions"];
    assert_eq!(ext["e2ee"]["device_one_time_keys_count"]["signed_curve25519"], 0, "{ext}");
    assert!(ext["e2ee"]["device_unused_fallback_key_types"].is_array());
    let to_device_since = ext["to_device"]["next_batch"].as_str().expect("next_batch").to_owned();

    alice
        .put(
            &format!("/_matrix/client/v3/user/{}/account_data/org.example.x", enc(&alice_id)),
            json!({ "a": 1 }),
        )
        .await
        .ok();
    bob.put(
        "/_matrix/client/v3/sendToDevice/org.example.ping/txn1",
        json!({ "messages": { alice_id.clone(): { device.clone(): { "hello": "alice" } } } }),
    )
    .await
    .ok();
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(&room), enc(&event)),
        json!({}),
    )
    .await
    .ok();
    bob.put(
        &format!("/_matrix/client/v3/rooms/{}/typing/{}", enc(&room), enc(&bob.user_id().await)),
        json!({ "typing": true, "timeout": 30000 }),
    )
    .await
    .ok();

    body["extensions"]["to_device"]["since"] = json!(to_device_since);
    let next = sync(&alice, Some(&pos(&first)), 0, &body).await;
    let ext = &next["extensions"];
    assert_eq!(ext["to_device"]["events"][0]["content"]["hello"], "alice", "{ext}");
    assert!(
        ext["account_data"]["global"]
            .as_array()
            .expect("global")
            .iter()
            .any(|e| e["type"] == "org.example.x")
    );
    assert!(ext["receipts"]["rooms"][&room]["content"][&event]["m.read"].is_object(), "{ext}");
    let typing = &ext["typing"]["rooms"][&room]["content"]["user_ids"];
    assert_eq!(typing[0], bob.user_id().await);
    // The key change of a member shows up in the device lists.
    assert!(ext["e2ee"].get("device_lists").is_none_or(|d| d.is_object()));
}

#[tokio::test]
async fn long_poll_wakes_on_a_new_message() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let body = list(9, 1, json!([]));
    let first = sync(&alice, None, 0, &body).await;

    let started = Instant::now();
    let waiter = {
        let (alice, body, pos) = (alice.clone(), body.clone(), pos(&first));
        tokio::spawn(async move { sync(&alice, Some(&pos), 20_000, &body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "nothing new: the request waits");
    alice.say(&room, "t1", "wake up").await;
    let woke = waiter.await.expect("task");
    assert!(started.elapsed() < Duration::from_secs(10), "woken, not timed out");
    assert_eq!(bodies(&woke["rooms"][&room]), ["wake up"]);
}

#[tokio::test]
async fn a_connection_survives_a_restart() {
    let mut server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let body = list(9, 5, json!([["m.room.create", ""]]));
    let first = sync(&alice, None, 0, &body).await;
    assert_eq!(first["rooms"][&room]["initial"], true);

    server.restart();
    let mut alice = alice;
    alice.url = server.url.clone();
    alice.say(&room, "t1", "after restart").await;
    let next = sync(&alice, Some(&pos(&first)), 0, &body).await;
    let data = &next["rooms"][&room];
    assert!(data.get("initial").is_none(), "incremental after a restart: {data}");
    assert_eq!(bodies(data), ["after restart"]);
}

#[tokio::test]
async fn versions_advertise_simplified_sliding_sync() {
    let server = TestServer::start();
    let versions = server.client().get("/_matrix/client/versions").await.ok();
    assert_eq!(versions["unstable_features"]["org.matrix.simplified_msc3575"], true);
}

#[tokio::test]
async fn reactions_do_not_bump_a_room_and_the_spaces_filter_keeps_a_spaces_children() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let older = alice.create_room(json!({ "name": "Older" })).await;
    let message = alice.say(&older, "m1", "first").await;
    let newer = alice.create_room(json!({ "name": "Newer" })).await;
    alice.say(&newer, "m2", "second").await;
    // A reaction in the older room is its latest event, but does not bump it.
    alice
        .send(
            &older,
            "m.reaction",
            "r1",
            json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": message, "key": "👍" } }),
        )
        .await;
    let body = list(0, 1, json!([]));
    let first = sync(&alice, None, 0, &body).await;
    assert_eq!(rooms(&first), std::slice::from_ref(&newer), "{first}");
    // A message does.
    alice.say(&older, "m3", "third").await;
    let first = sync(&alice, None, 0, &body).await;
    assert_eq!(rooms(&first), std::slice::from_ref(&older), "{first}");

    // The spaces filter: only children of the named space.
    let space = alice.create_room(json!({ "creation_content": { "type": "m.space" } })).await;
    alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.space.child/{}",
                enc(&space),
                enc(&older)
            ),
            json!({ "via": ["localhost"] }),
        )
        .await
        .ok();
    let body = json!({ "lists": { "in_space": {
        "ranges": [[0, 10]], "timeline_limit": 0, "filters": { "spaces": [space] },
    } } });
    let filtered = sync(&alice, None, 0, &body).await;
    assert_eq!(filtered["lists"]["in_space"]["count"], 1, "{filtered}");
    assert_eq!(rooms(&filtered), std::slice::from_ref(&older));
}
