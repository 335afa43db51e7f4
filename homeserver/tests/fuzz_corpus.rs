//! The fuzz targets' inputs, replayed on stable: every file of `fuzz/corpus/<target>` (the seeds
//! and what fuzzing kept) and `fuzz/regressions/<target>` (crashes found, kept once fixed) goes
//! through the same check as the cargo-fuzz target (`fuzz/checks.rs`), so that CI, which has no
//! nightly fuzzing run, still proves no known input crashes.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::{panic, path::Path};

/// Runs `check` on every input of `target`; fails naming each input that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = 0;
    let mut failed = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            inputs += 1;
            if panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(inputs > 0, "no inputs for the fuzz target {target}");
    assert!(failed.is_empty(), "inputs of {target} that panic: {failed:?}");
}

#[test]
fn key_codec_inputs() {
    replay("key_codec", checks::key_codec);
}

#[test]
fn canonical_json_inputs() {
    replay("canonical_json", checks::canonical_json);
}

#[test]
fn pdu_inputs() {
    replay("pdu", checks::pdu);
}

#[test]
fn policy_decision_inputs() {
    replay("policy_decision", |data| {
        checks::policy_decision(data);
    });
    // The seeds are questions the decision function answers, not inputs refused before it.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/policy_decision");
    for entry in std::fs::read_dir(seeds).unwrap() {
        let path = entry.unwrap().path();
        assert!(checks::policy_decision(&std::fs::read(&path).unwrap()), "{}", path.display());
    }
}

#[test]
fn request_inputs() {
    replay("request", checks::request);
}
