//! Sending and reading events: send, redact, `/event`, `/context`, `/messages`.

use std::sync::Arc;

use ruma::{
    api::{
        Direction,
        client::{
            context::get_context,
            message::{get_message_events, send_message_event},
            redact::redact_event,
            room::get_room_event,
        },
    },
    events::{StateEventType, TimelineEventType},
};
use serde_json::{Value, json};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services, filters,
        rooms::{PduTemplate, pdu::to_raw, timeline},
    },
};

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
pub async fn send(
    services: Arc<Services>,
    req: Ruma<send_message_event::v3::Request>,
) -> ApiResult<send_message_event::v3::Response> {
    services.rate_limits.check(
        crate::service::rate_limit::Action::Send,
        Some(&req.auth),
        req.client_ip.as_deref(),
    )?;
    let session = req.auth;
    let body = req.body;
    let kind = TimelineEventType::from(body.event_type.to_string());
    if kind == TimelineEventType::RoomRedaction {
        return Err(ApiError::BadJson("use the /redact endpoint to redact events".into()));
    }
    let content: Value = serde_json::from_str(body.body.json().get())
        .map_err(|e| ApiError::BadJson(format!("invalid event content: {e}")))?;
    if !content.is_object() {
        return Err(ApiError::BadJson("event content must be a JSON object".into()));
    }
    let event_id = blocking(move || {
        if let Some(event_id) = services.rooms.transaction_event(
            &body.room_id,
            &session.user_id,
            &session.device_id,
            &body.txn_id,
        )? {
            return Ok(event_id);
        }
        require_joined(&services, &body.room_id, &session.user_id)?;
        let mut template = PduTemplate::message(kind, content);
        template.origin_server_ts = massaged_timestamp(&session, body.timestamp);
        let pdu = services.rooms.append(
            &body.room_id,
            &session.user_id,
            template,
            Some((session.device_id.clone(), body.txn_id.clone())),
        )?;
        Ok(pdu.event_id().clone())
    })
    .await?;
    Ok(send_message_event::v3::Response::new(event_id))
}

/// The `ts` of a request, honoured only from an application service (timestamp massaging).
pub(crate) fn massaged_timestamp(
    session: &crate::service::accounts::Session,
    ts: Option<ruma::MilliSecondsSinceUnixEpoch>,
) -> Option<u64> {
    session.appservice.as_ref().and(ts).map(|ts| ts.0.into())
}

/// Sending needs membership; the auth rules check it too, but this gives a clearer error.
pub(crate) fn require_joined(
    services: &Services,
    room_id: &ruma::RoomId,
    user: &ruma::UserId,
) -> ApiResult<()> {
    if !services.rooms.exists(room_id)? {
        return Err(ApiError::NotFound(format!("room {room_id} is not known to this server")));
    }
    if !services.rooms.is_joined(room_id, user)? {
        return Err(ApiError::Forbidden(format!("you are not joined to room {room_id}")));
    }
    Ok(())
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact(
    services: Arc<Services>,
    req: Ruma<redact_event::v3::Request>,
) -> ApiResult<redact_event::v3::Response> {
    let session = req.auth;
    let body = req.body;
    let event_id = blocking(move || {
        if let Some(event_id) = services.rooms.transaction_event(
            &body.room_id,
            &session.user_id,
            &session.device_id,
            &body.txn_id,
        )? {
            return Ok(event_id);
        }
        require_joined(&services, &body.room_id, &session.user_id)?;
        let mut content = json!({});
        if let Some(reason) = &body.reason {
            content["reason"] = reason.as_str().into();
        }
        let template = PduTemplate {
            kind: TimelineEventType::RoomRedaction,
            content,
            state_key: None,
            redacts: Some(body.event_id.clone()),
            origin_server_ts: None,
        };
        let pdu = services.rooms.append(
            &body.room_id,
            &session.user_id,
            template,
            Some((session.device_id.clone(), body.txn_id.clone())),
        )?;
        Ok(pdu.event_id().clone())
    })
    .await?;
    Ok(redact_event::v3::Response::new(event_id))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
pub async fn get_event(
    services: Arc<Services>,
    req: Ruma<get_room_event::v3::Request>,
) -> ApiResult<get_room_event::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    let not_found = || ApiError::NotFound("event not found".into());
    let pdu = services.rooms.pdu(&body.event_id)?.ok_or_else(not_found)?;
    if pdu.room_id() != body.room_id || !services.can_see_event(&user, &pdu)? {
        return Err(not_found());
    }
    Ok(get_room_event::v3::Response::new(to_raw(&services.client_event(&pdu, Some(&user))?)))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
pub async fn context(
    services: Arc<Services>,
    req: Ruma<get_context::v3::Request>,
) -> ApiResult<get_context::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    blocking(move || {
        let not_found = || ApiError::NotFound("event not found".into());
        let pdu = services.rooms.pdu(&body.event_id)?.ok_or_else(not_found)?;
        if pdu.room_id() != body.room_id || !services.can_see_event(&user, &pdu)? {
            return Err(not_found());
        }
        let (shortroomid, _) = services.rooms.require_meta(&body.room_id)?;
        let upto = services.globals.visible_count();
        let limit = usize::try_from(u64::from(body.limit)).unwrap_or(10).min(100);
        let half = limit.div_ceil(2);
        let count = pdu.stored.count;
        let mut before = services.rooms.timeline_page(
            shortroomid,
            count,
            timeline::Direction::Backward,
            half,
            upto,
        )?;
        let mut after = services.rooms.timeline_page(
            shortroomid,
            count + 1,
            timeline::Direction::Forward,
            limit - half,
            upto,
        )?;
        let visible = |p: &Arc<crate::service::rooms::pdu::PduEvent>| {
            filters::matches(&body.filter, p) && services.can_see_event(&user, p).unwrap_or(false)
        };
        before.retain(|p| visible(p));
        after.retain(|p| visible(p));
        let mut response = get_context::v3::Response::new();
        response.start = Some(before.last().map_or(count, |p| p.stored.count).to_string());
        response.end = Some(after.last().map_or(count + 1, |p| p.stored.count + 1).to_string());
        response.event = Some(to_raw(&services.client_event(&pdu, Some(&user))?));
        for p in &before {
            response.events_before.push(to_raw(&services.client_event(p, Some(&user))?));
        }
        for p in &after {
            response.events_after.push(to_raw(&services.client_event(p, Some(&user))?));
        }
        let state_at = after.last().map_or(pdu.stored.state_after, |p| p.stored.state_after);
        for p in services.rooms.state_events(state_at)? {
            if lazy_skip(&body.filter, &p, &before, &after, &pdu) {
                continue;
            }
            response.state.push(to_raw(&services.client_event(&p, Some(&user))?));
        }
        Ok(response)
    })
    .await
}

/// With lazy-loading, member events are sent only for the senders of the returned events.
fn lazy_skip(
    filter: &ruma::api::client::filter::RoomEventFilter,
    state: &crate::service::rooms::pdu::PduEvent,
    before: &[Arc<crate::service::rooms::pdu::PduEvent>],
    after: &[Arc<crate::service::rooms::pdu::PduEvent>],
    event: &crate::service::rooms::pdu::PduEvent,
) -> bool {
    if !matches!(
        filter.lazy_load_options,
        ruma::api::client::filter::LazyLoadOptions::Enabled { .. }
    ) {
        return false;
    }
    if *state.kind() != TimelineEventType::RoomMember {
        return false;
    }
    let key = state.state_key().unwrap_or_default();
    !(event.sender().as_str() == key
        || before.iter().chain(after).any(|p| p.sender().as_str() == key))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`
pub async fn messages(
    services: Arc<Services>,
    req: Ruma<get_message_events::v3::Request>,
) -> ApiResult<get_message_events::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    if body.dir == Direction::Backward
        && services.config.federation.enabled
        && services.rooms.is_joined(&body.room_id, &user)?
    {
        // Paging back past the oldest event here: ask the room's other servers for more.
        let limit = u32::try_from(u64::from(body.limit)).unwrap_or(10).clamp(1, 100);
        let (s, room) = (services.clone(), body.room_id.clone());
        let from = body.from.clone();
        let short_page = blocking(move || -> ApiResult<bool> {
            let Some((shortroomid, _)) = s.rooms.meta(&room)? else { return Ok(false) };
            let upto = s.globals.visible_count();
            let from = from.and_then(|t| t.parse().ok()).unwrap_or(upto + 1);
            let page = s.rooms.timeline_page(
                shortroomid,
                from,
                timeline::Direction::Backward,
                limit as usize,
                upto,
            )?;
            Ok(page.len() < limit as usize)
        })
        .await?;
        if short_page {
            services.backfill(&body.room_id, limit).await;
        }
    }
    blocking(move || {
        let Some((shortroomid, _)) = services.rooms.meta(&body.room_id)? else {
            return Err(ApiError::NotFound(format!(
                "room {} is not known to this server",
                body.room_id
            )));
        };
        // Anyone may page through a world-readable room (each event is checked below); others
        // need some membership (a former member sees what it could see then).
        if services.rooms.membership(&body.room_id, &user)?.is_none()
            && !services.can_read_room(&user, &body.room_id)?
        {
            return Err(ApiError::Forbidden("you are not a member of this room".into()));
        }
        let upto = services.globals.visible_count();
        let parse = |token: &str| -> ApiResult<u64> {
            token
                .parse()
                .map_err(|_| ApiError::InvalidParam(format!("invalid pagination token {token:?}")))
        };
        let dir = match body.dir {
            Direction::Backward => timeline::Direction::Backward,
            Direction::Forward => timeline::Direction::Forward,
        };
        let from = match &body.from {
            Some(token) => parse(token)?,
            None => match dir {
                timeline::Direction::Backward => upto + 1,
                timeline::Direction::Forward => 0,
            },
        };
        let to = body.to.as_deref().map(parse).transpose()?;
        let limit = usize::try_from(u64::from(body.limit)).unwrap_or(10).clamp(1, 1000);
        let mut events = services.rooms.timeline_page(shortroomid, from, dir, limit, upto)?;
        if let Some(to) = to {
            events.retain(|p| match dir {
                timeline::Direction::Backward => p.stored.count >= to,
                timeline::Direction::Forward => p.stored.count < to,
            });
        }
        let end = match (dir, events.last()) {
            (_, None) => None,
            (timeline::Direction::Backward, Some(last)) if events.len() == limit => {
                Some(last.stored.count)
            }
            (timeline::Direction::Forward, Some(last)) if events.len() == limit => {
                Some(last.stored.count + 1)
            }
            // A short page reached the end: forward, the live edge; backward, the room's start.
            (timeline::Direction::Forward, Some(last)) => Some(last.stored.count + 1),
            (timeline::Direction::Backward, Some(_)) => None,
        };
        let mut response = get_message_events::v3::Response::new();
        response.start = from.to_string();
        response.end = end.map(|e| e.to_string());
        let visible: Vec<_> = events
            .into_iter()
            .filter(|p| filters::matches(&body.filter, p))
            .filter(|p| services.can_see_event(&user, p).unwrap_or(false))
            .collect();
        for p in &visible {
            response.chunk.push(to_raw(&services.client_event(p, Some(&user))?));
        }
        if matches!(
            body.filter.lazy_load_options,
            ruma::api::client::filter::LazyLoadOptions::Enabled { .. }
        ) {
            let mut senders: Vec<&ruma::UserId> = visible.iter().map(|p| p.sender()).collect();
            senders.sort_unstable();
            senders.dedup();
            let state = visible.first().map(|p| p.stored.state_after);
            if let Some(state) = state {
                for sender in senders {
                    if let Some(member) = services.rooms.state_event(
                        state,
                        &StateEventType::RoomMember,
                        sender.as_str(),
                    )? {
                        response.state.push(to_raw(&services.client_event(&member, Some(&user))?));
                    }
                }
            }
        }
        Ok(response)
    })
    .await
}
