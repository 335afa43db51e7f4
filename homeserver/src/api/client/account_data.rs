//! Account data (global and per room) and room tags (stored as the `m.tag` room account data).

use std::sync::Arc;

use ruma::api::client::{
    config::{
        get_global_account_data, get_room_account_data, set_global_account_data,
        set_room_account_data,
    },
    tag::{create_tag, delete_tag, get_tags},
};
use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::Services,
};

fn own(user: &ruma::UserId, target: &ruma::UserId) -> ApiResult<()> {
    if user == target {
        Ok(())
    } else {
        Err(ApiError::Forbidden("you can only access your own account data".into()))
    }
}

fn to_raw_content<T>(value: &Value) -> ApiResult<ruma::serde::Raw<T>> {
    Ok(ruma::serde::Raw::from_json(
        serde_json::value::to_raw_value(value).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

fn parse_content(raw: &serde_json::value::RawValue) -> ApiResult<Value> {
    let value: Value =
        serde_json::from_str(raw.get()).map_err(|e| ApiError::BadJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::BadJson("account data must be a JSON object".into()));
    }
    Ok(value)
}

/// Types the server manages itself and clients may not set directly.
fn check_settable(kind: &str) -> ApiResult<()> {
    if kind == "m.fully_read" || kind == "m.push_rules" {
        return Err(ApiError::BadJson(format!(
            "{kind} is managed by the server; use its dedicated endpoint"
        )));
    }
    Ok(())
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn set_global(
    services: Arc<Services>,
    req: Ruma<set_global_account_data::v3::Request>,
) -> ApiResult<set_global_account_data::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let kind = req.body.event_type.to_string();
    check_settable(&kind)?;
    let content = parse_content(req.body.data.json())?;
    services.account_data.set(&req.auth.user_id, None, &kind, content)?;
    Ok(set_global_account_data::v3::Response::new())
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn get_global(
    services: Arc<Services>,
    req: Ruma<get_global_account_data::v3::Request>,
) -> ApiResult<get_global_account_data::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let content = services
        .account_data
        .get(&req.auth.user_id, None, &req.body.event_type.to_string())?
        .ok_or_else(|| ApiError::NotFound("account data not found".into()))?;
    Ok(get_global_account_data::v3::Response::new(to_raw_content(&content)?))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn set_room(
    services: Arc<Services>,
    req: Ruma<set_room_account_data::v3::Request>,
) -> ApiResult<set_room_account_data::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let kind = req.body.event_type.to_string();
    check_settable(&kind)?;
    let content = parse_content(req.body.data.json())?;
    services.account_data.set(&req.auth.user_id, Some(&req.body.room_id), &kind, content)?;
    Ok(set_room_account_data::v3::Response::new())
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room(
    services: Arc<Services>,
    req: Ruma<get_room_account_data::v3::Request>,
) -> ApiResult<get_room_account_data::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let content = services
        .account_data
        .get(&req.auth.user_id, Some(&req.body.room_id), &req.body.event_type.to_string())?
        .ok_or_else(|| ApiError::NotFound("account data not found".into()))?;
    Ok(get_room_account_data::v3::Response::new(to_raw_content(&content)?))
}

fn tags_of(
    services: &Services,
    user: &ruma::UserId,
    room: &ruma::RoomId,
) -> ApiResult<serde_json::Map<String, Value>> {
    Ok(services
        .account_data
        .get(user, Some(room), "m.tag")?
        .and_then(|c| c.get("tags").and_then(Value::as_object).cloned())
        .unwrap_or_default())
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
pub async fn get_room_tags(
    services: Arc<Services>,
    req: Ruma<get_tags::v3::Request>,
) -> ApiResult<get_tags::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let tags = tags_of(&services, &req.auth.user_id, &req.body.room_id)?;
    let tags = serde_json::from_value(Value::Object(tags))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(get_tags::v3::Response::new(tags))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn put_tag(
    services: Arc<Services>,
    req: Ruma<create_tag::v3::Request>,
) -> ApiResult<create_tag::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let mut tags = tags_of(&services, &req.auth.user_id, &req.body.room_id)?;
    let info =
        serde_json::to_value(&req.body.tag_info).map_err(|e| ApiError::Internal(e.to_string()))?;
    tags.insert(req.body.tag.clone(), info);
    services.account_data.set(
        &req.auth.user_id,
        Some(&req.body.room_id),
        "m.tag",
        json!({ "tags": tags }),
    )?;
    Ok(create_tag::v3::Response::new())
}

/// `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_room_tag(
    services: Arc<Services>,
    req: Ruma<delete_tag::v3::Request>,
) -> ApiResult<delete_tag::v3::Response> {
    own(&req.auth.user_id, &req.body.user_id)?;
    let mut tags = tags_of(&services, &req.auth.user_id, &req.body.room_id)?;
    tags.remove(&req.body.tag);
    services.account_data.set(
        &req.auth.user_id,
        Some(&req.body.room_id),
        "m.tag",
        json!({ "tags": tags }),
    )?;
    Ok(delete_tag::v3::Response::new())
}
