//! `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`: simplified sliding sync
//! ([MSC4186](https://github.com/matrix-org/matrix-spec-proposals/pull/4186)), the sync of
//! Element X.
//!
//! The handler resolves the connection state `pos` stands for, then long-polls like `/sync`:
//! it builds a response, and while nothing is new and the timeout is not reached it waits on the
//! user's notifier channel (never polls) and builds again. The state after the response is
//! committed before the response leaves.

use std::{sync::Arc, time::Duration};

use ruma::api::client::sync::sync_events::v5;

use super::membership::blocking;
use crate::{
    api::{error::ApiResult, ruma::Ruma},
    service::{
        Services,
        sliding_sync::{ConnState, ConnectionKey, Outcome},
    },
};

/// Simplified sliding sync.
pub async fn sliding_sync(
    services: Arc<Services>,
    req: Ruma<v5::Request>,
) -> ApiResult<v5::Response> {
    let session = req.auth;
    let spaces = Arc::new(crate::service::sliding_sync::space_filters(req.json_body.as_ref()));
    let request = Arc::new(req.body);
    // Subscribe before computing, so nothing committed meanwhile is missed.
    let mut wake = services.notifier.subscribe(&session.user_id);
    let key: ConnectionKey = (
        session.user_id.clone(),
        session.device_id.clone(),
        request.conn_id.clone().unwrap_or_default(),
    );
    let base = {
        let (s, key, pos) = (services.clone(), key.clone(), request.pos.clone());
        blocking(move || Ok(s.sliding_sync.resolve(&key, pos.as_deref())?)).await?
    };
    let base = Arc::new(base);
    let max = Duration::from_millis(services.config.sync.max_timeout_ms);
    let timeout = request.timeout.unwrap_or_default().min(max);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let outcome = build(&services, &session, &request, &spaces, &base).await?;
        if outcome.has_news || tokio::time::Instant::now() >= deadline {
            return commit(&services, key, &base, outcome).await;
        }
        // Nothing new: wait for a change that concerns this user, or the deadline.
        if !matches!(tokio::time::timeout_at(deadline, wake.changed()).await, Ok(Ok(()))) {
            let outcome = build(&services, &session, &request, &spaces, &base).await?;
            return commit(&services, key, &base, outcome).await;
        }
    }
}

async fn build(
    services: &Arc<Services>,
    session: &crate::service::accounts::Session,
    request: &Arc<v5::Request>,
    spaces: &Arc<crate::service::sliding_sync::SpaceFilters>,
    base: &Arc<Option<ConnState>>,
) -> ApiResult<Outcome> {
    let (s, r, b, f) = (services.clone(), request.clone(), base.clone(), spaces.clone());
    let (user, device) = (session.user_id.clone(), session.device_id.clone());
    let upto = services.globals.visible_count();
    blocking(move || Ok(s.build_sliding_sync(&user, &device, &r, &f, b.as_ref().as_ref(), upto)?))
        .await
}

async fn commit(
    services: &Arc<Services>,
    key: ConnectionKey,
    base: &Arc<Option<ConnState>>,
    outcome: Outcome,
) -> ApiResult<v5::Response> {
    let (s, b) = (services.clone(), base.as_ref().clone());
    let Outcome { mut response, state, .. } = outcome;
    let pos = blocking(move || Ok(s.sliding_sync.commit(&key, b, state)?)).await?;
    response.pos = pos;
    Ok(response)
}
