#!/usr/bin/env bash
# Runs every test of the workspace: unit tests, then the end-to-end tests that start the real
# `relais` binary (built by this same command, for the CLI tests of relais-homeserver) and drive
# it with real Matrix clients. Ends with one summary line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=env.sh
source scripts/env.sh
# The application service tests run a bridge built on mautrix-python, from PyPI.
pyenv="${CARGO_TARGET_DIR:-target}/test-python"
if ! "$pyenv/bin/python" -c 'import mautrix.appservice' 2>/dev/null; then
  python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install --quiet --disable-pip-version-check -r tests/appservice/requirements.txt
fi
export RELAIS_TEST_PYTHON="$pyenv/bin/python"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
  for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i - 1); if ($(i) ~ /^failed/) f += $(i - 1) }
} END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
