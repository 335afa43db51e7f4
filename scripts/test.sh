#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, then the end-to-end tests that start the real
# `relais` binary (built by this same command, for the CLI tests of relais-homeserver) and drive
# it with real Matrix clients.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
cargo test --workspace "$@"
