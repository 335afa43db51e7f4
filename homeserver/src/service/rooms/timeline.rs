//! Reading a room's timeline: one prefix scan over `shortroomid ‖ count`.

use std::sync::Arc;

use super::{RoomError, Rooms, pdu::PduEvent};

/// Which way to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first, from a position upwards.
    Forward,
    /// Newest first, from a position downwards.
    Backward,
}

impl Rooms {
    /// Events of a room strictly after `after` and at most `upto`, newest `limit` of them, returned
    /// oldest first, and whether older events in that range were left out.
    pub fn timeline_tail(
        &self,
        shortroomid: u64,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<(Vec<Arc<PduEvent>>, bool), RoomError> {
        let mut events = Vec::new();
        let mut limited = false;
        for entry in self.timeline.scan_prefix_from(&shortroomid, &(shortroomid, upto), false)? {
            let ((_, count), short) = entry?;
            if count <= after {
                break;
            }
            if count > upto {
                continue;
            }
            if events.len() == limit {
                limited = true;
                break;
            }
            if let Some(pdu) = self.pdu_by_short(short)? {
                events.push(pdu);
            }
        }
        events.reverse();
        Ok((events, limited))
    }

    /// Up to `limit` events from position `from` in direction `dir` (exclusive of `from` going
    /// backwards, inclusive going forwards), never past `upto`.
    pub fn timeline_page(
        &self,
        shortroomid: u64,
        from: u64,
        dir: Direction,
        limit: usize,
        upto: u64,
    ) -> Result<Vec<Arc<PduEvent>>, RoomError> {
        let mut events = Vec::new();
        let (start, forward) = match dir {
            Direction::Forward => (from, true),
            Direction::Backward => (from.saturating_sub(1), false),
        };
        if !forward && from == 0 {
            return Ok(events);
        }
        for entry in self.timeline.scan_prefix_from(&shortroomid, &(shortroomid, start), forward)? {
            let ((_, count), short) = entry?;
            if count > upto {
                if forward {
                    break;
                }
                continue;
            }
            if let Some(pdu) = self.pdu_by_short(short)? {
                events.push(pdu);
            }
            if events.len() >= limit {
                break;
            }
        }
        Ok(events)
    }

    /// Events of every room with a stream position in `(after, upto]`, in stream order, at most
    /// `limit` of them, with their positions.
    pub fn stream_events(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Arc<PduEvent>)>, RoomError> {
        let mut events = Vec::new();
        for entry in self.stream.scan_from(&(after + 1))? {
            let (count, short) = entry?;
            if count > upto || events.len() >= limit {
                break;
            }
            if let Some(pdu) = self.pdu_by_short(short)? {
                events.push((count, pdu));
            }
        }
        Ok(events)
    }

    /// The latest event at or before stream position `at`, whose `state_after` is the room state
    /// at that position.
    pub fn event_at(&self, shortroomid: u64, at: u64) -> Result<Option<Arc<PduEvent>>, RoomError> {
        for entry in self.timeline.scan_prefix_from(&shortroomid, &(shortroomid, at), false)? {
            let ((_, count), short) = entry?;
            if count <= at {
                return self.pdu_by_short(short);
            }
        }
        Ok(None)
    }

    /// Events relating to `target`, oldest first.
    pub fn related_events(&self, target: &PduEvent) -> Result<Vec<Arc<PduEvent>>, RoomError> {
        let Some(short) = self.short.shorteventid(target.event_id())? else {
            return Ok(Vec::new());
        };
        let mut events = Vec::new();
        for entry in self.relations.scan_prefix(&short)? {
            let (_, related) = entry?;
            if let Some(pdu) = self.pdu_by_short(related)? {
                events.push(pdu);
            }
        }
        Ok(events)
    }
}
