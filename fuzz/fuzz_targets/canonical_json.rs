//! Canonical JSON: parsing any bytes never panics, and canonical serialisation is a fixed point
//! (parse, serialise, parse again, serialise again: the same bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use ruma::CanonicalJsonValue;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(canonical) = CanonicalJsonValue::try_from(value) else { return };
    let once = canonical.to_string();
    let again: CanonicalJsonValue = match serde_json::from_str::<serde_json::Value>(&once) {
        Ok(value) => CanonicalJsonValue::try_from(value).expect("canonical output is canonical"),
        Err(e) => panic!("canonical output does not parse: {e}: {once}"),
    };
    assert_eq!(again.to_string(), once, "canonical serialisation is not stable");
});
