//! The `matrix-sdk` crate (the engine of Element X) against Relais.

use std::time::Duration;

use matrix_sdk::{
    Client,
    config::SyncSettings,
    ruma::{
        api::client::room::create_room::v3::Request as CreateRoomRequest,
        events::room::message::{RoomMessageEventContent, SyncRoomMessageEvent},
    },
};
use relais_tests::TestServer;

async fn sdk_client(server: &TestServer, user: &str) -> Client {
    let client = Client::builder().homeserver_url(&server.url).build().await.expect("client");
    let mut request = matrix_sdk::ruma::api::client::account::register::v3::Request::new();
    request.username = Some(user.to_owned());
    request.password = Some("a long enough password".to_owned());
    request.auth = Some(matrix_sdk::ruma::api::client::uiaa::AuthData::Dummy(Default::default()));
    client.matrix_auth().register(request).await.expect("register");
    client
}

#[tokio::test]
async fn two_sdk_clients_chat() {
    let server = TestServer::start();
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;

    let mut request = CreateRoomRequest::new();
    request.invite = vec![bob.user_id().unwrap().to_owned()];
    request.name = Some("SDK room".to_owned());
    let room = alice.create_room(request).await.expect("create room");

    bob.sync_once(SyncSettings::default()).await.expect("bob sync");
    let invited = bob.get_room(room.room_id()).expect("bob knows the room");
    invited.join().await.expect("join");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bob.add_event_handler(move |event: SyncRoomMessageEvent| {
        let tx = tx.clone();
        async move {
            if let Some(original) = event.as_original() {
                let _ = tx.send(original.content.body().to_owned());
            }
        }
    });
    let bob_sync = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.sync(SyncSettings::default().timeout(Duration::from_secs(5))).await
        })
    };

    alice.sync_once(SyncSettings::default()).await.expect("alice sync");
    let alice_room = alice.get_room(room.room_id()).expect("alice room");
    alice_room.send(RoomMessageEventContent::text_plain("hello from the SDK")).await.expect("send");

    let body = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let body = rx.recv().await.expect("handler alive");
            if body == "hello from the SDK" {
                return body;
            }
        }
    })
    .await
    .expect("bob received the message");
    assert_eq!(body, "hello from the SDK");
    bob_sync.abort();

    // The room's name and members as the SDK computes them.
    bob.sync_once(SyncSettings::default()).await.expect("bob sync");
    let bob_room = bob.get_room(room.room_id()).expect("room");
    assert_eq!(bob_room.name().as_deref(), Some("SDK room"));
    assert_eq!(bob_room.joined_members_count(), 2);

    // Back-pagination through the SDK.
    let messages =
        bob_room.messages(matrix_sdk::room::MessagesOptions::backward()).await.expect("messages");
    assert!(!messages.chunk.is_empty());
}
