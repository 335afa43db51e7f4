//! Federation reads and EDUs between real servers over TLS on loopback: another server's users'
//! profiles, aliases, directory and keys asked for by a local client; typing, receipts, presence,
//! to-device messages and device-list changes crossing servers; room reads refused to a server
//! that is not in the room, and the reads a signed server may make without one.

use std::time::{Duration, Instant};

use matrix_sdk::encryption::vodozemac::Ed25519Keypair;
use relais_tests::{
    Client, enc,
    federation::{FederatedServer, ScriptedServer, https_client, start_federation},
    sync_until, timeline,
};
use reqwest::Method;
use serde_json::{Value, json};

/// The ephemeral events of a room in a sync response.
fn ephemeral<'a>(sync: &'a Value, room: &str) -> Vec<&'a Value> {
    sync["rooms"]["join"][room]["ephemeral"]["events"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// An ed25519 key that signs JSON objects as Matrix clients do.
struct Signer(Ed25519Keypair);

impl Signer {
    fn new() -> Self {
        Self(Ed25519Keypair::new())
    }

    fn public(&self) -> String {
        self.0.public_key().to_base64()
    }

    /// Signs the canonical JSON of `object` without `signatures` and `unsigned` (serde_json's
    /// sorted maps of strings and arrays: its compact form is canonical).
    fn sign(&self, user: &str, key_id: &str, object: &mut Value) {
        let mut content = object.clone();
        let map = content.as_object_mut().expect("object");
        map.remove("signatures");
        map.remove("unsigned");
        let canonical = serde_json::to_string(&content).expect("json");
        object["signatures"][user][key_id] = json!(self.0.sign(canonical.as_bytes()).to_base64());
    }
}

/// Self-signed device keys and one signed one-time key of a client's device.
fn device_upload(user: &str, device: &str) -> Value {
    let signer = Signer::new();
    let key_id = format!("ed25519:{device}");
    let mut keys = json!({
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{device}"): Signer::new().public(),
            key_id.clone(): signer.public(),
        },
    });
    signer.sign(user, &key_id, &mut keys);
    let mut one_time = json!({ "key": Signer::new().public() });
    signer.sign(user, &key_id, &mut one_time);
    json!({
        "device_keys": keys,
        "one_time_keys": { "signed_curve25519:AAAAAQ": one_time },
    })
}

/// A user's master, self-signing and user-signing keys.
struct CrossSigning {
    master: Signer,
    self_signing: Signer,
    user_signing: Signer,
}

impl CrossSigning {
    fn new() -> Self {
        Self { master: Signer::new(), self_signing: Signer::new(), user_signing: Signer::new() }
    }

    fn key(&self, user: &str, usage: &str, signer: &Signer) -> Value {
        let public = signer.public();
        let mut key = json!({ "user_id": user, "usage": [usage], "keys": { format!("ed25519:{public}"): public } });
        if usage != "master" {
            self.master.sign(user, &format!("ed25519:{}", self.master.public()), &mut key);
        }
        key
    }

    /// The body of `keys/device_signing/upload`.
    fn upload_body(&self, user: &str) -> Value {
        json!({
            "master_key": self.key(user, "master", &self.master),
            "self_signing_key": self.key(user, "self_signing", &self.self_signing),
            "user_signing_key": self.key(user, "user_signing", &self.user_signing),
        })
    }
}

/// A user ID and device ID of a client.
async fn whoami(client: &Client) -> (String, String) {
    let me = client.get("/_matrix/client/v3/account/whoami").await.ok();
    (
        me["user_id"].as_str().expect("user").to_owned(),
        me["device_id"].as_str().expect("device").to_owned(),
    )
}

/// Bob of `b` joins Alice's `room` of `a` through `a`, and Alice's server sees the join.
async fn join_across(alice: &Client, bob: &Client, room: &str, a: &FederatedServer) {
    let path = format!("/_matrix/client/v3/join/{}?via={}", enc(room), enc(&a.server_name));
    bob.post(&path, json!({})).await.ok();
    let bob_id = bob.user_id().await;
    sync_until(alice, 30, "the remote join", |r| {
        timeline(r, room)
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob_id.as_str())
    })
    .await;
}

#[tokio::test]
async fn profiles_aliases_and_directories_of_another_server() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let alice_id = alice.user_id().await;
    alice
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id)),
            json!({ "displayname": "Alice of A" }),
        )
        .await
        .ok();

    // Bob's server asks Alice's.
    let profile = bob.get(&format!("/_matrix/client/v3/profile/{}", enc(&alice_id))).await.ok();
    assert_eq!(profile["displayname"], "Alice of A", "{profile}");
    let name =
        bob.get(&format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id))).await.ok();
    assert_eq!(name["displayname"], "Alice of A");
    let nobody = format!("@nobody:{}", a.server_name);
    bob.get(&format!("/_matrix/client/v3/profile/{}", enc(&nobody))).await.err(404, "M_NOT_FOUND");

    // An alias of A, and A's public directory, seen from B.
    let room = alice
        .create_room(json!({
            "preset": "public_chat",
            "visibility": "public",
            "room_alias_name": "agora",
            "name": "Agora",
        }))
        .await;
    let alias = format!("#agora:{}", a.server_name);
    let resolved =
        bob.get(&format!("/_matrix/client/v3/directory/room/{}", enc(&alias))).await.ok();
    assert_eq!(resolved["room_id"], room.as_str(), "{resolved}");
    assert!(
        resolved["servers"].as_array().expect("servers").contains(&json!(a.server_name)),
        "{resolved}"
    );
    let unknown = format!("#nowhere:{}", a.server_name);
    bob.get(&format!("/_matrix/client/v3/directory/room/{}", enc(&unknown)))
        .await
        .err(404, "M_NOT_FOUND");
    let directory = bob
        .get(&format!("/_matrix/client/v3/publicRooms?server={}", enc(&a.server_name)))
        .await
        .ok();
    let listed = |d: &Value| {
        d["chunk"].as_array().into_iter().flatten().any(|r| r["room_id"] == room.as_str())
    };
    assert!(listed(&directory), "{directory}");
    let searched = bob
        .post(
            &format!("/_matrix/client/v3/publicRooms?server={}", enc(&a.server_name)),
            json!({ "filter": { "generic_search_term": "agora" } }),
        )
        .await
        .ok();
    assert!(listed(&searched), "{searched}");
}

#[tokio::test]
async fn device_keys_of_another_server_are_queried_and_claimed() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let (alice_id, alice_device) = whoami(&alice).await;
    alice
        .post("/_matrix/client/v3/keys/upload", device_upload(&alice_id, &alice_device))
        .await
        .ok();

    // An unreachable server is a failure; Alice's keys come from A.
    let query = bob
        .post(
            "/_matrix/client/v3/keys/query",
            json!({ "device_keys": { alice_id.clone(): [], "@carol:localhost:1": [] } }),
        )
        .await
        .ok();
    let keys = &query["device_keys"][&alice_id][&alice_device];
    assert_eq!(keys["user_id"], alice_id.as_str(), "{query}");
    assert!(keys["signatures"][&alice_id][format!("ed25519:{alice_device}")].is_string());
    assert!(query["failures"]["localhost:1"].is_object(), "{query}");

    let claim = bob
        .post(
            "/_matrix/client/v3/keys/claim",
            json!({ "one_time_keys": { alice_id.clone(): { alice_device.clone(): "signed_curve25519" } } }),
        )
        .await
        .ok();
    let claimed = &claim["one_time_keys"][&alice_id][&alice_device];
    assert!(claimed["signed_curve25519:AAAAAQ"]["key"].is_string(), "{claim}");
    // The one-time key was handed out once: A has none left.
    let counts = alice.sync(None, 0).await;
    assert_eq!(counts["device_one_time_keys_count"]["signed_curve25519"].as_u64().unwrap_or(0), 0);
}

#[tokio::test]
async fn typing_receipts_to_device_and_device_lists_cross_servers() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let (alice_id, alice_device) = whoami(&alice).await;
    let (bob_id, _) = whoami(&bob).await;
    let room = alice.create_room(json!({ "preset": "public_chat" })).await;
    join_across(&alice, &bob, &room, a).await;

    // Alice types: Bob's server shows it.
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/typing/{}", enc(&room), enc(&alice_id)),
            json!({ "typing": true, "timeout": 30_000 }),
        )
        .await
        .ok();
    sync_until(&bob, 30, "alice typing on B", |r| {
        ephemeral(r, &room).iter().any(|e| {
            e["type"] == "m.typing"
                && e["content"]["user_ids"].as_array().is_some_and(|u| u.contains(&json!(alice_id)))
        })
    })
    .await;

    // Alice's presence reaches Bob's server.
    alice
        .put(
            &format!("/_matrix/client/v3/presence/{}/status", enc(&alice_id)),
            json!({ "presence": "online", "status_msg": "at the ministry" }),
        )
        .await
        .ok();
    sync_until(&bob, 30, "alice's presence on B", |r| {
        r["presence"]["events"].as_array().is_some_and(|events| {
            events.iter().any(|e| {
                e["sender"] == alice_id.as_str() && e["content"]["status_msg"] == "at the ministry"
            })
        })
    })
    .await;

    // Bob types and reads Alice's message: Alice's server shows both.
    let message = alice.say(&room, "r1", "read me").await;
    sync_until(&bob, 30, "alice's message on B", |r| {
        timeline(r, &room).iter().any(|e| e["event_id"] == message.as_str())
    })
    .await;
    bob.put(
        &format!("/_matrix/client/v3/rooms/{}/typing/{}", enc(&room), enc(&bob_id)),
        json!({ "typing": true, "timeout": 30_000 }),
    )
    .await
    .ok();
    bob.post(
        &format!("/_matrix/client/v3/rooms/{}/receipt/m.read/{}", enc(&room), enc(&message)),
        json!({}),
    )
    .await
    .ok();
    sync_until(&alice, 30, "bob typing on A", |r| {
        ephemeral(r, &room).iter().any(|e| {
            e["type"] == "m.typing"
                && e["content"]["user_ids"].as_array().is_some_and(|u| u.contains(&json!(bob_id)))
        })
    })
    .await;
    sync_until(&alice, 30, "bob's receipt on A", |r| {
        ephemeral(r, &room).iter().any(|e| {
            e["type"] == "m.receipt" && e["content"][&message]["m.read"][&bob_id].is_object()
        })
    })
    .await;

    // A to-device message from Bob reaches Alice's device.
    bob.put(
        "/_matrix/client/v3/sendToDevice/m.test.ping/t1",
        json!({ "messages": { alice_id.clone(): { alice_device.clone(): { "ping": 1 } } } }),
    )
    .await
    .ok();
    let received = sync_until(&alice, 30, "bob's to-device message on A", |r| {
        r["to_device"]["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["type"] == "m.test.ping"))
    })
    .await;
    let ping = received["to_device"]["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["type"] == "m.test.ping"))
        .cloned()
        .expect("the message");
    assert_eq!(ping["sender"], bob_id.as_str());
    assert_eq!(ping["content"]["ping"], 1);

    // Alice's new device keys: Bob's server marks her device list changed, and Bob's
    // keys/query (asked of A) has them.
    let start = bob.sync(None, 0).await;
    let since = start["next_batch"].as_str().expect("next_batch").to_owned();
    alice
        .post("/_matrix/client/v3/keys/upload", device_upload(&alice_id, &alice_device))
        .await
        .ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut since = since;
    loop {
        let response = bob.sync(Some(&since), 1_000).await;
        let changed = response["device_lists"]["changed"]
            .as_array()
            .is_some_and(|c| c.contains(&json!(alice_id)));
        if changed {
            break;
        }
        since = response["next_batch"].as_str().expect("next_batch").to_owned();
        assert!(Instant::now() < deadline, "alice's device list change never reached B");
    }
    let query = bob
        .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { alice_id.clone(): [] } }))
        .await
        .ok();
    assert!(query["device_keys"][&alice_id][&alice_device].is_object(), "{query}");
}

/// A signed federation GET by `scripted` to `server`.
async fn signed_get(
    scripted: &ScriptedServer,
    server: &FederatedServer,
    path: &str,
) -> relais_tests::Reply {
    scripted.request(server, Method::GET, path, None).await
}

#[tokio::test]
async fn room_reads_need_the_server_in_the_room() {
    let a = FederatedServer::start(&[]);
    let scripted = ScriptedServer::start().await;
    let alice = a.register("alice").await;
    let room = alice.create_room(json!({ "preset": "private_chat", "name": "Private" })).await;
    let event = alice.say(&room, "s1", "secret").await;

    // A server with nobody in the room reads nothing of it.
    let state_ids =
        format!("/_matrix/federation/v1/state_ids/{}?event_id={}", enc(&room), enc(&event));
    signed_get(&scripted, &a, &state_ids).await.err(403, "M_FORBIDDEN");
    let state = format!("/_matrix/federation/v1/state/{}?event_id={}", enc(&room), enc(&event));
    signed_get(&scripted, &a, &state).await.err(403, "M_FORBIDDEN");
    signed_get(&scripted, &a, &format!("/_matrix/federation/v1/event/{}", enc(&event)))
        .await
        .err(403, "M_FORBIDDEN");
    let backfill =
        format!("/_matrix/federation/v1/backfill/{}?v={}&limit=10", enc(&room), enc(&event));
    signed_get(&scripted, &a, &backfill).await.err(403, "M_FORBIDDEN");
    let auth = format!("/_matrix/federation/v1/event_auth/{}/{}", enc(&room), enc(&event));
    signed_get(&scripted, &a, &auth).await.err(403, "M_FORBIDDEN");
    let missing = format!("/_matrix/federation/v1/get_missing_events/{}", enc(&room));
    scripted
        .request(
            &a,
            Method::POST,
            &missing,
            Some(json!({ "earliest_events": [], "latest_events": [event] })),
        )
        .await
        .err(403, "M_FORBIDDEN");
    signed_get(&scripted, &a, &format!("/_matrix/federation/v1/hierarchy/{}", enc(&room)))
        .await
        .err(403, "M_FORBIDDEN");

    // Unknown rooms and events are 404.
    let unknown_room = format!("!nowhere:{}", a.server_name);
    let path =
        format!("/_matrix/federation/v1/state_ids/{}?event_id={}", enc(&unknown_room), enc(&event));
    signed_get(&scripted, &a, &path).await.err(404, "M_NOT_FOUND");
    signed_get(&scripted, &a, "/_matrix/federation/v1/event/%24unknown")
        .await
        .err(404, "M_NOT_FOUND");

    // Reads about users and the directory need no room.
    let alice_id = alice.user_id().await;
    alice
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", enc(&alice_id)),
            json!({ "displayname": "Alice" }),
        )
        .await
        .ok();
    let profile = format!("/_matrix/federation/v1/query/profile?user_id={}", enc(&alice_id));
    assert_eq!(signed_get(&scripted, &a, &profile).await.ok()["displayname"], "Alice");
    let devices = format!("/_matrix/federation/v1/user/devices/{}", enc(&alice_id));
    let devices = signed_get(&scripted, &a, &devices).await.ok();
    assert_eq!(devices["user_id"], alice_id.as_str(), "{devices}");
    let public = alice
        .create_room(json!({ "preset": "public_chat", "visibility": "public", "name": "Open" }))
        .await;
    let directory = signed_get(&scripted, &a, "/_matrix/federation/v1/publicRooms").await.ok();
    assert!(
        directory["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .any(|r| r["room_id"] == public.as_str()),
        "{directory}"
    );
    let hierarchy =
        signed_get(&scripted, &a, &format!("/_matrix/federation/v1/hierarchy/{}", enc(&public)))
            .await
            .ok();
    assert_eq!(hierarchy["room"]["room_id"], public.as_str(), "{hierarchy}");

    // A room's server ACL refuses a server even for a world-readable room's events.
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.history_visibility/", enc(&public)),
            json!({ "history_visibility": "world_readable" }),
        )
        .await
        .ok();
    let readable = alice.say(&public, "s2", "for everyone").await;
    let path = format!("/_matrix/federation/v1/event/{}", enc(&readable));
    let pdu = signed_get(&scripted, &a, &path).await.ok();
    assert_eq!(pdu["pdus"][0]["content"]["body"], "for everyone", "{pdu}");
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.server_acl/", enc(&public)),
            json!({ "allow": ["*"], "deny": ["localhost"], "allow_ip_literals": true }),
        )
        .await
        .ok();
    signed_get(&scripted, &a, &path).await.err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn federation_media_is_served_as_multipart() {
    let a = FederatedServer::start(&[]);
    let scripted = ScriptedServer::start().await;
    let alice = a.register("alice").await;
    let uploaded = alice.raw(Method::POST, "/_matrix/media/v3/upload", "{\"hello\":1}").await.ok();
    let uri = uploaded["content_uri"].as_str().expect("content_uri");
    let media_id = uri.rsplit('/').next().expect("media id");
    let path = format!("/_matrix/federation/v1/media/download/{media_id}");
    let header = scripted.x_matrix(&a.server_name, &Method::GET, &path, None);
    let response = https_client()
        .get(format!("{}{path}", a.federation_url))
        .header("Authorization", header)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let content_type =
        response.headers()["content-type"].to_str().expect("content type").to_owned();
    assert!(content_type.starts_with("multipart/mixed"), "{content_type}");
    let body = response.text().await.expect("body");
    assert!(body.contains("{\"hello\":1}"), "{body}");
    // A thumbnail of an image, made by the media's server.
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
        64,
        48,
        image::Rgba([200, 10, 10, 255]),
    ))
    .write_to(&mut png, image::ImageFormat::Png)
    .expect("png");
    let uploaded = reqwest::Client::new()
        .post(format!("{}/_matrix/media/v3/upload", alice.url))
        .bearer_auth(alice.token.as_deref().expect("token"))
        .header("content-type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .expect("upload");
    let uploaded: Value = uploaded.json().await.expect("json");
    let image_id = uploaded["content_uri"].as_str().expect("uri").rsplit('/').next().expect("id");
    let path = format!(
        "/_matrix/federation/v1/media/thumbnail/{image_id}?width=32&height=32&method=scale"
    );
    let header = scripted.x_matrix(&a.server_name, &Method::GET, &path, None);
    let response = https_client()
        .get(format!("{}{path}", a.federation_url))
        .header("Authorization", header)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.expect("body");
    let text = String::from_utf8_lossy(&body).to_lowercase();
    assert!(text.contains("content-type: image/"), "{text}");
    let png = body.windows(4).any(|w| w == b"\x89PNG");
    let jpeg = body.windows(3).any(|w| w == [0xFF, 0xD8, 0xFF]);
    assert!(png || jpeg, "the second part is an image");

    // Unknown media is 404.
    let path = "/_matrix/federation/v1/media/download/nothinghere";
    signed_get(&scripted, &a, path).await.err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn cross_signing_keys_and_signatures_of_another_server() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let (alice_id, _) = whoami(&alice).await;
    let (bob_id, _) = whoami(&bob).await;
    let path = "/_matrix/client/v3/keys/device_signing/upload";
    let alice_cs = CrossSigning::new();
    alice.post(path, alice_cs.upload_body(&alice_id)).await.ok();
    let bob_cs = CrossSigning::new();
    bob.post(path, bob_cs.upload_body(&bob_id)).await.ok();

    // Bob's server has Alice's master and self-signing keys from A, never her user-signing key.
    let query = json!({ "device_keys": { alice_id.clone(): [] } });
    let seen = bob.post("/_matrix/client/v3/keys/query", query.clone()).await.ok();
    let master = seen["master_keys"][&alice_id].clone();
    assert_eq!(master["usage"], json!(["master"]), "{seen}");
    assert!(seen["self_signing_keys"][&alice_id].is_object(), "{seen}");
    assert!(seen["user_signing_keys"].get(&alice_id).is_none(), "{seen}");

    // Bob verifies Alice: his user-signing signature on her master key is checked against the
    // key A answers, kept on B, and shown to Bob only.
    let usk_id = format!("ed25519:{}", bob_cs.user_signing.public());
    let mut signed = master.clone();
    bob_cs.user_signing.sign(&bob_id, &usk_id, &mut signed);
    let sigs = "/_matrix/client/v3/keys/signatures/upload";
    let reply = bob
        .post(sigs, json!({ alice_id.clone(): { alice_cs.master.public(): signed } }))
        .await
        .ok();
    assert!(reply["failures"].as_object().is_none_or(|f| f.is_empty()), "{reply}");
    let by_bob = bob.post("/_matrix/client/v3/keys/query", query.clone()).await.ok();
    assert!(
        by_bob["master_keys"][&alice_id]["signatures"][&bob_id][&usk_id].is_string(),
        "{by_bob}"
    );
    let by_alice = alice.post("/_matrix/client/v3/keys/query", query).await.ok();
    assert!(by_alice["master_keys"][&alice_id]["signatures"].get(&bob_id).is_none(), "{by_alice}");

    // A forged signature is refused.
    let mut forged = master;
    Signer::new().sign(&bob_id, &usk_id, &mut forged);
    let reply = bob
        .post(sigs, json!({ alice_id.clone(): { alice_cs.master.public(): forged } }))
        .await
        .ok();
    assert_eq!(
        reply["failures"][&alice_id][alice_cs.master.public()]["errcode"],
        "M_INVALID_SIGNATURE",
        "{reply}"
    );
}

#[tokio::test]
async fn another_servers_media_is_fetched_over_federation() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let alice = a.register("alice").await;
    let bob = b.register("bob").await;
    let uploaded =
        alice.raw(Method::POST, "/_matrix/media/v3/upload", "{\"from\":\"A\"}").await.ok();
    let uri = uploaded["content_uri"].as_str().expect("content_uri");
    let media = uri.strip_prefix("mxc://").expect("mxc");
    // Bob's server asks Alice's for it.
    let fetched = bob.get(&format!("/_matrix/client/v1/media/download/{media}")).await.ok();
    assert_eq!(fetched, json!({ "from": "A" }));
    let unknown = format!("/_matrix/client/v1/media/download/{}/nothinghere", a.server_name);
    bob.get(&unknown).await.err(404, "M_NOT_FOUND");
}
