//! A stored PDU: the signed federation event plus what this server learned when it stored it.

use std::sync::Arc;

use ruma::{
    CanonicalJsonObject, MilliSecondsSinceUnixEpoch, OwnedDeviceId, OwnedEventId, OwnedRoomId,
    OwnedTransactionId, OwnedUserId, RoomId, UInt, UserId, events::TimelineEventType, serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::value::{RawValue as RawJsonValue, to_raw_value};

/// The fields of a PDU this server reads; the full signed JSON is kept in [`StoredPdu::json`].
#[derive(Clone, Debug, Deserialize)]
pub struct PduFields {
    /// Absent only in the create event of room version 12 and later.
    pub room_id: Option<OwnedRoomId>,
    /// Who sent it.
    pub sender: OwnedUserId,
    /// When the origin server created it.
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    /// The content, kept raw so that unknown fields survive.
    pub content: Box<RawJsonValue>,
    /// Present for state events.
    #[serde(default)]
    pub state_key: Option<String>,
    /// The events this one follows in the room DAG.
    #[serde(deserialize_with = "event_references")]
    pub prev_events: Vec<OwnedEventId>,
    /// The events that authorise this one.
    #[serde(deserialize_with = "event_references")]
    pub auth_events: Vec<OwnedEventId>,
    /// For redactions in room versions before 11 (a top-level key).
    #[serde(default)]
    pub redacts: Option<OwnedEventId>,
    /// Depth in the DAG.
    pub depth: UInt,
}

/// What is stored per event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredPdu {
    /// The event ID (a reference hash: not part of the JSON).
    pub event_id: OwnedEventId,
    /// The room, also for the v12 create event whose JSON has none.
    pub room_id: OwnedRoomId,
    /// Position in the global stream.
    pub count: u64,
    /// Short ID of the room state before this event.
    pub state_before: u64,
    /// Short ID of the room state after this event.
    pub state_after: u64,
    /// For a state event, the event it replaced in the state.
    pub replaces_state: Option<OwnedEventId>,
    /// The device and transaction ID the sender used, for echoing `unsigned.transaction_id`.
    pub transaction: Option<(OwnedDeviceId, OwnedTransactionId)>,
    /// Set once the event is redacted: the redaction's event ID.
    pub redacted_by: Option<OwnedEventId>,
    /// Set for an event another server joined (or knocked, or left) through this one: this
    /// server passes it on to the other servers of the room, as it does its own users' events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay: bool,
    /// The signed PDU as sent over federation (redacted once redacted).
    pub json: Box<RawJsonValue>,
}

/// A PDU in memory: the stored record plus parsed fields.
#[derive(Clone, Debug)]
pub struct PduEvent {
    /// The stored record.
    pub stored: StoredPdu,
    /// Parsed fields of `stored.json`.
    pub fields: PduFields,
    /// The event a redaction redacts, wherever the room version puts it.
    redacts: Option<OwnedEventId>,
}

/// Errors reading a stored PDU.
#[derive(Debug, thiserror::Error)]
#[error("stored event is malformed: {0}")]
pub struct MalformedPdu(#[from] pub serde_json::Error);

impl PduEvent {
    /// Parses a stored record.
    pub fn from_stored(stored: StoredPdu) -> Result<Arc<Self>, MalformedPdu> {
        let fields: PduFields = serde_json::from_str(stored.json.get())?;
        let redacts = redacted_event(&fields);
        Ok(Arc::new(Self { stored, fields, redacts }))
    }

    /// The event ID.
    pub fn event_id(&self) -> &OwnedEventId {
        &self.stored.event_id
    }

    /// The room.
    pub fn room_id(&self) -> &RoomId {
        &self.stored.room_id
    }

    /// The sender.
    pub fn sender(&self) -> &UserId {
        &self.fields.sender
    }

    /// The event type.
    pub fn kind(&self) -> &TimelineEventType {
        &self.fields.kind
    }

    /// The state key, for state events.
    pub fn state_key(&self) -> Option<&str> {
        self.fields.state_key.as_deref()
    }

    /// The content, parsed into a JSON object (empty if it is not an object).
    pub fn content_object(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.fields.content.get()).unwrap_or_default()
    }

    /// Parses the content as `T`.
    pub fn content_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.fields.content.get())
    }

    /// The event this one redacts: top-level `redacts` before v11, `content.redacts` from v11.
    pub fn redacts(&self) -> Option<&OwnedEventId> {
        self.redacts.as_ref()
    }

    /// The full PDU as a canonical JSON object.
    pub fn canonical_object(&self) -> Result<CanonicalJsonObject, serde_json::Error> {
        serde_json::from_str(self.stored.json.get())
    }

    /// The event as clients see it (`ClientEvent`), with `unsigned` filled in by the caller.
    pub fn to_client_json(&self, unsigned: serde_json::Map<String, serde_json::Value>) -> Value {
        let mut event = serde_json::Map::new();
        event.insert("event_id".into(), self.stored.event_id.as_str().into());
        event.insert("room_id".into(), self.stored.room_id.as_str().into());
        event.insert("sender".into(), self.fields.sender.as_str().into());
        event.insert("type".into(), self.fields.kind.to_string().into());
        event.insert("origin_server_ts".into(), u64::from(self.fields.origin_server_ts.0).into());
        event.insert(
            "content".into(),
            serde_json::from_str(self.fields.content.get()).unwrap_or_default(),
        );
        if let Some(state_key) = &self.fields.state_key {
            event.insert("state_key".into(), state_key.as_str().into());
        }
        if let Some(redacts) = self.redacts() {
            event.insert("redacts".into(), redacts.as_str().into());
        }
        if !unsigned.is_empty() {
            event.insert("unsigned".into(), unsigned.into());
        }
        serde_json::Value::Object(event)
    }

    /// The stripped form used in invite and knock state.
    pub fn to_stripped_json(&self) -> Value {
        serde_json::json!({
            "type": self.fields.kind.to_string(),
            "state_key": self.fields.state_key,
            "sender": self.fields.sender,
            "content": serde_json::from_str::<serde_json::Value>(self.fields.content.get())
                .unwrap_or_default(),
        })
    }
}

fn redacted_event(fields: &PduFields) -> Option<OwnedEventId> {
    if fields.kind != TimelineEventType::RoomRedaction {
        return None;
    }
    #[derive(Deserialize)]
    struct Content {
        redacts: Option<OwnedEventId>,
    }
    fields
        .redacts
        .clone()
        .or_else(|| serde_json::from_str::<Content>(fields.content.get()).ok()?.redacts)
}

/// Client JSON values.
pub type Value = serde_json::Value;

/// Wraps a JSON value as a ruma `Raw<T>` for a ruma response type.
pub fn to_raw<T>(value: &Value) -> Raw<T> {
    // A `serde_json::Value` always serialises.
    Raw::from_json(to_raw_value(value).unwrap_or_else(|_| empty_object()))
}

fn empty_object() -> Box<RawJsonValue> {
    RawJsonValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable_raw())
}

#[allow(clippy::unwrap_used, reason = "`null` is valid JSON")]
fn unreachable_raw() -> Box<RawJsonValue> {
    RawJsonValue::from_string("null".to_owned()).unwrap()
}

impl ruma::state_res::Event for PduEvent {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.stored.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        self.fields.room_id.as_deref()
    }
    fn sender(&self) -> &UserId {
        &self.fields.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.fields.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.fields.kind
    }
    fn content(&self) -> &RawJsonValue {
        &self.fields.content
    }
    fn state_key(&self) -> Option<&str> {
        self.fields.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.fields.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.fields.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}

/// Event references: plain IDs, or, in room versions 1 and 2, `[event_id, {hashes}]` pairs.
fn event_references<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<OwnedEventId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reference {
        Id(OwnedEventId),
        Pair(OwnedEventId, serde::de::IgnoredAny),
    }
    let references = Vec::<Reference>::deserialize(deserializer)?;
    Ok(references
        .into_iter()
        .map(|r| match r {
            Reference::Id(id) | Reference::Pair(id, _) => id,
        })
        .collect())
}
