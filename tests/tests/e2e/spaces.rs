use std::collections::HashSet;

use relais_tests::{Client, TestServer, enc};
use serde_json::json;

async fn add_child(admin: &Client, space: &str, child: &str, extra: serde_json::Value) {
    let mut content = json!({ "via": ["localhost"] });
    if let (Some(content), Some(extra)) = (content.as_object_mut(), extra.as_object()) {
        content.extend(extra.clone());
    }
    admin
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.space.child/{}", enc(space), enc(child)),
            content,
        )
        .await
        .ok();
}

#[tokio::test]
async fn space_hierarchy_and_restricted_joins() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mallory = server.register("mallory").await;

    let space = alice
        .create_room(json!({ "name": "Workspace", "creation_content": { "type": "m.space" }, "preset": "public_chat" }))
        .await;
    let sub = alice.create_room(json!({ "name": "Sub-space", "creation_content": { "type": "m.space" }, "preset": "public_chat" })).await;
    let restricted = alice
        .create_room(json!({
            "name": "Members only",
            "initial_state": [{
                "type": "m.room.join_rules", "state_key": "",
                "content": { "join_rule": "restricted", "allow": [{ "type": "m.room_membership", "room_id": space }] },
            }],
        }))
        .await;
    let private = alice.create_room(json!({ "name": "Private", "preset": "private_chat" })).await;
    let nested = alice.create_room(json!({ "name": "Nested", "preset": "public_chat" })).await;
    add_child(&alice, &space, &sub, json!({ "order": "b" })).await;
    add_child(&alice, &space, &restricted, json!({ "order": "a", "suggested": true })).await;
    add_child(&alice, &space, &private, json!({})).await;
    add_child(&alice, &sub, &nested, json!({})).await;
    // A cycle: the sub-space lists the space again.
    add_child(&alice, &sub, &space, json!({})).await;

    // A non-member of the space cannot join the restricted room, with a clear reason.
    let refused = mallory
        .post(&format!("/_matrix/client/v3/join/{}", enc(&restricted)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    assert!(refused["error"].as_str().unwrap().contains("restricted"), "{refused}");

    // Bob joins the space, sees its rooms, and joins the restricted child without invitation.
    bob.join(&space).await;
    let hierarchy =
        bob.get(&format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&space))).await.ok();
    let rooms: Vec<&str> = hierarchy["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(rooms[0], space);
    // Children in the spec's order (by `order`), the private room hidden, nested rooms included,
    // the cycle cut.
    assert_eq!(rooms[1], restricted);
    assert_eq!(rooms[2], sub);
    assert!(rooms.contains(&nested.as_str()));
    assert!(!rooms.contains(&private.as_str()));
    assert_eq!(rooms.len(), 4);
    let root = &hierarchy["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    assert_eq!(root["children_state"].as_array().unwrap().len(), 3);
    let suggested = bob
        .get(&format!("/_matrix/client/v1/rooms/{}/hierarchy?suggested_only=true", enc(&space)))
        .await
        .ok();
    assert_eq!(suggested["rooms"].as_array().unwrap().len(), 2);
    let shallow = bob
        .get(&format!("/_matrix/client/v1/rooms/{}/hierarchy?max_depth=1", enc(&space)))
        .await
        .ok();
    assert!(!shallow["rooms"].as_array().unwrap().iter().any(|r| r["room_id"] == nested.as_str()));

    let joined =
        bob.post(&format!("/_matrix/client/v3/join/{}", enc(&restricted)), json!({})).await.ok();
    assert_eq!(joined["room_id"], restricted.as_str());
    let member = bob
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(&restricted),
            enc("@bob:localhost")
        ))
        .await
        .ok();
    assert_eq!(member["join_authorised_via_users_server"], "@alice:localhost");

    // Summaries: the restricted room is visible to a space member, the private one is not.
    let summary =
        bob.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&restricted))).await.ok();
    assert_eq!(summary["name"], "Members only");
    assert_eq!(summary["join_rule"], "restricted");
    assert_eq!(summary["membership"], "join");
    bob.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&private)))
        .await
        .err(404, "M_NOT_FOUND");
    mallory
        .get(&format!("/_matrix/client/v1/room_summary/{}", enc(&restricted)))
        .await
        .err(404, "M_NOT_FOUND");
    let public =
        mallory.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&nested))).await.ok();
    assert_eq!(public["num_joined_members"], 1);
}

#[tokio::test]
async fn hierarchy_pagination_lists_each_child_once() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let space = alice
        .create_room(json!({ "creation_content": { "type": "m.space" }, "preset": "public_chat" }))
        .await;
    let mut children = HashSet::new();
    for i in 0..150 {
        let room = alice
            .create_room(json!({ "name": format!("room {i}"), "preset": "public_chat" }))
            .await;
        add_child(&alice, &space, &room, json!({})).await;
        children.insert(room);
    }
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    loop {
        let mut path = format!("/_matrix/client/v1/rooms/{}/hierarchy?limit=40", enc(&space));
        if let Some(from) = &from {
            path.push_str(&format!("&from={from}"));
        }
        let page = alice.get(&path).await.ok();
        for room in page["rooms"].as_array().unwrap() {
            seen.push(room["room_id"].as_str().unwrap().to_owned());
        }
        match page["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 151);
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 151);
    assert!(children.iter().all(|c| unique.contains(c)));
}

#[tokio::test]
async fn knocks_accepted_and_refused() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let carol = server.register("carol").await;
    let dave = server.register("dave").await;
    let room = alice
        .create_room(json!({
            "name": "Ask to join",
            "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }],
        }))
        .await;
    // Joining directly is refused; knocking is allowed.
    carol
        .post(&format!("/_matrix/client/v3/join/{}", enc(&room)), json!({}))
        .await
        .err(403, "M_FORBIDDEN");
    carol
        .post(
            &format!("/_matrix/client/v3/knock/{}", enc(&room)),
            json!({ "reason": "I work on this" }),
        )
        .await
        .ok();
    dave.post(&format!("/_matrix/client/v3/knock/{}", enc(&room)), json!({})).await.ok();

    // The knocker sees the room in the knock section; the admin sees the knocks.
    let sync = carol.sync(None, 0).await;
    let knock_state = sync["rooms"]["knock"][&room]["knock_state"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", sync.to_string()));
    assert!(knock_state.iter().any(|e| e["type"] == "m.room.name"));
    let members = alice
        .get(&format!("/_matrix/client/v3/rooms/{}/members?membership=knock", enc(&room)))
        .await
        .ok();
    assert_eq!(members["chunk"].as_array().unwrap().len(), 2);

    // Accept Carol (invite), refuse Dave (kick).
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/invite", enc(&room)),
            json!({ "user_id": "@carol:localhost" }),
        )
        .await
        .ok();
    carol.join(&room).await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/kick", enc(&room)),
            json!({ "user_id": "@dave:localhost", "reason": "no" }),
        )
        .await
        .ok();
    let dave_member = alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
            enc(&room),
            enc("@dave:localhost")
        ))
        .await
        .ok();
    assert_eq!(dave_member["membership"], "leave");
    let joined =
        alice.get(&format!("/_matrix/client/v3/rooms/{}/joined_members", enc(&room))).await.ok();
    assert!(joined["joined"].get("@carol:localhost").is_some());
    assert!(joined["joined"].get("@dave:localhost").is_none());
}

#[tokio::test]
async fn upgraded_room_keeps_its_place_in_the_space() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let space = alice
        .create_room(json!({ "creation_content": { "type": "m.space" }, "preset": "public_chat" }))
        .await;
    let room = alice.create_room(json!({ "name": "Old", "preset": "public_chat" })).await;
    add_child(&alice, &space, &room, json!({ "order": "x" })).await;
    alice
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{}/state/m.space.parent/{}",
                enc(&room),
                enc(&space)
            ),
            json!({ "via": ["localhost"], "canonical": true }),
        )
        .await
        .ok();
    let upgraded = alice
        .post(
            &format!("/_matrix/client/v3/rooms/{}/upgrade", enc(&room)),
            json!({ "new_version": "12" }),
        )
        .await
        .ok();
    let new_room = upgraded["replacement_room"].as_str().unwrap().to_owned();
    let hierarchy =
        alice.get(&format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&space))).await.ok();
    let rooms: Vec<&str> = hierarchy["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec![space.as_str(), new_room.as_str()]);
    let parent = alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{}/state/m.space.parent/{}",
            enc(&new_room),
            enc(&space)
        ))
        .await
        .ok();
    assert_eq!(parent["canonical"], true);
}
