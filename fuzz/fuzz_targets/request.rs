//! Request deserialisation: see `relais_fuzz::request` (`fuzz/checks.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relais_fuzz::request(data));
