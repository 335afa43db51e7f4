//! The fuzz targets' inputs, replayed on stable: every file of `fuzz/corpus/<target>` (the seeds
//! and what fuzzing kept) and `fuzz/regressions/<target>` (crashes found, kept once fixed) goes
//! through the same check as the cargo-fuzz target (`fuzz/checks.rs`), so that CI, which has no
//! nightly fuzzing run, still proves no known input crashes. Then a short deterministic
//! mutation run (`mutate.rs`) of each target from those inputs: fuzzing without coverage
//! guidance, on stable, in every `cargo test`. `FUZZ_ITERATIONS` (mutants per input, default 200)
//! and `FUZZ_SEED` make it longer or different.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

#[path = "../../fuzz/checks.rs"]
mod checks;
#[path = "fuzz_corpus/mutate.rs"]
mod mutate;

use std::{
    panic,
    path::{Path, PathBuf},
};

/// Every input file of `target`: its corpus, then its regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                let data = std::fs::read(&path).unwrap();
                inputs.push((path, data));
            }
        }
    }
    assert!(!inputs.is_empty(), "no inputs for the fuzz target {target}");
    inputs
}

/// Runs `check` on every input of `target`, then on mutants of them; fails naming each input
/// that panics. Panicking mutants are written to the test's temporary directory, to be kept in
/// `fuzz/regressions/<target>/` once fixed.
fn replay(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    let mut failed = Vec::new();
    for (path, data) in &inputs {
        if panic::catch_unwind(|| check(data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    let env = |name: &str, default: u64| {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let mut rng = mutate::Rng::new(env("FUZZ_SEED", 0x5eed));
    let findings = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings").join(target);
    for (index, (_, data)) in inputs.iter().enumerate() {
        let other = &inputs[(index + 1) % inputs.len()].1;
        for _ in 0..env("FUZZ_ITERATIONS", 200) {
            let mutant = mutate::mutate(&mut rng, data, other);
            if panic::catch_unwind(|| check(&mutant)).is_err() {
                std::fs::create_dir_all(&findings).unwrap();
                let path = findings.join(format!("crash-{}", failed.len()));
                std::fs::write(&path, &mutant).unwrap();
                failed.push(path.display().to_string());
            }
        }
    }
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
