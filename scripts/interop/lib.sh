# Shared by the interop scripts (sourced): logging, child processes stopped at exit, free ports,
# and Synapse from PyPI in a virtual environment under $CARGO_TARGET_DIR.

log() { printf '[interop] %s\n' "$*" >&2; }
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# synapse_venv [package...]: sets PY to the Python of a virtual environment with matrix-synapse
# and the given packages (Python module name = package name with `-` as `_`).
synapse_venv() {
  local venv="$CARGO_TARGET_DIR/synapse-venv" package
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
    log "installing matrix-synapse into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matrix-synapse
  fi
  for package in "$@"; do
    "$venv/bin/python" -c "import ${package//-/_}" 2>/dev/null || "$venv/bin/pip" install -q "$package"
  done
  PY="$venv/bin/python"
}
