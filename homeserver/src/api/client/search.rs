//! `POST /_matrix/client/v3/search`: room events of the user's rooms.

use std::sync::Arc;

use ruma::{
    UInt,
    api::client::search::search_events::{
        self,
        v3::{EventContextResult, ResultCategories, ResultRoomEvents, SearchKeys, SearchResult},
    },
};

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, rooms::pdu::to_raw, search::SearchQuery},
};

/// Searches message bodies (and names and topics when asked).
pub async fn search(
    services: Arc<Services>,
    req: Ruma<search_events::v3::Request>,
) -> ApiResult<search_events::v3::Response> {
    let user = req.auth.user_id;
    let body = req.body;
    let Some(criteria) = body.search_categories.room_events else {
        return Ok(search_events::v3::Response::new(ResultCategories::new()));
    };
    let before = body
        .next_batch
        .as_deref()
        .map(|t| {
            t.parse::<u64>()
                .map_err(|_| ApiError::InvalidParam(format!("invalid next_batch {t:?}")))
        })
        .transpose()?;
    blocking(move || {
        let keys: Vec<&str> = match &criteria.keys {
            Some(keys) if !keys.is_empty() => keys
                .iter()
                .map(|k| match k {
                    SearchKeys::ContentBody => "content.body",
                    SearchKeys::ContentName => "content.name",
                    SearchKeys::ContentTopic => "content.topic",
                    _ => "content.body",
                })
                .collect(),
            _ => vec!["content.body", "content.name", "content.topic"],
        };
        let limit = criteria
            .filter
            .limit
            .map_or(10, |l| usize::try_from(u64::from(l)).unwrap_or(10))
            .clamp(1, 100);
        let query = SearchQuery {
            term: &criteria.search_term,
            keys,
            filter: &criteria.filter,
            before,
            limit,
        };
        let found = services.search(&user, &query)?;
        let mut room_events = ResultRoomEvents::new();
        room_events.count = Some(UInt::try_from(found.count).unwrap_or(UInt::MAX));
        room_events.next_batch = found.next_batch;
        room_events.highlights = found.highlights;
        for pdu in &found.events {
            let mut result = SearchResult::new();
            result.rank = Some(1.0);
            result.result = Some(to_raw(&services.client_event(pdu, Some(&user))?));
            result.context = EventContextResult::new();
            room_events.results.push(result);
        }
        let mut categories = ResultCategories::new();
        categories.room_events = room_events;
        Ok(search_events::v3::Response::new(categories))
    })
    .await
}
