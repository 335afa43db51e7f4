//! The key codec: see `relais_fuzz::key_codec` (`fuzz/checks.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relais_fuzz::key_codec(data));
