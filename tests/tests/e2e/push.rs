//! Push rules, notification counts, `/notifications` and pushers, end to end; pushes go to a
//! push gateway run inside the test.

use std::time::{Duration, Instant};

use axum::{Json, Router, routing::post};
use relais_tests::{Client, TestServer, enc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The room as an initial sync with per-thread counts shows it to `client`.
async fn room_counts(client: &Client, room: &str, threads_apart: bool) -> Value {
    let filter = json!({ "room": { "timeline": { "limit": 1, "unread_thread_notifications": threads_apart } } });
    let path = format!("/_matrix/client/v3/sync?filter={}", enc(&filter.to_string()));
    client.get(&path).await.ok()["rooms"]["join"][room].clone()
}

/// `(notification_count, highlight_count)` of the main timeline (or all, without threads apart).
async fn counts(client: &Client, room: &str) -> (u64, u64) {
    let joined = room_counts(client, room, false).await;
    let unread = &joined["unread_notifications"];
    (unread["notification_count"].as_u64().unwrap(), unread["highlight_count"].as_u64().unwrap())
}

async fn receipt(client: &Client, room: &str, event: &str, body: Value) {
    let path = format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(room), enc(event));
    client.post(&path, body).await.ok();
}

/// A room of alice's that bob and carol joined.
async fn room_of_three(server: &TestServer) -> (Client, Client, Client, String) {
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&room).await;
    carol.join(&room).await;
    (alice, bob, carol, room)
}

fn mention(body: &str, users: &[&str]) -> Value {
    json!({ "msgtype": "m.text", "body": body, "m.mentions": { "user_ids": users } })
}

#[tokio::test]
async fn mentions_highlight_only_the_mentioned_user_and_receipts_reset_counts() {
    let server = TestServer::start();
    let (alice, bob, carol, room) = room_of_three(&server).await;
    alice.say(&room, "t1", "hello everyone").await;
    let last =
        alice.send(&room, "m.room.message", "t2", mention("bob: look", &["@bob:localhost"])).await;

    assert_eq!(counts(&bob, &room).await, (2, 1));
    assert_eq!(counts(&carol, &room).await, (2, 0), "carol is not mentioned");
    assert_eq!(counts(&alice, &room).await, (0, 0), "nobody is notified of their own messages");

    receipt(&bob, &room, &last, json!({})).await;
    assert_eq!(counts(&bob, &room).await, (0, 0));
    assert_eq!(counts(&carol, &room).await, (2, 0), "bob's receipt is bob's only");

    // A private receipt resets too; sending a message reads what came before it.
    let path =
        format!("/_matrix/client/v3/rooms/{}/receipt/m.read.private/{}", enc(&room), enc(&last));
    carol.post(&path, json!({})).await.ok();
    assert_eq!(counts(&carol, &room).await, (0, 0));
    alice.say(&room, "t3", "one more").await;
    assert_eq!(counts(&bob, &room).await, (1, 0));
    bob.say(&room, "t4", "read it").await;
    assert_eq!(counts(&bob, &room).await, (0, 0));
}

#[tokio::test]
async fn thread_counts_are_separate_and_reset_by_threaded_receipts() {
    let server = TestServer::start();
    let (alice, bob, _carol, room) = room_of_three(&server).await;
    let root = alice.say(&room, "root", "a thread root").await;
    let thread_content = |body: &str| {
        json!({
            "msgtype": "m.text", "body": body,
            "m.relates_to": { "rel_type": "m.thread", "event_id": root, "is_falling_back": true },
        })
    };
    alice.send(&room, "m.room.message", "in1", thread_content("first reply")).await;
    let reply = alice.send(&room, "m.room.message", "in2", thread_content("second reply")).await;

    let joined = room_counts(&bob, &room, true).await;
    assert_eq!(
        joined["unread_notifications"]["notification_count"], 1,
        "the root is in the main timeline"
    );
    assert_eq!(joined["unread_thread_notifications"][&root]["notification_count"], 2);
    assert_eq!(counts(&bob, &room).await, (3, 0), "without the filter flag, threads are included");

    receipt(&bob, &room, &reply, json!({ "thread_id": root })).await;
    let joined = room_counts(&bob, &room, true).await;
    assert_eq!(
        joined["unread_notifications"]["notification_count"], 1,
        "a thread receipt leaves the main timeline"
    );
    assert!(joined["unread_thread_notifications"].get(&root).is_none(), "{joined}");

    receipt(&bob, &room, &root, json!({ "thread_id": "main" })).await;
    assert_eq!(counts(&bob, &room).await, (0, 0));
}

#[tokio::test]
async fn a_user_rule_overrides_the_defaults() {
    let server = TestServer::start();
    let (alice, bob, carol, room) = room_of_three(&server).await;
    // Bob mutes the room: a room rule with no actions.
    let path = format!("/_matrix/client/v3/pushrules/global/room/{}", enc(&room));
    bob.put(&path, json!({ "actions": [] })).await.ok();
    alice.say(&room, "m1", "chatter").await;
    assert_eq!(counts(&bob, &room).await, (0, 0), "the room rule silences messages");
    assert_eq!(counts(&carol, &room).await, (1, 0));
    // Mentions are override rules: they still notify.
    alice.send(&room, "m.room.message", "m2", mention("bob!", &["@bob:localhost"])).await;
    assert_eq!(counts(&bob, &room).await, (1, 1));

    // Disabling a default rule works too: carol turns off `.m.rule.message`.
    carol
        .put(
            "/_matrix/client/v3/pushrules/global/underride/.m.rule.message/enabled",
            json!({ "enabled": false }),
        )
        .await
        .ok();
    let last = alice.say(&room, "m3", "more chatter").await;
    receipt(&carol, &room, &last, json!({})).await;
    alice.say(&room, "m4", "and more").await;
    assert_eq!(counts(&carol, &room).await, (0, 0));
}

fn rule_ids(rules: &Value, kind: &str) -> Vec<String> {
    rules["global"][kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn push_rule_crud_with_before_and_after() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let base = "/_matrix/client/v3/pushrules/global/override";
    let rule = json!({
        "actions": ["notify"],
        "conditions": [{ "kind": "event_match", "key": "content.body", "pattern": "cake" }],
    });
    alice.put(&format!("{base}/a"), rule.clone()).await.ok();
    alice.put(&format!("{base}/b?after=a"), rule.clone()).await.ok();
    alice.put(&format!("{base}/c?before=a"), rule.clone()).await.ok();
    let rules = alice.get("/_matrix/client/v3/pushrules/").await.ok();
    let ids = rule_ids(&rules, "override");
    assert_eq!(ids[..4], [".m.rule.master", "c", "a", "b"], "{ids:?}");
    assert!(ids.contains(&".m.rule.is_user_mention".to_owned()));

    let got = alice.get(&format!("{base}/c")).await.ok();
    assert_eq!(got["conditions"][0]["pattern"], "cake");
    assert_eq!(got["default"], false);
    assert_eq!(got["enabled"], true);
    alice.put(&format!("{base}/c/enabled"), json!({ "enabled": false })).await.ok();
    assert_eq!(alice.get(&format!("{base}/c/enabled")).await.ok()["enabled"], false);
    alice.put(&format!("{base}/c/actions"), json!({ "actions": [] })).await.ok();
    assert_eq!(alice.get(&format!("{base}/c/actions")).await.ok()["actions"], json!([]));
    // The rules are the user's `m.push_rules` account data.
    let stored =
        alice.get("/_matrix/client/v3/user/@alice:localhost/account_data/m.push_rules").await.ok();
    assert_eq!(rule_ids(&stored, "override")[1], "c");

    alice.request(reqwest::Method::DELETE, &format!("{base}/b"), None).await.ok();
    alice.get(&format!("{base}/b")).await.err(404, "M_NOT_FOUND");
    alice.put(&format!("{base}/d?before=nothing"), rule.clone()).await.err(404, "M_NOT_FOUND");
    alice.put(&format!("{base}/.m.rule.mine"), rule.clone()).await.err(400, "M_INVALID_PARAM");
    alice
        .request(reqwest::Method::DELETE, &format!("{base}/.m.rule.master"), None)
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .get("/_matrix/client/v3/pushrules/global/sender/@nobody:localhost")
        .await
        .err(404, "M_NOT_FOUND");
    let global = alice.get("/_matrix/client/v3/pushrules/global/").await.ok();
    assert_eq!(
        rule_ids(&json!({ "global": global }), "override")[..3],
        [".m.rule.master", "c", "a"]
    );
}

#[tokio::test]
async fn notifications_pages_newest_first_and_filters_highlights() {
    let server = TestServer::start();
    let (alice, bob, _carol, room) = room_of_three(&server).await;
    let first = alice.say(&room, "n1", "one").await;
    alice.send(&room, "m.room.message", "n2", mention("two", &["@bob:localhost"])).await;
    alice.say(&room, "n3", "three").await;
    receipt(&bob, &room, &first, json!({})).await;

    let page = bob.get("/_matrix/client/v3/notifications?limit=2").await.ok();
    let bodies: Vec<_> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event"]["content"]["body"].clone())
        .collect();
    assert_eq!(bodies, ["three", "two"]);
    assert_eq!(page["notifications"][0]["room_id"], room);
    assert_eq!(page["notifications"][0]["read"], false);
    assert!(page["notifications"][0]["actions"].as_array().unwrap().contains(&json!("notify")));
    let token = page["next_token"].as_str().unwrap();
    let next =
        bob.get(&format!("/_matrix/client/v3/notifications?limit=2&from={token}")).await.ok();
    assert_eq!(next["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(next["notifications"][0]["event"]["content"]["body"], "one");
    assert_eq!(next["notifications"][0]["read"], true);
    assert!(next.get("next_token").is_none(), "{next}");

    let highlights = bob.get("/_matrix/client/v3/notifications?only=highlight").await.ok();
    let highlights = highlights["notifications"].as_array().unwrap();
    assert_eq!(highlights.len(), 1);
    assert_eq!(highlights[0]["event"]["content"]["body"], "two");
}

/// A push gateway: records what it receives; rejects pushkeys starting with `stale`.
async fn start_gateway() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/_matrix/push/v1/notify",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let rejected: Vec<Value> = body["notification"]["devices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["pushkey"].clone())
                    .filter(|k| k.as_str().is_some_and(|k| k.starts_with("stale")))
                    .collect();
                let _ = tx.send(body);
                Json(json!({ "rejected": rejected }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/_matrix/push/v1/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn pusher(pushkey: &str, url: &str) -> Value {
    json!({
        "kind": "http", "app_id": "org.example.app", "pushkey": pushkey,
        "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
        "data": { "url": url, "custom": "kept" },
    })
}

async fn next_push(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a push within 15 s")
        .unwrap()
}

async fn pushkeys(client: &Client) -> Vec<String> {
    let pushers = client.get("/_matrix/client/v3/pushers").await.ok();
    pushers["pushers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pushkey"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn push_gateway_receives_notifications_and_rejected_pushers_are_removed() {
    let server = TestServer::start();
    let (gateway, mut pushes) = start_gateway().await;
    let (alice, bob, _carol, room) = room_of_three(&server).await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.name", enc(&room)),
            json!({ "name": "Garden" }),
        )
        .await
        .ok();

    bob.post("/_matrix/client/v3/pushers/set", json!({ "kind": "http" }))
        .await
        .err(400, "M_BAD_JSON");
    bob.post("/_matrix/client/v3/pushers/set", pusher("k", "http://127.0.0.1:1/notify"))
        .await
        .err(400, "M_INVALID_PARAM");
    bob.post("/_matrix/client/v3/pushers/set", pusher("good-key", &gateway)).await.ok();
    let listed = bob.get("/_matrix/client/v3/pushers").await.ok();
    assert_eq!(listed["pushers"][0]["data"]["url"], gateway);
    assert_eq!(listed["pushers"][0]["kind"], "http");

    let event =
        alice.send(&room, "m.room.message", "p1", mention("hi bob", &["@bob:localhost"])).await;
    let push = next_push(&mut pushes).await;
    let notification = &push["notification"];
    assert_eq!(notification["event_id"], event);
    assert_eq!(notification["room_id"], room);
    assert_eq!(notification["type"], "m.room.message");
    assert_eq!(notification["sender"], "@alice:localhost");
    assert_eq!(notification["room_name"], "Garden");
    assert_eq!(notification["content"]["body"], "hi bob");
    assert_eq!(notification["prio"], "high");
    assert_eq!(notification["counts"]["unread"], 1);
    let device = &notification["devices"][0];
    assert_eq!(device["app_id"], "org.example.app");
    assert_eq!(device["pushkey"], "good-key");
    assert_eq!(device["data"], json!({ "custom": "kept" }), "the data without url");
    assert_eq!(device["tweaks"]["highlight"], true);
    assert!(device["pushkey_ts"].as_u64().unwrap() > 0);

    // A pushkey the gateway rejects loses its pusher.
    bob.post("/_matrix/client/v3/pushers/set", pusher("stale-key", &gateway)).await.ok();
    assert_eq!(pushkeys(&bob).await.len(), 2);
    alice.say(&room, "p2", "another").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while pushkeys(&bob).await.len() != 1 {
        assert!(Instant::now() < deadline, "the rejected pusher was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pushkeys(&bob).await, ["good-key"]);

    // `kind: null` deletes.
    bob.post(
        "/_matrix/client/v3/pushers/set",
        json!({ "kind": null, "app_id": "org.example.app", "pushkey": "good-key" }),
    )
    .await
    .ok();
    assert!(pushkeys(&bob).await.is_empty());
}

#[tokio::test]
async fn logging_out_removes_the_devices_pushers() {
    let server = TestServer::start();
    let bob = server.register("bob").await;
    let url = "https://push.example.org/_matrix/push/v1/notify";
    bob.post("/_matrix/client/v3/pushers/set", pusher("first-device", url)).await.ok();
    let mut phone = server.client();
    let login = phone
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "bob" }, "password": "correct horse battery" }),
        )
        .await
        .ok();
    phone.token = Some(login["access_token"].as_str().unwrap().to_owned());
    phone.post("/_matrix/client/v3/pushers/set", pusher("phone", url)).await.ok();
    assert_eq!(pushkeys(&bob).await.len(), 2);
    phone.post("/_matrix/client/v3/logout", json!({})).await.ok();
    assert_eq!(pushkeys(&bob).await, ["first-device"]);
}
