//! The key codec: decoding any bytes never panics, and whatever decodes re-encodes to exactly
//! the same bytes (one encoding per key), whose byte order is the keys' order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relais_homeserver::storage::codec::{KeyPart, decode_key, encode_key};

/// Decodes `bytes` as `K`; if that works, the encoding must give `bytes` back.
fn round_trip<K: KeyPart>(bytes: &[u8]) {
    if let Ok(key) = decode_key::<K>(bytes) {
        assert_eq!(encode_key(&key), bytes, "a decoded key re-encodes differently");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<u64>(data);
    round_trip::<String>(data);
    round_trip::<(u64, String)>(data);
    round_trip::<(String, u64)>(data);
    round_trip::<(String, String, u64)>(data);
    round_trip::<(ruma::OwnedRoomId, u64)>(data);
    round_trip::<(ruma::OwnedUserId, ruma::OwnedDeviceId)>(data);
    // Two strings from the input: their keys sort like the strings, and neither key is a prefix
    // of the other unless the strings are equal.
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    let (ka, kb) = (encode_key(&a.to_owned()), encode_key(&b.to_owned()));
    assert_eq!(a.cmp(b), ka.cmp(&kb), "key order differs from string order");
    if a != b {
        assert!(!ka.starts_with(&kb) && !kb.starts_with(&ka), "one key is a prefix of another");
    }
    let pair = (a.to_owned(), 7u64);
    assert_eq!(decode_key::<(String, u64)>(&encode_key(&pair)).ok(), Some(pair));
});
