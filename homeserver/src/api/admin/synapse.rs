//! The Synapse-compatible admin API, so that synapse-admin and existing scripts work: the
//! endpoints and response shapes of Synapse's `docs/admin_api/user_admin_api.md` and `rooms.md`,
//! scoped by delegation. A server admin sees everything; a delegated admin only the users and
//! rooms of their units' subtrees; anyone else gets 403 `M_FORBIDDEN`. Every change goes through
//! the decided, audited actions of the policy service.
//!
//! - `GET /_synapse/admin/v2/users`, `GET|PUT /_synapse/admin/v2/users/{userId}`
//! - `POST /_synapse/admin/v1/deactivate/{userId}`
//! - `GET /_synapse/admin/v1/users/{userId}/joined_rooms`
//! - `GET /_synapse/admin/v1/rooms`, `GET /_synapse/admin/v1/rooms/{roomId}/state`
//! - `GET /_synapse/admin/v1/server_version`

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http::{StatusCode, request::Parts};
use relais_policy::{AccountStatus, Tier};
use ruma::{OwnedRoomId, events::room::member::MembershipState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::policy::{blocking, body, caller, user_id};
use crate::{
    api::error::{ApiError, ApiResult},
    service::{
        Services,
        policy::{
            PolicyError,
            user_admin::{AccountUpdate, ManagedUser},
        },
    },
};

/// The Synapse admin routes.
pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/_synapse/admin/v2/users", get(list_users))
        .route("/_synapse/admin/v2/users/{user_id}", get(get_user).put(put_user))
        .route("/_synapse/admin/v1/deactivate/{user_id}", post(deactivate))
        .route("/_synapse/admin/v1/users/{user_id}/joined_rooms", get(joined_rooms))
        .route("/_synapse/admin/v1/rooms", get(list_rooms))
        .route("/_synapse/admin/v1/rooms/{room_id}/state", get(room_state))
        .route("/_synapse/admin/v1/server_version", get(server_version))
}

/// A user in Synapse's shape, plus the policy's record under `fr.relais.*` keys. Synapse's
/// `is_guest` (an anonymous guest account) is the policy's `guest` tier here.
fn user_json(user: &ManagedUser, last_seen: Option<u64>) -> Value {
    let record = user.record.as_ref();
    let status = record.map(|r| r.status);
    json!({
        "name": user.user_id,
        "displayname": user.account.displayname,
        "avatar_url": user.account.avatar_url,
        // Filled in by `GET /users/{userId}`, as Synapse does; lists leave them out.
        "threepids": [],
        "external_ids": [],
        "is_guest": record.is_some_and(|r| r.tier == Tier::Guest),
        "admin": user.admin,
        "deactivated": user.account.deactivated || status == Some(AccountStatus::Deactivated),
        "locked": status == Some(AccountStatus::Locked),
        "erased": false,
        "shadow_banned": false,
        "suspended": false,
        "creation_ts": user.account.created_ts,
        "last_seen_ts": last_seen,
        "appservice_id": null,
        "user_type": null,
        "consent_server_notice_sent": null,
        "consent_version": null,
        "consent_ts": null,
        "fr.relais.tier": record.map(|r| r.tier),
        "fr.relais.unit": record.map(|r| r.unit.as_str()),
        "fr.relais.sponsor": record.and_then(|r| r.sponsor.as_ref()).map(|s| s.as_str()),
        "fr.relais.expires_at_ms": record.and_then(|r| r.expires_at_ms),
    })
}

fn last_seen(services: &Services, user: &ManagedUser) -> Option<u64> {
    let devices = services.accounts.devices(&user.user_id).ok()?;
    devices.iter().filter_map(|d| d.last_seen_ts).max()
}

/// A boolean query parameter as Synapse reads it (`true`/`false`).
fn flag(raw: &Option<String>, default: bool) -> ApiResult<bool> {
    match raw.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => {
            Err(ApiError::InvalidParam(format!("expected true or false, got {other:?}")))
        }
    }
}

#[derive(Deserialize, Default)]
struct ListUsers {
    from: Option<usize>,
    limit: Option<usize>,
    name: Option<String>,
    user_id: Option<String>,
    guests: Option<String>,
    deactivated: Option<String>,
    locked: Option<String>,
    admins: Option<String>,
}

/// `GET /_synapse/admin/v2/users`: the accounts the caller's scope covers, by user ID.
async fn list_users(
    State(services): State<Arc<Services>>,
    Query(query): Query<ListUsers>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let (guests, deactivated) = (flag(&query.guests, true)?, flag(&query.deactivated, false)?);
    let locked = flag(&query.locked, false)?;
    let admins = query.admins.as_ref().map(|a| flag(&Some(a.clone()), false)).transpose()?;
    let (from, limit) = (query.from.unwrap_or(0), query.limit.unwrap_or(100));
    let s = services.clone();
    let users = blocking(move || {
        let scope = s.admin_scope(&session.user_id)?;
        s.managed_users(&scope)
    })
    .await?;
    let contains = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
    let shown: Vec<Value> = users
        .iter()
        .map(|u| (u, user_json(u, None)))
        .filter(|(u, json)| {
            let by_name = match (&query.name, &query.user_id) {
                (Some(name), _) => {
                    contains(u.user_id.localpart(), name)
                        || u.account.displayname.as_deref().is_some_and(|d| contains(d, name))
                }
                (None, Some(id)) => contains(u.user_id.as_str(), id),
                (None, None) => true,
            };
            by_name
                && (guests || json["is_guest"] != true)
                && (deactivated || json["deactivated"] != true)
                && (locked || json["locked"] != true)
                && admins.is_none_or(|a| u.admin == a)
        })
        .map(|(u, mut json)| {
            json["last_seen_ts"] = json!(last_seen(&services, u));
            json
        })
        .collect();
    let total = shown.len();
    let page: Vec<Value> = shown.into_iter().skip(from).take(limit).collect();
    let mut reply = json!({ "users": page, "total": total });
    if from.saturating_add(limit) < total {
        reply["next_token"] = (from + limit).to_string().into();
    }
    Ok(axum::Json(reply).into_response())
}

/// `GET /_synapse/admin/v2/users/{userId}`
async fn get_user(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    let s = services.clone();
    let user = blocking(move || {
        let scope = s.admin_scope(&session.user_id)?;
        s.managed_user(&scope, &target)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    let mut json = user_json(&user, last_seen(&services, &user));
    json["threepids"] = serde_json::to_value(services.threepids.of_user(&user.user_id)?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(json).into_response())
}

#[derive(Deserialize)]
struct PutUser {
    password: Option<String>,
    #[serde(default = "yes")]
    logout_devices: bool,
    displayname: Option<String>,
    admin: Option<bool>,
    deactivated: Option<bool>,
    locked: Option<bool>,
    #[serde(rename = "fr.relais.tier")]
    tier: Option<Tier>,
    #[serde(rename = "fr.relais.unit")]
    unit: Option<String>,
    threepids: Option<Vec<AdminThreepid>>,
}

/// An address in Synapse's `threepids` list.
#[derive(Deserialize)]
struct AdminThreepid {
    medium: String,
    address: String,
}

fn yes() -> bool {
    true
}

/// `PUT /_synapse/admin/v2/users/{userId}`: creates (201) or modifies (200) an account. A new
/// account gets the caller's unit and tier unless `fr.relais.unit` / `fr.relais.tier` say
/// otherwise.
async fn put_user(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
    bytes: Bytes,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    if target.server_name() != services.config.server_name {
        return Err(ApiError::InvalidParam(
            "This endpoint can only be used with local users".into(),
        ));
    }
    let put: PutUser = body(&bytes)?;
    let emails = match &put.threepids {
        Some(list) if list.iter().any(|t| t.medium != "email") => {
            return Err(ApiError::ThreepidMediumNotSupported(
                "this server binds e-mail addresses only".into(),
            ));
        }
        Some(list) => Some(list.iter().map(|t| t.address.clone()).collect::<Vec<_>>()),
        None => None,
    };
    let update = AccountUpdate {
        password: put.password,
        logout_devices: put.logout_devices,
        displayname: put.displayname,
        admin: put.admin,
        deactivated: put.deactivated,
        locked: put.locked,
        tier: put.tier,
        unit: put.unit,
    };
    let (s, t, actor) = (services.clone(), target.clone(), session.user_id.clone());
    let created = blocking(move || s.admin_upsert_user(&actor, &t, update)).await?;
    // The account exists and is within the caller's scope: its addresses follow the list.
    if let Some(emails) = emails {
        services.threepids.replace(&target, &emails)?;
    }
    let s = services.clone();
    let caller_id = session.user_id;
    let user = blocking(move || {
        let scope = s.admin_scope(&caller_id)?;
        s.managed_user(&scope, &target)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("User not found".into()))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut json = user_json(&user, last_seen(&services, &user));
    json["threepids"] = serde_json::to_value(services.threepids.of_user(&user.user_id)?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((status, axum::Json(json)).into_response())
}

/// `POST /_synapse/admin/v1/deactivate/{userId}`: deactivates for good (`erase` is accepted and
/// ignored: profiles are removed at deactivation anyway).
async fn deactivate(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    blocking(move || services.admin_deactivate(&session.user_id, &target)).await?;
    Ok(axum::Json(json!({ "id_server_unbind_result": "success" })).into_response())
}

#[derive(Deserialize, Default)]
struct ListRooms {
    from: Option<usize>,
    limit: Option<usize>,
    search_term: Option<String>,
    dir: Option<String>,
}

/// `GET /_synapse/admin/v1/rooms`: the rooms the caller's scope covers, by name.
async fn list_rooms(
    State(services): State<Arc<Services>>,
    Query(query): Query<ListRooms>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let (from, limit) = (query.from.unwrap_or(0), query.limit.unwrap_or(100));
    let s = services.clone();
    let mut rooms = blocking(move || {
        let scope = s.admin_scope(&session.user_id)?;
        let rooms = s.managed_rooms(&scope)?;
        Ok(rooms.iter().map(|room| room_json(&s, room)).collect::<Vec<_>>())
    })
    .await?;
    if let Some(term) = &query.search_term {
        let term = term.to_lowercase();
        rooms.retain(|r| {
            ["name", "room_id", "canonical_alias"]
                .iter()
                .any(|k| r[*k].as_str().is_some_and(|v| v.to_lowercase().contains(&term)))
        });
    }
    rooms.sort_by(|a, b| {
        let key = |r: &Value| {
            (r["name"].as_str().unwrap_or_default().to_lowercase(), r["room_id"].to_string())
        };
        key(a).cmp(&key(b))
    });
    if query.dir.as_deref() == Some("b") {
        rooms.reverse();
    }
    let total = rooms.len();
    let page: Vec<Value> = rooms.into_iter().skip(from).take(limit).collect();
    let mut reply = json!({ "rooms": page, "offset": from, "total_rooms": total });
    if from.saturating_add(limit) < total {
        reply["next_batch"] = (from + limit).into();
    }
    if from > 0 {
        reply["prev_batch"] = from.saturating_sub(limit).into();
    }
    Ok(axum::Json(reply).into_response())
}

/// A room in the shape of Synapse's room list, plus its access class.
fn room_json(services: &Services, room: &OwnedRoomId) -> Value {
    let state = |kind: &str| services.state_content(room, kind, "").ok().flatten();
    let field = |kind: &str, key: &str| state(kind).and_then(|c| c.get(key).cloned());
    let members = services.rooms.members(room).unwrap_or_default();
    let joined: Vec<_> =
        members.iter().filter(|(_, m)| m.membership == MembershipState::Join).collect();
    let server = &services.config.server_name;
    let create = state("m.room.create");
    let creator = services
        .rooms
        .current_state_event(room, &ruma::events::StateEventType::RoomCreate, "")
        .ok()
        .flatten()
        .map(|pdu| pdu.sender().to_string());
    let state_events = services
        .rooms
        .meta(room)
        .ok()
        .flatten()
        .and_then(|(_, meta)| services.rooms.state_events(meta.state).ok())
        .map_or(0, |events| events.len());
    json!({
        "room_id": room,
        "name": field("m.room.name", "name"),
        "topic": field("m.room.topic", "topic"),
        "canonical_alias": field("m.room.canonical_alias", "alias"),
        "joined_members": joined.len(),
        "joined_local_members": joined.iter().filter(|(u, _)| u.server_name() == server).count(),
        "version": create.as_ref().and_then(|c| c.get("room_version").cloned()).unwrap_or_else(|| "1".into()),
        "creator": creator,
        "encryption": field("m.room.encryption", "algorithm"),
        "federatable": create.as_ref().and_then(|c| c.get("m.federate")).and_then(Value::as_bool).unwrap_or(true),
        "public": services.rooms.aliases.is_public(room).unwrap_or(false),
        "join_rules": field("m.room.join_rules", "join_rule"),
        "guest_access": field("m.room.guest_access", "guest_access"),
        "history_visibility": field("m.room.history_visibility", "history_visibility"),
        "state_events": state_events,
        "room_type": create.as_ref().and_then(|c| c.get("type").cloned()),
        "fr.relais.class": field("fr.relais.access", "class"),
    })
}

/// `GET /_synapse/admin/v1/rooms/{roomId}/state`: the room's current state in the client format,
/// for admins whose scope covers the room (the standalone policy service reads rooms this way).
async fn room_state(
    State(services): State<Arc<Services>>,
    Path(room): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let room = OwnedRoomId::try_from(room)
        .map_err(|e| ApiError::InvalidParam(format!("invalid room ID: {e}")))?;
    let state = blocking(move || {
        let scope = services.admin_scope(&session.user_id)?;
        let Some((_, meta)) = services.rooms.meta(&room)? else {
            return Err(PolicyError::NotFound("Room not found".into()));
        };
        if !services.covers_room(&scope, &room)? {
            return Err(PolicyError::Refused(format!(
                "{room} is outside the units you administer"
            )));
        }
        let events = services.rooms.state_events(meta.state)?;
        Ok(events.iter().map(|pdu| pdu.to_client_json(serde_json::Map::new())).collect::<Vec<_>>())
    })
    .await?;
    Ok(axum::Json(json!({ "state": state })).into_response())
}

/// `GET /_synapse/admin/v1/users/{userId}/joined_rooms`: the rooms a user is joined to, for
/// admins whose scope covers the user.
async fn joined_rooms(
    State(services): State<Arc<Services>>,
    Path(target): Path<String>,
    parts: Parts,
) -> ApiResult<Response> {
    let session = caller(&services, &parts)?;
    let target = user_id(&target)?;
    let rooms = blocking(move || {
        let scope = services.admin_scope(&session.user_id)?;
        if services.managed_user(&scope, &target)?.is_none() {
            return Err(PolicyError::NotFound("User not found".into()));
        }
        let rooms = services.rooms.rooms_of(&target)?;
        Ok(rooms
            .into_iter()
            .filter(|(_, m)| m.membership == MembershipState::Join)
            .map(|(room, _)| room)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(axum::Json(json!({ "total": rooms.len(), "joined_rooms": rooms })).into_response())
}

/// `GET /_synapse/admin/v1/server_version`: needs no authentication, as in Synapse.
async fn server_version() -> ApiResult<Response> {
    Ok(axum::Json(json!({ "server_version": concat!("relais ", env!("CARGO_PKG_VERSION")) }))
        .into_response())
}
