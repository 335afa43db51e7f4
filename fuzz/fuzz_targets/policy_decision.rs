//! The policy decision function: see `relais_fuzz::policy_decision` (`fuzz/checks.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    relais_fuzz::policy_decision(data);
});
