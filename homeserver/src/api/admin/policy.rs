//! Handlers of the policy admin API: parse, authenticate, call the policy service, map errors.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{HeaderValue, header, request::Parts};
use ruma::{OwnedUserId, api::auth_scheme::AccessToken};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Authenticate,
    },
    service::{
        Services,
        accounts::Session,
        policy::{
            PolicyError,
            admin::{AuditRow, NewAccount, UserChange},
        },
    },
};

/// The authenticated caller.
pub(super) fn caller(services: &Services, parts: &Parts) -> ApiResult<Session> {
    <AccessToken as Authenticate>::authenticate(services, parts)
}

/// The JSON body (an empty body is `{}`).
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadJson(format!("invalid request body: {e}")))
}

pub(super) fn user_id(raw: &str) -> ApiResult<OwnedUserId> {
    OwnedUserId::try_from(raw).map_err(|e| ApiError::InvalidParam(format!("invalid user ID: {e}")))
}

/// Runs blocking policy work off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PolicyError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// `POST /_relais/admin/v1/users`: creates an account with its tier and unit.
pub async fn create_user(
    State(services): State<Arc<Services>>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let new: NewAccount = body(&bytes)?;
    let (user, record) =
        blocking(move || services.policy_create_account(&session.user_id, new)).await?;
    Ok(axum::Json(json!({ "user_id": user, "record": record })).into_response())
}

/// `GET /_relais/admin/v1/users/{userId}`: a user's directory record and delegations, for admins
/// whose scope covers the user's unit.
pub async fn get_user(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    let record = services
        .policy_record(&target)
        .ok_or_else(|| ApiError::NotFound(format!("{target} is not in the directory")))?;
    if session.user_id != target {
        services.check_scope_covers(&session.user_id, &record.unit)?;
    }
    let delegations: Vec<String> = services
        .policy
        .service
        .delegations_of(target.as_str())
        .iter()
        .map(|u| u.as_str().to_owned())
        .collect();
    Ok(axum::Json(json!({ "user_id": target, "record": record, "administers": delegations }))
        .into_response())
}

/// `PUT /_relais/admin/v1/users/{userId}`: changes tier, unit, status (lock, unlock, deactivate)
/// or a guest's expiry.
pub async fn change_user(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    let change: UserChange = body(&bytes)?;
    let record =
        blocking(move || services.policy_change_user(&session.user_id, &target, change)).await?;
    Ok(axum::Json(json!({ "record": record })).into_response())
}

#[derive(Deserialize, Default)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `PUT /_relais/admin/v1/units/{unit}/admins/{userId}`: appoints a delegated admin of the unit.
pub async fn appoint_admin(
    State(services): State<Arc<Services>>,
    Path((unit, target)): Path<(String, String)>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    delegate(services, unit, target, parts, bytes, true).await
}

/// `DELETE /_relais/admin/v1/units/{unit}/admins/{userId}`: withdraws a delegation.
pub async fn remove_admin(
    State(services): State<Arc<Services>>,
    Path((unit, target)): Path<(String, String)>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    delegate(services, unit, target, parts, bytes, false).await
}

async fn delegate(
    services: Arc<Services>,
    unit: String,
    target: String,
    parts: Parts,
    bytes: Bytes,
    active: bool,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    let Reason { reason } = body(&bytes)?;
    blocking(move || services.policy_delegate(&session.user_id, &target, &unit, active, &reason))
        .await?;
    Ok(axum::Json(json!({})).into_response())
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /_relais/admin/v1/units/{unit}/audit?format=json|jsonl|csv`: the audit log of the unit's
/// subtree.
pub async fn audit_log(
    State(services): State<Arc<Services>>,
    Path(unit): Path<String>,
    Query(query): Query<AuditQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let rows = blocking(move || services.policy_audit_log(&session.user_id, &unit)).await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(axum::Json(json!({ "entries": rows })).into_response()),
        "jsonl" => {
            let mut text = String::new();
            for row in &rows {
                text.push_str(&serde_json::to_string(row).unwrap_or_default());
                text.push('\n');
            }
            Ok(with_type(text, "application/jsonl"))
        }
        "csv" => Ok(with_type(csv(&rows), "text/csv; charset=utf-8")),
        other => Err(ApiError::InvalidParam(format!(
            "unknown format {other:?}; expected json, jsonl or csv"
        ))),
    }
}

pub(super) fn with_type(text: String, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The audit log as CSV (RFC 4180: fields quoted, quotes doubled).
fn csv(rows: &[AuditRow]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("ts,event_id,action,actor,authority,target,unit,details,reason\n");
    for row in rows {
        let e = &row.entry;
        let fields = [
            row.ts.to_string(),
            row.event_id.clone(),
            e.action.clone(),
            e.actor.as_str().to_owned(),
            e.authority.clone(),
            e.target.clone(),
            e.unit.as_str().to_owned(),
            e.details.to_string(),
            e.reason.clone(),
        ];
        out.push_str(&fields.iter().map(|f| quote(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> Self {
        match error {
            PolicyError::Refused(message) => Self::Forbidden(message),
            PolicyError::NotFound(message) => Self::NotFound(message),
            PolicyError::BadRequest(message) => Self::InvalidParam(message),
            PolicyError::Service(e) => Self::InvalidParam(e.to_string()),
            PolicyError::Disabled => Self::Unrecognized,
            PolicyError::Storage(e) => e.into(),
            PolicyError::Room(e) => e.into(),
            PolicyError::Account(e) => e.into(),
            PolicyError::Threepid(e) => e.into(),
        }
    }
}
