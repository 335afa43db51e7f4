//! Federation transport between real servers over TLS: keys fetched across servers and through
//! the notary endpoint, `X-Matrix` signatures checked (unsigned, forged, misdirected and tampered
//! requests refused with 401), and the closed-federation allow-list (403 both ways).

use relais_tests::{
    TestServer, enc,
    federation::{
        FederatedServer, ScriptedServer, free_port, https_client, send_raw, start_federation,
    },
    relais_binary,
};
use reqwest::Method;
use serde_json::json;

/// A signed-only endpoint that needs no room: a profile query about a user of `server`.
fn profile_path(server: &FederatedServer) -> String {
    let user = format!("@nobody:{}", server.server_name);
    format!("/_matrix/federation/v1/query/profile?user_id={}&field=displayname", enc(&user))
}

#[tokio::test]
async fn keys_are_fetched_across_servers_and_notarised() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    // B's TLS listener serves the federation routes.
    let version =
        send_raw(&b.federation_url, Method::GET, "/_matrix/federation/v1/version", None, None)
            .await
            .ok();
    assert_eq!(version["server"]["name"], "Relais");
    // A fetches B's keys over TLS and answers as a notary, with both signatures.
    let reply = a.client().get(&format!("/_matrix/key/v2/query/{}", b.server_name)).await.ok();
    let keys = reply["server_keys"].as_array().expect("server_keys");
    assert_eq!(keys.len(), 1, "{reply}");
    assert_eq!(keys[0]["server_name"], b.server_name.as_str());
    let signatures = keys[0]["signatures"].as_object().expect("signatures");
    assert!(signatures.contains_key(&b.server_name), "{reply}");
    assert!(signatures.contains_key(&a.server_name), "{reply}");
    // The batch form answers the same, from A's store.
    let batch = a
        .client()
        .post("/_matrix/key/v2/query", json!({ "server_keys": { b.server_name.clone(): {} } }))
        .await
        .ok();
    assert_eq!(batch["server_keys"][0]["server_name"], b.server_name.as_str(), "{batch}");
    // A notary query about A itself answers A's own keys.
    let own = a.client().get(&format!("/_matrix/key/v2/query/{}", a.server_name)).await.ok();
    assert_eq!(own["server_keys"][0]["server_name"], a.server_name.as_str(), "{own}");
}

#[tokio::test]
async fn a_server_signs_its_requests_and_the_other_verifies_them() {
    let servers = start_federation(2);
    let (a, b) = (&servers[0], &servers[1]);
    let bob = b.register("bob").await;
    let bob_id = bob.user_id().await;
    bob.put(
        &format!("/_matrix/client/v3/profile/{}/displayname", enc(&bob_id)),
        json!({ "displayname": "Bob of B" }),
    )
    .await
    .ok();
    // A asks B over federation (a signed request; B fetches A's key to check it).
    let alice = a.register("alice").await;
    let profile = alice.get(&format!("/_matrix/client/v3/profile/{}", enc(&bob_id))).await.ok();
    assert_eq!(profile["displayname"], "Bob of B", "{profile}");
}

// Multi-threaded: the HTTP/2 client must answer the server's shutdown (GOAWAY and ping) while
// the test thread blocks in `restart`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_shuts_down_and_comes_back_with_the_same_key() {
    let mut a = FederatedServer::start(&[]);
    let keys_path = "/_matrix/key/v2/server";
    let before = send_raw(&a.federation_url, Method::GET, keys_path, None, None).await.ok();
    // SIGTERM: both listeners stop and drain (restart fails if the process does not exit).
    a.server.restart();
    let after = send_raw(&a.federation_url, Method::GET, keys_path, None, None).await.ok();
    assert_eq!(before["verify_keys"], after["verify_keys"]);
    assert_eq!(after["server_name"], a.server_name.as_str());
}

#[tokio::test]
async fn signed_requests_are_verified() {
    let a = FederatedServer::start(&[]);
    let scripted = ScriptedServer::start().await;
    let path = profile_path(&a);
    // A signed request passes authentication (the user is unknown: not a 401 or 403).
    let reply = scripted.request(&a, Method::GET, &path, None).await;
    assert!(![401, 403].contains(&reply.status), "signed request refused: {reply:?}");
    // A signed request with a JSON body.
    let body = json!({ "device_keys": {} });
    let reply = scripted
        .request(&a, Method::POST, "/_matrix/federation/v1/user/keys/query", Some(body))
        .await;
    assert!(![401, 403].contains(&reply.status), "signed request with body refused: {reply:?}");
    // Unsigned.
    send_raw(&a.federation_url, Method::GET, &path, None, None).await.err(401, "M_UNAUTHORIZED");
    // Signed with a key that is not the origin's.
    let forged = scripted.forged_x_matrix(&a.server_name, &Method::GET, &path, None);
    send_raw(&a.federation_url, Method::GET, &path, None, Some(&forged))
        .await
        .err(401, "M_UNAUTHORIZED");
    // Signed for another destination.
    let misdirected = scripted.x_matrix("localhost:1", &Method::GET, &path, None);
    send_raw(&a.federation_url, Method::GET, &path, None, Some(&misdirected))
        .await
        .err(401, "M_UNAUTHORIZED");
    // Signed for another path.
    let other =
        scripted.x_matrix(&a.server_name, &Method::GET, "/_matrix/federation/v1/version", None);
    send_raw(&a.federation_url, Method::GET, &path, None, Some(&other))
        .await
        .err(401, "M_UNAUTHORIZED");
    // Signed over another body.
    let signed_body = json!({ "device_keys": {} });
    let sent_body = json!({ "device_keys": { "@x:localhost": [] } });
    let keys_path = "/_matrix/federation/v1/user/keys/query";
    let header = scripted.x_matrix(&a.server_name, &Method::POST, keys_path, Some(&signed_body));
    send_raw(&a.federation_url, Method::POST, keys_path, Some(&sent_body), Some(&header))
        .await
        .err(401, "M_UNAUTHORIZED");
    // Garbage in the header.
    send_raw(&a.federation_url, Method::GET, &path, None, Some("X-Matrix origin=x"))
        .await
        .err(401, "M_UNAUTHORIZED");
}

#[tokio::test]
async fn an_ip_literal_server_name_is_reached_directly() {
    let a = FederatedServer::start(&[]);
    let b = FederatedServer::start_named("127.0.0.1", free_port(), &[]);
    // A reaches B at its IP address, whose certificate carries it.
    let reply = a.client().get(&format!("/_matrix/key/v2/query/{}", b.server_name)).await.ok();
    assert_eq!(reply["server_keys"][0]["server_name"], b.server_name.as_str(), "{reply}");
    // And B reaches A to check A's signed requests.
    let bob = b.register("bob").await;
    let bob_id = bob.user_id().await;
    let alice = a.register("alice").await;
    let path = format!("/_matrix/client/v3/profile/{}", enc(&bob_id));
    bob.put(&format!("{path}/displayname"), json!({ "displayname": "Bob" })).await.ok();
    assert_eq!(alice.get(&path).await.ok()["displayname"], "Bob");
}

#[tokio::test]
async fn certificates_are_checked_unless_turned_off() {
    let b = FederatedServer::start(&[]);
    let query = format!("/_matrix/key/v2/query/{}", b.server_name);
    // Without the test CA among its roots, A refuses B's certificate: no keys.
    let strict = FederatedServer::start(&[("RELAIS_FEDERATION__TLS__CA_FILE", "")]);
    let reply = strict.client().get(&query).await.ok();
    assert_eq!(reply["server_keys"], json!([]), "{reply}");
    // With the check turned off (tests only), the same certificate is accepted.
    let lax = FederatedServer::start(&[
        ("RELAIS_FEDERATION__TLS__CA_FILE", ""),
        ("RELAIS_FEDERATION__TLS__VERIFY_CERTIFICATES", "false"),
    ]);
    let reply = lax.client().get(&query).await.ok();
    assert_eq!(reply["server_keys"][0]["server_name"], b.server_name.as_str(), "{reply}");
}

#[tokio::test]
async fn keys_of_an_unreachable_server_come_from_a_notary() {
    let notary = FederatedServer::start(&[]);
    let scripted = ScriptedServer::start().await;
    // The notary fetches and stores the scripted server's keys while it is up.
    let query = format!("/_matrix/key/v2/query/{}", scripted.server_name);
    notary.client().get(&query).await.ok();
    scripted.stop_serving_keys();
    tokio::task::yield_now().await;
    let direct = format!("https://{}/_matrix/key/v2/server", scripted.server_name);
    assert!(https_client().get(&direct).send().await.is_err(), "still reachable");
    let a = FederatedServer::start(&[(
        "RELAIS_FEDERATION__TRUSTED_KEY_SERVERS",
        &format!("[\"{}\"]", notary.server_name),
    )]);
    // A cannot reach the scripted server: it gets the keys from the notary, checks both
    // signatures, and countersigns them in turn.
    let reply = a.client().get(&query).await.ok();
    let keys = &reply["server_keys"][0];
    assert_eq!(keys["server_name"], scripted.server_name.as_str(), "{reply}");
    let signatures = keys["signatures"].as_object().expect("signatures");
    assert!(signatures.contains_key(&scripted.server_name), "{reply}");
    assert!(signatures.contains_key(&a.server_name), "{reply}");
    // And it checks the scripted server's requests with them.
    let reply = scripted.request(&a, Method::GET, &profile_path(&a), None).await;
    assert!(![401, 403].contains(&reply.status), "signed request refused: {reply:?}");
}

#[tokio::test]
async fn only_partners_are_served_and_asked() {
    let (port_a, port_b) = (free_port(), free_port());
    let name_b = format!("localhost:{port_b}");
    let name_a = format!("localhost:{port_a}");
    let a = FederatedServer::start_on(
        port_a,
        &[("RELAIS_FEDERATION__ALLOWED_SERVERS", &format!("[\"{name_b}\"]"))],
    );
    let b = FederatedServer::start_on(
        port_b,
        &[("RELAIS_FEDERATION__ALLOWED_SERVERS", &format!("[\"{name_a}\"]"))],
    );
    let stranger = ScriptedServer::start().await;
    // A stranger's signed request is refused before its key is even fetched.
    let reply = stranger.request(&a, Method::GET, &profile_path(&a), None).await;
    let body = reply.err(403, "M_FORBIDDEN");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("not a partner"), "{body}");
    // A does not ask strangers (here: for their keys), but asks its partner.
    let body = a
        .client()
        .get(&format!("/_matrix/key/v2/query/{}", stranger.server_name))
        .await
        .err(403, "M_FORBIDDEN");
    assert!(body["error"].as_str().unwrap_or_default().contains("not a partner"), "{body}");
    let reply = a.client().get(&format!("/_matrix/key/v2/query/{}", b.server_name)).await.ok();
    assert_eq!(reply["server_keys"][0]["server_name"], b.server_name.as_str(), "{reply}");
}

#[tokio::test]
async fn a_server_without_federation_refuses_signed_requests() {
    let server = TestServer::start();
    let scripted = ScriptedServer::start().await;
    let path =
        "/_matrix/federation/v1/query/profile?user_id=%40nobody%3Alocalhost&field=displayname";
    let header = scripted.x_matrix("localhost", &Method::GET, path, None);
    let reply = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .header("Authorization", header)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 403);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["errcode"], "M_FORBIDDEN", "{body}");
    // Its own keys are still served.
    server.client().get("/_matrix/key/v2/server").await.ok();
}

/// Every route whose scheme is `server_signatures` (listed by `relais routes`, so a new endpoint
/// is covered without being added here) refuses unsigned and forged requests (401) and a
/// stranger's (403), and gets past authentication with a valid signature (no 401).
#[tokio::test]
async fn every_signed_route_checks_the_signature_and_the_partners() {
    let output = std::process::Command::new(relais_binary()).arg("routes").output().unwrap();
    assert!(output.status.success());
    let routes: Vec<(Method, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|route| route["auth"] == "server_signatures")
        .map(|route| {
            let method = route["method"].as_str().unwrap().parse().unwrap();
            (method, concrete(route["path"].as_str().unwrap()))
        })
        .collect();
    assert!(routes.len() > 20, "only {} signed routes listed", routes.len());
    let open = FederatedServer::start(&[]);
    let partner = format!("[\"localhost:{}\"]", free_port());
    let closed = FederatedServer::start(&[("RELAIS_FEDERATION__ALLOWED_SERVERS", &partner)]);
    let scripted = ScriptedServer::start().await;
    let mut failures = Vec::new();
    for (method, path) in &routes {
        let body = (*method != Method::GET).then(|| json!({}));
        let body = body.as_ref();
        let url = &open.federation_url;
        let unsigned = send_raw(url, method.clone(), path, body, None).await;
        let header = scripted.forged_x_matrix(&open.server_name, method, path, body);
        let forged = send_raw(url, method.clone(), path, body, Some(&header)).await;
        let stranger = scripted.request(&closed, method.clone(), path, body.cloned()).await;
        for (who, reply, status, errcode) in [
            ("unsigned", &unsigned, 401, "M_UNAUTHORIZED"),
            ("forged", &forged, 401, "M_UNAUTHORIZED"),
            ("stranger", &stranger, 403, "M_FORBIDDEN"),
        ] {
            if reply.status != status || reply.body["errcode"] != errcode {
                failures.push(format!("{method} {path} {who}: {} {}", reply.status, reply.body));
            }
        }
        let signed = scripted.request(&open, method.clone(), path, body.cloned()).await;
        if signed.status == 401 {
            failures.push(format!("{method} {path} signed: {} {}", signed.status, signed.body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The path with every parameter filled with a valid segment.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str(&enc("!x:localhost"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
