use relais_tests::{TestServer, enc, timeline};
use serde_json::{Value, json};

fn find<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn create_invite_join_chat_and_paginate() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(json!({
            "name": "Project Alpha",
            "topic": "Planning",
            "room_alias_name": "alpha",
            "preset": "private_chat",
            "invite": ["@bob:localhost"],
        }))
        .await;
    assert!(room.starts_with('!'));
    // Room version 12 by default: the room ID is the create event's hash, with no server name.
    assert!(!room.contains(':'), "{room}");

    // Bob sees the invite with stripped state, and joins via the alias.
    let sync = bob.sync(None, 0).await;
    let invite = &sync["rooms"]["invite"][&room]["invite_state"]["events"];
    assert!(
        invite
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Project Alpha")
    );
    bob.join("#alpha:localhost").await;

    for i in 0..30 {
        alice.say(&room, &format!("t{i}"), &format!("message {i}")).await;
    }
    // Transaction IDs are idempotent per device.
    let first = alice.say(&room, "dup", "once").await;
    let again = alice.say(&room, "dup", "once").await;
    assert_eq!(first, again);

    // Back-pagination from the end reaches every message, newest first, without duplicates.
    let mut from: Option<String> = None;
    let mut bodies = Vec::new();
    loop {
        let mut path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=7", enc(&room));
        if let Some(from) = &from {
            path.push_str(&format!("&from={from}"));
        }
        let page = bob.get(&path).await.ok();
        for event in page["chunk"].as_array().unwrap() {
            if event["type"] == "m.room.message" {
                bodies.push(event["content"]["body"].as_str().unwrap().to_owned());
            }
        }
        match page["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    assert_eq!(bodies.len(), 31);
    assert_eq!(bodies[0], "once");
    assert_eq!(bodies[30], "message 0");

    // Forward pagination from the start.
    let forward = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/messages?dir=f&limit=100", enc(&room)))
        .await
        .ok();
    let chunk = forward["chunk"].as_array().unwrap();
    assert_eq!(chunk[0]["type"], "m.room.create");
    assert_eq!(find(chunk, "m.room.message").len(), 31);

    // Members and state.
    let members =
        bob.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room))).await.ok();
    assert_eq!(members["joined"].as_object().unwrap().len(), 2);
    let all = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/members?membership=join", enc(&room)))
        .await
        .ok();
    assert_eq!(all["chunk"].as_array().unwrap().len(), 2);
    let name =
        bob.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room))).await.ok();
    assert_eq!(name["name"], "Project Alpha");
    let joined_rooms = bob.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(joined_rooms["joined_rooms"][0], room);

    // /event and /context.
    let event = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&first)))
        .await
        .ok();
    assert_eq!(event["content"]["body"], "once");
    let context = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/context/{}?limit=4", enc(&room), enc(&first)))
        .await
        .ok();
    assert_eq!(context["event"]["event_id"], first.as_str());
    assert_eq!(context["events_before"].as_array().unwrap().len(), 2);
    assert!(context["state"].as_array().unwrap().iter().any(|e| e["type"] == "m.room.create"));

    // Leave, then forget.
    bob.post(&format!("/_matrix/client/v3/rooms/{}/leave", enc(&room)), json!({})).await.ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{}/forget", enc(&room)), json!({})).await.ok();
    let joined_rooms = bob.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert!(joined_rooms["joined_rooms"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn edits_reactions_and_redactions() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&room).await;
    let original = alice.say(&room, "o", "helo").await;
    let edit = alice
        .send(
            &room,
            "m.room.message",
            "e",
            json!({
                "msgtype": "m.text", "body": "* hello",
                "m.new_content": { "msgtype": "m.text", "body": "hello" },
                "m.relates_to": { "rel_type": "m.replace", "event_id": original },
            }),
        )
        .await;
    let reaction = bob
        .send(&room, "m.reaction", "r", json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": original, "key": "👍" } }))
        .await;
    let thread_reply = bob
        .send(&room, "m.room.message", "th", json!({ "msgtype": "m.text", "body": "in thread", "m.relates_to": { "rel_type": "m.thread", "event_id": original } }))
        .await;

    // The original carries the edit and the thread summary in unsigned.m.relations.
    let event = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&original)))
        .await
        .ok();
    let relations = &event["unsigned"]["m.relations"];
    assert_eq!(relations["m.replace"]["event_id"], edit.as_str());
    assert_eq!(relations["m.thread"]["count"], 1);
    assert_eq!(relations["m.thread"]["latest_event"]["event_id"], thread_reply.as_str());
    assert_eq!(relations["m.thread"]["current_user_participated"], true);

    // Bob cannot redact Alice's message (power 0 < redact 50); Alice can redact Bob's reaction? No:
    // redacting another's event needs the redact level, which the creator has.
    let denied = bob
        .put(
            &format!("/_matrix/client/v3/rooms/{}/redact/{}/x1", enc(&room), enc(&original)),
            json!({ "reason": "no" }),
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let redaction = alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/redact/{}/x2", enc(&room), enc(&reaction)),
            json!({ "reason": "spam" }),
        )
        .await
        .ok();
    let redacted = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&reaction)))
        .await
        .ok();
    assert_eq!(redacted["content"], json!({}));
    assert_eq!(redacted["unsigned"]["redacted_because"]["event_id"], redaction["event_id"]);
    // Own redaction.
    bob.put(
        &format!("/_matrix/client/v3/rooms/{}/redact/{}/x3", enc(&room), enc(&thread_reply)),
        json!({}),
    )
    .await
    .ok();
    let gone = bob
        .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&thread_reply)))
        .await
        .ok();
    assert!(gone["content"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn state_power_kick_ban_and_directory() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat", "visibility": "public", "name": "Town hall", "room_version": "11" })).await;
    assert!(room.ends_with(":localhost"));
    bob.join(&room).await;

    // Bob (power 0) cannot rename; Alice can.
    bob.put(
        &format!("/_matrix/client/v3/rooms/{}/state/m.room.name/", enc(&room)),
        json!({ "name": "Mine" }),
    )
    .await
    .err(403, "M_FORBIDDEN");
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.topic/", enc(&room)),
            json!({ "topic": "Weekly" }),
        )
        .await
        .ok();

    // Directory.
    let public = bob.get("/_matrix/client/v3/publicRooms").await.ok();
    let entry = &public["chunk"][0];
    assert_eq!(entry["room_id"], room.as_str());
    assert_eq!(entry["name"], "Town hall");
    assert_eq!(entry["num_joined_members"], 2);
    let filtered = bob
        .post(
            "/_matrix/client/v3/publicRooms",
            json!({ "filter": { "generic_search_term": "nothing-matches" } }),
        )
        .await
        .ok();
    assert!(filtered["chunk"].as_array().unwrap().is_empty());

    // Aliases: free alias is 404, create, resolve, delete.
    bob.get("/_matrix/client/v3/directory/room/%23town:localhost").await.err(404, "M_NOT_FOUND");
    alice
        .put("/_matrix/client/v3/directory/room/%23town:localhost", json!({ "room_id": room }))
        .await
        .ok();
    let resolved = bob.get("/_matrix/client/v3/directory/room/%23town:localhost").await.ok();
    assert_eq!(resolved["room_id"], room.as_str());
    alice
        .put("/_matrix/client/v3/directory/room/%23town:localhost", json!({ "room_id": room }))
        .await
        .err(400, "M_ROOM_IN_USE");
    bob.request(
        reqwest::Method::DELETE,
        "/_matrix/client/v3/directory/room/%23town:localhost",
        None,
    )
    .await
    .err(403, "M_FORBIDDEN");
    alice
        .request(
            reqwest::Method::DELETE,
            "/_matrix/client/v3/directory/room/%23town:localhost",
            None,
        )
        .await
        .ok();

    // Kick, ban, unban.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/kick", enc(&room)),
            json!({ "user_id": "@bob:localhost", "reason": "test" }),
        )
        .await
        .ok();
    bob.join(&room).await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/ban", enc(&room)),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    bob.post(&format!("/_matrix/client/v3/join/{}", enc(&room)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/unban", enc(&room)),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    bob.join(&room).await;
}

#[tokio::test]
async fn typing_receipts_tags_account_data() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    bob.join(&room).await;
    let since = bob.sync(None, 0).await["next_batch"].as_str().unwrap().to_owned();

    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/typing/@alice:localhost", enc(&room)),
            json!({ "typing": true, "timeout": 10000 }),
        )
        .await
        .ok();
    let sync = bob.sync(Some(&since), 5000).await;
    let ephemeral = &sync["rooms"]["join"][&room]["ephemeral"]["events"];
    let typing = ephemeral
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.typing")
        .expect("typing event");
    assert_eq!(typing["content"]["user_ids"][0], "@alice:localhost");

    let message = alice.say(&room, "m1", "read me").await;
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(&room), enc(&message)),
        json!({}),
    )
    .await
    .ok();
    let sync = alice.sync(None, 0).await;
    let ephemeral = sync["rooms"]["join"][&room]["ephemeral"]["events"].as_array().unwrap().clone();
    let receipt = ephemeral.iter().find(|e| e["type"] == "m.receipt").expect("receipt event");
    assert!(receipt["content"][&message]["m.read"]["@bob:localhost"]["ts"].is_u64());

    // Private receipts stay private.
    bob.post(
        &format!(
            "/_matrix/client/v3/rooms/{}/receipt/m.read.private/{}",
            enc(&room),
            enc(&message)
        ),
        json!({}),
    )
    .await
    .ok();
    let sync = alice.sync(None, 0).await;
    let text = sync["rooms"]["join"][&room]["ephemeral"].to_string();
    assert!(!text.contains("m.read.private"));

    // Read markers and tags land in room account data.
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/read_markers", enc(&room)),
        json!({ "m.fully_read": message }),
    )
    .await
    .ok();
    bob.put(
        &format!("/_matrix/client/v3/user/@bob:localhost/rooms/{}/tags/u.work", enc(&room)),
        json!({ "order": 0.5 }),
    )
    .await
    .ok();
    let tags = bob
        .get(&format!("/_matrix/client/v3/user/@bob:localhost/rooms/{}/tags", enc(&room)))
        .await
        .ok();
    assert_eq!(tags["tags"]["u.work"]["order"], 0.5);
    bob.put(
        "/_matrix/client/v3/user/@bob:localhost/account_data/m.direct",
        json!({ "@alice:localhost": [room] }),
    )
    .await
    .ok();
    let direct = bob.get("/_matrix/client/v3/user/@bob:localhost/account_data/m.direct").await.ok();
    assert_eq!(direct["@alice:localhost"][0], room.as_str());
    alice
        .get("/_matrix/client/v3/user/@bob:localhost/account_data/m.direct")
        .await
        .err(403, "M_FORBIDDEN");
    let sync = bob.sync(None, 0).await;
    assert!(
        sync["account_data"]["events"].as_array().unwrap().iter().any(|e| e["type"] == "m.direct")
    );
    let room_data = sync["rooms"]["join"][&room]["account_data"]["events"].as_array().unwrap();
    assert!(room_data.iter().any(|e| e["type"] == "m.fully_read"));
    assert!(room_data.iter().any(|e| e["type"] == "m.tag"));

    // Presence.
    bob.put(
        "/_matrix/client/v3/presence/@bob:localhost/status",
        json!({ "presence": "unavailable", "status_msg": "lunch" }),
    )
    .await
    .ok();
    let presence = alice.get("/_matrix/client/v3/presence/@bob:localhost/status").await.ok();
    assert_eq!(presence["presence"], "unavailable");
    assert_eq!(presence["status_msg"], "lunch");

    // User directory.
    let found = alice
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": "bo" }))
        .await
        .ok();
    assert_eq!(found["results"][0]["user_id"], "@bob:localhost");
    let _ = timeline(&sync, &room);
}

#[tokio::test]
async fn relations_threads_search_upgrade_and_report() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = alice
        .create_room(
            json!({ "preset": "public_chat", "room_alias_name": "old", "visibility": "public" }),
        )
        .await;
    bob.join(&room).await;
    let root = alice.say(&room, "root", "budget meeting on thursday").await;
    let mut replies = Vec::new();
    for i in 0..3 {
        replies.push(
            bob.send(
                &room,
                "m.room.message",
                &format!("th{i}"),
                json!({
                    "msgtype": "m.text", "body": format!("reply {i}"),
                    "m.relates_to": { "rel_type": "m.thread", "event_id": root },
                }),
            )
            .await,
        );
    }
    bob.send(
        &room,
        "m.reaction",
        "re",
        json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": root, "key": "✅" } }),
    )
    .await;

    // All relations, newest first, paginated.
    let base = format!("/_matrix/client/v1/rooms/{}/relations/{}", enc(&room), enc(&root));
    let page = bob.get(&format!("{base}?limit=2")).await.ok();
    assert_eq!(page["chunk"].as_array().unwrap().len(), 2);
    assert_eq!(page["chunk"][0]["type"], "m.reaction");
    let next = page["next_batch"].as_str().unwrap();
    let rest = bob.get(&format!("{base}?limit=10&from={next}")).await.ok();
    assert_eq!(rest["chunk"].as_array().unwrap().len(), 2);
    assert!(rest.get("next_batch").is_none());
    // By relation type, and by relation and event type.
    let threads = bob.get(&format!("{base}/m.thread")).await.ok();
    assert_eq!(threads["chunk"].as_array().unwrap().len(), 3);
    let reactions = bob.get(&format!("{base}/m.annotation/m.reaction")).await.ok();
    assert_eq!(reactions["chunk"].as_array().unwrap().len(), 1);
    let none = bob.get(&format!("{base}/m.annotation/m.room.message")).await.ok();
    assert!(none["chunk"].as_array().unwrap().is_empty());

    // Thread list.
    let list = bob.get(&format!("/_matrix/client/v1/rooms/{}/threads", enc(&room))).await.ok();
    assert_eq!(list["chunk"][0]["event_id"], root.as_str());
    assert_eq!(list["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"], 3);
    let mine = alice
        .get(&format!("/_matrix/client/v1/rooms/{}/threads?include=participated", enc(&room)))
        .await
        .ok();
    assert_eq!(mine["chunk"].as_array().unwrap().len(), 1);

    // Search finds the message by words in any order, only in rooms the searcher is in.
    let query =
        json!({ "search_categories": { "room_events": { "search_term": "THURSDAY budget" } } });
    let found = bob.post("/_matrix/client/v3/search", query.clone()).await.ok();
    let results = &found["search_categories"]["room_events"];
    assert_eq!(results["count"], 1);
    assert_eq!(results["results"][0]["result"]["event_id"], root.as_str());
    let outsider = server.register("carol").await;
    let nothing = outsider.post("/_matrix/client/v3/search", query).await.ok();
    assert_eq!(nothing["search_categories"]["room_events"]["count"], 0);

    // Reports need a visible event.
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/report/{}", enc(&room), enc(&root)),
        json!({ "reason": "test" }),
    )
    .await
    .ok();
    outsider
        .post(
            &format!("/_matrix/client/v3/rooms/{}/report/{}", enc(&room), enc(&root)),
            json!({ "reason": "x" }),
        )
        .await
        .err(404, "M_NOT_FOUND");

    // Upgrades: only with the tombstone's power level; the alias moves and the old room is tombstoned.
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/upgrade", enc(&room)),
        json!({ "new_version": "12" }),
    )
    .await
    .err(403, "M_FORBIDDEN");
    let upgraded = alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/upgrade", enc(&room)),
            json!({ "new_version": "12" }),
        )
        .await
        .ok();
    let new_room = upgraded["replacement_room"].as_str().unwrap().to_owned();
    let tombstone = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.tombstone", enc(&room)))
        .await
        .ok();
    assert_eq!(tombstone["replacement_room"], new_room.as_str());
    let alias = bob.get("/_matrix/client/v3/directory/room/%23old:localhost").await.ok();
    assert_eq!(alias["room_id"], new_room.as_str());
    let create = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.create", enc(&new_room)))
        .await
        .ok();
    assert_eq!(create["predecessor"]["room_id"], room.as_str());
    let join_rules = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.join_rules", enc(&new_room)))
        .await
        .ok();
    assert_eq!(join_rules["join_rule"], "public");
    bob.join(&new_room).await;
}

#[tokio::test]
async fn room_versions_6_to_12() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    for version in ["6", "7", "8", "9", "10", "11", "12"] {
        let room =
            alice.create_room(json!({ "room_version": version, "preset": "public_chat" })).await;
        let create = alice
            .get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.create", enc(&room)))
            .await
            .ok();
        assert_eq!(create["room_version"], version);
        // Room version 11 dropped `creator`; 12 derives the room ID from the create event.
        assert_eq!(
            create.get("creator").is_some(),
            !["11", "12"].contains(&version),
            "{version}: {create}"
        );
        assert_eq!(room.contains(':'), version != "12", "{version}: {room}");
        bob.join(&room).await;
        let event = bob.say(&room, "v", &format!("hello v{version}")).await;
        // Redaction in each version's format (top-level `redacts` before 11, in content from 11).
        alice
            .put(
                &format!("/_matrix/client/v3/rooms/{}/redact/{}/r", enc(&room), enc(&event)),
                json!({}),
            )
            .await
            .ok();
        let redacted = bob
            .get(&format!("/_matrix/client/v3/rooms/{}/event/{}", enc(&room), enc(&event)))
            .await
            .ok();
        assert!(redacted["content"].as_object().unwrap().is_empty(), "{version}");
        let because = &redacted["unsigned"]["redacted_because"];
        assert_eq!(because["redacts"], event.as_str(), "{version}: {because}");
    }
}

#[tokio::test]
async fn identical_rooms_created_at_once_are_distinct() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    // Room version 12 derives the room ID from the create event: identical requests in the same
    // millisecond must still give distinct rooms.
    let creations = (0..10).map(|_| alice.create_room(json!({ "name": "same" })));
    let rooms: std::collections::HashSet<String> =
        futures_util::future::join_all(creations).await.into_iter().collect();
    assert_eq!(rooms.len(), 10);
    for room in &rooms {
        alice.say(room, "x", "usable").await;
    }
}

#[tokio::test]
async fn previews_of_world_readable_rooms_only() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let open = alice
        .create_room(json!({
            "preset": "public_chat", "name": "Open",
            "initial_state": [{ "type": "m.room.history_visibility", "state_key": "", "content": { "history_visibility": "world_readable" } }],
        }))
        .await;
    alice.say(&open, "o", "visible to all").await;
    let closed = alice.create_room(json!({ "preset": "private_chat" })).await;
    let preview =
        bob.get(&format!("/_matrix/client/v3/rooms/{}/initialSync", enc(&open))).await.ok();
    assert!(
        preview["messages"]["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["content"]["body"] == "visible to all")
    );
    assert!(preview["state"].as_array().unwrap().iter().any(|e| e["type"] == "m.room.name"));
    assert!(preview.get("membership").is_none());
    bob.get(&format!("/_matrix/client/v3/rooms/{}/initialSync", enc(&closed)))
        .await
        .err(403, "M_FORBIDDEN");
    let own =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/initialSync", enc(&closed))).await.ok();
    assert_eq!(own["membership"], "join");
    let threepids = bob.get("/_matrix/client/v3/account/3pid").await.ok();
    assert!(threepids["threepids"].as_array().is_none_or(|t| t.is_empty()), "{threepids}");
}
