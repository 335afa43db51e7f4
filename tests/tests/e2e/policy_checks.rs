//! The policy check interface, end to end: a policy service run inside the test speaks the
//! protocol of Synapse's HTTP antispam module (`docs/policy-checks.md`), and the server obeys it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use relais_tests::{TestServer, enc};
use serde_json::{Value, json};

const TOKEN: &str = "policy-s3cret-token";

/// What the test service answers to one check.
enum Answer {
    Allow,
    /// A refusal: status and JSON body.
    Refuse(u16, Value),
    /// Waits this long, then allows.
    Sleep(Duration),
}

/// One check the service received.
#[derive(Clone, Debug)]
struct Seen {
    callback: String,
    body: Value,
    authorization: Option<String>,
}

type Decide = dyn Fn(&str, &Value) -> Answer + Send + Sync;

#[derive(Clone)]
struct Service {
    seen: Arc<Mutex<Vec<Seen>>>,
    decide: Arc<Decide>,
}

impl Service {
    /// The checks received for `callback`, in order.
    fn seen(&self, callback: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.callback == callback).cloned().collect()
    }
}

async fn answer(
    State(service): State<Service>,
    Path(callback): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    service.seen.lock().unwrap().push(Seen {
        callback: callback.clone(),
        body: body.clone(),
        authorization,
    });
    match (service.decide)(&callback, &body) {
        Answer::Allow => Json(json!({})).into_response(),
        Answer::Refuse(status, body) => {
            (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
        }
        Answer::Sleep(wait) => {
            tokio::time::sleep(wait).await;
            Json(json!({})).into_response()
        }
    }
}

/// Starts a policy service deciding with `decide`; returns its base URL.
async fn policy_service(
    decide: impl Fn(&str, &Value) -> Answer + Send + Sync + 'static,
) -> (String, Service) {
    let service = Service { seen: Arc::default(), decide: Arc::new(decide) };
    let app = Router::new().route("/policy/{callback}", post(answer)).with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/policy", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, service)
}

/// A server asking the service at `url`, with `extra` settings.
fn server(url: &str, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("RELAIS_POLICY_CHECKS__URL", url),
        ("RELAIS_POLICY_CHECKS__TOKEN", TOKEN),
        ("RELAIS_POLICY_CHECKS__TIMEOUT_MS", "500"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_capturing_logs(&env)
}

/// The URL of a port nothing listens on.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/policy", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn invite_path(room: &str) -> String {
    format!("/_matrix/client/v3/rooms/{}/invite", enc(room))
}

#[tokio::test]
async fn a_refused_invite_reaches_the_client_with_the_services_message() {
    let (url, service) = policy_service(|callback, body| match callback {
        "user_may_invite" if body["invitee"] == "@bob:localhost" => Answer::Refuse(
            403,
            json!({ "errcode": "M_FORBIDDEN", "error": "bob may not be invited (rule R7)" }),
        ),
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let _carol = server.register("carol").await;
    let room_body = json!({ "preset": "private_chat", "name": "R" });
    let room = alice.create_room(room_body.clone()).await;

    let refused = alice
        .post(&invite_path(&room), json!({ "user_id": "@bob:localhost" }))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "bob may not be invited (rule R7)");
    alice.post(&invite_path(&room), json!({ "user_id": "@carol:localhost" })).await.ok();

    // The documented arguments, with the bearer token.
    let invites = service.seen("user_may_invite");
    assert_eq!(invites.len(), 2);
    assert_eq!(
        invites[0].body,
        json!({ "inviter": "@alice:localhost", "invitee": "@bob:localhost", "room_id": room })
    );
    assert_eq!(invites[0].authorization.as_deref(), Some(&*format!("Bearer {TOKEN}")));
    let create = service.seen("user_may_create_room");
    assert_eq!(create[0].body, json!({ "user_id": "@alice:localhost", "room_config": room_body }));
    let registration = &service.seen("check_registration_for_spam")[0].body;
    assert_eq!(registration["username"], "alice");
    assert_eq!(registration["email_threepid"], Value::Null);
    assert_eq!(registration["request_info"][0][1], "127.0.0.1");
    // The invites of a createRoom are asked about too: the room is made, bob is not invited.
    let refused = alice
        .post("/_matrix/client/v3/createRoom", json!({ "invite": ["@bob:localhost"] }))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "bob may not be invited (rule R7)");
    let bob_sync = bob.sync(None, 0).await;
    assert!(bob_sync["rooms"]["invite"].as_object().is_none_or(|rooms| rooms.is_empty()));
    assert!(!server.logs().contains(TOKEN), "the token is never logged");
}

#[tokio::test]
async fn allowed_actions_proceed_and_joins_and_knocks_are_asked() {
    let (url, service) = policy_service(|_, _| Answer::Allow).await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let carol = server.register("carol").await;
    let room = alice
        .create_room(json!({
            "invite": ["@bob:localhost"],
            "initial_state": [{ "type": "m.room.join_rules", "content": { "join_rule": "knock" } }],
        }))
        .await;
    bob.join(&room).await;
    carol.post(&format!("/_matrix/client/v3/knock/{}", enc(&room)), json!({})).await.ok();

    let joins = service.seen("user_may_join_room");
    assert_eq!(
        joins[0].body,
        json!({ "user": "@bob:localhost", "room": room, "is_invited": true, "is_knock": false })
    );
    assert_eq!(
        joins[1].body,
        json!({ "user": "@carol:localhost", "room": room, "is_invited": false, "is_knock": true })
    );
    assert_eq!(
        service.seen("user_may_invite")[0].body,
        json!({ "inviter": "@alice:localhost", "invitee": "@bob:localhost", "room_id": room }),
        "createRoom's invites are asked about too"
    );
    let rooms = bob.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"], json!([room]));

    // Login is asked about, after the password.
    let login = server
        .client()
        .post(
            "/_matrix/client/v3/login",
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "bob" },
                "password": "correct horse battery",
                "initial_device_display_name": "phone",
            }),
        )
        .await
        .ok();
    assert!(login["access_token"].is_string());
    let checks = service.seen("check_login_for_spam");
    assert_eq!(checks[0].body["user_id"], "@bob:localhost");
    assert_eq!(checks[0].body["initial_display_name"], "phone");
    assert_eq!(checks[0].body["device_id"], Value::Null);
}

#[tokio::test]
async fn a_slow_service_times_out_to_a_refusal() {
    let (url, _service) = policy_service(|callback, _| match callback {
        "user_may_create_room" => Answer::Sleep(Duration::from_secs(5)),
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    let start = Instant::now();
    let refused =
        alice.post("/_matrix/client/v3/createRoom", json!({})).await.err(403, "M_FORBIDDEN");
    assert!(start.elapsed() < Duration::from_secs(4), "the timeout is 500 ms");
    assert_eq!(
        refused["error"],
        "the policy service did not answer in time; this action is refused \
         (policy check user_may_create_room)"
    );
}

#[tokio::test]
async fn a_service_that_is_down_refuses_with_a_clear_message_unless_it_fails_open() {
    let url = closed_port_url().await;
    // Only room creation is gated, so that the users can register.
    let gated = [("RELAIS_POLICY_CHECKS__CALLBACKS", "[\"user_may_create_room\"]")];
    let server = server(&url, &gated);
    let alice = server.register("alice").await;
    let refused =
        alice.post("/_matrix/client/v3/createRoom", json!({})).await.err(403, "M_FORBIDDEN");
    assert_eq!(
        refused["error"],
        "the policy service could not be reached; this action is refused \
         (policy check user_may_create_room)"
    );
    let text = metrics(&server).await;
    let line =
        r#"relais_policy_checks_total{callback="user_may_create_room",outcome="failed_closed"} 1"#;
    assert!(text.contains(line), "{text}");
    drop(server);

    let open = [gated[0], ("RELAIS_POLICY_CHECKS__FAIL_OPEN", "[\"user_may_create_room\"]")];
    let server = self::server(&url, &open);
    let alice = server.register("alice").await;
    alice.create_room(json!({})).await;
    let line =
        r#"relais_policy_checks_total{callback="user_may_create_room",outcome="failed_open"} 1"#;
    assert!(metrics(&server).await.contains(line));
}

/// The server's `/metrics` text.
async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn the_user_directory_hides_users_the_service_refuses() {
    let (url, service) = policy_service(|callback, body| match callback {
        "check_username_for_spam" if body["user_profile"]["user_id"] == "@bobby:localhost" => {
            Answer::Refuse(403, json!({ "errcode": "M_FORBIDDEN" }))
        }
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    server.register("bob").await;
    server.register("bobby").await;
    let found = alice
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": "bob" }))
        .await
        .ok();
    let ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["@bob:localhost"]);
    let checks = service.seen("check_username_for_spam");
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.body["requester_id"] == "@alice:localhost"));
    let profile = &checks.iter().find(|c| c.body["user_profile"]["user_id"] == "@bob:localhost");
    let profile = profile.unwrap().body["user_profile"].as_object().unwrap();
    assert!(profile.contains_key("display_name") && profile.contains_key("avatar_url"));
}

#[tokio::test]
async fn room_creation_can_be_refused_with_the_services_errcode() {
    let (url, _service) = policy_service(|callback, body| match callback {
        "user_may_create_room" if body["room_config"]["name"] == "forbidden" => Answer::Refuse(
            403,
            json!({ "errcode": "M_FORBIDDEN", "error": "this name is reserved", "rule": "names" }),
        ),
        "user_may_create_room" if body["room_config"]["name"] == "too many" => {
            Answer::Refuse(429, json!({ "errcode": "M_LIMIT_EXCEEDED", "error": "one room a day" }))
        }
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    let refused = alice
        .post("/_matrix/client/v3/createRoom", json!({ "name": "forbidden" }))
        .await
        .err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "this name is reserved");
    assert_eq!(refused["rule"], "names", "other fields of the answer reach the client");
    let refused = alice
        .post("/_matrix/client/v3/createRoom", json!({ "name": "too many" }))
        .await
        .err(403, "M_LIMIT_EXCEEDED");
    assert_eq!(refused["error"], "one room a day");
    alice.create_room(json!({ "name": "fine" })).await;
    let rooms = alice.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(rooms["joined_rooms"].as_array().unwrap().len(), 1, "refused rooms do not exist");
}

#[tokio::test]
async fn state_events_and_publication_are_asked_about() {
    let (url, service) = policy_service(|callback, body| match callback {
        "user_may_send_state_event" if body["event_type"] == "m.room.join_rules" => {
            Answer::Refuse(403, json!({ "errcode": "M_FORBIDDEN", "error": "rooms stay private" }))
        }
        "user_may_publish_room" => {
            Answer::Refuse(403, json!({ "error": "no publication for this tier" }))
        }
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let alice = server.register("alice").await;
    let room = alice.create_room(json!({})).await;
    let state = |kind: &str| format!("/_matrix/client/v3/rooms/{}/state/{kind}/", enc(&room));

    let content = json!({ "join_rule": "public" });
    let refused =
        alice.put(&state("m.room.join_rules"), content.clone()).await.err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "rooms stay private");
    assert_eq!(
        service.seen("user_may_send_state_event")[0].body,
        json!({
            "user_id": "@alice:localhost", "room_id": room, "event_type": "m.room.join_rules",
            "state_key": "", "content": content,
        })
    );
    alice.put(&state("m.room.topic"), json!({ "topic": "allowed" })).await.ok();

    let listing = format!("/_matrix/client/v3/directory/list/room/{}", enc(&room));
    let refused =
        alice.put(&listing, json!({ "visibility": "public" })).await.err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "no publication for this tier");
    alice.put(&listing, json!({ "visibility": "private" })).await.ok();
    assert_eq!(
        service.seen("user_may_publish_room").iter().map(|s| s.body.clone()).collect::<Vec<_>>(),
        [json!({ "user_id": "@alice:localhost", "room_id": room })],
        "taking a room out of the directory is not asked about"
    );
}

#[tokio::test]
async fn registration_login_and_email_invites_can_be_refused() {
    let (url, service) = policy_service(|callback, body| match callback {
        "check_registration_for_spam" if body["username"] == "mallory" => Answer::Refuse(
            403,
            json!({ "errcode": "M_FORBIDDEN", "error": "not on the staff list" }),
        ),
        "check_login_for_spam" if body["user_id"] == "@bob:localhost" => Answer::Refuse(
            403,
            json!({ "errcode": "M_FORBIDDEN", "error": "bob's account expired" }),
        ),
        "user_may_send_3pid_invite" => {
            Answer::Refuse(403, json!({ "errcode": "M_FORBIDDEN", "error": "no e-mail invites" }))
        }
        _ => Answer::Allow,
    })
    .await;
    let server = server(&url, &[]);
    let client = server.client();
    let register = json!({ "username": "mallory", "password": "correct horse battery" });
    let first = client.post("/_matrix/client/v3/register", register.clone()).await;
    assert_eq!(first.status, 401, "user-interactive auth comes first: {}", first.body);
    let mut second = register;
    second["auth"] = json!({ "type": "m.login.dummy", "session": first.body["session"] });
    let refused = client.post("/_matrix/client/v3/register", second).await.err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "not on the staff list");
    let available = client.get("/_matrix/client/v3/register/available?username=mallory").await;
    assert_eq!(available.ok()["available"], true, "no account was created");

    let alice = server.register("alice").await;
    server.register("bob").await;
    let login = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "bob" },
        "password": "correct horse battery",
    });
    let refused = client.post("/_matrix/client/v3/login", login).await.err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "bob's account expired");

    let room = alice.create_room(json!({})).await;
    let invite = json!({
        "id_server": "id.example.org", "id_access_token": "t",
        "medium": "email", "address": "eve@example.org",
    });
    let refused = alice.post(&invite_path(&room), invite).await.err(403, "M_FORBIDDEN");
    assert_eq!(refused["error"], "no e-mail invites");
    assert_eq!(
        service.seen("user_may_send_3pid_invite")[0].body,
        json!({
            "inviter": "@alice:localhost", "medium": "email", "address": "eve@example.org",
            "room_id": room,
        })
    );
}
