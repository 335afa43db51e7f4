//! The service's HTTP side: the policy checks the homeserver asks
//! (`POST /_relais/policy/v1/check/{callback}`, the protocol of `docs/policy-checks.md`) and the
//! application service API the homeserver pushes events with (`/_matrix/app/v1/...`).

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Instance, Shared, config::CHECKS_PATH, lookup::HttpLookup, metrics::Outcome, now_ms};
use crate::checks::{self, Callback, Check, UserMayJoinRoom};

/// The arguments of `synapse-http-antispam`'s `accept_make_join`.
#[derive(Deserialize)]
struct AcceptMakeJoin {
    user: ruma::OwnedUserId,
    room: ruma::OwnedRoomId,
}

/// How long a request waits for the directory to be loaded at start-up.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Largest transaction accepted, in bytes.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(&format!("{CHECKS_PATH}/{{callback}}"), post(check))
        .route("/_matrix/app/v1/transactions/{txn_id}", put(transaction))
        .route("/_matrix/app/v1/ping", post(ping))
        .route("/_matrix/app/v1/users/{user_id}", get(nothing_on_demand))
        .route("/_matrix/app/v1/rooms/{alias}", get(nothing_on_demand))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(unrecognized)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// A Matrix error answer.
fn error(status: StatusCode, errcode: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "errcode": errcode, "error": message.into() }))).into_response()
}

/// Whether `presented` is `expected`, compared in constant time (on digests, so that the
/// lengths do not leak either).
fn same_secret(presented: &str, expected: &str) -> bool {
    Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes())).into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// Why a request's token names no homeserver.
#[derive(Clone, Copy)]
enum TokenError {
    Missing,
    Unknown,
}

impl TokenError {
    fn response(self, what: &str) -> Response {
        match self {
            Self::Missing => {
                error(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", format!("missing {what}"))
            }
            Self::Unknown => error(StatusCode::FORBIDDEN, "M_FORBIDDEN", format!("unknown {what}")),
        }
    }
}

/// The index of the homeserver whose token a request presents: the `hs_token` of the
/// application service API or the token of the policy checks. Every token is compared, in
/// constant time.
fn instance_by_token(
    shared: &Shared,
    presented: Option<&str>,
    token_of: impl Fn(&Instance) -> &str,
) -> Result<usize, TokenError> {
    let presented = presented.ok_or(TokenError::Missing)?;
    let mut found = None;
    for (index, instance) in shared.instances.iter().enumerate() {
        if same_secret(presented, token_of(instance)) {
            found = Some(index);
        }
    }
    found.ok_or(TokenError::Unknown)
}

/// The homeserver whose `hs_token` the request presents (in the `Authorization` header or,
/// from older homeservers, the query).
fn homeserver_of(
    shared: &Shared,
    headers: &HeaderMap,
    query: &TokenQuery,
) -> Result<usize, TokenError> {
    let presented = bearer(headers).or(query.access_token.as_deref());
    instance_by_token(shared, presented, |i| &i.server.hs_token)
}

/// Waits for the directory; the answer that the service is still starting if it takes too long.
async fn still_starting(instance: &Instance) -> Option<Response> {
    let mut ready = instance.ready.clone();
    match tokio::time::timeout(READY_WAIT, ready.wait_for(|loaded| *loaded)).await {
        Ok(Ok(_)) => None,
        _ => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNKNOWN",
            "the policy service is starting: its directory is not loaded yet",
        )),
    }
}

/// `POST /_relais/policy/v1/check/{callback}`: 200 `{}` allows; 403 with the rule refuses.
async fn check(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let index = match instance_by_token(&shared, bearer(&headers), |i| &i.server.checks_token) {
        Ok(index) => index,
        Err(refused) => return refused.response("checks token"),
    };
    let instance = &shared.instances[index];
    let parsed = match name.as_str() {
        // `synapse-http-antispam`'s start-up ping.
        "ping" => {
            let id = serde_json::from_slice::<Value>(&body).ok().and_then(|b| b.get("id").cloned());
            return Json(json!({ "id": id, "status": "ok" })).into_response();
        }
        // Callbacks that module also sends, on which the rule book says nothing: messages and
        // room aliases are never refused by the policy.
        "check_event_for_spam" | "user_may_create_room_alias" => {
            return Json(json!({})).into_response();
        }
        // Another server asks to join a room of this one for its user: the join rules (M1)
        // with the tier of that user's server.
        "accept_make_join" => serde_json::from_slice::<AcceptMakeJoin>(&body).map(|args| {
            Check::UserMayJoinRoom(UserMayJoinRoom {
                user: args.user,
                room: args.room,
                is_invited: false,
                is_knock: false,
            })
        }),
        _ => match Callback::from_name(&name) {
            Some(callback) => Check::parse(callback, &body),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "M_UNRECOGNIZED",
                    format!("unknown policy check {name:?}"),
                );
            }
        },
    };
    let check = match parsed {
        Ok(check) => check,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "M_BAD_JSON",
                format!("invalid arguments for {name}: {e}"),
            );
        }
    };
    // The bot passes every check; it answers at once, since the bot builds the directory
    // (the unit rooms) before the rest can be decided.
    let bot = instance.follower.service().bot();
    if check.actor().is_some_and(|actor| actor.as_str() == bot.as_str()) {
        return Json(json!({})).into_response();
    }
    if let Some(starting) = still_starting(instance).await {
        return starting;
    }
    let callback = check.callback();
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Handle::current();
    let decider = shared.clone();
    let decision = tokio::task::spawn_blocking(move || {
        let instance = &decider.instances[index];
        let service = instance.follower.service();
        let lookup =
            HttpLookup::new(&instance.homeserver, service, &instance.server.server_name, runtime);
        checks::decide(service, &lookup, &check, now_ms())
    })
    .await;
    let server = instance.server.server_name.as_str();
    let count = |outcome| shared.metrics.check(server, &name, outcome, started.elapsed());
    match decision {
        Ok(Ok(relais_policy::Decision::Allow)) => {
            count(Outcome::Allowed);
            Json(json!({})).into_response()
        }
        Ok(Ok(denied)) => {
            count(Outcome::Refused);
            tracing::info!(%callback, rule = ?denied.rule(), "refused");
            (StatusCode::FORBIDDEN, Json(checks::refusal_body(&denied))).into_response()
        }
        Ok(Err(lookup)) => {
            count(Outcome::Undecided);
            tracing::warn!(%callback, error = %lookup, "check not decided");
            (StatusCode::SERVICE_UNAVAILABLE, Json(checks::undecided_body(&lookup))).into_response()
        }
        Err(panic) => {
            tracing::error!(%callback, error = %panic, "check failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "the check failed")
        }
    }
}

#[derive(Deserialize)]
struct Transaction {
    #[serde(default)]
    events: Vec<Value>,
}

/// `PUT /_matrix/app/v1/transactions/{txnId}`: directory records among the events update the
/// index. Applying a transaction twice changes nothing, so retries need no bookkeeping.
async fn transaction(
    State(shared): State<Arc<Shared>>,
    Path(txn_id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let instance = match homeserver_of(&shared, &headers, &query) {
        Ok(index) => &shared.instances[index],
        Err(refused) => return refused.response("hs_token"),
    };
    let transaction: Transaction = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "M_BAD_JSON",
                format!("invalid transaction: {e}"),
            );
        }
    };
    if let Some(starting) = still_starting(instance).await {
        return starting;
    }
    let changed = transaction.events.iter().filter(|event| instance.follower.apply(event)).count();
    shared.metrics.transaction(changed);
    if changed > 0 {
        tracing::info!(txn_id, records = changed, "directory updated");
    }
    Json(json!({})).into_response()
}

/// `POST /_matrix/app/v1/ping`.
async fn ping(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    match homeserver_of(&shared, &headers, &query) {
        Ok(_) => Json(json!({})).into_response(),
        Err(refused) => refused.response("hs_token"),
    }
}

/// `GET /_matrix/app/v1/users/{userId}` and `/rooms/{alias}`: the service creates no users or
/// rooms on demand.
async fn nothing_on_demand(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = homeserver_of(&shared, &headers, &query) {
        return refused.response("hs_token");
    }
    error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "the policy service creates nothing on demand")
}

/// `GET /health`: whether every homeserver's directory is loaded.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let loaded = shared.instances.iter().all(|i| *i.ready.borrow());
    let status = if loaded { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "directory_loaded": loaded }))).into_response()
}

/// `GET /metrics`: Prometheus's text format, without authentication, like `/health` (bind the
/// service to a private address).
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let directories: Vec<_> = shared
        .instances
        .iter()
        .map(|i| {
            let users = i.follower.service().directory().parts().users.len();
            (i.server.server_name.clone(), users, *i.ready.borrow())
        })
        .collect();
    let text = shared.metrics.render(&directories);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn unrecognized() -> Response {
    error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED", "unrecognized request")
}
