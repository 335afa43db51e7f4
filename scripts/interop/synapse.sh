#!/usr/bin/env bash
# Federation interoperability with Synapse, on loopback, both directions.
#
#   scripts/interop/synapse.sh
#
# Starts a Synapse (from PyPI, in a virtual environment under $CARGO_TARGET_DIR) and a Relais,
# both federating over TLS with certificates of a throw-away CA, then runs
# scripts/interop/scenario.py: a Synapse user joins a Relais room and a Relais user joins a
# Synapse room, messages go both ways, and the room state (name, power levels, members) is
# compared on both servers. Exits non-zero on the first difference. Logs stay in the work
# directory it prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
source scripts/env.sh

WORK="$(mktemp -d "${TMPDIR:-/tmp}/relais-interop.XXXXXX")"
# shellcheck source=lib.sh
source scripts/interop/lib.sh
synapse_venv

# A CA and a certificate for localhost, trusted by both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=Relais interop CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/tls.pem" 2>/dev/null

S_FED=$(free_port); S_CLIENT=$(free_port); R_FED=$(free_port)
SYN="$WORK/synapse"; mkdir -p "$SYN"
# Synapse writes its log next to where it runs: run it in its own directory.
(cd "$SYN" && "$PY" -m synapse.app.homeserver --server-name "localhost:$S_FED" \
  --config-path "$SYN/homeserver.yaml" --data-directory "$SYN" --generate-config \
  --report-stats=no >/dev/null)
SYN="$SYN" WORK="$WORK" S_FED="$S_FED" S_CLIENT="$S_CLIENT" "$PY" - <<'PYEOF'
import os, yaml
path = os.path.join(os.environ["SYN"], "homeserver.yaml")
config = yaml.safe_load(open(path))
work = os.environ["WORK"]
config.update({
    "listeners": [
        {"port": int(os.environ["S_FED"]), "bind_addresses": ["127.0.0.1"], "type": "http",
         "tls": True, "resources": [{"names": ["federation"]}]},
        {"port": int(os.environ["S_CLIENT"]), "bind_addresses": ["127.0.0.1"], "type": "http",
         "tls": False, "resources": [{"names": ["client"]}]},
    ],
    "tls_certificate_path": f"{work}/tls.pem",
    "tls_private_key_path": f"{work}/tls.key",
    "federation_custom_ca_list": [f"{work}/ca.pem"],
    "ip_range_whitelist": ["127.0.0.1"],
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "rc_message": {"per_second": 1000, "burst_count": 1000},
    "rc_room_creation": {"per_second": 1000, "burst_count": 1000},
    "rc_invites": {"per_room": {"per_second": 1000, "burst_count": 1000},
                   "per_user": {"per_second": 1000, "burst_count": 1000},
                   "per_issuer": {"per_second": 1000, "burst_count": 1000}},
    "rc_registration": {"per_second": 1000, "burst_count": 1000},
    "rc_joins": {"local": {"per_second": 1000, "burst_count": 1000},
                 "remote": {"per_second": 1000, "burst_count": 1000}},
    "rc_login": {"address": {"per_second": 1000, "burst_count": 1000},
                 "account": {"per_second": 1000, "burst_count": 1000}},
})
yaml.safe_dump(config, open(path, "w"))
PYEOF
(cd "$SYN" && exec "$PY" -m synapse.app.homeserver -c "$SYN/homeserver.yaml") >"$WORK/synapse.stdout" 2>&1 &
PIDS+=($!)

# RELAIS_BIN picks another build (a debug one while iterating).
BIN="${RELAIS_BIN:-$CARGO_TARGET_DIR/release/relais}"
[ -n "${RELAIS_BIN:-}" ] || cargo build -q --release -p relais-homeserver --bin relais
RELAIS_DIR="$WORK/relais"; mkdir -p "$RELAIS_DIR"
env RELAIS_SERVER_NAME="localhost:$R_FED" RELAIS_LISTEN__PORT=0 RELAIS_DATABASE__PATH="$RELAIS_DIR/db" \
  RELAIS_REGISTRATION__OPEN=true RELAIS_FEDERATION__ENABLED=true \
  RELAIS_FEDERATION__TLS__PORT="$R_FED" RELAIS_FEDERATION__TLS__ADDRESS=127.0.0.1 \
  RELAIS_FEDERATION__TLS__CERTIFICATE="$WORK/tls.pem" RELAIS_FEDERATION__TLS__PRIVATE_KEY="$WORK/tls.key" \
  RELAIS_FEDERATION__TLS__CA_FILE="$WORK/ca.pem" RELAIS_RATE_LIMITS__ENABLED=false \
  RELAIS_LOG="${RELAIS_LOG:-info}" \
  "$BIN" serve >"$WORK/relais.stdout" 2>"$WORK/relais.log" &
PIDS+=($!)

for _ in $(seq 1 100); do
  grep -q "relais listening on" "$WORK/relais.stdout" 2>/dev/null \
    && curl -sf "http://127.0.0.1:$S_CLIENT/_matrix/client/versions" >/dev/null && break
  sleep 0.3
done
R_CLIENT_URL="$(sed -n 's/^relais listening on //p' "$WORK/relais.stdout" | head -1)"
[ -n "$R_CLIENT_URL" ] || { log "Relais did not start"; tail -20 "$WORK/relais.log"; exit 1; }
curl -sf "http://127.0.0.1:$S_CLIENT/_matrix/client/versions" >/dev/null \
  || { log "Synapse did not start"; tail -20 "$WORK/synapse.stdout" "$SYN/homeserver.log"; exit 1; }
log "Synapse $("$PY" -c 'import synapse; print(synapse.__version__)') as localhost:$S_FED, Relais as localhost:$R_FED; logs in $WORK"

python3 scripts/interop/scenario.py \
  --relais "$R_CLIENT_URL" --relais-name "localhost:$R_FED" \
  --synapse "http://127.0.0.1:$S_CLIENT" --synapse-name "localhost:$S_FED"
