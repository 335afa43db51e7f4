//! Synapse's registration token admin API (`docs/admin_api/registration_tokens.md`) over the
//! policy's registration invitations, so that synapse-admin can list, create, change and delete
//! them, scoped by delegation.
//!
//! Differences, which follow from how Relais keeps invitations:
//! - a token is shown once, when created; only its hash is stored. Lists and lookups show the
//!   invitation's ID (the hash) in `token`, and every endpoint takes either the token or that ID.
//! - a Synapse token carries no tier: it creates `guest` accounts (sponsored by the admin who
//!   created it) in the admin's unit (a server admin's: the tree's root), unless `fr.relais.tier`
//!   and `fr.relais.unit` say otherwise.
//! - `uses_allowed: null` (unlimited) and `expiry_time: null` (never) are kept as the largest
//!   count and the latest date an event can hold; `pending` is always 0.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http::request::Parts;
use relais_appservice::records::InvitationRecord;
use relais_policy::Tier;
use serde::Deserialize;
use serde_json::{Value, json};

use super::policy::{blocking, body, caller};
use crate::{
    api::error::{ApiError, ApiResult},
    service::{
        Services,
        ephemeral::now_ms,
        policy::invitations::{InvitationChange, NewInvitation},
    },
};

/// Synapse's default length of a generated token is not used: Relais's tokens come from its own
/// generator. Lengths outside Synapse's bounds are still refused, as Synapse does.
const MAX_LENGTH: u64 = 64;

/// "Never expires": the latest time a Matrix event (canonical JSON) can hold.
const NEVER: u64 = 9_007_199_254_740_991;

/// The registration token routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/_synapse/admin/v1/registration_tokens", get(list))
        .route("/_synapse/admin/v1/registration_tokens/new", post(create))
        .route(
            "/_synapse/admin/v1/registration_tokens/{token}",
            get(show).put(change).delete(remove),
        )
}

/// An invitation in Synapse's shape: the unlimited and never-expiring values shown as `null`.
fn token_json(token: &str, record: &InvitationRecord) -> Value {
    let allowed = record.uses_allowed.filter(|a| *a != u32::MAX);
    let completed = record.uses_allowed.map_or(0, |a| a.saturating_sub(record.uses_left));
    json!({
        "token": token,
        "uses_allowed": allowed,
        "pending": 0,
        "completed": completed,
        "expiry_time": (record.expires_at_ms < NEVER).then_some(record.expires_at_ms),
        "fr.relais.tier": record.tier,
        "fr.relais.unit": record.unit.as_str(),
        "fr.relais.issued_by": record.issued_by.as_str(),
        "fr.relais.revoked": record.revoked,
    })
}

#[derive(Deserialize, Default)]
struct ListQuery {
    valid: Option<String>,
}

/// `GET /_synapse/admin/v1/registration_tokens[?valid=true|false]`
async fn list(
    State(services): State<Arc<Services>>,
    Query(query): Query<ListQuery>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let valid = match query.valid.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::InvalidParam(format!(
                "valid: expected true or false, got {other:?}"
            )));
        }
    };
    let now = now_ms();
    let s = services.clone();
    let user = session.user_id.clone();
    // Only admins list tokens (an agent may still create guest invitations it sponsors).
    blocking(move || s.admin_scope(&user).map(|_| ())).await?;
    let mut tokens: Vec<(String, InvitationRecord)> = services
        .policy_invitations_for(&session.user_id)
        .into_iter()
        .filter(|(_, r)| !r.revoked)
        .filter(|(_, r)| valid.is_none_or(|v| r.is_usable(now) == v))
        .collect();
    tokens.sort_by(|a, b| a.0.cmp(&b.0));
    let list: Vec<Value> = tokens.iter().map(|(id, r)| token_json(id, r)).collect();
    Ok(axum::Json(json!({ "registration_tokens": list })).into_response())
}

/// What `POST .../new` takes.
#[derive(Deserialize, Default)]
struct NewToken {
    token: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    uses_allowed: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    expiry_time: Option<Option<i64>>,
    length: Option<u64>,
    #[serde(rename = "fr.relais.tier")]
    tier: Option<Tier>,
    #[serde(rename = "fr.relais.unit")]
    unit: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Ok(Some(Option::<i64>::deserialize(d)?))
}

fn uses(value: Option<i64>) -> ApiResult<u32> {
    match value {
        None => Ok(u32::MAX),
        Some(n) if n >= 1 => Ok(u32::try_from(n).unwrap_or(u32::MAX - 1)),
        Some(_) => Err(ApiError::InvalidParam("uses_allowed must be at least 1".into())),
    }
}

fn expiry(value: Option<i64>) -> ApiResult<u64> {
    match value {
        None => Ok(NEVER),
        Some(ms) if u64::try_from(ms).is_ok_and(|ms| ms > now_ms() && ms < NEVER) => {
            Ok(ms.unsigned_abs())
        }
        Some(_) => Err(ApiError::InvalidParam("expiry_time must be in the future".into())),
    }
}

/// `POST /_synapse/admin/v1/registration_tokens/new`
async fn create(
    State(services): State<Arc<Services>>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let new: NewToken = body(&bytes)?;
    if new.length.is_some_and(|l| l == 0 || l > MAX_LENGTH) {
        return Err(ApiError::InvalidParam("length must be between 1 and 64".into()));
    }
    // The creator's unit, or for a server admin outside the tree, its root.
    let unit = new.unit.or_else(|| {
        let own = services.policy_record(&session.user_id).map(|r| r.unit.as_str().to_owned());
        own.or_else(|| {
            let directory = services.policy.service.directory();
            let root = directory.units().iter().find(|u| u.parent.is_none());
            root.map(|u| u.id.as_str().to_owned())
        })
    });
    let invitation = NewInvitation {
        tier: new.tier.unwrap_or(Tier::Guest),
        unit,
        uses: uses(new.uses_allowed.flatten())?,
        valid_days: 0,
        guest_term_days: None,
        reason: "registration token (Synapse admin API)".into(),
        token: new.token,
        expires_at_ms: Some(expiry(new.expiry_time.flatten())?),
    };
    let (token, _, record) =
        blocking(move || services.policy_issue_invitation(&session.user_id, invitation)).await?;
    Ok(axum::Json(token_json(&token, &record)).into_response())
}

/// `GET /_synapse/admin/v1/registration_tokens/{token}`
async fn show(
    State(services): State<Arc<Services>>,
    Path(token): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let (id, record) = find(&services, &token)?;
    services.check_scope_covers(&session.user_id, &record.unit)?;
    Ok(axum::Json(token_json(&id, &record)).into_response())
}

/// What `PUT` takes.
#[derive(Deserialize, Default)]
struct TokenChange {
    #[serde(default, deserialize_with = "nullable")]
    uses_allowed: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    expiry_time: Option<Option<i64>>,
}

/// `PUT /_synapse/admin/v1/registration_tokens/{token}`
async fn change(
    State(services): State<Arc<Services>>,
    Path(token): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let requested: TokenChange = body(&bytes)?;
    let (id, _) = find(&services, &token)?;
    let change = InvitationChange {
        uses_allowed: requested.uses_allowed.map(uses).transpose()?,
        expires_at_ms: requested.expiry_time.map(expiry).transpose()?,
    };
    let shown = id.clone();
    let record =
        blocking(move || services.policy_change_invitation(&session.user_id, &id, change)).await?;
    Ok(axum::Json(token_json(&shown, &record)).into_response())
}

/// `DELETE /_synapse/admin/v1/registration_tokens/{token}`
async fn remove(
    State(services): State<Arc<Services>>,
    Path(token): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let (id, _) = find(&services, &token)?;
    blocking(move || {
        services.policy_revoke_invitation(&session.user_id, &id, "deleted (Synapse admin API)")
    })
    .await?;
    Ok(axum::Json(json!({})).into_response())
}

fn find(services: &Services, token: &str) -> ApiResult<(String, InvitationRecord)> {
    services
        .policy_find_invitation(token)
        .filter(|(_, r)| !r.revoked)
        .ok_or_else(|| ApiError::NotFound("No such registration token".into()))
}
