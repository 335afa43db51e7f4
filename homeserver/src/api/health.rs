//! Health checks for load balancers and orchestrators: `/health` (both),
//! `/health/live` (liveness: the process answers) and `/health/ready` (readiness: the database
//! reads and RocksDB reports no background error). JSON answers; 503 when not ready.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use http::StatusCode;
use serde_json::json;

use crate::service::Services;

/// The health routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// Whether the server can serve requests, and why not.
fn readiness(services: &Services) -> Result<(), String> {
    // A real read through the storage layer: whether an account that nobody can register exists.
    let probe = services
        .accounts
        .user_id("health-probe")
        .map_err(|e| format!("cannot build the probe: {e}"))?;
    services.accounts.exists(&probe).map_err(|e| format!("database read failed: {e}"))?;
    match services.db.int_property("rocksdb.background-errors") {
        Some(0) | None => Ok(()),
        Some(n) => Err(format!("the database reports {n} background errors")),
    }
}

fn answer(ready: Result<(), String>, live_only: bool) -> Response {
    let (status, body) = match (&ready, live_only) {
        (_, true) => (StatusCode::OK, json!({ "status": "ok", "live": true })),
        (Ok(()), false) => (StatusCode::OK, json!({ "status": "ok", "live": true, "ready": true })),
        (Err(reason), false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "live": true, "ready": false, "reason": reason }),
        ),
    };
    (status, Json(body)).into_response()
}

/// `GET /health`: liveness and readiness together.
async fn health(State(services): State<Arc<Services>>) -> Response {
    answer(readiness(&services), false)
}

/// `GET /health/live`: the process answers.
async fn live() -> Response {
    answer(Ok(()), true)
}

/// `GET /health/ready`: the server can serve requests.
async fn ready(State(services): State<Arc<Services>>) -> Response {
    answer(readiness(&services), false)
}
