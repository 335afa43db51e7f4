//! Handlers of the workspace admin API (`/_relais/admin/v1/workspaces...`): create a workspace
//! from a template, and close, lock, archive, transfer, recover it or export its members. Each
//! parses, authenticates, calls one policy service method and maps the errors; the decisions and
//! the audit are the service's.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::request::Parts;
use relais_policy::AccessClass;
use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::json;

use super::policy::{blocking, body, caller, user_id, with_type};
use crate::{
    api::error::{ApiError, ApiResult},
    service::{
        Services,
        policy::{
            workspace_admin::{Freeze, MemberRow},
            workspaces::NewWorkspace,
        },
    },
};

fn room_id(raw: &str) -> ApiResult<OwnedRoomId> {
    OwnedRoomId::try_from(raw).map_err(|e| ApiError::InvalidParam(format!("invalid room ID: {e}")))
}

/// `POST /_relais/admin/v1/workspaces`: creates a workspace from a template (rule W1).
pub async fn create(
    State(services): State<Arc<Services>>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let new: NewWorkspace = body(&bytes)?;
    let created = blocking(move || services.create_workspace(&session.user_id, new)).await?;
    Ok(axum::Json(created).into_response())
}

/// `GET /_relais/admin/v1/workspaces/templates`: the templates of the configuration.
pub async fn templates(State(services): State<Arc<Services>>, parts: Parts) -> ApiResult<Response> {
    caller(&services, &parts)?;
    let templates = &services.config.policy.workspace_templates;
    Ok(axum::Json(json!({ "templates": templates })).into_response())
}

#[derive(Deserialize)]
struct CloseBody {
    /// The class the workspace closes to.
    class: AccessClass,
    #[serde(default)]
    reason: String,
}

/// `POST /_relais/admin/v1/workspaces/{roomId}/close`: closes the workspace to a class (P3) and
/// removes the members it no longer admits.
pub async fn close(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let space = room_id(&space)?;
    let CloseBody { class, reason } = body(&bytes)?;
    let closed =
        blocking(move || services.close_workspace(&session.user_id, &space, class, &reason))
            .await?;
    Ok(axum::Json(closed).into_response())
}

#[derive(Deserialize, Default)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `POST /_relais/admin/v1/workspaces/{roomId}/lock`: makes the workspace read-only.
pub async fn lock(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    freeze(services, space, parts, bytes, Freeze::Lock).await
}

/// `POST /_relais/admin/v1/workspaces/{roomId}/archive`: archives the workspace (read-only).
pub async fn archive(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    freeze(services, space, parts, bytes, Freeze::Archive).await
}

async fn freeze(
    services: Arc<Services>,
    space: String,
    parts: Parts,
    bytes: Bytes,
    freeze: Freeze,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let space = room_id(&space)?;
    let Reason { reason } = body(&bytes)?;
    blocking(move || services.freeze_workspace(&session.user_id, &space, freeze, &reason)).await?;
    Ok(axum::Json(json!({})).into_response())
}

#[derive(Deserialize)]
struct TransferBody {
    /// The unit the workspace moves to.
    unit: String,
    #[serde(default)]
    reason: String,
}

/// `POST /_relais/admin/v1/workspaces/{roomId}/transfer`: moves the workspace to another unit.
pub async fn transfer(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let space = room_id(&space)?;
    let TransferBody { unit, reason } = body(&bytes)?;
    blocking(move || services.transfer_workspace(&session.user_id, &space, &unit, &reason)).await?;
    Ok(axum::Json(json!({})).into_response())
}

#[derive(Deserialize)]
struct RecoverBody {
    /// Who becomes admin; the caller when absent.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /_relais/admin/v1/workspaces/{roomId}/recover`: the policy bot makes the caller (or
/// `user_id`) an admin of the workspace and its rooms.
pub async fn recover(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let space = room_id(&space)?;
    let RecoverBody { user_id: admin, reason } = body(&bytes)?;
    let admin = admin.as_deref().map(user_id).transpose()?;
    let rooms = blocking(move || {
        services.recover_workspace(&session.user_id, &space, admin.as_deref(), &reason)
    })
    .await?;
    Ok(axum::Json(json!({ "rooms": rooms })).into_response())
}

#[derive(Deserialize)]
pub(super) struct ExportQuery {
    #[serde(default)]
    format: Option<String>,
}

/// `GET /_relais/admin/v1/workspaces/{roomId}/members?format=json|csv`: the member list of the
/// workspace and its rooms.
pub async fn members(
    State(services): State<Arc<Services>>,
    Path(space): Path<String>,
    Query(query): Query<ExportQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let space = room_id(&space)?;
    let format = query.format.unwrap_or_else(|| "json".to_owned());
    if format != "json" && format != "csv" {
        return Err(ApiError::InvalidParam(format!(
            "unknown format {format:?}; expected json or csv"
        )));
    }
    let rows =
        blocking(move || services.export_workspace_members(&session.user_id, &space)).await?;
    if format == "csv" {
        return Ok(with_type(csv(&rows), "text/csv; charset=utf-8"));
    }
    Ok(axum::Json(json!({ "members": rows })).into_response())
}

/// The member list as CSV (RFC 4180: fields quoted, quotes doubled).
fn csv(rows: &[MemberRow]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("room_id,user_id,membership,tier,unit,power\n");
    for row in rows {
        let fields = [
            row.room_id.to_string(),
            row.user_id.to_string(),
            row.membership.clone(),
            row.tier.as_str().to_owned(),
            row.unit.as_ref().map(|u| u.as_str().to_owned()).unwrap_or_default(),
            row.power.map_or_else(|| "creator".to_owned(), |p| p.to_string()),
        ];
        out.push_str(&fields.iter().map(|f| quote(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}
