#!/usr/bin/env bash
# Side-by-side comparison of Relais and Synapse (with PostgreSQL), issue 9.
#
#   bench/compare.sh [--users 50] [--senders 10] [--messages 30] [--rooms 100] [--create 100]
#                    [--out DIR] [--skip-build] [--keep]
#
# One command from a fresh checkout: builds Relais and the load generator (`relais-load`) in
# release, installs PostgreSQL (Debian) and Synapse (PyPI, in a virtualenv under the target
# directory) if missing, then, one server at a time on this machine's loopback only:
#   1. starts Relais (release binary, throwaway data directory, open registration, rate limits
#      raised), runs `relais-load`, measures, stops it;
#   2. starts a throwaway PostgreSQL cluster (private Unix socket, no TCP) and Synapse (client
#      listener only, no federation, open registration, the same raised rate limits), runs the
#      same `relais-load`, measures, stops both.
# It prints every figure with the ratio Relais/Synapse and writes compare.json, compare.md and
# each server's own report to the output directory (default: $CARGO_TARGET_DIR/compare/<time>).
# Server data lives in a temporary directory under $CARGO_TARGET_DIR/compare and is removed at
# the end (--keep keeps it). Nothing is written to the repository.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
# shellcheck source=../scripts/env.sh
source scripts/env.sh

USERS=50 SENDERS=10 MESSAGES=30 ROOMS=100 CREATE=100
OUT="" SKIP_BUILD=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --users) USERS="$2"; shift 2 ;;
    --senders) SENDERS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --rooms) ROOMS="$2"; shift 2 ;;
    --create) CREATE="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
for tool in curl awk pgrep; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  need=("${need[@]/pgrep/procps}"); need=("${need[@]/awk/gawk}")
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- Build -------------------------------------------------------------------------------------
if [ "$SKIP_BUILD" -eq 0 ]; then
  log "building Relais and relais-load (release)"
  cargo build --release -p relais-homeserver -p relais-bench
fi
RELAIS_BIN="$CARGO_TARGET_DIR/release/relais"
LOAD_BIN="$CARGO_TARGET_DIR/release/relais-load"
if [ ! -x "$RELAIS_BIN" ] || [ ! -x "$LOAD_BIN" ]; then echo "missing $RELAIS_BIN or $LOAD_BIN" >&2; exit 1; fi

# --- PostgreSQL (Debian) -----------------------------------------------------------------------
pg_bindir() { find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pg_bindir)" ] || [ ! -x "$(pg_bindir)/initdb" ]; then
  log "installing PostgreSQL (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
PGBIN="$(pg_bindir)"

# --- Synapse (PyPI, virtualenv) ----------------------------------------------------------------
VENV="$CARGO_TARGET_DIR/synapse-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import synapse, psycopg2' 2>/dev/null; then
  log "installing Synapse into $VENV"
  python3 -m venv "$VENV" 2>/dev/null || {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q matrix-synapse psycopg2-binary
fi
PY="$VENV/bin/python"
SYNAPSE_VERSION="$("$PY" -c 'import synapse; print(synapse.__version__)')"
RELAIS_VERSION="$("$RELAIS_BIN" --version 2>/dev/null || echo relais) ($(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown commit), binary of $(date -u -r "$RELAIS_BIN" +%Y-%m-%dT%H:%MZ))"
PG_VERSION="$("$PGBIN/postgres" --version)"

# --- Working directories -----------------------------------------------------------------------
mkdir -p "$CARGO_TARGET_DIR/compare"
RUN="$(mktemp -d "$CARGO_TARGET_DIR/compare/run.XXXXXX")"
chmod 755 "$RUN"
[ -n "$OUT" ] || OUT="$CARGO_TARGET_DIR/compare/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

RELAIS_PID="" SYNAPSE_PID="" PG_STARTED=0
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  set +e
  [ -n "$RELAIS_PID" ] && kill "$RELAIS_PID" 2>/dev/null && wait "$RELAIS_PID" 2>/dev/null
  [ -n "$SYNAPSE_PID" ] && kill "$SYNAPSE_PID" 2>/dev/null && wait "$SYNAPSE_PID" 2>/dev/null
  [ "$PG_STARTED" -eq 1 ] && as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -m fast -w stop >/dev/null 2>&1
  if [ "$KEEP" -eq 1 ]; then log "kept server data in $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url seconds pid
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$3" 2>/dev/null || return 1
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# CPU seconds (user + system, reaped children included) of the given processes.
cpu_s() {
  local total=0 pid f
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat")
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
pss_kib() { # sum of proportional set sizes (shared memory counted once)
  local total=0 pid v
  for pid in "$@"; do
    v="$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)"
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# CPU seconds the whole machine spent busy so far (every process), from /proc/stat.
machine_busy_s() { awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
# The processes of each server, listed again at each measurement (PostgreSQL starts backends).
pg_pids() { local m; m="$(head -1 "$RUN/pg/postmaster.pid")"; echo "$m"; pgrep -P "$m" || true; }
relais_pids() { echo "$RELAIS_PID"; }
synapse_pids() { echo "$SYNAPSE_PID"; pg_pids; }

LOAD_ARGS=(--users "$USERS" --senders "$SENDERS" --messages "$MESSAGES" --rooms "$ROOMS" --create "$CREATE")
# run_load NAME URL PIDS_FUNCTION: runs relais-load, writes $OUT/NAME.json; prints its exit code,
# the wall time, the server's CPU seconds and the whole machine's busy CPU seconds during the run.
run_load() {
  local name="$1" url="$2" pids="$3" cpu0 cpu1 t0 t1 m0 m1 list rc=0
  mapfile -t list < <("$pids")
  cpu0="$(cpu_s "${list[@]}")" m0="$(machine_busy_s)"
  t0="$(date +%s.%N)"
  "$LOAD_BIN" --url "$url" --prefix "cmp$$" "${LOAD_ARGS[@]}" --json "$OUT/$name.json" \
    >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" || rc=$?
  t1="$(date +%s.%N)"
  mapfile -t list < <("$pids")
  cpu1="$(cpu_s "${list[@]}")" m1="$(machine_busy_s)"
  [ "$rc" -eq 0 ] || { log "relais-load against $name failed ($rc):"; tail -5 "$OUT/$name.stderr" >&2; }
  awk -v rc="$rc" -v t0="$t0" -v t1="$t1" -v c0="$cpu0" -v c1="$cpu1" -v m0="$m0" -v m1="$m1" \
    'BEGIN { printf "%d %.2f %.2f %.2f\n", rc, t1 - t0, c1 - c0, m1 - m0 }'
}

LOAD_AVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- Relais ------------------------------------------------------------------------------------
RELAIS_PORT="$(free_port)"
log "starting Relais on 127.0.0.1:$RELAIS_PORT"
mkdir -p "$RUN/relais"
(
  export RELAIS_SERVER_NAME=localhost RELAIS_LISTEN__ADDRESS=127.0.0.1 RELAIS_LISTEN__PORT="$RELAIS_PORT"
  export RELAIS_DATABASE__PATH="$RUN/relais/db" RELAIS_REGISTRATION__OPEN=true RELAIS_LOG=warn
  for a in LOGIN REGISTRATION SEND JOIN INVITE MEDIA_UPLOAD; do
    export "RELAIS_RATE_LIMITS__${a}__PER_SECOND=10000" "RELAIS_RATE_LIMITS__${a}__BURST=100000"
  done
  export RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_ACCOUNT=1000
  export RELAIS_RATE_LIMITS__LOGIN_BACKOFF__FREE_FAILURES_PER_IP=1000
  exec "$RELAIS_BIN" serve >"$OUT/relais.log" 2>&1
) &
RELAIS_PID=$!
wait_http "http://127.0.0.1:$RELAIS_PORT/_matrix/client/versions" 60 "$RELAIS_PID" \
  || { log "Relais did not start:"; tail -20 "$OUT/relais.log" >&2; exit 1; }
R_DB0="$(du -sb "$RUN/relais/db" | cut -f1)" R_RSS0="$(status_kib "$RELAIS_PID" VmRSS)"
log "running relais-load against Relais"
read -r R_RC R_WALL R_SRV_CPU R_MACHINE < <(run_load relais "http://127.0.0.1:$RELAIS_PORT" relais_pids)
R_RSS="$(status_kib "$RELAIS_PID" VmRSS)" R_HWM="$(status_kib "$RELAIS_PID" VmHWM)"
R_DB="$(du -sb "$RUN/relais/db" | cut -f1)"
kill "$RELAIS_PID"; wait "$RELAIS_PID" 2>/dev/null || true; RELAIS_PID=""

# --- PostgreSQL --------------------------------------------------------------------------------
PG_PORT="$(free_port)"
mkdir -p "$RUN/pg" "$RUN/pgsock"
[ "$(id -u)" -eq 0 ] && chown postgres "$RUN/pg" "$RUN/pgsock"
chmod 700 "$RUN/pg"
log "starting PostgreSQL ($PG_VERSION) on socket $RUN/pgsock port $PG_PORT"
as_pg "$PGBIN/initdb" -D "$RUN/pg" --auth=trust --username=synapse --encoding=UTF8 --locale=C >"$OUT/pg-initdb.log" 2>&1
as_pg "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/pgsock/postgresql.log" -w -t 60 \
  -o "-c listen_addresses='' -k $RUN/pgsock -p $PG_PORT" start >/dev/null
PG_STARTED=1
"$PGBIN/psql" -h "$RUN/pgsock" -p "$PG_PORT" -U synapse -d postgres -qAt -c \
  "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 OWNER synapse"

# --- Synapse -----------------------------------------------------------------------------------
SYNAPSE_PORT="$(free_port)"
SYN="$RUN/synapse"
mkdir -p "$SYN"
"$PY" -m synapse.app.homeserver --server-name localhost --config-path "$SYN/homeserver.yaml" \
  --data-directory "$SYN" --generate-config --report-stats=no >/dev/null
SYN="$SYN" SYNAPSE_PORT="$SYNAPSE_PORT" PG_SOCK="$RUN/pgsock" PG_PORT="$PG_PORT" "$PY" - <<'EOF'
import os, yaml
path = os.path.join(os.environ["SYN"], "homeserver.yaml")
with open(path) as f:
    config = yaml.safe_load(f)
config["listeners"] = [{
    "port": int(os.environ["SYNAPSE_PORT"]), "bind_addresses": ["127.0.0.1"], "type": "http",
    "tls": False, "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
}]
config["database"] = {"name": "psycopg2", "args": {
    "user": "synapse", "dbname": "synapse", "host": os.environ["PG_SOCK"],
    "port": int(os.environ["PG_PORT"]), "cp_min": 5, "cp_max": 10,
}}
config["enable_registration"] = True
config["enable_registration_without_verification"] = True
config["report_stats"] = False
config["trusted_key_servers"] = []
config["suppress_key_server_warning"] = True
high = {"per_second": 10000, "burst_count": 100000}
for key in ["rc_message", "rc_registration", "rc_registration_token_validity", "rc_joins_per_room",
            "rc_3pid_validation", "rc_third_party_invite", "rc_media_create", "rc_room_creation",
            "rc_delayed_event_mgmt", "rc_reports", "rc_user_directory", "rc_profile",
            "rc_admin_redaction", "rc_key_requests"]:
    config[key] = dict(high)
config["rc_login"] = {"address": high, "account": high, "failed_attempts": high}
config["rc_joins"] = {"local": high, "remote": high}
config["rc_invites"] = {"per_room": high, "per_user": high, "per_issuer": high}
config["rc_presence"] = {"per_user": high}
# Warnings only, to a file (Relais runs with RELAIS_LOG=warn).
log_config = os.path.join(os.environ["SYN"], "log.yaml")
with open(log_config, "w") as f:
    yaml.safe_dump({
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain",
                              "filename": os.path.join(os.environ["SYN"], "homeserver.log")}},
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }, f)
config["log_config"] = log_config
with open(path, "w") as f:
    yaml.safe_dump(config, f)
EOF
log "starting Synapse $SYNAPSE_VERSION on 127.0.0.1:$SYNAPSE_PORT"
"$PY" -m synapse.app.homeserver -c "$SYN/homeserver.yaml" >"$OUT/synapse.stdout" 2>&1 &
SYNAPSE_PID=$!
wait_http "http://127.0.0.1:$SYNAPSE_PORT/_matrix/client/versions" 300 "$SYNAPSE_PID" \
  || { log "Synapse did not start:"; tail -20 "$OUT/synapse.stdout" "$SYN/homeserver.log" >&2; exit 1; }
pg_db_bytes() { "$PGBIN/psql" -h "$RUN/pgsock" -p "$PG_PORT" -U synapse -d synapse -qAt -c "SELECT pg_database_size('synapse')"; }
S_DB0="$(pg_db_bytes)" S_RSS0="$(status_kib "$SYNAPSE_PID" VmRSS)"
log "running relais-load against Synapse"
read -r S_RC S_WALL S_SRV_CPU S_MACHINE < <(run_load synapse "http://127.0.0.1:$SYNAPSE_PORT" synapse_pids)
S_RSS="$(status_kib "$SYNAPSE_PID" VmRSS)" S_HWM="$(status_kib "$SYNAPSE_PID" VmHWM)"
mapfile -t PG_PIDS < <(pg_pids)
S_PG_PSS="$(pss_kib "${PG_PIDS[@]}")"
S_DB="$(pg_db_bytes)"
cp "$SYN/homeserver.yaml" "$OUT/synapse-homeserver.yaml"
cp "$SYN/homeserver.log" "$OUT/synapse.log" 2>/dev/null || true
cp "$RUN/pgsock/postgresql.log" "$OUT/postgresql.log" 2>/dev/null || true
LOAD_AVG_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- Report ------------------------------------------------------------------------------------
export OUT USERS SENDERS MESSAGES ROOMS CREATE SYNAPSE_VERSION RELAIS_VERSION PG_VERSION
export R_RC R_WALL R_SRV_CPU R_MACHINE R_RSS R_HWM R_DB R_DB0 R_RSS0
export S_RC S_WALL S_SRV_CPU S_MACHINE S_RSS S_HWM S_DB S_DB0 S_RSS0 S_PG_PSS
export LOAD_AVG_START LOAD_AVG_END
"$PY" - <<'EOF'
import json, os, platform, time
e = os.environ
def load(name):
    try:
        with open(os.path.join(e["OUT"], name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
reports = {"relais": load("relais"), "synapse": load("synapse")}
def get(report, path):
    for part in path.split("."):
        if not isinstance(report, dict) or part not in report:
            return None
        report = report[part]
    return report
mib = lambda kib: round(int(kib) / 1024, 1) if kib else None
extra = {
    "relais": {"idle_rss_mib": mib(e["R_RSS0"]), "rss_mib": mib(e["R_RSS"]), "peak_rss_mib": mib(e["R_HWM"]),
               "cpu_s": float(e["R_SRV_CPU"]), "db_mb": round(int(e["R_DB"]) / 1e6, 1),
               "db_growth_mb": round((int(e["R_DB"]) - int(e["R_DB0"])) / 1e6, 1),
               "wall_s": round(float(e["R_WALL"]), 1)},
    "synapse": {"idle_rss_mib": mib(e["S_RSS0"]), "rss_mib": mib(e["S_RSS"]), "peak_rss_mib": mib(e["S_HWM"]),
                "pg_pss_mib": mib(e["S_PG_PSS"]),
                "rss_total_mib": round((int(e["S_RSS"]) + int(e["S_PG_PSS"])) / 1024, 1),
                "cpu_s": float(e["S_SRV_CPU"]), "db_mb": round(int(e["S_DB"]) / 1e6, 1),
                "db_growth_mb": round((int(e["S_DB"]) - int(e["S_DB0"])) / 1e6, 1),
                "wall_s": round(float(e["S_WALL"]), 1)},
}
extra["relais"]["rss_total_mib"] = extra["relais"]["rss_mib"]
# (label, where, higher is better)
figures = [
    ("fan-out, messages/s", "fanout.messages_per_s", True),
    ("fan-out, send p50 ms", "fanout.send_latency.p50_ms", False),
    ("fan-out, send p99 ms", "fanout.send_latency.p99_ms", False),
    ("fan-out, delivery p50 ms", "fanout.delivery_latency.p50_ms", False),
    ("fan-out, delivery p99 ms", "fanout.delivery_latency.p99_ms", False),
    ("fan-out, syncers that got every message", "fanout.syncers_with_every_message", True),
    ("spread over rooms, messages/s", "spread.messages_per_s", True),
    ("spread, send p50 ms", "spread.send_latency.p50_ms", False),
    ("spread, send p99 ms", "spread.send_latency.p99_ms", False),
    ("room creation, rooms/s", "room_creation.rooms_per_s", True),
    ("initial sync, ms", "initial_sync.ms", False),
    ("initial sync, lazy members, ms", "initial_sync.lazy_members_ms", False),
    ("server RSS at start (idle), MiB", "extra.idle_rss_mib", False),
    ("server RSS after the run, MiB", "extra.rss_mib", False),
    ("server peak RSS, MiB", "extra.peak_rss_mib", False),
    ("server + database memory, MiB (PostgreSQL: PSS)", "extra.rss_total_mib", False),
    ("server CPU during the run, s (with PostgreSQL)", "extra.cpu_s", False),
    ("database size after the run, MB", "extra.db_mb", False),
    ("database growth during the run, MB", "extra.db_growth_mb", False),
    ("load run wall time, s", "extra.wall_s", False),
    ("load generator CPU, s", "generator_cpu_s", None),
    ("other processes' CPU during the run, s", "extra.other_cpu_s", None),
    ("other processes' share of the cores", "extra.other_cpu_share", None),
]
for name, prefix in [("relais", "R"), ("synapse", "S")]:
    reports[name]["extra"] = extra[name]
    # Busy CPU of the whole machine during the run, less the server's and the generator's:
    # other processes (other builds on a shared machine) competing for the two cores.
    other = float(e[prefix + "_MACHINE"]) - float(e[prefix + "_SRV_CPU"]) - (reports[name].get("generator_cpu_s") or 0)
    extra[name]["other_cpu_s"] = round(max(other, 0.0), 1)
    extra[name]["other_cpu_share"] = round(max(other, 0.0) / ((os.cpu_count() or 1) * float(e[prefix + "_WALL"])), 2) if float(e[prefix + "_WALL"]) else None
rows, table = [], []
fmt = lambda v: "-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")
for label, path, higher in figures:
    r, s = get(reports["relais"], path), get(reports["synapse"], path)
    ratio = None
    if higher is not None and r is not None and s not in (None, 0):
        ratio = round(r / s, 3)
    better = None
    if ratio and higher is not None and r:
        better = round(ratio if higher else 1 / ratio, 1)
    rows.append({"figure": label, "path": path, "relais": r, "synapse": s,
                 "ratio_relais_over_synapse": ratio, "relais_better_x": better})
    table.append((label, fmt(r), fmt(s), "-" if ratio is None else f"{ratio:g}",
                  "-" if better is None else f"{better:g}x"))
rooms_note = get(reports["relais"], "initial_sync.rooms"), get(reports["synapse"], "initial_sync.rooms")
meta = {
    "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
    "load_average_start": e["LOAD_AVG_START"], "load_average_end": e["LOAD_AVG_END"],
    "sizes": {k.lower(): int(e[k]) for k in ["USERS", "SENDERS", "MESSAGES", "ROOMS", "CREATE"]},
    "initial_sync_rooms": {"relais": rooms_note[0], "synapse": rooms_note[1]},
    "relais": e["RELAIS_VERSION"], "synapse": e["SYNAPSE_VERSION"], "postgresql": e["PG_VERSION"],
    "load_exit_codes": {"relais": int(e["R_RC"]), "synapse": int(e["S_RC"])},
}
with open(os.path.join(e["OUT"], "compare.json"), "w") as f:
    json.dump({"meta": meta, "figures": rows, "reports": reports}, f, indent=2)
head = ("figure", "Relais", f"Synapse {e['SYNAPSE_VERSION']}", "Relais/Synapse", "Relais better by")
md = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|"]
md += ["| " + " | ".join(row) + " |" for row in table]
with open(os.path.join(e["OUT"], "compare.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print(json.dumps(meta, indent=2))
print("\n".join(md))
EOF
log "results in $OUT (compare.json, compare.md, relais.json, synapse.json)"
[ "$R_RC" -eq 0 ] && [ "$S_RC" -eq 0 ]
