//! End-to-end encryption across servers with matrix-sdk (the engine of Element X): device keys
//! are queried and one-time keys claimed over federation, room keys travel as to-device
//! messages between servers, and each side decrypts the other's messages.

use std::time::Duration;

use matrix_sdk::{
    Client,
    config::SyncSettings,
    ruma::{
        OwnedRoomId,
        api::client::room::create_room::v3::Request as CreateRoomRequest,
        events::{
            InitialStateEvent,
            room::{
                encryption::RoomEncryptionEventContent,
                message::{RoomMessageEventContent, SyncRoomMessageEvent},
            },
        },
    },
};
use relais_tests::{TestServer, federation::start_federation};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(60);

async fn register(server: &TestServer, user: &str) -> Client {
    let client = Client::builder().homeserver_url(&server.url).build().await.expect("client");
    let mut request = matrix_sdk::ruma::api::client::account::register::v3::Request::new();
    request.username = Some(user.to_owned());
    request.password = Some("a long enough password".to_owned());
    request.auth = Some(matrix_sdk::ruma::api::client::uiaa::AuthData::Dummy(Default::default()));
    client.matrix_auth().register(request).await.expect("register");
    client.sync_once(SyncSettings::default()).await.expect("first sync");
    client
}

/// Starts a sync loop; yields the bodies of the messages the client decrypted.
fn listen(client: &Client) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    client.add_event_handler(move |event: SyncRoomMessageEvent| {
        let tx = tx.clone();
        async move {
            if let Some(original) = event.as_original() {
                let _ = tx.send(original.content.body().to_owned());
            }
        }
    });
    let client = client.clone();
    tokio::spawn(async move {
        let _ = client.sync(SyncSettings::default().timeout(Duration::from_secs(2))).await;
    });
    rx
}

async fn expect_message(rx: &mut mpsc::UnboundedReceiver<String>, body: &str) {
    tokio::time::timeout(PATIENCE, async {
        while let Some(received) = rx.recv().await {
            if received == body {
                return;
            }
        }
        panic!("sync loop ended");
    })
    .await
    .unwrap_or_else(|_| panic!("{body:?} was not received and decrypted"));
}

async fn send(client: &Client, room_id: &OwnedRoomId, body: &str) {
    let room = client.get_room(room_id).expect("room");
    room.send(RoomMessageEventContent::text_plain(body)).await.expect("send");
}

#[tokio::test]
async fn an_encrypted_room_across_servers_decrypts_on_both_sides() {
    let servers = start_federation(2);
    let alice = register(&servers[0], "alice").await;
    let bob = register(&servers[1], "bob").await;
    let bob_id = bob.user_id().expect("logged in").to_owned();

    // Alice creates an encrypted room and invites Bob, of the other server, in the same request.
    let mut request = CreateRoomRequest::new();
    request.invite = vec![bob_id.clone()];
    request.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = alice.create_room(request).await.expect("create room").room_id().to_owned();

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let invited = loop {
        bob.sync_once(SyncSettings::default().timeout(Duration::from_millis(500)))
            .await
            .expect("sync");
        if let Some(room) = bob.get_room(&room_id) {
            break room;
        }
        assert!(tokio::time::Instant::now() < deadline, "the invite never reached bob");
    };
    invited.join().await.expect("join across servers");

    let mut alice_inbox = listen(&alice);
    let mut bob_inbox = listen(&bob);
    // Alice's server must know Bob joined before her client shares the room key with him.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let room = alice.get_room(&room_id).expect("room");
        if room.joined_members_count() == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "bob's join never reached alice's server");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    send(&alice, &room_id, "secret from A").await;
    expect_message(&mut bob_inbox, "secret from A").await;
    send(&bob, &room_id, "secret from B").await;
    expect_message(&mut alice_inbox, "secret from B").await;
}
