//! Backfill: the history of a room from before this server joined it, asked of the room's other
//! servers (`/backfill`) when a client pages back past the oldest event this server has.

use ruma::{
    CanonicalJsonValue, OwnedServerName, RoomId, UInt, api::federation::backfill::get_backfill,
    events::TimelineEventType,
};

use super::pdu::{PduError, parse_pdu};
use crate::service::{Services, rooms::remote::belongs_to_room};

/// Events asked for at most per backfill request.
const MAX_BACKFILL: u32 = 100;

impl Services {
    /// Fetches up to `limit` events of `room_id`'s history older than the oldest one here, when
    /// this server joined the room over federation and does not hold its beginning. Returns how
    /// many events were added. Failures are logged: paging then simply ends where the local
    /// history does.
    pub async fn backfill(&self, room_id: &RoomId, limit: u32) -> usize {
        match self.try_backfill(room_id, limit).await {
            Ok(added) => added,
            Err(e) => {
                tracing::info!(%room_id, error = %e, "backfill failed");
                0
            }
        }
    }

    async fn try_backfill(&self, room_id: &RoomId, limit: u32) -> Result<usize, PduError> {
        if !self.config.federation.enabled {
            return Ok(0);
        }
        let Some(earliest) = self.rooms.earliest_event(room_id)? else { return Ok(0) };
        if *earliest.kind() == TimelineEventType::RoomCreate {
            return Ok(0);
        }
        let Some(version) = self.rooms.room_version(room_id)? else { return Ok(0) };
        let mut servers: Vec<OwnedServerName> = self
            .rooms
            .joined_members(room_id)?
            .iter()
            .map(|u| u.server_name().to_owned())
            .filter(|s| *s != self.config.server_name)
            .collect();
        servers.sort();
        servers.dedup();
        let limit = UInt::from(limit.clamp(1, MAX_BACKFILL));
        for server in servers {
            let request = get_backfill::v1::Request::new(
                room_id.to_owned(),
                vec![earliest.event_id().clone()],
                limit,
            );
            let response = match self.federation.client.send(&server, request).await {
                Ok(response) => response,
                Err(e) => {
                    tracing::info!(%room_id, %server, error = %e, "backfill from this server failed");
                    continue;
                }
            };
            // Newest first, so that each one goes just before the previous.
            let mut events = Vec::new();
            for json in &response.pdus {
                let Ok((id, object)) = parse_pdu(json, &version) else { continue };
                if !belongs_to_room(&object, &id, room_id) {
                    continue;
                }
                let depth = match object.get("depth") {
                    Some(CanonicalJsonValue::Integer(d)) => i64::from(*d),
                    _ => 0,
                };
                events.push((depth, id, object));
            }
            events.sort_by_key(|e| std::cmp::Reverse(e.0));
            let mut added = 0;
            for (_, id, object) in events {
                if self.rooms.is_in_timeline(&id)? {
                    continue;
                }
                match self.verify_pdu(id.clone(), room_id.to_owned(), object, &version).await {
                    Ok(verified) => {
                        let stored = super::off_the_executor(|| {
                            self.rooms.store_backfilled(
                                room_id,
                                &verified.event_id,
                                &verified.object,
                            )
                        })?;
                        if stored {
                            added += 1;
                        }
                    }
                    Err(e) => {
                        tracing::info!(%id, error = %e, "a backfilled event failed its checks")
                    }
                }
            }
            return Ok(added);
        }
        Ok(0)
    }
}
