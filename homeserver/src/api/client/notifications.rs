//! `GET /_matrix/client/v3/notifications`
//!
//! <https://spec.matrix.org/v1.18/client-server-api/#get_matrixclientv3notifications>: the events
//! the user was notified about, newest first, with whether they were read; `only=highlight` keeps
//! highlights; `from` is the `next_token` of the previous page.

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch, UInt,
    api::client::push::get_notifications::v3::{Notification, Request, Response},
};

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rooms::pdu::to_raw},
};

/// Notifications per page when the client gives no limit, and the most it may ask for.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// `GET /_matrix/client/v3/notifications`
pub async fn list(services: Arc<Services>, req: Ruma<Request>) -> ApiResult<Response> {
    let user = &req.auth.user_id;
    let from = match &req.body.from {
        Some(token) => Some(
            token
                .parse::<u64>()
                .map_err(|_| ApiError::InvalidParam("invalid `from` token".into()))?,
        ),
        None => None,
    };
    let limit = req
        .body
        .limit
        .map_or(DEFAULT_LIMIT, |l| usize::try_from(u64::from(l)).unwrap_or(MAX_LIMIT))
        .clamp(1, MAX_LIMIT);
    let only_highlight = req.body.only.as_deref() == Some("highlight");
    let page = services.push.notifications(user, from, limit, only_highlight)?;
    let mut notifications = Vec::with_capacity(page.notifications.len());
    for (record, read) in page.notifications {
        // Events gone from the database (none today) are skipped rather than failing the page.
        let Some(pdu) = services.rooms.pdu(&record.event_id)? else { continue };
        let event = services.client_event(&pdu, Some(user))?;
        let ts = MilliSecondsSinceUnixEpoch(UInt::new_saturating(record.ts));
        notifications.push(Notification::new(
            record.actions,
            to_raw(&event),
            read,
            record.room_id,
            ts,
        ));
    }
    let mut response = Response::new(notifications);
    response.next_token = page.next.map(|n| n.to_string());
    Ok(response)
}
