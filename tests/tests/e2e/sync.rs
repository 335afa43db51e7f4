use std::time::{Duration, Instant};

use relais_tests::{TestServer, timeline};
use serde_json::json;

#[tokio::test]
async fn long_poll_wakes_on_new_message() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&room).await;
    let since = bob.sync(None, 0).await["next_batch"].as_str().unwrap().to_owned();

    let waiter = {
        let bob = bob.clone();
        let since = since.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (bob.sync(Some(&since), 20_000).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.say(&room, "wake", "wake up").await;
    let (sync, waited) = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(15), "the long-poll was not woken: {waited:?}");
    let events = timeline(&sync, &room);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["content"]["body"], "wake up");

    // An idle long-poll returns empty after its timeout, with a usable token.
    let next = sync["next_batch"].as_str().unwrap();
    let idle = bob.sync(Some(next), 200).await;
    assert!(idle["rooms"]["join"].get(&room).is_none());
}

#[tokio::test]
async fn incremental_sync_limited_and_lazy_members() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat", "name": "Busy" })).await;
    bob.join(&room).await;
    let initial = bob.sync(None, 0).await;
    let events = timeline(&initial, &room);
    assert!(
        events.iter().any(|e| e["type"] == "m.room.member" && e["state_key"] == "@bob:localhost")
    );
    let since = initial["next_batch"].as_str().unwrap().to_owned();

    for i in 0..15 {
        alice.say(&room, &format!("b{i}"), &format!("burst {i}")).await;
    }
    let filter =
        json!({ "room": { "timeline": { "limit": 5 }, "state": { "lazy_load_members": true } } });
    let path = format!(
        "/_matrix/client/v3/sync?since={since}&filter={}",
        relais_tests::enc(&filter.to_string())
    );
    let sync = bob.get(&path).await.ok();
    let joined = &sync["rooms"]["join"][&room];
    assert_eq!(joined["timeline"]["limited"], true);
    assert_eq!(joined["timeline"]["events"].as_array().unwrap().len(), 5);
    assert_eq!(joined["timeline"]["events"][4]["content"]["body"], "burst 14");
    assert!(joined["timeline"]["prev_batch"].is_string());

    // A stored filter works the same.
    let filter_id =
        bob.post("/_matrix/client/v3/user/@bob:localhost/filter", filter).await.ok()["filter_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let stored =
        bob.get(&format!("/_matrix/client/v3/user/@bob:localhost/filter/{filter_id}")).await.ok();
    assert_eq!(stored["room"]["timeline"]["limit"], 5);
    let initial = bob.get(&format!("/_matrix/client/v3/sync?filter={filter_id}")).await.ok();
    let state = initial["rooms"]["join"][&room]["state"]["events"].as_array().unwrap().clone();
    // Lazy loading: only the members of the timeline's senders (and Bob himself).
    let members: Vec<_> = state
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].clone())
        .collect();
    assert!(
        members.iter().all(|m| m == "@alice:localhost" || m == "@bob:localhost"),
        "{members:?}"
    );
    assert!(state.iter().any(|e| e["type"] == "m.room.name"));
    assert_eq!(initial["rooms"]["join"][&room]["summary"]["m.joined_member_count"], 2);

    // Unread counts: Bob has not read the burst.
    assert!(
        initial["rooms"]["join"][&room]["unread_notifications"]["notification_count"]
            .as_u64()
            .unwrap()
            >= 15
    );
}
