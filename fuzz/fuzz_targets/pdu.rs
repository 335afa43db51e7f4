//! PDU parsing: any JSON stored as an event either is refused as malformed or gives an event
//! whose accessors and client formats never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_homeserver::service::rooms::pdu::{PduEvent, StoredPdu};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(json) = serde_json::value::RawValue::from_string(text.to_owned()) else { return };
    let stored = StoredPdu {
        event_id: ruma::owned_event_id!("$fuzz"),
        room_id: ruma::owned_room_id!("!fuzz:localhost"),
        count: 1,
        state_before: 0,
        state_after: 0,
        replaces_state: None,
        transaction: None,
        redacted_by: None,
        json,
    };
    let Ok(pdu) = PduEvent::from_stored(stored) else { return };
    let _ = pdu.event_id();
    let _ = pdu.room_id();
    let _ = pdu.sender();
    let _ = pdu.kind();
    let _ = pdu.state_key();
    let _ = pdu.redacts();
    let _ = pdu.content_object();
    let _ = pdu.canonical_object();
    let _ = pdu.to_client_json(serde_json::Map::new());
    let _ = pdu.to_stripped_json();
});
