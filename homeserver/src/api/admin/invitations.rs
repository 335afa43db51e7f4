//! Registration invitations: issue, list, withdraw (`/_relais/admin/v1/invitations`).

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::request::Parts;
use relais_policy::UnitId;
use serde::Deserialize;
use serde_json::json;

use super::policy::{blocking, body, caller};
use crate::service::Services;
use crate::{
    api::error::ApiResult,
    service::{ephemeral::now_ms, policy::invitations::NewInvitation},
};

/// `POST /_relais/admin/v1/invitations`: issues an invitation; the token is in the answer only.
pub async fn issue(
    State(services): State<Arc<Services>>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let new: NewInvitation = body(&bytes)?;
    let (token, id, record) =
        blocking(move || services.policy_issue_invitation(&session.user_id, new)).await?;
    Ok(axum::Json(json!({ "token": token, "id": id, "invitation": record })).into_response())
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    unit: String,
}

/// `GET /_relais/admin/v1/invitations?unit=`: the invitations of a unit's subtree (without their
/// tokens, which are not stored), for admins whose scope covers it.
pub async fn list(
    State(services): State<Arc<Services>>,
    Query(query): Query<ListQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let unit = UnitId::from(query.unit.as_str());
    services.check_scope_covers(&session.user_id, &unit)?;
    let directory = services.policy.service.directory();
    let units: Vec<UnitId> = directory
        .units()
        .iter()
        .map(|u| u.id.clone())
        .filter(|u| directory.units().is_in_subtree(u, &unit))
        .collect();
    let now = now_ms();
    let invitations: Vec<_> = services
        .policy
        .service
        .invitations_in(&units)
        .into_iter()
        .map(|(id, record)| json!({ "id": id, "usable": record.is_usable(now), "invitation": record }))
        .collect();
    Ok(axum::Json(json!({ "invitations": invitations })).into_response())
}

#[derive(Deserialize, Default)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// `DELETE /_relais/admin/v1/invitations/{id}`: withdraws an invitation.
pub async fn revoke(
    State(services): State<Arc<Services>>,
    Path(id): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let Reason { reason } = body(&bytes)?;
    blocking(move || services.policy_revoke_invitation(&session.user_id, &id, &reason)).await?;
    Ok(axum::Json(json!({})).into_response())
}
