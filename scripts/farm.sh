#!/usr/bin/env bash
# farm.sh — set everything up and run the main job: a local farm (one coordinator, N workers on
# this machine) benchmarks a plan and prints the result table.
#
#   scripts/farm.sh                    plans/default.toml (agent-coding × SmolLM2-135M × 3 reps)
#   scripts/farm.sh --gemma            also fetch Gemma 3 270M and run plans/two-models.toml
#   scripts/farm.sh --plan FILE        run another plan
#   scripts/farm.sh --workers N        N local workers (default 2); they split the cores
#
# Steps: scripts/deps.sh, scripts/fetch-models.sh, release build of coordinator and worker, start
# `coordinator serve` on 127.0.0.1:$PORT (default 50051; another free port when that one is busy)
# and the workers, `coordinator submit PLAN --wait` (progress on stderr, table on stdout). On exit,
# normal or not (Ctrl-C included), the workers are drained and then the coordinator is stopped.
# The exit code is that of submit. Runs again as often as you like: each run is another benchmark,
# and every run's report stays in .data/farm/coordinator.
#
# Environment: PORT (default 50051).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

log() { echo "farm: $*" >&2; }
die() {
    echo "farm: error: $*" >&2
    exit 1
}

workers=2
plan=""
gemma=0
while (($#)); do
    case "$1" in
        --workers) [[ $# -ge 2 ]] || die "--workers needs a number"; workers="$2"; shift 2 ;;
        --workers=*) workers="${1#*=}"; shift ;;
        --plan) [[ $# -ge 2 ]] || die "--plan needs a file"; plan="$2"; shift 2 ;;
        --plan=*) plan="${1#*=}"; shift ;;
        --gemma) gemma=1; shift ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers wants a positive number, got '$workers'"
if [[ -z "$plan" ]]; then
    if ((gemma)); then plan=plans/two-models.toml; else plan=plans/default.toml; fi
fi
[[ -f "$plan" ]] || die "plan $plan not found"

DATA=.data/farm
LOGS="$DATA/logs"
COORD=target/release/coordinator
WORKER=target/release/worker

# --- setup -----------------------------------------------------------------------------------
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
if ((gemma)); then scripts/fetch-models.sh --gemma; else scripts/fetch-models.sh; fi
log "building coordinator and worker (release; the first build compiles llama.cpp: 5-10 min on 2 cores)"
cargo build --release -p benchfarm-coordinator -p benchfarm-worker

# --- processes and their cleanup ---------------------------------------------------------------
coordinator_pid=""
worker_pids=()
submitting=0
logs_shown=0
submit_out="$LOGS/submit.out"

# await_exit PID NAME SECONDS: waits for a process that was sent SIGTERM. Past SECONDS it sends a
# second SIGTERM (for a worker: abandon the running job) and then SIGKILL, so cleanup always ends.
await_exit() {
    local pid="$1" name="$2" grace="$3" waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < grace * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop within ${grace}s; signalling again"
        kill -TERM "$pid" 2>/dev/null || true
        sleep 5
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid i run
    trap - EXIT INT TERM
    # Interrupted while the benchmark ran: cancel the rest of the run, or the coordinator would
    # resume its queued jobs the next time the farm starts, ahead of the next benchmark.
    run="$(head -n 1 "$submit_out" 2>/dev/null || true)"
    if ((submitting)) && [[ -n "$run" ]]; then
        log "interrupted; cancelling the rest of run $run"
        timeout 15 "$COORD" --coordinator "$url" cancel "$run" >&2 || log "cancelling run $run failed"
    fi
    if ((${#worker_pids[@]})); then
        log "stopping workers (each finishes its running job first)"
        # All are told at once so that they drain in parallel; then each is waited for.
        for pid in "${worker_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for i in "${!worker_pids[@]}"; do await_exit "${worker_pids[i]}" "worker local-$((i + 1))" 120; done
    fi
    # The coordinator goes last: it must be there to receive the workers' last results, and on
    # SIGTERM it flushes its store before exiting.
    if [[ -n "$coordinator_pid" ]]; then
        log "stopping coordinator"
        kill -TERM "$coordinator_pid" 2>/dev/null || true
        await_exit "$coordinator_pid" coordinator 30
    fi
    if ((rc != 0 && !logs_shown)) && [[ -n "$coordinator_pid" ]]; then
        log "logs in $LOGS/"
    fi
    exit "$rc"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fail_with_log NAME LOGFILE MESSAGE: a process died early; show why.
fail_with_log() {
    echo "farm: error: $3; last lines of $2:" >&2
    tail -n 20 "$2" | sed 's/^/    /' >&2
    exit 1
}

# port_free PORT -> 0 when 127.0.0.1:PORT can be bound. SO_REUSEADDR as the server sets it, so a
# port held only by TIME_WAIT connections of a previous run counts as free.
port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir -p "$LOGS"
port="${PORT:-50051}"
if ! port_free "$port"; then
    busy="$port"
    port="$(free_port)"
    log "port $busy is busy; using $port"
fi
url="http://127.0.0.1:$port"

# The farm runs in its own sessions (setsid): Ctrl-C reaches only this script, whose trap then
# stops the workers before the coordinator. Signalled directly by the terminal, a worker would get
# SIGINT and then the trap's SIGTERM, which together mean "abandon the running job".
log "starting coordinator on 127.0.0.1:$port (log $LOGS/coordinator.log)"
# NO_COLOR: the logs are files, not terminals, so no ANSI colour codes in them.
export NO_COLOR=1
setsid "$COORD" serve --listen "127.0.0.1:$port" --data "$DATA/coordinator" >"$LOGS/coordinator.log" 2>&1 &
coordinator_pid=$!

# Tokens are on, as on a lab network: the coordinator makes an operator token and a shared join
# token in its data directory (mode 0600) at its first start; the CLI and the workers read them.
tokens_deadline=$((SECONDS + 60))
until [[ -s "$DATA/coordinator/api.token" && -s "$DATA/coordinator/worker.token" ]]; do
    kill -0 "$coordinator_pid" 2>/dev/null || fail_with_log coordinator "$LOGS/coordinator.log" "the coordinator exited"
    ((SECONDS < tokens_deadline)) || die "the coordinator made no token files within 60 s (log $LOGS/coordinator.log)"
    sleep 0.2
done
BENCHFARM_TOKEN="$(cat "$DATA/coordinator/api.token")"
export BENCHFARM_TOKEN

# Workers on one machine share its cores: each gets an equal part, so that their timings are not
# distorted by fighting over the same cores.
cores="$(nproc)"
threads=$((cores / workers))
((threads >= 1)) || threads=1
log "starting $workers workers with $threads thread(s) each ($cores cores)"
for ((i = 1; i <= workers; i++)); do
    setsid "$WORKER" join --coordinator "$url" --models models --threads "$threads" \
        --state "$DATA/worker-$i" --name "local-$i" --token-file "$DATA/coordinator/worker.token" \
        >"$LOGS/worker-$i.log" 2>&1 &
    worker_pids+=($!)
done

# --- wait until every worker is connected --------------------------------------------------------
log "waiting for $workers workers to connect"
deadline=$((SECONDS + 180))
while :; do
    kill -0 "$coordinator_pid" 2>/dev/null || fail_with_log coordinator "$LOGS/coordinator.log" "the coordinator exited"
    for ((i = 1; i <= workers; i++)); do
        kill -0 "${worker_pids[i - 1]}" 2>/dev/null ||
            fail_with_log "local-$i" "$LOGS/worker-$i.log" "worker local-$i exited"
    done
    # `coordinator workers` prints a header, then "NAME STATE ..." with STATE idle, busy(n) or gone.
    # Earlier runs' workers stay listed as gone, so only this run's names in a live state count.
    connected="$("$COORD" --coordinator "$url" workers 2>/dev/null | awk -v n="$workers" '
        NR > 1 && $1 ~ /^local-[0-9]+$/ && substr($1, 7) + 0 <= n && $2 != "gone" { c++ }
        END { print c + 0 }')" || connected=0
    ((connected >= workers)) && break
    ((SECONDS < deadline)) || die "only $connected of $workers workers connected within 180 s (logs in $LOGS)"
    sleep 0.5
done
log "$workers workers connected"

# --- the benchmark -------------------------------------------------------------------------------
log "submitting $plan"
rc=0
: >"$submit_out"
submitting=1
# Progress goes to stderr; stdout (the run id, then the table) is also kept to name the run below.
"$COORD" --coordinator "$url" submit "$plan" --wait | tee "$submit_out" || rc=$?
submitting=0
run_id="$(head -n 1 "$submit_out" 2>/dev/null || true)"

echo "" >&2
log "logs in $LOGS/ (coordinator.log, worker-N.log); data in $DATA/"
if [[ -n "$run_id" ]]; then
    log "the coordinator stops now; every report is kept in $DATA/coordinator. To see this one again:"
    log "    $COORD serve --listen 127.0.0.1:$port --data $DATA/coordinator &"
    log "    BENCHFARM_TOKEN=\$(cat $DATA/coordinator/api.token) $COORD --coordinator $url report $run_id --format md"
fi
logs_shown=1
exit "$rc"
