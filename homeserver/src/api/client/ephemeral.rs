//! Typing notifications, read receipts and read markers.

use std::sync::Arc;

use ruma::{
    api::client::{
        read_marker::set_read_marker,
        receipt::create_receipt::{self, v3::ReceiptType},
        typing::create_typing_event::{self, v3::Typing},
    },
    events::receipt::ReceiptThread,
};
use serde_json::json;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        ephemeral::{Receipt, now_ms},
        push::ReadScope,
    },
};

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
pub async fn typing(
    services: Arc<Services>,
    req: Ruma<create_typing_event::v3::Request>,
) -> ApiResult<create_typing_event::v3::Response> {
    let user = &req.auth.user_id;
    if req.body.user_id != *user {
        return Err(ApiError::Forbidden("you can only set your own typing state".into()));
    }
    if !services.rooms.is_joined(&req.body.room_id, user)? {
        return Err(ApiError::Forbidden("you are not joined to this room".into()));
    }
    let members = services.rooms.joined_members(&req.body.room_id)?;
    let timeout = match req.body.state {
        Typing::Yes(params) => Some(params.timeout),
        _ => None,
    };
    services.ephemeral.set_typing(&req.body.room_id, user, timeout, &members)?;
    services.federate_typing(&req.body.room_id, user, timeout.is_some());
    if let Some(edu) = services.ephemeral.typing_since(&req.body.room_id, 0) {
        services.appservice_ephemeral(&req.body.room_id, &edu);
    }
    Ok(create_typing_event::v3::Response::new())
}

fn store_receipt(
    services: &Services,
    room_id: &ruma::RoomId,
    user: &ruma::UserId,
    event_id: &ruma::OwnedEventId,
    kind: &str,
    thread: &ReceiptThread,
) -> ApiResult<()> {
    let pdu = services
        .rooms
        .pdu(event_id)?
        .filter(|p| p.room_id() == room_id)
        .ok_or_else(|| ApiError::NotFound("event not found in this room".into()))?;
    if !services.can_see_event(user, &pdu)? {
        return Err(ApiError::NotFound("event not found in this room".into()));
    }
    let thread_id = match thread {
        ReceiptThread::Unthreaded => None,
        ReceiptThread::Main => Some("main".to_owned()),
        ReceiptThread::Thread(id) => Some(id.to_string()),
        _ => None,
    };
    // Counts first: the receipt wakes the syncs that report them.
    let scope = match &thread_id {
        None => ReadScope::All,
        Some(thread) if thread == "main" => ReadScope::Main,
        Some(thread) => match ruma::OwnedEventId::try_from(thread.as_str()) {
            Ok(root) => ReadScope::Thread(root),
            Err(_) => return Err(ApiError::InvalidParam("invalid thread_id".into())),
        },
    };
    services.push.mark_read(user, room_id, pdu.stored.count, &scope)?;
    let members = services.rooms.joined_members(room_id)?;
    let ts = now_ms();
    // Private receipts are for the reader alone, never for a bridge.
    if kind != "m.read.private" {
        let mut receipt = serde_json::json!({ "ts": ts });
        if let Some(thread) = &thread_id {
            receipt["thread_id"] = thread.as_str().into();
        }
        let edu = serde_json::json!({
            "type": "m.receipt",
            "content": { event_id.as_str(): { kind: { user.as_str(): receipt } } },
        });
        services.appservice_ephemeral(room_id, &edu);
        services.federate_receipt(room_id, user, event_id, thread, ts);
    }
    services.ephemeral.set_receipt(
        room_id,
        Receipt {
            user_id: user.to_owned(),
            event_id: event_id.clone(),
            kind: kind.to_owned(),
            thread_id,
            ts,
        },
        &members,
    )?;
    Ok(())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn receipt(
    services: Arc<Services>,
    req: Ruma<create_receipt::v3::Request>,
) -> ApiResult<create_receipt::v3::Response> {
    let user = &req.auth.user_id;
    let body = &req.body;
    if !services.rooms.is_joined(&body.room_id, user)? {
        return Err(ApiError::Forbidden("you are not joined to this room".into()));
    }
    match &body.receipt_type {
        ReceiptType::Read => {
            store_receipt(&services, &body.room_id, user, &body.event_id, "m.read", &body.thread)?
        }
        ReceiptType::ReadPrivate => store_receipt(
            &services,
            &body.room_id,
            user,
            &body.event_id,
            "m.read.private",
            &body.thread,
        )?,
        ReceiptType::FullyRead => services.account_data.set(
            user,
            Some(&body.room_id),
            "m.fully_read",
            json!({ "event_id": body.event_id }),
        )?,
        other => {
            return Err(ApiError::InvalidParam(format!("unknown receipt type {}", other.as_str())));
        }
    }
    Ok(create_receipt::v3::Response::new())
}

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
pub async fn read_markers(
    services: Arc<Services>,
    req: Ruma<set_read_marker::v3::Request>,
) -> ApiResult<set_read_marker::v3::Response> {
    let user = &req.auth.user_id;
    let body = &req.body;
    if !services.rooms.is_joined(&body.room_id, user)? {
        return Err(ApiError::Forbidden("you are not joined to this room".into()));
    }
    if let Some(event_id) = &body.fully_read {
        services.account_data.set(
            user,
            Some(&body.room_id),
            "m.fully_read",
            json!({ "event_id": event_id }),
        )?;
    }
    if let Some(event_id) = &body.read_receipt {
        store_receipt(
            &services,
            &body.room_id,
            user,
            event_id,
            "m.read",
            &ReceiptThread::Unthreaded,
        )?;
    }
    if let Some(event_id) = &body.private_read_receipt {
        store_receipt(
            &services,
            &body.room_id,
            user,
            event_id,
            "m.read.private",
            &ReceiptThread::Unthreaded,
        )?;
    }
    Ok(set_read_marker::v3::Response::new())
}
