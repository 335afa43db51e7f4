//! Canonical JSON: see `relais_fuzz::canonical_json` (`fuzz/checks.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relais_fuzz::canonical_json(data));
