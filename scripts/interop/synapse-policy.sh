#!/usr/bin/env bash
# relais-policy-service guarding a Synapse, through Synapse's HTTP antispam module.
#
#   scripts/interop/synapse-policy.sh
#
# Starts a Synapse (from PyPI, with `synapse-http-antispam`, in the virtual environment under
# $CARGO_TARGET_DIR that scripts/interop/synapse.sh also uses) whose spam checks go to a
# `relais-policy-service` registered with it as an application service. Then runs
# scripts/interop/policy_scenario.py: the service creates the unit rooms on Synapse, the
# directory records are written there, and Synapse users are refused or allowed by the
# rule book (M1, M3, W2) with the service's messages. SERVICE_BIN picks another build of the
# service (a debug one while iterating). Logs stay in the work directory it prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
source scripts/env.sh

WORK="$(mktemp -d "${TMPDIR:-/tmp}/relais-policy-interop.XXXXXX")"
# shellcheck source=lib.sh
source scripts/interop/lib.sh
synapse_venv synapse-http-antispam

SVC_BIN="${SERVICE_BIN:-$CARGO_TARGET_DIR/release/relais-policy-service}"
[ -n "${SERVICE_BIN:-}" ] \
  || cargo build -q --release -p relais-appservice --bin relais-policy-service

S_CLIENT=$(free_port); SVC=$(free_port)
CHECKS_TOKEN=ck-interop-0123456789abcdef
cat >"$WORK/service.toml" <<TOML
homeserver_url = "http://127.0.0.1:$S_CLIENT"
server_name = "localhost"
listen = "127.0.0.1:$SVC"
url = "http://127.0.0.1:$SVC"
as_token = "as-interop-0123456789abcdef"
hs_token = "hs-interop-0123456789abcdef"
checks_token = "$CHECKS_TOKEN"
[policy]
enabled = true
units = [{ id = "state" }, { id = "interior", parent = "state" }]
server_admins = ["@root:localhost"]
TOML
"$SVC_BIN" --config "$WORK/service.toml" registration >"$WORK/service.yaml"

SYN="$WORK/synapse"; mkdir -p "$SYN"
(cd "$SYN" && "$PY" -m synapse.app.homeserver --server-name localhost \
  --config-path "$SYN/homeserver.yaml" --data-directory "$SYN" --generate-config \
  --report-stats=no >/dev/null)
SYN="$SYN" WORK="$WORK" S_CLIENT="$S_CLIENT" SVC="$SVC" TOKEN="$CHECKS_TOKEN" "$PY" - <<'PYEOF'
import os, yaml
path = os.path.join(os.environ["SYN"], "homeserver.yaml")
config = yaml.safe_load(open(path))
config.update({
    "listeners": [{"port": int(os.environ["S_CLIENT"]), "bind_addresses": ["127.0.0.1"],
                   "type": "http", "tls": False, "resources": [{"names": ["client"]}]}],
    "registration_shared_secret": "interop-shared-secret",
    "app_service_config_files": [os.path.join(os.environ["WORK"], "service.yaml")],
    "modules": [{
        "module": "synapse_http_antispam.HTTPAntispam",
        "config": {
            "base_url": f"http://127.0.0.1:{os.environ['SVC']}/_relais/policy/v1/check",
            "authorization": os.environ["TOKEN"],
            "enabled_callbacks": ["user_may_invite", "user_may_join_room", "user_may_create_room",
                                  "check_event_for_spam"],
            "do_ping": True,
        },
    }],
    "rc_message": {"per_second": 1000, "burst_count": 1000},
    "rc_room_creation": {"per_second": 1000, "burst_count": 1000},
    "rc_registration": {"per_second": 1000, "burst_count": 1000},
    "rc_login": {"address": {"per_second": 1000, "burst_count": 1000},
                 "account": {"per_second": 1000, "burst_count": 1000}},
})
yaml.safe_dump(config, open(path, "w"))
PYEOF
(cd "$SYN" && exec "$PY" -m synapse.app.homeserver -c "$SYN/homeserver.yaml") >"$WORK/synapse.stdout" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$S_CLIENT/_matrix/client/versions" >/dev/null && break
  sleep 0.3
done
curl -sf "http://127.0.0.1:$S_CLIENT/_matrix/client/versions" >/dev/null \
  || { log "Synapse did not start"; tail -20 "$WORK/synapse.stdout" "$SYN/homeserver.log"; exit 1; }
log "Synapse $("$PY" -c 'import synapse; print(synapse.__version__)') on $S_CLIENT; logs in $WORK"

"$PY" scripts/interop/policy_scenario.py --synapse "http://127.0.0.1:$S_CLIENT" \
  --service-bin "$SVC_BIN" --service-config "$WORK/service.toml" --service-url "http://127.0.0.1:$SVC" \
  --work "$WORK"
