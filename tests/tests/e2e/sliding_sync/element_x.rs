//! The engine of Element X (`matrix-sdk-ui`: `SyncService`, `RoomListService`, `Timeline`)
//! over simplified sliding sync: the room list fills, sorts by activity and follows new
//! messages and invites; a timeline paginates back; encrypted messages decrypt.

use std::{future::Future, time::Duration};

use futures_util::{Stream, StreamExt, pin_mut};
use matrix_sdk::{
    Client, RoomState,
    config::SyncSettings,
    ruma::{
        OwnedRoomId,
        api::client::room::create_room::v3::Request as CreateRoomRequest,
        events::{InitialStateEvent, room::encryption::RoomEncryptionEventContent},
    },
    sliding_sync::VersionBuilder,
};
use matrix_sdk_ui::{
    Timeline,
    eyeball_im::{Vector, VectorDiff},
    room_list_service::{RoomListItem, filters::new_filter_non_left},
    sync_service::SyncService,
    timeline::RoomExt as _,
};
use relais_tests::TestServer;
use serde_json::json;

const PASSWORD: &str = "correct horse battery";
const PATIENCE: Duration = Duration::from_secs(30);

/// A matrix-sdk client that uses sliding sync, as Element X does, logged in as `user` (who
/// registered over raw HTTP with [`PASSWORD`]).
async fn element_x(server: &TestServer, user: &str) -> Client {
    let client = Client::builder()
        .homeserver_url(&server.url)
        .sliding_sync_version_builder(VersionBuilder::DiscoverNative)
        .build()
        .await
        .expect("client: the server must advertise simplified sliding sync");
    client.matrix_auth().login_username(user, PASSWORD).send().await.expect("login");
    client
}

async fn sync_service(client: &Client) -> SyncService {
    let service = SyncService::builder(client.clone()).build().await.expect("sync service");
    service.start().await;
    service
}

/// Applies room list updates until `done` holds; returns the entries.
async fn wait_for_list(
    stream: &mut (impl Stream<Item = Vec<VectorDiff<RoomListItem>>> + Unpin),
    entries: &mut Vector<RoomListItem>,
    what: &str,
    done: impl Fn(&Vector<RoomListItem>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done(entries) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(diffs)) => diffs.into_iter().for_each(|diff| diff.apply(entries)),
            Ok(None) => panic!("room list stream ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; list: {:?}", names(entries)),
        }
    }
}

fn names(entries: &Vector<RoomListItem>) -> Vec<String> {
    entries.iter().map(|room| room.name().unwrap_or_default()).collect()
}

/// Retries `check` until it yields something.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bodies of the text messages a timeline shows.
async fn bodies(timeline: &Timeline) -> Vec<String> {
    timeline
        .items()
        .await
        .iter()
        .filter_map(|item| item.as_event())
        .filter_map(|event| event.content().as_message().map(|m| m.body().to_owned()))
        .collect()
}

#[tokio::test]
async fn room_list_fills_sorts_by_activity_and_follows_messages_and_invites() {
    let server = TestServer::start();
    let alice_http = server.register("alice").await;
    let bob_http = server.register("bob").await;
    let one = alice_http.create_room(json!({ "name": "one" })).await;
    let _two = alice_http.create_room(json!({ "name": "two" })).await;
    let three = alice_http.create_room(json!({ "name": "three" })).await;
    alice_http.say(&one, "t1", "one is the most recent").await;

    let alice = element_x(&server, "alice").await;
    let sync = sync_service(&alice).await;
    let rooms = sync.room_list_service();
    let all = rooms.all_rooms().await.expect("all rooms");
    let (stream, controller) = all.entries_with_dynamic_adapters(50);
    controller.set_filter(Box::new(new_filter_non_left()));
    pin_mut!(stream);
    let mut entries = Vector::new();

    wait_for_list(&mut stream, &mut entries, "three rooms, most active first", |e| {
        e.len() == 3 && names(e).first().map(String::as_str) == Some("one")
    })
    .await;

    alice_http.say(&three, "t2", "now three is").await;
    wait_for_list(&mut stream, &mut entries, "three on top after a message", |e| {
        names(e).first().map(String::as_str) == Some("three")
    })
    .await;

    let alice_id = alice_http.user_id().await;
    let invite =
        bob_http.create_room(json!({ "name": "an invitation", "invite": [alice_id] })).await;
    wait_for_list(&mut stream, &mut entries, "the invite", |e| {
        e.iter().any(|r| r.room_id().as_str() == invite && r.state() == RoomState::Invited)
    })
    .await;
    sync.stop().await;
}

#[tokio::test]
async fn a_timeline_paginates_back() {
    let server = TestServer::start();
    let alice_http = server.register("alice").await;
    let room_id = alice_http.create_room(json!({ "name": "history" })).await;
    for i in 0..30 {
        alice_http.say(&room_id, &format!("t{i}"), &format!("message {i}")).await;
    }

    let alice = element_x(&server, "alice").await;
    let sync = sync_service(&alice).await;
    let room_id = OwnedRoomId::try_from(room_id).expect("room id");
    let room = eventually("the room", || {
        let alice = alice.clone();
        let room_id = room_id.clone();
        async move { alice.get_room(&room_id) }
    })
    .await;
    let timeline = room.timeline().await.expect("timeline");
    let mut reached_start = false;
    for _ in 0..10 {
        if bodies(&timeline).await.iter().any(|b| b == "message 0") {
            break;
        }
        reached_start = timeline.paginate_backwards(10).await.expect("paginate");
    }
    let seen = bodies(&timeline).await;
    assert!(seen.iter().any(|b| b == "message 0"), "back-pagination reached the start: {seen:?}");
    assert!(seen.iter().any(|b| b == "message 29"), "{seen:?}");
    let _ = reached_start;
    sync.stop().await;
}

#[tokio::test]
async fn encrypted_messages_decrypt() {
    let server = TestServer::start();
    server.register("alice").await;
    let bob_http = server.register("bob").await;
    drop(bob_http);

    // Bob uses the classic sync; Alice is Element X.
    let bob = Client::builder().homeserver_url(&server.url).build().await.expect("client");
    bob.matrix_auth().login_username("bob", PASSWORD).send().await.expect("login");
    bob.sync_once(SyncSettings::default()).await.expect("bob sync");
    let alice = element_x(&server, "alice").await;
    let sync = sync_service(&alice).await;

    let mut request = CreateRoomRequest::new();
    request.invite = vec![alice.user_id().expect("logged in").to_owned()];
    request.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = bob.create_room(request).await.expect("create").room_id().to_owned();
    let invited = eventually("the invite", || {
        let alice = alice.clone();
        let room_id = room_id.clone();
        async move { alice.get_room(&room_id).filter(|r| r.state() == RoomState::Invited) }
    })
    .await;
    invited.join().await.expect("join");
    let room = eventually("the joined room", || {
        let alice = alice.clone();
        let room_id = room_id.clone();
        async move { alice.get_room(&room_id).filter(|r| r.state() == RoomState::Joined) }
    })
    .await;
    let timeline = room.timeline().await.expect("timeline");

    bob.sync_once(SyncSettings::default()).await.expect("bob sync");
    let bob_room = bob.get_room(&room_id).expect("bob's room");
    assert!(bob_room.latest_encryption_state().await.expect("state").is_encrypted());
    bob_room
        .send(matrix_sdk::ruma::events::room::message::RoomMessageEventContent::text_plain(
            "for alice only",
        ))
        .await
        .expect("send");

    eventually("the decrypted message", || {
        let timeline = &timeline;
        async move { bodies(timeline).await.iter().any(|b| b == "for alice only").then_some(()) }
    })
    .await;
    sync.stop().await;
}
