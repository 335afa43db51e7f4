//! Federation reads against a real database: a room of this server with a member of
//! `remote.test`, read as that server and as a server with nobody in the room.

use std::sync::Arc;

use ruma::{
    OwnedEventId, OwnedRoomId, OwnedUserId, api::client::room::create_room, owned_user_id,
    server_name,
};
use serde_json::{Value, json};

use super::ReadError;
use crate::{
    config::{Config, SUPPORTED_ROOM_VERSIONS},
    service::{
        Services,
        rooms::{PduTemplate, create::CreateRoom},
    },
};

struct Room {
    _dir: tempfile::TempDir,
    services: Arc<Services>,
    room: OwnedRoomId,
    alice: OwnedUserId,
}

impl Room {
    /// A private room of `@alice:localhost` with history visible to joined members only.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.database.path = dir.path().join("db");
        config.database.cache_capacity_mb = 8;
        let services = Services::open(Arc::new(config)).expect("services");
        let alice = owned_user_id!("@alice:localhost");
        let request = create_room::v3::Request::new();
        let room = services
            .rooms
            .create_room(
                &alice,
                CreateRoom {
                    request: &request,
                    default_version: &services.config.rooms.default_version,
                    supported: &SUPPORTED_ROOM_VERSIONS,
                    displayname: None,
                    avatar_url: None,
                },
            )
            .expect("room");
        let this = Self { _dir: dir, services, room, alice };
        this.state("m.room.history_visibility", "", json!({ "history_visibility": "joined" }));
        this
    }

    fn state(&self, kind: &str, state_key: &str, content: Value) -> OwnedEventId {
        self.state_as(&self.alice.clone(), kind, state_key, content)
    }

    fn state_as(
        &self,
        sender: &OwnedUserId,
        kind: &str,
        state_key: &str,
        content: Value,
    ) -> OwnedEventId {
        let template = PduTemplate::state(kind.into(), state_key, content);
        self.services
            .rooms
            .append(&self.room, sender, template, None)
            .expect("state event")
            .event_id()
            .clone()
    }

    fn say(&self, body: &str) -> OwnedEventId {
        let template = PduTemplate::message(
            "m.room.message".into(),
            json!({ "msgtype": "m.text", "body": body }),
        );
        self.services
            .rooms
            .append(&self.room, &self.alice, template, None)
            .expect("message")
            .event_id()
            .clone()
    }
}

fn bodies(events: &[Box<serde_json::value::RawValue>]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str::<Value>(e.get()).expect("json")["content"]["body"].clone())
        .collect()
}

#[test]
fn room_reads_follow_membership_visibility_and_acl() {
    let room = Room::new();
    let services = &room.services;
    let remote = server_name!("remote.test");
    let stranger = server_name!("stranger.test");
    let secret = room.say("before bob");
    let bob = "@bob:remote.test";
    room.state("m.room.member", bob, json!({ "membership": "invite" }));
    let bob_id = owned_user_id!("@bob:remote.test");
    room.state_as(&bob_id, "m.room.member", bob, json!({ "membership": "join" }));
    let first = room.say("after bob 1");
    let topic = room.state("m.room.topic", "", json!({ "topic": "t" }));
    let latest = room.say("after bob 2");

    // Only a server with a joined user reads the room.
    assert!(services.require_server_in_room(remote, &room.room).is_ok());
    let refused = services.require_server_in_room(stranger, &room.room);
    assert!(matches!(refused, Err(ReadError::Forbidden(_))), "{refused:?}");
    let unknown: OwnedRoomId = "!nowhere:localhost".try_into().expect("room id");
    let missing = services.require_server_in_room(remote, &unknown);
    assert!(matches!(missing, Err(ReadError::NotFound(_))), "{missing:?}");

    // History before Bob's join is not visible to his server: `/event` refuses it, back-fill
    // answers it redacted (no content body).
    let event = services.federation_event(remote, &secret);
    assert!(matches!(event, Err(ReadError::Forbidden(_))), "{event:?}");
    assert!(services.federation_event(remote, &first).is_ok());
    assert!(matches!(services.federation_event(stranger, &first), Err(ReadError::Forbidden(_))));

    let backfill = services
        .federation_backfill(remote, &room.room, std::slice::from_ref(&latest), 100)
        .expect("read");
    let seen = bodies(&backfill);
    assert_eq!(seen[0], "after bob 2", "deepest first: {seen:?}");
    assert!(seen.contains(&json!("after bob 1")));
    assert!(!seen.contains(&json!("before bob")), "redacted: {seen:?}");
    let limited = services
        .federation_backfill(remote, &room.room, std::slice::from_ref(&latest), 2)
        .expect("read");
    assert_eq!(bodies(&limited), vec![json!("after bob 2"), Value::Null]);

    // Gap filling: between `first` and `latest`, neither included, oldest first.
    let gap = services
        .federation_missing_events(
            remote,
            &room.room,
            std::slice::from_ref(&first),
            std::slice::from_ref(&latest),
            10,
            0,
        )
        .expect("read");
    let ids: Vec<String> = gap
        .iter()
        .map(|e| serde_json::from_str::<Value>(e.get()).expect("json")["type"].to_string())
        .collect();
    assert_eq!(ids, vec!["\"m.room.topic\""], "{ids:?}");

    // The state at an event is the state before it, with its auth chain.
    let (state, auth_chain) =
        services.federation_state_at(remote, &room.room, &topic).expect("state");
    assert!(state.iter().all(|e| e.event_id() != &topic), "state before the topic");
    assert!(state.iter().any(|e| e.state_key() == Some(bob)), "bob's join is in the state");
    // Every auth event of the state is in the chain, and the create event (which room version
    // 12 leaves out of `auth_events`).
    let chain: Vec<&OwnedEventId> = auth_chain.iter().map(|e| e.event_id()).collect();
    for event in &state {
        for auth in &event.fields.auth_events {
            assert!(chain.contains(&auth), "{auth} is missing from the auth chain");
        }
    }
    assert!(auth_chain.iter().any(|e| e.kind().to_string() == "m.room.power_levels"));
    assert!(auth_chain.iter().any(|e| e.kind().to_string() == "m.room.create"));
    let (after, _) = services.federation_state_at(remote, &room.room, &latest).expect("state");
    assert!(after.iter().any(|e| e.event_id() == &topic), "the topic is in the later state");
    let auth = services.federation_event_auth(remote, &room.room, &latest).expect("auth");
    assert!(!auth.is_empty());

    // An ACL denying the server closes every read.
    room.state("m.room.server_acl", "", json!({ "allow": ["*"], "deny": ["remote.test"] }));
    let denied = services.federation_state_at(remote, &room.room, &latest);
    assert!(matches!(denied, Err(ReadError::Forbidden(_))), "{denied:?}");
    assert!(matches!(services.federation_event(remote, &first), Err(ReadError::Forbidden(_))));
}
