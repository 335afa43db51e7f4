//! Events as clients see them: the PDU stripped of federation fields, with `unsigned` computed
//! for the viewer (age, transaction ID, previous state content, redaction, relations).

use ruma::UserId;
use serde_json::{Map, Value, json};

use super::{
    Services,
    ephemeral::now_ms,
    rooms::{RoomError, pdu::PduEvent},
};

impl Services {
    /// The client form of an event for `viewer`.
    pub fn client_event(
        &self,
        pdu: &PduEvent,
        viewer: Option<&UserId>,
    ) -> Result<Value, RoomError> {
        let mut unsigned = Map::new();
        let ts: u64 = pdu.fields.origin_server_ts.0.into();
        unsigned.insert("age".into(), now_ms().saturating_sub(ts).into());
        if let Some((_, txn)) = &pdu.stored.transaction
            && viewer == Some(pdu.sender())
        {
            unsigned.insert("transaction_id".into(), txn.as_str().into());
        }
        if let Some(replaced) = &pdu.stored.replaces_state {
            unsigned.insert("replaces_state".into(), replaced.as_str().into());
            if let Some(previous) = self.rooms.pdu(replaced)? {
                unsigned.insert(
                    "prev_content".into(),
                    serde_json::from_str(previous.fields.content.get()).unwrap_or_default(),
                );
                unsigned.insert("prev_sender".into(), previous.sender().as_str().into());
            }
        }
        if let Some(redaction) = &pdu.stored.redacted_by {
            if let Some(redaction) = self.rooms.pdu(redaction)? {
                unsigned.insert("redacted_because".into(), redaction.to_client_json(Map::new()));
            }
        } else if let Some(relations) = self.relations_summary(pdu, viewer)? {
            unsigned.insert("m.relations".into(), relations);
        }
        Ok(pdu.to_client_json(unsigned))
    }

    /// The server-side aggregations of an event's relations: the latest edit (`m.replace`), the
    /// thread summary (`m.thread`) and references (`m.reference`).
    fn relations_summary(
        &self,
        pdu: &PduEvent,
        viewer: Option<&UserId>,
    ) -> Result<Option<Value>, RoomError> {
        let related = self.rooms.related_events(pdu)?;
        if related.is_empty() {
            return Ok(None);
        }
        let mut summary = Map::new();
        let mut thread_count = 0u64;
        let mut thread_latest = None;
        let mut participated = false;
        let mut references = Vec::new();
        let mut latest_edit = None;
        for event in &related {
            if event.stored.redacted_by.is_some() {
                continue;
            }
            let content = event.content_object();
            let rel_type = content
                .get("m.relates_to")
                .and_then(|r| r.get("rel_type"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            match rel_type {
                "m.replace" if event.sender() == pdu.sender() && event.kind() == pdu.kind() => {
                    latest_edit = Some(event.clone());
                }
                "m.thread" => {
                    thread_count += 1;
                    participated |= viewer == Some(event.sender());
                    thread_latest = Some(event.clone());
                }
                "m.reference" => references.push(json!({ "event_id": event.event_id() })),
                _ => {}
            }
        }
        if let Some(edit) = latest_edit {
            summary.insert("m.replace".into(), edit.to_client_json(Map::new()));
        }
        if let Some(latest) = thread_latest {
            participated |= viewer == Some(pdu.sender());
            summary.insert(
                "m.thread".into(),
                json!({
                    "latest_event": self.client_event_plain(&latest)?,
                    "count": thread_count,
                    "current_user_participated": participated,
                }),
            );
        }
        if !references.is_empty() {
            summary.insert("m.reference".into(), json!({ "chunk": references }));
        }
        Ok((!summary.is_empty()).then_some(Value::Object(summary)))
    }

    /// The client form without relations (for nested events, to avoid recursion).
    fn client_event_plain(&self, pdu: &PduEvent) -> Result<Value, RoomError> {
        let mut unsigned = Map::new();
        let ts: u64 = pdu.fields.origin_server_ts.0.into();
        unsigned.insert("age".into(), now_ms().saturating_sub(ts).into());
        Ok(pdu.to_client_json(unsigned))
    }
}
