//! `GET /_matrix/client/v3/sync`: long-polls woken by the notifier, never by polling.

use std::{sync::Arc, time::Duration};

use ruma::{
    api::OutgoingResponse as _,
    api::client::{filter::FilterDefinition, sync::sync_events},
    presence::PresenceState,
};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::{Ruma, RumaResponse},
    },
    service::{
        Services,
        sync::{SyncRequest, is_empty},
    },
};

/// Sync v2.
pub async fn sync(
    services: Arc<Services>,
    req: Ruma<sync_events::v3::Request>,
) -> ApiResult<axum::response::Response> {
    let response = sync_response(services, req).await?;
    Ok(serialize(response))
}

/// Serialises a sync response. ruma 0.16 leaves out `rooms` when only `rooms.knock` has entries
/// (`Rooms::is_empty` forgets knocks), which would hide a knock from the knocker: knocks are
/// taken out before serialising and put back into the JSON.
fn serialize(mut response: sync_events::v3::Response) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let knock = std::mem::take(&mut response.rooms.knock);
    if knock.is_empty() {
        return RumaResponse(response).into_response();
    }
    let mut json = match response.try_into_http_response::<Vec<u8>>() {
        Ok(http) => serde_json::from_slice::<serde_json::Value>(http.body()).unwrap_or_default(),
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    match serde_json::to_value(&knock) {
        Ok(knock) => json["rooms"]["knock"] = knock,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    }
    axum::Json(json).into_response()
}

async fn sync_response(
    services: Arc<Services>,
    req: Ruma<sync_events::v3::Request>,
) -> ApiResult<sync_events::v3::Response> {
    let session = req.auth;
    let body = req.body;
    // Subscribe before computing, so nothing committed meanwhile is missed.
    let mut wake = services.notifier.subscribe(&session.user_id);
    let since = match &body.since {
        Some(token) => token
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidParam(format!("invalid since token {token:?}")))?,
        None => 0,
    };
    let filter = match &body.filter {
        None => FilterDefinition::default(),
        Some(sync_events::v3::Filter::FilterDefinition(filter)) => filter.clone(),
        Some(sync_events::v3::Filter::FilterId(id)) => services
            .filters
            .get(&session.user_id, id)?
            .ok_or_else(|| ApiError::NotFound(format!("no filter with ID {id}")))?,
        Some(_) => FilterDefinition::default(),
    };
    if body.set_presence != PresenceState::Offline {
        let audience = Vec::new();
        let before = services.presence.get(&session.user_id).map(|p| p.count);
        services.presence.set(&session.user_id, body.set_presence.clone(), None, &audience)?;
        if services.presence.get(&session.user_id).map(|p| p.count) != before {
            services.federate_presence(&session.user_id);
        }
    }
    let request = Arc::new(SyncRequest {
        user: session.user_id.clone(),
        device: session.device_id.clone(),
        since,
        full_state: body.full_state,
        filter,
        use_state_after: body.use_state_after,
    });
    let max = Duration::from_millis(services.config.sync.max_timeout_ms);
    let timeout = body.timeout.unwrap_or_default().min(max);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let upto = services.globals.visible_count();
        let s = services.clone();
        let r = request.clone();
        let response = blocking(move || Ok(s.build_sync(&r, upto)?)).await?;
        let now = tokio::time::Instant::now();
        if since == 0 || !is_empty(&response) || now >= deadline {
            return Ok(response);
        }
        // Nothing new: wait for a change that concerns this user, or the deadline.
        match tokio::time::timeout_at(deadline, wake.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) | Err(_) => {
                let s = services.clone();
                let r = request.clone();
                let upto = services.globals.visible_count();
                return blocking(move || Ok(s.build_sync(&r, upto)?)).await;
            }
        }
    }
}
