use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use relais_tests::{TestServer, enc};
use serde_json::json;

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut server = TestServer::start();
    let alice = server.register("alice").await;
    let room =
        alice.create_room(json!({ "name": "Persistent", "room_alias_name": "persist" })).await;
    let event = alice.say(&room, "p1", "still here").await;
    alice
        .put("/_matrix/client/v3/user/@alice:localhost/account_data/org.example", json!({ "k": 1 }))
        .await
        .ok();
    let token = alice.token.clone();

    server.restart();
    let mut alice = server.client();
    alice.token = token;
    assert_eq!(alice.user_id().await, "@alice:localhost");
    let found = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&event)))
        .await
        .ok();
    assert_eq!(found["content"]["body"], "still here");
    let alias = alice.get("/_matrix/client/v3/directory/room/%23persist:localhost").await.ok();
    assert_eq!(alias["room_id"], room.as_str());
    let data =
        alice.get("/_matrix/client/v3/user/@alice:localhost/account_data/org.example").await.ok();
    assert_eq!(data["k"], 1);
    // New events after the restart come after the old ones.
    let later = alice.say(&room, "p2", "after restart").await;
    let page = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=2", enc(&room)))
        .await
        .ok();
    assert_eq!(page["chunk"][0]["event_id"], later.as_str());
    assert_eq!(page["chunk"][1]["event_id"], event.as_str());
    let name =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.name", enc(&room))).await.ok();
    assert_eq!(name["name"], "Persistent");
    let sync = alice.sync(None, 0).await;
    let timeline = relais_tests::timeline(&sync, &room);
    assert_eq!(timeline.last().unwrap()["event_id"], later.as_str());
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    let mut server = TestServer::start();
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for worker in 0..4 {
        let alice = alice.clone();
        let room = room.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let path = format!(
                    "/_matrix/client/v3/rooms/{}/send/m.room.message/w{worker}-{i}",
                    enc(&room)
                );
                let reply = alice
                    .put(&path, json!({ "msgtype": "m.text", "body": format!("{worker}-{i}") }))
                    .await;
                if reply.status != 200 {
                    break;
                }
                acknowledged
                    .lock()
                    .unwrap()
                    .push(reply.body["event_id"].as_str().unwrap().to_owned());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.crash_and_restart();
    for sender in senders {
        // Requests in flight at the kill fail; their senders stop.
        let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "too few events were sent before the kill: {}",
        acknowledged.len()
    );
    let mut alice = alice;
    alice.url = server.url.clone();
    for event_id in &acknowledged {
        alice
            .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(event_id)))
            .await
            .ok();
    }
    // The database is usable: new writes and a full sync work.
    alice.say(&room, "after-crash", "after the crash").await;
    let sync = alice.sync(None, 0).await;
    assert!(sync["rooms"]["join"].get(&room).is_some());
}
