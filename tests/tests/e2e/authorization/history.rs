//! Room reads respect membership and `m.room.history_visibility` in `/messages`, `/context`,
//! `/event`, `/state`, `/members`, search and sync.
//!
//! In each room alice sends `m1`, invites bob, sends `m2`, bob joins, alice sends `m3`, bob
//! leaves, alice sends `m4`; carol is never a member. Who may see what follows the spec's
//! algorithm, with Synapse's reading of `shared` for former members: they keep only what they
//! saw while joined (the spec would also give them what was sent before they joined).

use std::collections::BTreeSet;

use relais_tests::{Client, TestServer, enc};
use serde_json::{Value, json};

/// The four messages and the ID of each.
struct Room {
    id: String,
    events: Vec<(&'static str, String)>,
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// The message names (`m1`..`m4`) in a list of events.
fn names(events: &Value) -> BTreeSet<&'static str> {
    let bodies: Vec<&str> = events
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["content"]["body"].as_str()).collect())
        .unwrap_or_default();
    ["m1", "m2", "m3", "m4"]
        .into_iter()
        .filter(|name| bodies.iter().any(|b| b.starts_with(name)))
        .collect()
}

impl Room {
    fn path(&self, rest: &str) -> String {
        format!("/_matrix/client/v3/rooms/{}/{rest}", enc(&self.id))
    }

    /// What `/messages` shows `client`, or `None` if it is refused.
    async fn messages(&self, client: &Client) -> Option<BTreeSet<&'static str>> {
        let reply = client.get(&self.path("messages?dir=b&limit=100")).await;
        (reply.status == 200).then(|| names(&reply.body["chunk"]))
    }

    /// The messages `/event` gives `client`.
    async fn events(&self, client: &Client) -> BTreeSet<&'static str> {
        let mut seen = BTreeSet::new();
        for (name, id) in &self.events {
            let reply = client.get(&self.path(&format!("event/{}", enc(id)))).await;
            match reply.status {
                200 => {
                    seen.insert(*name);
                }
                404 => assert_eq!(reply.body["errcode"], "M_NOT_FOUND"),
                other => panic!("/event answered {other}: {}", reply.body),
            }
        }
        seen
    }

    /// The messages `/context` gives `client`: those it may open, and every one it shows around
    /// them (which must be visible too).
    async fn context(&self, client: &Client) -> BTreeSet<&'static str> {
        let mut seen = BTreeSet::new();
        for (name, id) in &self.events {
            let reply = client.get(&self.path(&format!("context/{}?limit=20", enc(id)))).await;
            if reply.status == 404 {
                continue;
            }
            let body = reply.ok();
            seen.insert(*name);
            seen.extend(names(&body["events_before"]));
            seen.extend(names(&body["events_after"]));
        }
        seen
    }

    /// What search shows `client` in this room.
    async fn search(&self, client: &Client) -> BTreeSet<&'static str> {
        let body = json!({ "search_categories": { "room_events": {
            "search_term": "secret", "filter": { "rooms": [self.id] } } } });
        let reply = client.post("/_matrix/client/v3/search", body).await.ok();
        let results = &reply["search_categories"]["room_events"]["results"];
        let events: Vec<Value> = results
            .as_array()
            .map(|r| r.iter().map(|r| r["result"].clone()).collect())
            .unwrap_or_default();
        names(&Value::Array(events))
    }

    /// Whether `/state` and `/members` answer `client`.
    async fn state_and_members(&self, client: &Client) -> (u16, u16) {
        let state = client.get(&self.path("state")).await.status;
        let members = client.get(&self.path("members")).await.status;
        (state, members)
    }
}

/// What an initial sync's timeline shows `client` in `room`.
async fn synced(client: &Client, room: &str) -> BTreeSet<&'static str> {
    let filter = enc(r#"{"room":{"timeline":{"limit":50}}}"#);
    let sync = client.get(&format!("/_matrix/client/v3/sync?filter={filter}")).await.ok();
    names(&sync["rooms"]["join"][room]["timeline"]["events"])
}

/// What a sync with left rooms shows a former member `client` of `room`: the messages, and
/// whether its own leave event is there.
async fn synced_after_leaving(client: &Client, room: &str) -> (BTreeSet<&'static str>, bool) {
    let filter = enc(r#"{"room":{"include_leave":true,"timeline":{"limit":50}}}"#);
    let sync = client.get(&format!("/_matrix/client/v3/sync?filter={filter}")).await.ok();
    let events = &sync["rooms"]["leave"][room]["timeline"]["events"];
    let leave = events.as_array().is_some_and(|events| {
        events.iter().any(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "leave")
    });
    (names(events), leave)
}

struct Users {
    alice: Client,
    bob: Client,
    carol: Client,
}

/// Expected views of one visibility setting.
struct Expect {
    visibility: &'static str,
    bob_joined: &'static [&'static str],
    bob_left: &'static [&'static str],
    carol: &'static [&'static str],
}

async fn check(users: &Users, expect: &Expect) {
    let Users { alice, bob, carol } = users;
    let visibility = expect.visibility;
    let initial_state = json!([{ "type": "m.room.history_visibility", "state_key": "",
                                 "content": { "history_visibility": visibility } }]);
    let id =
        alice.create_room(json!({ "preset": "public_chat", "initial_state": initial_state })).await;
    let mut room = Room { id, events: Vec::new() };
    let say = |name: &'static str| {
        let (alice, id) = (alice.clone(), room.id.clone());
        async move {
            (name, alice.say(&id, &format!("{visibility}-{name}"), &format!("{name} secret")).await)
        }
    };
    room.events.push(say("m1").await);
    let invite = json!({ "user_id": bob.user_id().await });
    alice.post(&room.path("invite"), invite).await.ok();
    room.events.push(say("m2").await);
    bob.join(&room.id).await;
    room.events.push(say("m3").await);

    let joined = set(expect.bob_joined);
    let context = format!("{visibility}: bob while joined");
    assert_eq!(room.messages(bob).await, Some(joined.clone()), "{context}: /messages");
    assert_eq!(room.events(bob).await, joined, "{context}: /event");
    assert_eq!(room.context(bob).await, joined, "{context}: /context");
    assert_eq!(room.search(bob).await, joined, "{context}: search");
    assert_eq!(synced(bob, &room.id).await, joined, "{context}: sync");
    assert_eq!(room.state_and_members(bob).await, (200, 200), "{context}: /state, /members");

    bob.post(&room.path("leave"), json!({})).await.ok();
    room.events.push(say("m4").await);
    let left = set(expect.bob_left);
    let context = format!("{visibility}: bob after leaving");
    assert_eq!(room.messages(bob).await, Some(left.clone()), "{context}: /messages");
    assert_eq!(room.events(bob).await, left, "{context}: /event");
    assert_eq!(room.context(bob).await, left, "{context}: /context");
    let mut until_leave = left.clone();
    until_leave.remove("m4");
    assert_eq!(synced_after_leaving(bob, &room.id).await, (until_leave, true), "{context}: sync");
    // Former members keep the state as it was when they left.
    assert_eq!(room.state_and_members(bob).await, (200, 200), "{context}: /state, /members");

    let outsider = set(expect.carol);
    let context = format!("{visibility}: carol, never a member");
    let world_readable = visibility == "world_readable";
    assert_eq!(
        room.messages(carol).await,
        world_readable.then(|| outsider.clone()),
        "{context}: /messages"
    );
    assert_eq!(room.events(carol).await, outsider, "{context}: /event");
    assert_eq!(room.context(carol).await, outsider, "{context}: /context");
    assert!(room.search(carol).await.is_empty(), "{context}: search");
    assert!(synced(carol, &room.id).await.is_empty(), "{context}: sync");
    let expected = if world_readable { (200, 200) } else { (403, 403) };
    assert_eq!(room.state_and_members(carol).await, expected, "{context}: /state, /members");
}

#[tokio::test]
async fn room_reads_follow_membership_and_history_visibility() {
    let server = TestServer::start();
    let users = Users {
        alice: server.register("alice").await,
        bob: server.register("bob").await,
        carol: server.register("carol").await,
    };
    let all = &["m1", "m2", "m3", "m4"];
    let expectations = [
        Expect {
            visibility: "shared",
            bob_joined: &["m1", "m2", "m3"],
            bob_left: &["m3"],
            carol: &[],
        },
        Expect {
            visibility: "invited",
            bob_joined: &["m2", "m3"],
            bob_left: &["m2", "m3"],
            carol: &[],
        },
        Expect { visibility: "joined", bob_joined: &["m3"], bob_left: &["m3"], carol: &[] },
        Expect {
            visibility: "world_readable",
            bob_joined: &["m1", "m2", "m3"],
            bob_left: all,
            carol: all,
        },
    ];
    for expect in &expectations {
        check(&users, expect).await;
    }
}
