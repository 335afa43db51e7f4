//! Receiving PDUs from other servers: the checks of the spec's "Checks performed on receipt of a
//! PDU", in order.
//!
//! 1. The event is valid JSON of its room's version, for a room this server is in.
//! 2. Its signatures verify with the keys of the servers that must have signed it; a content hash
//!    that does not match makes the event be stored redacted.
//! 3. Its auth events are known, fetched from the origin (`/event`) when not.
//! 4. Its `prev_events` are known; missing ones are asked for with `get_missing_events` and
//!    processed first, oldest first.
//! 5. It passes the authorization rules against its auth events, against the state before it, and
//!    against the current state (soft failure): `Rooms::append_remote`.

use std::collections::HashSet;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId,
    ServerName,
    api::federation::event::{get_event, get_missing_events, get_room_state},
    signatures::Verified,
};
use serde_json::value::RawValue as RawJsonValue;

use super::FederationError;
use crate::service::{
    Services,
    rooms::{
        RoomError,
        remote::{Accepted, belongs_to_room, event_id_of, ids_of, rules_of},
    },
};

/// How many missing events one gap-filling request asks for.
const MISSING_EVENTS_LIMIT: u32 = 50;
/// How deep auth events are fetched for one event.
const MAX_AUTH_FETCH: usize = 200;

/// Why an event from another server was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    /// The JSON is not an event.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The event is for a room this server is not in.
    #[error("this server is not in room {0}")]
    UnknownRoom(OwnedRoomId),
    /// A signature does not verify, or keys could not be had.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// The room refused it (authorization rules) or storing failed.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// The room's server ACL denies the origin.
    #[error("{0}")]
    Denied(String),
    /// Events it needs could not be obtained.
    #[error("missing events: {0}")]
    Missing(String),
}

impl From<crate::storage::StorageError> for PduError {
    fn from(error: crate::storage::StorageError) -> Self {
        Self::Room(error.into())
    }
}

/// An event parsed and checked for its signatures and hash.
#[derive(Clone, Debug)]
pub struct VerifiedPdu {
    /// Its ID.
    pub event_id: OwnedEventId,
    /// Its room.
    pub room_id: OwnedRoomId,
    /// The event, redacted when its content hash did not match.
    pub object: CanonicalJsonObject,
}

/// Parses a PDU of a known room version: its object and its ID.
pub fn parse_pdu(
    json: &RawJsonValue,
    version: &RoomVersionId,
) -> Result<(OwnedEventId, CanonicalJsonObject), PduError> {
    let object: CanonicalJsonObject =
        serde_json::from_str(json.get()).map_err(|e| PduError::Invalid(e.to_string()))?;
    let rules = rules_of(version)?;
    let event_id = event_id_of(&object, &rules)?;
    Ok((event_id, object))
}

/// The room an event names.
pub fn room_of(object: &CanonicalJsonObject) -> Result<OwnedRoomId, PduError> {
    match object.get("room_id") {
        Some(CanonicalJsonValue::String(id)) => {
            OwnedRoomId::try_from(id.as_str()).map_err(|e| PduError::Invalid(e.to_string()))
        }
        _ => Err(PduError::Invalid("the event has no room_id".into())),
    }
}

impl Services {
    /// Checks an event's signatures and hash (step 2): redacts it when only the hash fails.
    pub async fn verify_pdu(
        &self,
        event_id: OwnedEventId,
        room_id: OwnedRoomId,
        object: CanonicalJsonObject,
        version: &RoomVersionId,
    ) -> Result<VerifiedPdu, PduError> {
        let object = match self.federation.keys.verify_event(&object, version).await? {
            Verified::All => object,
            Verified::Signatures => {
                tracing::warn!(%event_id, "content hash mismatch: the event is stored redacted");
                let rules = rules_of(version)?;
                ruma::canonical_json::redact(object, &rules.redaction, None)
                    .map_err(|e| PduError::Invalid(e.to_string()))?
            }
        };
        Ok(VerifiedPdu { event_id, room_id, object })
    }

    /// Verifies the events of another server's answer (a join's state, the state at an event);
    /// events of another room or that fail their checks are left out.
    pub async fn verify_pdus(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        version: &RoomVersionId,
        events: &[Box<RawJsonValue>],
    ) -> Result<Vec<(OwnedEventId, CanonicalJsonObject)>, PduError> {
        let mut out = Vec::with_capacity(events.len());
        for json in events {
            let (id, object) = parse_pdu(json, version)?;
            if !belongs_to_room(&object, &id, room_id) {
                continue;
            }
            match self.verify_pdu(id.clone(), room_id.to_owned(), object, version).await {
                Ok(verified) => out.push((id, verified.object)),
                Err(e) => {
                    tracing::warn!(%server, %id, error = %e, "an event of another server's answer failed its checks")
                }
            }
        }
        Ok(out)
    }

    /// Handles one PDU of a transaction from `origin`.
    pub async fn handle_incoming_pdu(
        &self,
        origin: &ServerName,
        json: &RawJsonValue,
    ) -> Result<(OwnedEventId, Accepted), (Option<OwnedEventId>, PduError)> {
        let object: CanonicalJsonObject = serde_json::from_str(json.get())
            .map_err(|e| (None, PduError::Invalid(e.to_string())))?;
        let room_id = room_of(&object).map_err(|e| (None, e))?;
        let version = self
            .rooms
            .room_version(&room_id)
            .map_err(|e| (None, e.into()))?
            .ok_or_else(|| (None, PduError::UnknownRoom(room_id.clone())))?;
        let rules = rules_of(&version).map_err(|e| (None, e.into()))?;
        let event_id = event_id_of(&object, &rules).map_err(|e| (None, e.into()))?;
        // A server the room's ACL denies sends nothing into it (`m.room.server_acl`).
        if let Err(e) = self.check_server_acl(&room_id, origin) {
            return Err((Some(event_id), PduError::Denied(e.to_string())));
        }
        let result =
            self.accept_pdu(origin, &room_id, &version, event_id.clone(), object, true).await;
        match result {
            Ok(accepted) => Ok((event_id, accepted)),
            Err(e) => Err((Some(event_id), e)),
        }
    }

    /// Steps 2 to 5 for one event; `fill_gaps` allows asking the origin for missing
    /// `prev_events` (not when processing the answer of such a request).
    fn accept_pdu<'a>(
        &'a self,
        origin: &'a ServerName,
        room_id: &'a RoomId,
        version: &'a RoomVersionId,
        event_id: OwnedEventId,
        object: CanonicalJsonObject,
        fill_gaps: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Accepted, PduError>> + Send + 'a>> {
        Box::pin(async move {
            if self.rooms.is_in_timeline(&event_id)? {
                return Ok(Accepted::AlreadyKnown);
            }
            let verified =
                self.verify_pdu(event_id.clone(), room_id.to_owned(), object, version).await?;
            self.fetch_auth_events(origin, room_id, version, &verified.object).await?;
            let missing = self.missing_prev_events(&verified.object)?;
            if !missing.is_empty() {
                if !fill_gaps {
                    return Err(PduError::Missing(format!(
                        "prev events of {event_id} are unknown: {missing:?}"
                    )));
                }
                self.fill_gap(origin, room_id, version, &event_id).await?;
                let still = self.missing_prev_events(&verified.object)?;
                if !still.is_empty() {
                    // The gap stays: take the state before the event from its origin.
                    tracing::info!(%event_id, missing = still.len(), "prev events unavailable: taking the state before the event from its origin");
                    let request =
                        get_room_state::v1::Request::new(event_id.clone(), room_id.to_owned());
                    let answer = self.federation.client.send(origin, request).await?;
                    let state = self.verify_pdus(origin, room_id, version, &answer.pdus).await?;
                    let chain =
                        self.verify_pdus(origin, room_id, version, &answer.auth_chain).await?;
                    return Ok(super::off_the_executor(|| {
                        self.rooms.append_remote_with_state(
                            room_id,
                            &verified.event_id,
                            &verified.object,
                            &state,
                            &chain,
                        )
                    })?);
                }
            }
            let rooms = &self.rooms;
            Ok(super::off_the_executor(|| {
                rooms.append_remote(room_id, &verified.event_id, &verified.object, false)
            })?)
        })
    }

    /// The `prev_events` of an event that have no place in this server's DAG.
    fn missing_prev_events(
        &self,
        object: &CanonicalJsonObject,
    ) -> Result<Vec<OwnedEventId>, PduError> {
        let mut missing = Vec::new();
        for id in ids_of(object, "prev_events") {
            if !self.rooms.is_in_timeline(&id)? {
                missing.push(id);
            }
        }
        Ok(missing)
    }

    /// Fetches (`/event`), verifies and stores as outliers the auth events of an event that this
    /// server does not have, and theirs, transitively.
    pub async fn fetch_auth_events(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        version: &RoomVersionId,
        object: &CanonicalJsonObject,
    ) -> Result<(), PduError> {
        let mut todo: Vec<OwnedEventId> = ids_of(object, "auth_events");
        let mut seen = HashSet::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) || self.rooms.pdu(&id)?.is_some() {
                continue;
            }
            if seen.len() > MAX_AUTH_FETCH {
                return Err(PduError::Missing(format!("the auth chain of {room_id} is too deep")));
            }
            let response = self
                .federation
                .client
                .send(origin, get_event::v1::Request::new(id.clone()))
                .await?;
            let (fetched_id, fetched) = parse_pdu(&response.pdu, version)?;
            if fetched_id != id {
                return Err(PduError::Invalid(format!("{origin} answered {fetched_id} for {id}")));
            }
            if room_of(&fetched)? != room_id {
                return Err(PduError::Invalid(format!("{id} is not an event of {room_id}")));
            }
            let verified =
                self.verify_pdu(fetched_id, room_id.to_owned(), fetched, version).await?;
            todo.extend(ids_of(&verified.object, "auth_events"));
            self.rooms.store_outlier(room_id, &verified.event_id, &verified.object)?;
        }
        Ok(())
    }

    /// Asks `origin` for the events between this server's forward extremities and `latest`, and
    /// processes them oldest first.
    async fn fill_gap(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        version: &RoomVersionId,
        latest: &OwnedEventId,
    ) -> Result<(), PduError> {
        let (_, meta) = self.rooms.require_meta(room_id)?;
        let mut request = get_missing_events::v1::Request::new(
            room_id.to_owned(),
            meta.extremities.clone(),
            vec![latest.clone()],
        );
        request.limit = MISSING_EVENTS_LIMIT.into();
        let response = self.federation.client.send(origin, request).await?;
        let mut events = Vec::new();
        for json in &response.events {
            let (id, object) = parse_pdu(json, version)?;
            if room_of(&object)? != room_id {
                continue;
            }
            let depth = match object.get("depth") {
                Some(CanonicalJsonValue::Integer(d)) => i64::from(*d),
                _ => 0,
            };
            events.push((depth, id, object));
        }
        events.sort_by_key(|(depth, _, _)| *depth);
        for (_, id, object) in events {
            if let Err(e) =
                self.accept_pdu(origin, room_id, version, id.clone(), object, false).await
            {
                tracing::info!(%id, error = %e, "a missing event could not be added");
            }
        }
        Ok(())
    }
}
