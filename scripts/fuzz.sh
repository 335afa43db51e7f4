#!/usr/bin/env bash
# Short fuzzing run of every target in fuzz/, starting from the checked-in corpus
# (fuzz/corpus/<target>) and the regression inputs (fuzz/regressions/<target>: copy every crash
# found, from fuzz/artifacts/<target>/, there once it is fixed). CI does not run this script: it
# needs its own build of the fuzz crate; `cargo test` replays both directories on stable
# (homeserver/tests/fuzz_corpus.rs, through the same checks in fuzz/checks.rs).
#
#   scripts/fuzz.sh [seconds per target, default 30]
#
# With cargo-fuzz and a nightly toolchain the targets are built with coverage instrumentation
# (`cargo +nightly fuzz run`); without them they are built with the stable toolchain and libFuzzer
# runs uninstrumented (random mutation only), which still checks the regression corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds="${1:-30}"
targets=(key_codec canonical_json pdu policy_decision request)

if command -v cargo-fuzz >/dev/null 2>&1 && rustup toolchain list | grep -q nightly; then
  cd fuzz
  for target in "${targets[@]}"; do
    echo "fuzzing $target for ${seconds}s (cargo fuzz)"
    mkdir -p "regressions/$target"
    cargo +nightly fuzz run "$target" "corpus/$target" "regressions/$target" -- \
      -max_total_time="$seconds"
  done
else
  (cd fuzz && cargo build --bins)
  workdir="$(mktemp -d)"
  for target in "${targets[@]}"; do
    echo "fuzzing $target for ${seconds}s (uninstrumented)"
    mkdir -p "$workdir/$target"
    cp fuzz/corpus/"$target"/* "$workdir/$target/"
    cp fuzz/regressions/"$target"/* "$workdir/$target/" 2>/dev/null || true
    (cd "$workdir" && "$CARGO_TARGET_DIR/debug/$target" -max_total_time="$seconds" \
      -artifact_prefix="$workdir/" "$workdir/$target")
  done
  rm -rf "$workdir"
fi
