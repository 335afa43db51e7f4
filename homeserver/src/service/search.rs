//! Server-side message search (`POST /search`).
//!
//! Searches the `body` (and `name`/`topic` of state events, per the request's keys) of the most
//! recent events of the user's joined rooms, newest first. It reads up to a bounded number of
//! events per room per request instead of keeping a full-text index: exact for recent history,
//! and every request costs a bounded amount of work.

use std::sync::Arc;

use ruma::{UserId, events::room::member::MembershipState};
use serde_json::Value;

use super::{
    Services, filters,
    rooms::{RoomError, pdu::PduEvent, timeline::Direction},
};

/// Events read per room per search request.
const SCAN_PER_ROOM: usize = 5_000;

/// A search request, reduced to what the server uses.
#[derive(Debug)]
pub struct SearchQuery<'a> {
    /// The words to find (all of them, case-insensitive).
    pub term: &'a str,
    /// Content keys to search: `content.body`, `content.name`, `content.topic`.
    pub keys: Vec<&'a str>,
    /// The room event filter (rooms, senders, types).
    pub filter: &'a ruma::api::client::filter::RoomEventFilter,
    /// Only events older than this stream position (pagination).
    pub before: Option<u64>,
    /// Page size.
    pub limit: usize,
}

/// The results of a search.
#[derive(Debug)]
pub struct SearchResults {
    /// Matching events, newest first.
    pub events: Vec<Arc<PduEvent>>,
    /// Total matches found in the scanned range.
    pub count: usize,
    /// Token for the next page.
    pub next_batch: Option<String>,
    /// The words that matched, for highlighting.
    pub highlights: Vec<String>,
}

impl Services {
    /// Searches the rooms `user` is joined to.
    pub fn search(
        &self,
        user: &UserId,
        query: &SearchQuery<'_>,
    ) -> Result<SearchResults, RoomError> {
        let words: Vec<String> = query
            .term
            .split_whitespace()
            .map(str::to_lowercase)
            .filter(|w| !w.is_empty())
            .collect();
        let upto = query.before.unwrap_or_else(|| self.globals.visible_count() + 1);
        let mut matches = Vec::new();
        if !words.is_empty() {
            for (room_id, entry) in self.rooms.rooms_of(user)? {
                if entry.membership != MembershipState::Join {
                    continue;
                }
                let Some((shortroomid, _)) = self.rooms.meta(&room_id)? else { continue };
                let events = self.rooms.timeline_page(
                    shortroomid,
                    upto,
                    Direction::Backward,
                    SCAN_PER_ROOM,
                    u64::MAX,
                )?;
                for pdu in events {
                    if pdu.stored.redacted_by.is_some() || !filters::matches(query.filter, &pdu) {
                        continue;
                    }
                    if contains_all(&pdu, &query.keys, &words) && self.can_see_event(user, &pdu)? {
                        matches.push(pdu);
                    }
                }
            }
        }
        matches.sort_by_key(|p| std::cmp::Reverse(p.stored.count));
        let count = matches.len();
        let next_batch = (matches.len() > query.limit)
            .then(|| matches.get(query.limit - 1).map(|p| p.stored.count.to_string()))
            .flatten();
        matches.truncate(query.limit);
        Ok(SearchResults { events: matches, count, next_batch, highlights: words })
    }
}

fn contains_all(pdu: &PduEvent, keys: &[&str], words: &[String]) -> bool {
    let content = pdu.content_object();
    let text: String = keys
        .iter()
        .filter_map(|key| key.strip_prefix("content."))
        .filter_map(|field| content.get(field).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    !text.is_empty() && words.iter().all(|w| text.contains(w.as_str()))
}
