#!/usr/bin/env bash
# Builds and runs the homeserver with its embedded defaults (server name "localhost",
# http://127.0.0.1:8008, data in ./data). Extra arguments go to `relais serve`, e.g.
# `scripts/run.sh --config relais.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
cargo build --release --bin relais
exec "$CARGO_TARGET_DIR/release/relais" serve "$@"
