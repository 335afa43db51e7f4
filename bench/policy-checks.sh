#!/usr/bin/env bash
# What a policy check costs a client, embedded in Relais or answered by relais-policy-service.
#
#   bench/policy-checks.sh [--requests 500] [--members 10] [--skip-build]
#
# Builds `relais` and `relais-policy-service` in release, then, once per mode (`embedded`, then
# `external`), starts Relais with the policy on (throwaway data directory, loopback only) and, in
# external mode, the service beside it. An admin creates an agent and a guest; the agent creates
# a room with --members agents in it; the agent then invites the guest --requests times, one
# request after the other. Every invite is refused by rule M1, so nothing is written: each
# request is the policy check and the refusal. Prints latency percentiles and requests per
# second for each mode.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
# shellcheck source=../scripts/env.sh
source scripts/env.sh

REQUESTS=500 MEMBERS=10 SKIP_BUILD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --requests) REQUESTS="$2"; shift 2 ;;
    --members) MEMBERS="$2"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$SKIP_BUILD" = 0 ]; then
  cargo build --release -p relais-homeserver --bin relais -p relais-appservice --bin relais-policy-service
fi
BIN="$CARGO_TARGET_DIR/release"
PORT=18631 SVC_PORT=18632
UNITS='[{id="state"}]'
TOKEN_AS=as-bench-0123456789abcdef0123 TOKEN_HS=hs-bench-0123456789abcdef0123
TOKEN_CK=ck-bench-0123456789abcdef0123

run_mode() {
  local mode=$1 data pid spid=""
  data=$(mktemp -d "$CARGO_TARGET_DIR/policy-bench.XXXXXX")
  local env=(RELAIS_SERVER_NAME=localhost RELAIS_LISTEN__PORT=$PORT RELAIS_DATABASE__PATH="$data/db"
    RELAIS_REGISTRATION__OPEN=true RELAIS_POLICY__ENABLED=true RELAIS_POLICY__UNITS="$UNITS"
    RELAIS_POLICY__SERVER_ADMINS='["@root:localhost"]' RELAIS_LOG=warn
    RELAIS_RATE_LIMITS__INVITE__PER_SECOND=100000 RELAIS_RATE_LIMITS__INVITE__BURST=100000
    RELAIS_RATE_LIMITS__REGISTRATION__PER_SECOND=100000 RELAIS_RATE_LIMITS__REGISTRATION__BURST=100000
    RELAIS_RATE_LIMITS__LOGIN__PER_SECOND=100000 RELAIS_RATE_LIMITS__LOGIN__BURST=100000
    RELAIS_RATE_LIMITS__JOIN__PER_SECOND=100000 RELAIS_RATE_LIMITS__JOIN__BURST=100000)
  if [ "$mode" = external ]; then
    cat > "$data/svc.toml" <<TOML
homeserver_url = "http://127.0.0.1:$PORT"
server_name = "localhost"
listen = "127.0.0.1:$SVC_PORT"
url = "http://127.0.0.1:$SVC_PORT"
as_token = "$TOKEN_AS"
hs_token = "$TOKEN_HS"
checks_token = "$TOKEN_CK"
[policy]
enabled = true
units = $UNITS
server_admins = ["@root:localhost"]
TOML
    "$BIN/relais-policy-service" --config "$data/svc.toml" registration > "$data/svc.yaml"
    env+=(RELAIS_POLICY__CHECKS=external
      RELAIS_POLICY_CHECKS__URL="http://127.0.0.1:$SVC_PORT/_relais/policy/v1/check"
      RELAIS_POLICY_CHECKS__TOKEN=$TOKEN_CK
      RELAIS_APPSERVICES__REGISTRATION_FILES="[\"$data/svc.yaml\"]")
  fi
  env "${env[@]}" "$BIN/relais" serve > "$data/relais.out" 2> "$data/relais.log" &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/_matrix/client/versions"; do sleep 0.2; done
  if [ "$mode" = external ]; then
    RUST_LOG=warn "$BIN/relais-policy-service" --config "$data/svc.toml" serve 2> "$data/svc.log" &
    spid=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$SVC_PORT/health"; do sleep 0.2; done
  fi
  python3 - "$mode" "http://127.0.0.1:$PORT" "$REQUESTS" "$MEMBERS" <<'PY'
import http.client, json, sys, time, urllib.parse
mode, base, requests, members = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host = urllib.parse.urlparse(base).netloc
conn = http.client.HTTPConnection(host)
def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token: headers["Authorization"] = "Bearer " + token
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse(); data = r.read()
    return r.status, json.loads(data or b"{}")
def retry(method, path, body, token=None, want=200):
    for _ in range(200):
        status, answer = call(method, path, body, token)
        if status == want: return answer
        time.sleep(0.05)
    raise SystemExit(f"{path}: {status} {answer}")
root = retry("POST", "/_matrix/client/v3/register", {"username": "root", "password": "pw-pw-pw-pw", "auth": {"type": "m.login.dummy"}})["access_token"]
def account(name, tier):
    body = {"username": name, "password": "pw-pw-pw-pw", "tier": tier, "unit": "state", "reason": "bench"}
    retry("POST", "/_relais/admin/v1/users", body, root)
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": "pw-pw-pw-pw"}
    return retry("POST", "/_matrix/client/v3/login", login)["access_token"]
alice = account("alice", "agent"); account("gus", "guest")
room = retry("POST", "/_matrix/client/v3/createRoom", {"name": "bench"}, alice)["room_id"]
path = "/_matrix/client/v3/rooms/" + urllib.parse.quote(room) + "/invite"
for i in range(members - 1):
    token = account(f"agent{i}", "agent")
    retry("POST", path, {"user_id": f"@agent{i}:localhost"}, alice)
    retry("POST", "/_matrix/client/v3/rooms/" + urllib.parse.quote(room) + "/join", {}, token)
latencies = []
start = time.perf_counter()
for _ in range(requests):
    t = time.perf_counter()
    status, answer = call("POST", path, {"user_id": "@gus:localhost"}, alice)
    latencies.append((time.perf_counter() - t) * 1000)
    assert status == 403 and answer.get("fr.relais.rule") == "M1", (status, answer)
elapsed = time.perf_counter() - start
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
print(f"{mode:9} members={members} requests={requests}: p50 {pct(50):.2f} ms, p90 {pct(90):.2f} ms, p99 {pct(99):.2f} ms, {requests / elapsed:.0f} refused invites/s")
PY
  [ -n "$spid" ] && kill "$spid"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

run_mode embedded
run_mode external
