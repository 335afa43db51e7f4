//! `/relations` (three forms) and `/threads`.

use std::sync::Arc;

use ruma::{
    UInt,
    api::{
        Direction,
        client::{
            relations::{
                get_relating_events, get_relating_events_with_rel_type,
                get_relating_events_with_rel_type_and_event_type,
            },
            threads::get_threads::{self, v1::IncludeThreads},
        },
    },
};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{
        Services,
        relations::{RelationsPage, RelationsQuery},
        rooms::pdu::to_raw,
    },
};

fn parse_from(from: Option<&str>) -> ApiResult<Option<u64>> {
    from.map(|t| {
        t.parse().map_err(|_| ApiError::InvalidParam(format!("invalid pagination token {t:?}")))
    })
    .transpose()
}

fn page_limit(limit: Option<UInt>) -> usize {
    limit.map_or(50, |l| usize::try_from(u64::from(l)).unwrap_or(50)).clamp(1, 500)
}

type Chunk<T> = Vec<ruma::serde::Raw<T>>;

fn to_chunk<T>(
    services: &Services,
    user: &ruma::UserId,
    page: &RelationsPage,
) -> ApiResult<Chunk<T>> {
    page.events.iter().map(|p| Ok(to_raw(&services.client_event(p, Some(user))?))).collect()
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
pub async fn all(
    services: Arc<Services>,
    req: Ruma<get_relating_events::v1::Request>,
) -> ApiResult<get_relating_events::v1::Response> {
    let user = req.auth.user_id;
    let b = req.body;
    blocking(move || {
        let query = RelationsQuery {
            rel_type: None,
            event_type: None,
            from: parse_from(b.from.as_deref())?,
            backward: b.dir == Direction::Backward,
            limit: page_limit(b.limit),
        };
        let page = services.relations(&user, &b.room_id, &b.event_id, &query)?;
        let mut response =
            get_relating_events::v1::Response::new(to_chunk(&services, &user, &page)?);
        response.next_batch = page.next_batch;
        Ok(response)
    })
    .await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
pub async fn by_type(
    services: Arc<Services>,
    req: Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> ApiResult<get_relating_events_with_rel_type::v1::Response> {
    let user = req.auth.user_id;
    let b = req.body;
    blocking(move || {
        let rel_type = b.rel_type.to_string();
        let query = RelationsQuery {
            rel_type: Some(&rel_type),
            event_type: None,
            from: parse_from(b.from.as_deref())?,
            backward: b.dir == Direction::Backward,
            limit: page_limit(b.limit),
        };
        let page = services.relations(&user, &b.room_id, &b.event_id, &query)?;
        let mut response = get_relating_events_with_rel_type::v1::Response::new(to_chunk(
            &services, &user, &page,
        )?);
        response.next_batch = page.next_batch;
        Ok(response)
    })
    .await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
pub async fn by_type_and_event_type(
    services: Arc<Services>,
    req: Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> ApiResult<get_relating_events_with_rel_type_and_event_type::v1::Response> {
    let user = req.auth.user_id;
    let b = req.body;
    blocking(move || {
        let rel_type = b.rel_type.to_string();
        let event_type = b.event_type.to_string();
        let query = RelationsQuery {
            rel_type: Some(&rel_type),
            event_type: Some(&event_type),
            from: parse_from(b.from.as_deref())?,
            backward: b.dir == Direction::Backward,
            limit: page_limit(b.limit),
        };
        let page = services.relations(&user, &b.room_id, &b.event_id, &query)?;
        let mut response = get_relating_events_with_rel_type_and_event_type::v1::Response::new(
            to_chunk(&services, &user, &page)?,
        );
        response.next_batch = page.next_batch;
        Ok(response)
    })
    .await
}

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
pub async fn threads(
    services: Arc<Services>,
    req: Ruma<get_threads::v1::Request>,
) -> ApiResult<get_threads::v1::Response> {
    let user = req.auth.user_id;
    let b = req.body;
    blocking(move || {
        if !services.can_read_room(&user, &b.room_id)? {
            return Err(ApiError::Forbidden("you are not a member of this room".into()));
        }
        let participated = b.include == IncludeThreads::Participated;
        let (roots, next) = services.threads(
            &user,
            &b.room_id,
            parse_from(b.from.as_deref())?,
            page_limit(b.limit),
            participated,
            10_000,
        )?;
        let chunk = roots
            .iter()
            .map(|p| Ok(to_raw(&services.client_event(p, Some(&user))?)))
            .collect::<ApiResult<Vec<_>>>()?;
        let mut response = get_threads::v1::Response::new(chunk);
        response.next_batch = next;
        Ok(response)
    })
    .await
}

/// ruma 0.16 requires `include` on `/threads` although the spec makes it optional (default
/// `all`); add the default before parsing so clients that omit it are served.
pub async fn default_include(mut request: axum::extract::Request) -> axum::extract::Request {
    let query = request.uri().query().unwrap_or_default();
    if !query.split('&').any(|pair| pair.starts_with("include=")) {
        let path = request.uri().path();
        let new_query = if query.is_empty() {
            "include=all".to_owned()
        } else {
            format!("{query}&include=all")
        };
        if let Ok(uri) = format!("{path}?{new_query}").parse() {
            *request.uri_mut() = uri;
        }
    }
    request
}
