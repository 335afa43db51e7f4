//! End-to-end encryption, server side, over raw HTTP: device keys, one-time and fallback keys,
//! device lists, cross-signing, to-device messages and key backups. The keys are real ed25519
//! keys (vodozemac, through matrix-sdk), signed as clients sign them. `e2ee::sdk` drives the
//! same endpoints with matrix-sdk's crypto engine.

mod backup;
mod sdk;

use std::collections::BTreeSet;

use matrix_sdk::encryption::vodozemac::Ed25519Keypair;
use relais_tests::{Client, TestServer};
use serde_json::{Value, json};

/// An ed25519 key that signs JSON objects the way Matrix clients do.
struct Signer(Ed25519Keypair);

impl Signer {
    fn new() -> Self {
        Self(Ed25519Keypair::new())
    }

    fn public(&self) -> String {
        self.0.public_key().to_base64()
    }

    /// Signs the canonical JSON of `object` without `signatures` and `unsigned`.
    fn sign(&self, user: &str, key_id: &str, object: &mut Value) {
        let mut content = object.clone();
        let map = content.as_object_mut().expect("object");
        map.remove("signatures");
        map.remove("unsigned");
        // serde_json's default map is sorted, and these objects hold only strings and arrays:
        // its compact form is the canonical JSON.
        let canonical = serde_json::to_string(&content).expect("json");
        object["signatures"][user][key_id] = json!(self.0.sign(canonical.as_bytes()).to_base64());
    }
}

/// A logged-in raw client with its IDs and device signing key.
struct Device {
    client: Client,
    user: String,
    device: String,
    signer: Signer,
}

impl Device {
    async fn register(server: &TestServer, name: &str) -> Self {
        Self::from_client(server.register(name).await).await
    }

    async fn from_client(client: Client) -> Self {
        let whoami = client.get("/_matrix/client/v3/account/whoami").await.ok();
        Self {
            user: whoami["user_id"].as_str().expect("user_id").to_owned(),
            device: whoami["device_id"].as_str().expect("device_id").to_owned(),
            client,
            signer: Signer::new(),
        }
    }

    /// Logs the same user in on a new device.
    async fn login_again(&self, server: &TestServer) -> Self {
        let mut client = server.client();
        let body = client
            .post(
                "/_matrix/client/v3/login",
                json!({
                    "type": "m.login.password",
                    "identifier": { "type": "m.id.user", "user": self.user },
                    "password": "correct horse battery",
                }),
            )
            .await
            .ok();
        client.token = Some(body["access_token"].as_str().expect("token").to_owned());
        Self::from_client(client).await
    }

    /// This device's keys, self-signed.
    fn device_keys(&self) -> Value {
        let mut keys = json!({
            "user_id": self.user,
            "device_id": self.device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{}", self.device): Signer::new().public(),
                format!("ed25519:{}", self.device): self.signer.public(),
            },
        });
        self.signer.sign(&self.user, &format!("ed25519:{}", self.device), &mut keys);
        keys
    }

    /// `n` signed one-time keys (or fallback keys), named from `first`.
    fn one_time_keys(&self, first: usize, n: usize, fallback: bool) -> Value {
        let mut keys = serde_json::Map::new();
        for i in first..first + n {
            let mut key = json!({ "key": Signer::new().public() });
            if fallback {
                key["fallback"] = json!(true);
            }
            self.signer.sign(&self.user, &format!("ed25519:{}", self.device), &mut key);
            keys.insert(format!("signed_curve25519:K{i:05}"), key);
        }
        Value::Object(keys)
    }

    async fn upload(&self, body: Value) -> relais_tests::Reply {
        self.client.post("/_matrix/client/v3/keys/upload", body).await
    }

    async fn query(&self, user: &str) -> Value {
        self.client
            .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { user: [] } }))
            .await
            .ok()
    }

    async fn claim(&self, user: &str, device: &str) -> Value {
        let body = json!({ "one_time_keys": { user: { device: "signed_curve25519" } } });
        self.client.post("/_matrix/client/v3/keys/claim", body).await.ok()
    }
}

fn ids(values: &Value) -> BTreeSet<String> {
    values.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn upload_query_and_claim_keys() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;
    alice
        .client
        .put(
            &format!("/_matrix/client/v3/devices/{}", alice.device),
            json!({ "display_name": "laptop" }),
        )
        .await
        .ok();

    let body = json!({
        "device_keys": alice.device_keys(),
        "one_time_keys": alice.one_time_keys(0, 3, false),
        "fallback_keys": alice.one_time_keys(100, 1, true),
    });
    let counts = alice.upload(body).await.ok();
    assert_eq!(counts["one_time_key_counts"]["signed_curve25519"], 3);

    let query = bob.query(&alice.user).await;
    let keys = &query["device_keys"][&alice.user][&alice.device];
    assert_eq!(keys["keys"][format!("ed25519:{}", alice.device)], alice.signer.public());
    assert_eq!(keys["unsigned"]["device_display_name"], "laptop");
    assert!(keys["signatures"][&alice.user][format!("ed25519:{}", alice.device)].is_string());
    // Remote users are reported as failures, not silently dropped.
    let remote = bob
        .client
        .post(
            "/_matrix/client/v3/keys/query",
            json!({ "device_keys": { "@carol:elsewhere.example": [] } }),
        )
        .await
        .ok();
    assert!(remote["failures"]["elsewhere.example"].is_object(), "{remote}");

    let sync = alice.client.sync(None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 3);
    assert_eq!(sync["device_unused_fallback_key_types"], json!(["signed_curve25519"]));

    let mut claimed = BTreeSet::new();
    for _ in 0..3 {
        let reply = bob.claim(&alice.user, &alice.device).await;
        let keys =
            reply["one_time_keys"][&alice.user][&alice.device].as_object().expect("a key").clone();
        assert_eq!(keys.len(), 1);
        let (id, key) = keys.into_iter().next().expect("key");
        assert!(key.get("fallback").is_none(), "one-time keys come first");
        claimed.insert(id);
    }
    assert_eq!(claimed.len(), 3, "three distinct one-time keys");
    // Then the fallback key, as often as asked.
    for _ in 0..2 {
        let reply = bob.claim(&alice.user, &alice.device).await;
        let keys = &reply["one_time_keys"][&alice.user][&alice.device];
        assert_eq!(keys["signed_curve25519:K00100"]["fallback"], true, "{reply}");
    }
    let sync = alice.client.sync(None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));

    // A new fallback key is unused again.
    alice.upload(json!({ "fallback_keys": alice.one_time_keys(200, 1, true) })).await.ok();
    let sync = alice.client.sync(None, 0).await;
    assert_eq!(sync["device_unused_fallback_key_types"], json!(["signed_curve25519"]));
}

#[tokio::test]
async fn keys_that_lie_or_do_not_verify_are_refused() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;

    let mut other_user = alice.device_keys();
    other_user["user_id"] = json!(bob.user);
    alice.signer.sign(&alice.user, &format!("ed25519:{}", alice.device), &mut other_user);
    alice.upload(json!({ "device_keys": other_user })).await.err(400, "M_INVALID_PARAM");

    let mut other_device = alice.device_keys();
    other_device["device_id"] = json!("SOMEONEELSE");
    alice.upload(json!({ "device_keys": other_device })).await.err(400, "M_INVALID_PARAM");

    let mut tampered = alice.device_keys();
    tampered["algorithms"] = json!(["m.olm.v1.curve25519-aes-sha2"]);
    alice.upload(json!({ "device_keys": tampered })).await.err(400, "M_INVALID_SIGNATURE");

    let mut signed_by_another_key = alice.device_keys();
    Signer::new().sign(
        &alice.user,
        &format!("ed25519:{}", alice.device),
        &mut signed_by_another_key,
    );
    alice
        .upload(json!({ "device_keys": signed_by_another_key }))
        .await
        .err(400, "M_INVALID_SIGNATURE");

    // Good device keys with one bad one-time key: the whole upload is refused.
    let mut otks = alice.one_time_keys(0, 2, false);
    otks["signed_curve25519:K00001"]["key"] = json!(Signer::new().public());
    let body = json!({ "device_keys": alice.device_keys(), "one_time_keys": otks });
    alice.upload(body).await.err(400, "M_INVALID_SIGNATURE");

    let query = bob.query(&alice.user).await;
    assert_eq!(query["device_keys"][&alice.user], json!({}), "nothing stored: {query}");

    // Valid keys are stored; a later bad upload leaves them as they were.
    let good = alice.device_keys();
    alice.upload(json!({ "device_keys": good })).await.ok();
    let mut bad = alice.device_keys();
    bad["keys"][format!("curve25519:{}", alice.device)] = json!(Signer::new().public());
    alice.upload(json!({ "device_keys": bad })).await.err(400, "M_INVALID_SIGNATURE");
    let stored = &bob.query(&alice.user).await["device_keys"][&alice.user][&alice.device];
    assert_eq!(stored["keys"], good["keys"]);

    // One-time keys must be signed by the device key too.
    let mut otks = alice.one_time_keys(0, 1, false);
    otks["signed_curve25519:K00000"]["key"] = json!(Signer::new().public());
    alice.upload(json!({ "one_time_keys": otks })).await.err(400, "M_INVALID_SIGNATURE");
    assert_eq!(alice.upload(json!({})).await.ok()["one_time_key_counts"]["signed_curve25519"], 0);
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_a_key_twice() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;
    alice.upload(json!({ "device_keys": alice.device_keys() })).await.ok();
    let keys = 40;
    let claims = 60;
    for batch in 0..keys / 10 {
        alice
            .upload(json!({ "one_time_keys": alice.one_time_keys(batch * 10, 10, false) }))
            .await
            .ok();
    }
    let tasks = (0..claims).map(|_| {
        let client = bob.client.clone();
        let (user, device) = (alice.user.clone(), alice.device.clone());
        tokio::spawn(async move {
            let body = json!({ "one_time_keys": { &user: { &device: "signed_curve25519" } } });
            let reply = client.post("/_matrix/client/v3/keys/claim", body).await.ok();
            reply["one_time_keys"][&user][&device]
                .as_object()
                .map(|k| k.keys().cloned().collect::<Vec<_>>())
        })
    });
    let mut handed_out = Vec::new();
    for task in futures_util::future::join_all(tasks).await {
        handed_out.extend(task.expect("task").unwrap_or_default());
    }
    let distinct: BTreeSet<&String> = handed_out.iter().collect();
    assert_eq!(handed_out.len(), keys, "every key handed out once, then nothing: {handed_out:?}");
    assert_eq!(distinct.len(), keys, "a one-time key was handed out twice");
}

#[tokio::test]
async fn to_device_messages_are_delivered_until_acknowledged() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;
    let bob2 = bob.login_again(&server).await;

    let send = |txn: &str, target: &str, n: u32| {
        let path = format!("/_matrix/client/v3/sendToDevice/m.test/{txn}");
        let body = json!({ "messages": { &bob.user: { target: { "n": n } } } });
        let client = alice.client.clone();
        async move { client.put(&path, body).await.ok() }
    };
    send("t1", &bob.device, 1).await;
    // A retry with the same transaction ID sends nothing more.
    send("t1", &bob.device, 1).await;

    let first = bob.client.sync(None, 0).await;
    let events = first["to_device"]["events"].as_array().expect("to_device events").clone();
    assert_eq!(events.len(), 1, "{first}");
    assert_eq!(events[0]["type"], "m.test");
    assert_eq!(events[0]["sender"], alice.user);
    assert_eq!(events[0]["content"]["n"], 1);
    // Not acknowledged yet: the same sync again delivers it again.
    let again = bob.client.sync(None, 0).await;
    assert_eq!(again["to_device"]["events"].as_array().map(Vec::len), Some(1));
    // A sync from the first response's token acknowledges it: it is gone.
    let token = first["next_batch"].as_str().expect("next_batch").to_owned();
    let next = bob.client.sync(Some(&token), 0).await;
    assert!(next["to_device"]["events"].as_array().is_none_or(Vec::is_empty), "{next}");
    let fresh = bob.client.sync(None, 0).await;
    assert!(fresh["to_device"]["events"].as_array().is_none_or(Vec::is_empty), "{fresh}");

    // `*` reaches every device of the user, and a waiting sync wakes up for it.
    let token = next["next_batch"].as_str().expect("next_batch").to_owned();
    let waiting = {
        let client = bob.client.clone();
        tokio::spawn(async move { client.sync(Some(&token), 20_000).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    send("t2", "*", 2).await;
    let woken = waiting.await.expect("sync task");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the long-poll was not woken");
    assert_eq!(woken["to_device"]["events"][0]["content"]["n"], 2, "{woken}");
    let other = bob2.client.sync(None, 0).await;
    assert_eq!(other["to_device"]["events"][0]["content"]["n"], 2, "{other}");

    // Messages to devices that do not exist go nowhere, and are no error.
    send("t3", "NOSUCHDEVICE", 3).await;
}

#[tokio::test]
async fn device_lists_follow_keys_membership_and_deletion() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;
    alice.upload(json!({ "device_keys": alice.device_keys() })).await.ok();
    bob.upload(json!({ "device_keys": bob.device_keys() })).await.ok();
    let room = alice.client.create_room(json!({ "preset": "public_chat" })).await;
    let alice_token =
        alice.client.sync(None, 0).await["next_batch"].as_str().expect("token").to_owned();
    let bob_token =
        bob.client.sync(None, 0).await["next_batch"].as_str().expect("token").to_owned();

    // Bob joins: each now tracks the other.
    bob.client.join(&room).await;
    let alice_sync = alice.client.sync(Some(&alice_token), 0).await;
    assert!(ids(&alice_sync["device_lists"]["changed"]).contains(&bob.user), "{alice_sync}");
    let bob_sync = bob.client.sync(Some(&bob_token), 0).await;
    assert!(ids(&bob_sync["device_lists"]["changed"]).contains(&alice.user), "{bob_sync}");
    let bob_token = bob_sync["next_batch"].as_str().expect("token").to_owned();

    // Alice's new device uploads keys: Bob hears of it, even while waiting.
    let alice2 = alice.login_again(&server).await;
    let waiting = {
        let client = bob.client.clone();
        let token = bob_token.clone();
        tokio::spawn(async move { client.sync(Some(&token), 20_000).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice2.upload(json!({ "device_keys": alice2.device_keys() })).await.ok();
    let woken = waiting.await.expect("sync task");
    assert!(ids(&woken["device_lists"]["changed"]).contains(&alice.user), "{woken}");
    let after_upload = woken["next_batch"].as_str().expect("token").to_owned();
    let changes = bob
        .client
        .get(&format!("/_matrix/client/v3/keys/changes?from={bob_token}&to={after_upload}"))
        .await
        .ok();
    assert!(ids(&changes["changed"]).contains(&alice.user), "{changes}");
    assert_eq!(
        bob.query(&alice.user).await["device_keys"][&alice.user].as_object().map(|d| d.len()),
        Some(2)
    );

    // Deleting the device removes its keys and tells Bob.
    let path = format!("/_matrix/client/v3/devices/{}", alice2.device);
    let challenge = alice.client.request(reqwest::Method::DELETE, &path, Some(json!({}))).await;
    assert_eq!(challenge.status, 401);
    let auth = json!({ "auth": {
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": alice.user },
        "password": "correct horse battery",
        "session": challenge.body["session"],
    }});
    alice.client.request(reqwest::Method::DELETE, &path, Some(auth)).await.ok();
    let bob_sync = bob.client.sync(Some(&after_upload), 0).await;
    assert!(ids(&bob_sync["device_lists"]["changed"]).contains(&alice.user), "{bob_sync}");
    let devices = bob.query(&alice.user).await["device_keys"][&alice.user].clone();
    assert!(
        devices.get(&alice2.device).is_none() && devices.get(&alice.device).is_some(),
        "{devices}"
    );

    // Bob leaves the only room they share: Alice sees him in `left`.
    let alice_token =
        alice.client.sync(None, 0).await["next_batch"].as_str().expect("token").to_owned();
    bob.client
        .post(&format!("/_matrix/client/v3/rooms/{}/leave", relais_tests::enc(&room)), json!({}))
        .await
        .ok();
    let alice_sync = alice.client.sync(Some(&alice_token), 0).await;
    assert!(ids(&alice_sync["device_lists"]["left"]).contains(&bob.user), "{alice_sync}");
}

/// Cross-signing keys for `device`'s user: master, self-signing and user-signing, each signed
/// as the spec requires.
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

    fn upload_body(&self, user: &str) -> Value {
        json!({
            "master_key": self.key(user, "master", &self.master),
            "self_signing_key": self.key(user, "self_signing", &self.self_signing),
            "user_signing_key": self.key(user, "user_signing", &self.user_signing),
        })
    }
}

#[tokio::test]
async fn cross_signing_keys_and_signatures() {
    let server = TestServer::start();
    let alice = Device::register(&server, "alice").await;
    let bob = Device::register(&server, "bob").await;
    let device_keys = alice.device_keys();
    alice.upload(json!({ "device_keys": device_keys.clone() })).await.ok();

    // A self-signing key not signed by the master key is refused.
    let alice_cs = CrossSigning::new();
    let mut unsigned_ssk = alice_cs.upload_body(&alice.user);
    unsigned_ssk["self_signing_key"]["signatures"] = json!({});
    let path = "/_matrix/client/v3/keys/device_signing/upload";
    alice.client.post(path, unsigned_ssk).await.err(400, "M_INVALID_SIGNATURE");
    // The first upload needs no user-interactive auth (MSC3967).
    alice.client.post(path, alice_cs.upload_body(&alice.user)).await.ok();
    let seen_by_bob = bob.query(&alice.user).await;
    assert_eq!(seen_by_bob["master_keys"][&alice.user]["usage"], json!(["master"]));
    assert!(seen_by_bob["self_signing_keys"][&alice.user].is_object());
    assert!(
        seen_by_bob["user_signing_keys"].get(&alice.user).is_none(),
        "user-signing keys are private"
    );
    assert!(alice.query(&alice.user).await["user_signing_keys"][&alice.user].is_object());

    // Replacing them needs the password.
    let replacement = CrossSigning::new();
    let challenge = alice.client.post(path, replacement.upload_body(&alice.user)).await;
    assert_eq!(challenge.status, 401, "{}", challenge.body);
    // An identical re-upload is not a replacement.
    alice.client.post(path, alice_cs.upload_body(&alice.user)).await.ok();

    // Alice signs her device with her self-signing key.
    let ssk_id = format!("ed25519:{}", alice_cs.self_signing.public());
    let mut signed_device = device_keys.clone();
    signed_device.as_object_mut().expect("object").remove("signatures");
    alice_cs.self_signing.sign(&alice.user, &ssk_id, &mut signed_device);
    let mut forged = device_keys.clone();
    forged.as_object_mut().expect("object").remove("signatures");
    Signer::new().sign(&alice.user, &ssk_id, &mut forged);
    let sigs = "/_matrix/client/v3/keys/signatures/upload";
    let reply =
        alice.client.post(sigs, json!({ &alice.user: { &alice.device: forged } })).await.ok();
    assert_eq!(
        reply["failures"][&alice.user][&alice.device]["errcode"], "M_INVALID_SIGNATURE",
        "{reply}"
    );
    let reply = alice
        .client
        .post(sigs, json!({ &alice.user: { &alice.device: signed_device } }))
        .await
        .ok();
    assert!(reply["failures"].as_object().is_none_or(|f| f.is_empty()), "{reply}");
    let seen = bob.query(&alice.user).await;
    let signatures = &seen["device_keys"][&alice.user][&alice.device]["signatures"][&alice.user];
    assert!(signatures[&ssk_id].is_string(), "{seen}");
    assert!(signatures[format!("ed25519:{}", alice.device)].is_string(), "self-signature kept");

    // Bob signs Alice's master key with his user-signing key: only Bob sees that signature.
    let bob_cs = CrossSigning::new();
    bob.client.post(path, bob_cs.upload_body(&bob.user)).await.ok();
    let mut master = seen["master_keys"][&alice.user].clone();
    let usk_id = format!("ed25519:{}", bob_cs.user_signing.public());
    bob_cs.user_signing.sign(&bob.user, &usk_id, &mut master);
    let reply = bob
        .client
        .post(sigs, json!({ &alice.user: { alice_cs.master.public(): master } }))
        .await
        .ok();
    assert!(reply["failures"].as_object().is_none_or(|f| f.is_empty()), "{reply}");
    let by_bob = bob.query(&alice.user).await;
    assert!(
        by_bob["master_keys"][&alice.user]["signatures"][&bob.user][&usk_id].is_string(),
        "{by_bob}"
    );
    let by_alice = alice.query(&alice.user).await;
    assert!(
        by_alice["master_keys"][&alice.user]["signatures"].get(&bob.user).is_none(),
        "{by_alice}"
    );

    // With the password, the keys are replaced.
    let auth = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": alice.user },
        "password": "correct horse battery",
        "session": challenge.body["session"],
    });
    let mut body = replacement.upload_body(&alice.user);
    body["auth"] = auth;
    alice.client.post(path, body).await.ok();
    let master = &bob.query(&alice.user).await["master_keys"][&alice.user];
    assert_eq!(
        master["keys"][format!("ed25519:{}", replacement.master.public())],
        replacement.master.public()
    );
}
