//! What each fuzz target checks, one function per target, shared by the cargo-fuzz targets in
//! `fuzz_targets/` (this file is the `relais_fuzz` library) and by the stable test
//! `homeserver/tests/fuzz_corpus.rs`, which replays every input of `fuzz/corpus/<target>` and
//! `fuzz/regressions/<target>` through the same function on every `cargo test`.
//!
//! Each function must not panic on any input; a panic is the finding.

use http::Method;
use relais_homeserver::{
    api::{json_limits, ruma::parse_request},
    config::Config,
    service::rooms::pdu::{PduEvent, StoredPdu},
    storage::codec::{KeyPart, decode_key, encode_key},
};
use relais_policy::{Action, Actor, Decision, Directory, DirectoryParts, RoomFacts, UserId};
use ruma::{
    CanonicalJsonValue,
    api::{
        IncomingRequest,
        client::{
            account::register,
            filter::create_filter,
            keys::{claim_keys, get_keys, upload_keys},
            message::send_message_event,
            room::create_room,
            search::search_events,
            session::login,
            sync::sync_events,
            to_device::send_event_to_device,
        },
    },
};
use serde::Deserialize;

/// Decodes `bytes` as `K`; if that works, the encoding must give `bytes` back.
fn round_trip<K: KeyPart>(bytes: &[u8]) {
    if let Ok(key) = decode_key::<K>(bytes) {
        assert_eq!(encode_key(&key), bytes, "a decoded key re-encodes differently");
    }
}

/// The key codec: decoding any bytes never panics, whatever decodes re-encodes to exactly the
/// same bytes (one encoding per key), and key order is string order with no key a prefix of
/// another.
pub fn key_codec(data: &[u8]) {
    round_trip::<u64>(data);
    round_trip::<String>(data);
    round_trip::<(u64, String)>(data);
    round_trip::<(String, u64)>(data);
    round_trip::<(String, String, u64)>(data);
    round_trip::<(ruma::OwnedRoomId, u64)>(data);
    round_trip::<(ruma::OwnedUserId, ruma::OwnedDeviceId)>(data);
    let text = String::from_utf8_lossy(data);
    let middle = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
    let (a, b) = text.split_at(middle);
    let (ka, kb) = (encode_key(&a.to_owned()), encode_key(&b.to_owned()));
    assert_eq!(a.cmp(b), ka.cmp(&kb), "key order differs from string order");
    if a != b {
        assert!(!ka.starts_with(&kb) && !kb.starts_with(&ka), "one key is a prefix of another");
    }
    let pair = (a.to_owned(), 7u64);
    assert_eq!(decode_key::<(String, u64)>(&encode_key(&pair)).ok(), Some(pair));
}

/// Canonical JSON: parsing any bytes never panics, and canonical serialisation is a fixed point
/// (parse, serialise, parse again, serialise again: the same bytes).
pub fn canonical_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(canonical) = CanonicalJsonValue::try_from(value) else { return };
    let once = canonical.to_string();
    let again = match serde_json::from_str::<serde_json::Value>(&once) {
        Ok(value) => CanonicalJsonValue::try_from(value),
        Err(e) => panic!("canonical output does not parse: {e}: {once}"),
    };
    let Ok(again) = again else { panic!("canonical output is not canonical: {once}") };
    assert_eq!(again.to_string(), once, "canonical serialisation is not stable");
}

/// PDU parsing: any JSON stored as an event either is refused as malformed or gives an event
/// whose accessors and client formats never panic.
pub fn pdu(data: &[u8]) {
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
        relay: false,
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
}

/// One policy question: an organisation, who asks, what, where and when.
#[derive(Deserialize)]
struct PolicyQuestion {
    directory: DirectoryParts,
    actor: UserId,
    action: Action,
    #[serde(default)]
    room: Option<RoomFacts>,
    now_ms: u64,
}

/// The policy decision function: any well-formed question about any consistent directory gets
/// an answer without panicking, and a refusal always names a reason. Returns whether the input
/// was a question that got decided.
pub fn policy_decision(data: &[u8]) -> bool {
    let Ok(question) = serde_json::from_slice::<PolicyQuestion>(data) else { return false };
    let Ok(directory) = Directory::from_parts(question.directory) else { return false };
    let actor = Actor::new(question.actor);
    let decision = relais_policy::decide(
        &question.action,
        &actor,
        question.room.as_ref(),
        &directory,
        question.now_ms,
    );
    if let Decision::Deny { reason, .. } = decision {
        assert!(!reason.is_empty(), "a refusal without a reason");
    }
    true
}

/// Parses `body` as a request of type `T` with the given method, path arguments and query.
fn parse<T: IncomingRequest>(method: Method, path_args: &[&str], query: &str, body: &[u8]) {
    let uri = format!("http://localhost/_matrix/client/v3/fuzz{query}");
    let Ok(request) = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec())
    else {
        return;
    };
    let request = request.map(bytes::Bytes::from);
    let path_args: Vec<String> = path_args.iter().map(|&a| a.to_owned()).collect();
    let _ = parse_request::<T>(request, &path_args);
}

/// Request deserialisation: any body given to the JSON limits of the request extractor and to
/// the ruma request types of the busiest endpoints (and any query string to `/sync`) is refused
/// or parsed, never a panic.
pub fn request(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = json_limits::check(&value, &Config::default().limits);
    }
    let room = "!room:localhost";
    parse::<create_room::v3::Request>(Method::POST, &[], "", data);
    parse::<send_message_event::v3::Request>(Method::PUT, &[room, "m.room.message", "t"], "", data);
    // ruma panics on a login body without a string `type`; the server's `parse_request` turns
    // that into a 400 (checked by the `request_limits` end-to-end test), but libFuzzer aborts on
    // any panic, caught or not, so this known case is left out.
    let typed = serde_json::from_slice::<serde_json::Value>(data)
        .is_ok_and(|v| v.get("type").is_some_and(serde_json::Value::is_string));
    if typed {
        parse::<login::v3::Request>(Method::POST, &[], "", data);
    }
    parse::<register::v3::Request>(Method::POST, &[], "", data);
    parse::<upload_keys::v3::Request>(Method::POST, &[], "", data);
    parse::<get_keys::v3::Request>(Method::POST, &[], "", data);
    parse::<claim_keys::v3::Request>(Method::POST, &[], "", data);
    parse::<send_event_to_device::v3::Request>(Method::PUT, &["m.room_key", "t"], "", data);
    parse::<search_events::v3::Request>(Method::POST, &[], "", data);
    parse::<create_filter::v3::Request>(Method::POST, &["@alice:localhost"], "", data);
    let query: String = form_encode(data);
    parse::<sync_events::v3::Request>(Method::GET, &[], &format!("?filter={query}&since=1"), b"");
}

/// Percent-encodes every byte that is not unreserved, so any input makes a valid query value.
fn form_encode(data: &[u8]) -> String {
    data.iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(b) {
                char::from(*b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
