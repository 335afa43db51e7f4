//! Relations (`/relations`) and thread lists (`/threads`), read for a user who may see them.

use std::{collections::HashSet, sync::Arc};

use ruma::{OwnedEventId, RoomId, UserId};
use serde_json::Value;

use super::{
    Services,
    rooms::{RoomError, pdu::PduEvent},
};

/// A page of relating events.
#[derive(Debug)]
pub struct RelationsPage {
    /// The events, in the requested order.
    pub events: Vec<Arc<PduEvent>>,
    /// Token for the next page.
    pub next_batch: Option<String>,
}

/// Which relations to list.
#[derive(Debug)]
pub struct RelationsQuery<'a> {
    /// Only this relation type (`m.replace`, `m.annotation`, `m.thread`, ...).
    pub rel_type: Option<&'a str>,
    /// Only this event type.
    pub event_type: Option<&'a str>,
    /// Continue from this token (a stream position).
    pub from: Option<u64>,
    /// Newest first (`dir=b`, the default) or oldest first.
    pub backward: bool,
    /// Page size.
    pub limit: usize,
}

fn rel_type(pdu: &PduEvent) -> Option<String> {
    pdu.content_object()
        .get("m.relates_to")
        .and_then(|r| r.get("rel_type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl Services {
    /// The events relating to `event_id`, as `user` may see them.
    pub fn relations(
        &self,
        user: &UserId,
        room_id: &RoomId,
        event_id: &OwnedEventId,
        query: &RelationsQuery<'_>,
    ) -> Result<RelationsPage, RoomError> {
        let target = self.rooms.pdu(event_id)?.filter(|p| p.room_id() == room_id);
        let Some(target) = target else { return Err(RoomError::UnknownEvent) };
        if !self.can_see_event(user, &target)? {
            return Err(RoomError::UnknownEvent);
        }
        let mut events: Vec<Arc<PduEvent>> = self
            .rooms
            .related_events(&target)?
            .into_iter()
            .filter(|p| query.rel_type.is_none_or(|t| rel_type(p).as_deref() == Some(t)))
            .filter(|p| query.event_type.is_none_or(|t| p.kind().to_string() == t))
            .collect();
        if query.backward {
            events.reverse();
        }
        if let Some(from) = query.from {
            events.retain(|p| {
                if query.backward { p.stored.count < from } else { p.stored.count >= from }
            });
        }
        let mut page = Vec::new();
        for pdu in events {
            if page.len() == query.limit {
                let next = if query.backward { page_last(&page) } else { page_last(&page) + 1 };
                return Ok(RelationsPage { events: page, next_batch: Some(next.to_string()) });
            }
            if self.can_see_event(user, &pdu)? {
                page.push(pdu);
            }
        }
        Ok(RelationsPage { events: page, next_batch: None })
    }

    /// Thread roots of a room, most recently active first. `participated_only` keeps threads the
    /// user started or replied to. Scans at most `scan_limit` recent events per call.
    pub fn threads(
        &self,
        user: &UserId,
        room_id: &RoomId,
        from: Option<u64>,
        limit: usize,
        participated_only: bool,
        scan_limit: usize,
    ) -> Result<(Vec<Arc<PduEvent>>, Option<String>), RoomError> {
        let (shortroomid, _) = self.rooms.require_meta(room_id)?;
        let upto = from.unwrap_or_else(|| self.globals.visible_count() + 1);
        let events = self.rooms.timeline_page(
            shortroomid,
            upto,
            super::rooms::timeline::Direction::Backward,
            scan_limit,
            u64::MAX,
        )?;
        let mut seen: HashSet<OwnedEventId> = HashSet::new();
        let mut roots = Vec::new();
        let mut next = None;
        for event in &events {
            if rel_type(event).as_deref() != Some("m.thread") {
                continue;
            }
            let Some(root_id) = event
                .content_object()
                .get("m.relates_to")
                .and_then(|r| r.get("event_id"))
                .and_then(Value::as_str)
                .and_then(|id| OwnedEventId::try_from(id).ok())
            else {
                continue;
            };
            if !seen.insert(root_id.clone()) {
                continue;
            }
            let Some(root) = self.rooms.pdu(&root_id)? else { continue };
            if !self.can_see_event(user, &root)? {
                continue;
            }
            if participated_only {
                let related = self.rooms.related_events(&root)?;
                let participated = root.sender() == user
                    || related
                        .iter()
                        .any(|r| r.sender() == user && rel_type(r).as_deref() == Some("m.thread"));
                if !participated {
                    continue;
                }
            }
            if roots.len() == limit {
                next = Some((event.stored.count + 1).to_string());
                break;
            }
            roots.push(root);
        }
        Ok((roots, next))
    }
}

fn page_last(page: &[Arc<PduEvent>]) -> u64 {
    page.last().map_or(0, |p| p.stored.count)
}
