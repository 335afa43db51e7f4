//! Room state: `/state`, `/state/{type}/{key}` (get and put).

use std::sync::Arc;

use ruma::{
    api::client::state::{get_state_event_for_key, get_state_events, send_state_event},
    events::StateEventType,
};
use serde_json::Value;

use super::{membership::blocking, message::require_joined};
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        rooms::{PduTemplate, pdu::to_raw},
    },
};

/// `GET /_matrix/client/v3/rooms/{roomId}/state`
pub async fn get_all(
    services: Arc<Services>,
    req: Ruma<get_state_events::v3::Request>,
) -> ApiResult<get_state_events::v3::Response> {
    let user = req.auth.user_id;
    let room_id = req.body.room_id;
    blocking(move || {
        let state = services.readable_state(&user, &room_id)?.ok_or_else(|| {
            ApiError::Forbidden("you are not allowed to read this room's state".into())
        })?;
        let mut events = Vec::new();
        for pdu in services.rooms.state_events(state)? {
            events.push(to_raw(&services.client_event(&pdu, Some(&user))?));
        }
        Ok(get_state_events::v3::Response::new(events))
    })
    .await
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn get_one(
    services: Arc<Services>,
    req: Ruma<get_state_event_for_key::v3::Request>,
) -> ApiResult<get_state_event_for_key::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    let state = services.readable_state(&user, &body.room_id)?.ok_or_else(|| {
        ApiError::Forbidden("you are not allowed to read this room's state".into())
    })?;
    let pdu =
        services.rooms.state_event(state, &body.event_type, &body.state_key)?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no {} state event with key {:?}",
                body.event_type, body.state_key
            ))
        })?;
    let value = match body.format {
        get_state_event_for_key::v3::StateEventFormat::Event => {
            services.client_event(&pdu, Some(&user))?
        }
        _ => serde_json::from_str(pdu.fields.content.get()).unwrap_or(Value::Null),
    };
    let raw =
        serde_json::value::to_raw_value(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(get_state_event_for_key::v3::Response::new(raw))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn send(
    services: Arc<Services>,
    req: Ruma<send_state_event::v3::Request>,
) -> ApiResult<send_state_event::v3::Response> {
    let timestamp = super::message::massaged_timestamp(&req.auth, req.body.timestamp);
    let user = req.auth.user_id;
    let body = req.body;
    let content: Value = serde_json::from_str(body.body.json().get())
        .map_err(|e| ApiError::BadJson(format!("invalid state content: {e}")))?;
    if !content.is_object() {
        return Err(ApiError::BadJson("state event content must be a JSON object".into()));
    }
    if body.event_type == StateEventType::RoomCreate {
        return Err(ApiError::Forbidden("m.room.create cannot be sent after room creation".into()));
    }
    if body.event_type == StateEventType::RoomMember {
        return Err(ApiError::Forbidden(
            "use the membership endpoints to change memberships".into(),
        ));
    }
    // Power levels, join rules, `fr.relais.access` and every other state change.
    services
        .policy_checks
        .user_may_send_state_event(
            &user,
            &body.room_id,
            &body.event_type.to_string(),
            &body.state_key,
            &content,
        )
        .await?;
    let event_id = blocking(move || {
        require_joined(&services, &body.room_id, &user)?;
        check_canonical_alias(&services, &body.room_id, &body.event_type, &content)?;
        let mut template = PduTemplate::state(body.event_type.clone(), &body.state_key, content);
        template.origin_server_ts = timestamp;
        let pdu = services.rooms.append(&body.room_id, &user, template, None)?;
        Ok(pdu.event_id().clone())
    })
    .await?;
    Ok(send_state_event::v3::Response::new(event_id))
}

/// A canonical alias must point to this room (the spec's `M_BAD_ALIAS`).
fn check_canonical_alias(
    services: &Services,
    room_id: &ruma::RoomId,
    kind: &StateEventType,
    content: &Value,
) -> ApiResult<()> {
    if *kind != StateEventType::RoomCanonicalAlias {
        return Ok(());
    }
    let aliases = content
        .get("alias")
        .into_iter()
        .chain(content.get("alt_aliases").and_then(Value::as_array).into_iter().flatten());
    for alias in aliases {
        let Some(alias) = alias.as_str() else { continue };
        let alias = ruma::OwnedRoomAliasId::try_from(alias)
            .map_err(|e| ApiError::InvalidParam(format!("invalid alias {alias}: {e}")))?;
        if alias.server_name() == services.config.server_name {
            let points_here =
                services.rooms.aliases.resolve(&alias)?.is_some_and(|e| e.room_id == room_id);
            if !points_here {
                return Err(ApiError::BadJson(format!(
                    "alias {alias} does not point to this room"
                )));
            }
        }
    }
    Ok(())
}
