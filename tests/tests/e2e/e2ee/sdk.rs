//! matrix-sdk with its crypto engine (the engine of Element X) against Relais: Olm and Megolm
//! sessions set up through the server's key endpoints and to-device messages, cross-signing of a
//! second device, and history restored from the server-side key backup.

use std::{future::Future, time::Duration};

use matrix_sdk::{
    Client,
    config::SyncSettings,
    encryption::{BackupDownloadStrategy, EncryptionSettings},
    room::MessagesOptions,
    ruma::{
        OwnedRoomId,
        api::client::room::create_room::v3::Request as CreateRoomRequest,
        events::{
            AnySyncMessageLikeEvent, AnySyncTimelineEvent, InitialStateEvent,
            room::{
                encryption::RoomEncryptionEventContent,
                message::{RoomMessageEventContent, SyncRoomMessageEvent},
            },
        },
    },
};
use relais_tests::TestServer;
use tokio::{sync::mpsc, task::JoinHandle};

const PASSWORD: &str = "a long enough password";
const PATIENCE: Duration = Duration::from_secs(30);

/// One sync that returns soon when there is nothing new.
fn quick() -> SyncSettings {
    SyncSettings::default().timeout(Duration::from_millis(500))
}

async fn new_client(server: &TestServer) -> Client {
    let settings = EncryptionSettings {
        backup_download_strategy: BackupDownloadStrategy::OneShot,
        ..Default::default()
    };
    Client::builder()
        .homeserver_url(&server.url)
        .with_encryption_settings(settings)
        .build()
        .await
        .expect("client")
}

async fn register(server: &TestServer, user: &str) -> Client {
    let client = new_client(server).await;
    let mut request = matrix_sdk::ruma::api::client::account::register::v3::Request::new();
    request.username = Some(user.to_owned());
    request.password = Some(PASSWORD.to_owned());
    request.auth = Some(matrix_sdk::ruma::api::client::uiaa::AuthData::Dummy(Default::default()));
    client.matrix_auth().register(request).await.expect("register");
    client.sync_once(SyncSettings::default()).await.expect("first sync");
    client
}

/// The same user on a new device.
async fn login(server: &TestServer, user: &str) -> Client {
    let client = new_client(server).await;
    client.matrix_auth().login_username(user, PASSWORD).send().await.expect("login");
    client.sync_once(SyncSettings::default()).await.expect("first sync");
    client
}

/// Starts a sync loop; yields the bodies of the text messages the client could decrypt (an
/// undecryptable event never reaches a `m.room.message` handler).
fn listen(client: &Client) -> (mpsc::UnboundedReceiver<String>, JoinHandle<()>) {
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
    let task = tokio::spawn(async move {
        let _ = client.sync(SyncSettings::default().timeout(Duration::from_secs(2))).await;
    });
    (rx, task)
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

/// An encrypted room created by `owner`, which `member` joins.
async fn encrypted_room(owner: &Client, member: &Client) -> OwnedRoomId {
    let mut request = CreateRoomRequest::new();
    request.invite = vec![member.user_id().expect("logged in").to_owned()];
    request.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = owner.create_room(request).await.expect("create room").room_id().to_owned();
    member.sync_once(SyncSettings::default()).await.expect("sync");
    member.get_room(&room_id).expect("invited").join().await.expect("join");
    owner.sync_once(SyncSettings::default()).await.expect("sync");
    room_id
}

async fn send(client: &Client, room_id: &OwnedRoomId, body: &str) {
    let room = client.get_room(room_id).expect("room");
    room.send(RoomMessageEventContent::text_plain(body)).await.expect("send");
}

/// The text messages of a room's history that `client` can decrypt now.
async fn decrypted_history(client: &Client, room_id: &OwnedRoomId) -> Vec<String> {
    let Some(room) = client.get_room(room_id) else { return Vec::new() };
    let Ok(messages) = room.messages(MessagesOptions::backward()).await else { return Vec::new() };
    messages
        .chunk
        .iter()
        .filter(|event| event.encryption_info().is_some())
        .filter_map(|event| match event.raw().deserialize().ok()? {
            AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(message)) => {
                Some(message.as_original()?.content.body().to_owned())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn two_users_exchange_encrypted_messages() {
    let server = TestServer::start();
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    let room_id = encrypted_room(&alice, &bob).await;
    let (mut alice_rx, alice_sync) = listen(&alice);
    let (mut bob_rx, bob_sync) = listen(&bob);

    send(&alice, &room_id, "secret from alice").await;
    expect_message(&mut bob_rx, "secret from alice").await;
    send(&bob, &room_id, "secret from bob").await;
    expect_message(&mut alice_rx, "secret from bob").await;

    // What travelled through the server was ciphertext, which both decrypt.
    let history = decrypted_history(&bob, &room_id).await;
    assert!(history.contains(&"secret from alice".to_owned()), "{history:?}");
    assert!(history.contains(&"secret from bob".to_owned()), "{history:?}");
    alice_sync.abort();
    bob_sync.abort();
}

#[tokio::test]
async fn a_cross_signed_second_device_decrypts_new_messages() {
    let server = TestServer::start();
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    // No user-interactive auth for the first cross-signing keys (MSC3967).
    alice.encryption().bootstrap_cross_signing(None).await.expect("bootstrap cross-signing");
    let room_id = encrypted_room(&alice, &bob).await;

    let alice2 = login(&server, "alice").await;
    let alice_id = alice.user_id().expect("user").to_owned();
    let second = alice2.device_id().expect("device").to_owned();
    // The first device learns of the second through the device list, and signs it.
    let device = eventually("the first device to see the second", || async {
        alice.sync_once(quick()).await.ok()?;
        alice.encryption().get_device(&alice_id, &second).await.ok().flatten()
    })
    .await;
    device.verify().await.expect("cross-sign the second device");

    // Bob sees the second device signed by Alice's self-signing key.
    eventually("Bob to see the second device cross-signed", || async {
        bob.sync_once(quick()).await.ok()?;
        let device = bob.encryption().get_device(&alice_id, &second).await.ok().flatten()?;
        device.is_cross_signed_by_owner().then_some(())
    })
    .await;
    eventually("the second device to see itself verified", || async {
        alice2.sync_once(quick()).await.ok()?;
        let own = alice2.encryption().get_own_device().await.ok().flatten()?;
        own.is_cross_signed_by_owner().then_some(())
    })
    .await;

    let (mut second_rx, second_sync) = listen(&alice2);
    send(&bob, &room_id, "for every device of alice").await;
    expect_message(&mut second_rx, "for every device of alice").await;
    second_sync.abort();
}

#[tokio::test]
async fn a_new_device_restores_history_from_the_key_backup() {
    let server = TestServer::start();
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    alice.encryption().bootstrap_cross_signing(None).await.expect("bootstrap cross-signing");
    let (mut alice_rx, alice_sync) = listen(&alice);
    let recovery_key = alice.encryption().recovery().enable().await.expect("enable recovery");
    let room_id = encrypted_room(&alice, &bob).await;

    send(&bob, &room_id, "history from bob").await;
    expect_message(&mut alice_rx, "history from bob").await;
    send(&alice, &room_id, "history from alice").await;
    tokio::time::timeout(PATIENCE, alice.encryption().backups().wait_for_steady_state())
        .await
        .expect("backup upload finished")
        .expect("backup upload succeeded");
    alice_sync.abort();

    let alice3 = login(&server, "alice").await;
    assert!(decrypted_history(&alice3, &room_id).await.is_empty(), "no keys before recovery");
    alice3.encryption().recovery().recover(&recovery_key).await.expect("recover");
    let history = eventually("history to decrypt on the new device", || async {
        alice3.encryption().backups().download_room_keys_for_room(&room_id).await.ok()?;
        let history = decrypted_history(&alice3, &room_id).await;
        (history.len() >= 2).then_some(history)
    })
    .await;
    assert!(history.contains(&"history from bob".to_owned()), "{history:?}");
    assert!(history.contains(&"history from alice".to_owned()), "{history:?}");
}
