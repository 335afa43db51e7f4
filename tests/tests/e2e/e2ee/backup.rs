//! Server-side key backups over raw HTTP: versions, the three levels of `room_keys/keys`,
//! `etag` and `count`, and the spec's rules for replacing a stored session key.

use relais_tests::{Reply, TestServer, enc};
use serde_json::{Value, json};

fn algorithm(public_key: &str) -> Value {
    json!({
        "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
        "auth_data": { "public_key": public_key, "signatures": {} },
    })
}

fn session(
    first_message_index: u32,
    forwarded_count: u32,
    is_verified: bool,
    ciphertext: &str,
) -> Value {
    json!({
        "first_message_index": first_message_index,
        "forwarded_count": forwarded_count,
        "is_verified": is_verified,
        "session_data": { "ephemeral": "ZXBoZW1lcmFs", "ciphertext": ciphertext, "mac": "bWFj" },
    })
}

fn etag_count(reply: Reply) -> (String, u64) {
    let body = reply.ok();
    (body["etag"].as_str().expect("etag").to_owned(), body["count"].as_u64().expect("count"))
}

#[tokio::test]
async fn backup_versions_keys_etag_and_replacement_rules() {
    let server = TestServer::start();
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let room = "!room:localhost";
    let keys_path = |level: &str, version: &str| {
        format!("/_matrix/client/v3/room_keys/keys{level}?version={version}")
    };
    let session_level = format!("/{}/{}", enc(room), "sess1");

    alice.get("/_matrix/client/v3/room_keys/version").await.err(404, "M_NOT_FOUND");
    let v1 = alice.post("/_matrix/client/v3/room_keys/version", algorithm("cHVibGlj")).await.ok();
    assert_eq!(v1["version"], "1");
    let info = alice.get("/_matrix/client/v3/room_keys/version").await.ok();
    assert_eq!(info["version"], "1");
    assert_eq!(info["count"], 0);
    assert_eq!(info["auth_data"]["public_key"], "cHVibGlj");
    // Backups are per user.
    bob.get("/_matrix/client/v3/room_keys/version").await.err(404, "M_NOT_FOUND");

    // One session key, then a worse one (higher first index): kept as it was.
    let (etag1, count) = etag_count(
        alice.put(&keys_path(&session_level, "1"), session(5, 0, false, "Zmlyc3Q")).await,
    );
    assert_eq!(count, 1);
    let (etag2, count) = etag_count(
        alice.put(&keys_path(&session_level, "1"), session(9, 0, false, "d29yc2U")).await,
    );
    assert_eq!((count, &etag2), (1, &etag1), "a worse key changes nothing");
    let stored = alice.get(&keys_path(&session_level, "1")).await.ok();
    assert_eq!(stored["session_data"]["ciphertext"], "Zmlyc3Q");
    // A verified key beats an unverified one even with a higher index.
    let (etag3, _) = etag_count(
        alice.put(&keys_path(&session_level, "1"), session(7, 3, true, "dmVyaWZpZWQ")).await,
    );
    assert_ne!(etag3, etag1);
    // Then an unverified one never replaces it; an equal index with fewer forwards does.
    alice.put(&keys_path(&session_level, "1"), session(0, 0, false, "dW52ZXJpZmllZA")).await.ok();
    assert_eq!(
        alice.get(&keys_path(&session_level, "1")).await.ok()["session_data"]["ciphertext"],
        "dmVyaWZpZWQ"
    );
    alice
        .put(&keys_path(&session_level, "1"), session(7, 1, true, "bGVzc2ZvcndhcmRlZA"))
        .await
        .ok();
    assert_eq!(
        alice.get(&keys_path(&session_level, "1")).await.ok()["session_data"]["ciphertext"],
        "bGVzc2ZvcndhcmRlZA"
    );

    // Room level and all-rooms level.
    let room_level = format!("/{}", enc(room));
    let body = json!({ "sessions": { "sess2": session(0, 0, false, "c2Vzc2lvbjI") } });
    let (_, count) = etag_count(alice.put(&keys_path(&room_level, "1"), body).await);
    assert_eq!(count, 2);
    let body = json!({ "rooms": { "!other:localhost": { "sessions": { "sess3": session(0, 0, false, "c2Vzc2lvbjM") } } } });
    let (etag, count) = etag_count(alice.put(&keys_path("", "1"), body).await);
    assert_eq!(count, 3);
    let all = alice.get(&keys_path("", "1")).await.ok();
    assert_eq!(all["rooms"][room]["sessions"].as_object().map(|s| s.len()), Some(2), "{all}");
    assert!(all["rooms"]["!other:localhost"]["sessions"]["sess3"].is_object());
    let in_room = alice.get(&keys_path(&room_level, "1")).await.ok();
    assert_eq!(in_room["sessions"].as_object().map(|s| s.len()), Some(2));
    let info = alice.get("/_matrix/client/v3/room_keys/version/1").await.ok();
    assert_eq!((info["count"].as_u64(), info["etag"].as_str()), (Some(3), Some(etag.as_str())));

    // Deleting at each level updates count and etag.
    let delete = |path: String| {
        let client = alice.clone();
        async move { client.request(reqwest::Method::DELETE, &path, None).await }
    };
    let (etag_after, count) = etag_count(delete(keys_path(&session_level, "1")).await);
    assert_eq!(count, 2);
    assert_ne!(etag_after, etag);
    alice.get(&keys_path(&session_level, "1")).await.err(404, "M_NOT_FOUND");
    let (_, count) = etag_count(delete(keys_path(&room_level, "1")).await);
    assert_eq!(count, 1);

    // A new version becomes current: uploads to the old one are refused with the current one.
    let v2 = alice.post("/_matrix/client/v3/room_keys/version", algorithm("bmV3")).await.ok();
    assert_eq!(v2["version"], "2");
    let refused = alice.put(&keys_path(&session_level, "1"), session(0, 0, false, "b2xk")).await;
    let body = refused.err(403, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(body["current_version"], "2");

    // Updating keeps the algorithm; a different one is refused.
    let mut update = algorithm("dXBkYXRlZA");
    update["version"] = json!("2");
    alice.put("/_matrix/client/v3/room_keys/version/2", update).await.ok();
    assert_eq!(
        alice.get("/_matrix/client/v3/room_keys/version/2").await.ok()["auth_data"]["public_key"],
        "dXBkYXRlZA"
    );
    let other = json!({ "algorithm": "org.example.other", "auth_data": {} });
    alice.put("/_matrix/client/v3/room_keys/version/2", other).await.err(400, "M_INVALID_PARAM");

    // Deleting a version twice succeeds; then the previous one is the latest again.
    delete("/_matrix/client/v3/room_keys/version/2".into()).await.ok();
    delete("/_matrix/client/v3/room_keys/version/2".into()).await.ok();
    alice.get("/_matrix/client/v3/room_keys/version/2").await.err(404, "M_NOT_FOUND");
    assert_eq!(alice.get("/_matrix/client/v3/room_keys/version").await.ok()["version"], "1");
    delete("/_matrix/client/v3/room_keys/version/9".into()).await.err(404, "M_NOT_FOUND");
    let v3 = alice.post("/_matrix/client/v3/room_keys/version", algorithm("dGhpcmQ")).await.ok();
    assert_eq!(v3["version"], "3", "version numbers are not reused");
}
