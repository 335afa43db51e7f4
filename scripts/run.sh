#!/usr/bin/env bash
# Builds and runs the homeserver with its embedded defaults (server name "localhost",
# http://127.0.0.1:8008, data in ./data). Extra arguments go to `relais serve`, e.g.
# `scripts/run.sh --config relais.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
cargo build --release --bin relais
# glibc gives a busy multi-threaded process many malloc arenas whose memory it rarely returns:
# two keep the resident memory of the server bounded (docs/benchmarks.md, "Memory").
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec "$CARGO_TARGET_DIR/release/relais" serve "$@"
