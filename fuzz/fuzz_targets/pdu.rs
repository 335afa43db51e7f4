//! PDU parsing: see `relais_fuzz::pdu` (`fuzz/checks.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| relais_fuzz::pdu(data));
