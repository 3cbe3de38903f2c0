#!/usr/bin/env bash
# Runs rtdash's benchmark suite against a freshly started stack and rewrites the tables of
# BENCHMARKS.md (between its `<!-- bench:KEY:begin/end -->` markers) with the medians and
# spread of the runs, the machine description and the exact commands.
#
#   ./bench/run.sh [--runs N] [--quick] [--long] [--no-stack] [--running] [--no-report] [--out DIR]
#     --runs N     runs per measurement (default 3)
#     --quick      shorter runs (about 5 minutes in all; for checking the harness)
#     --long       event-to-screen with 1,000 viewers under 100,000 events/s, 5 minutes per
#                  run (no single-viewer runs, no rate sweep)
#     --no-stack   only the in-process peer benchmark (no services needed)
#     --running    use a stack that is already running instead of starting one: URLs from
#                  RTDASH_BENCH_AGENT / RTDASH_BENCH_GATEWAY / RTDASH_BENCH_AGGREGATOR (admin)
#                  (default the up.sh ports), the gateway's pid from RTDASH_BENCH_GATEWAY_PID
#                  (optional), the operator key from RTDASH_KEY (else $RTDASH_STATE/operator.key)
#     --no-report  leave BENCHMARKS.md alone (results stay in the results directory)
#     --out DIR    results directory (default target/bench/<UTC time>)
#
# Order: the in-process peer benchmark first, on a quiet machine; then the stack is started
# with ./deploy/up.sh --no-demo (fresh state in the results directory, the usual ports
# 8080/8081/4222/9000..., so no other stack may be running) and the network benchmarks run
# against it; the stack is stopped at the end, whatever happens. Every run is bounded in time.
# Raw results (one JSON object per run) and logs stay in the results directory.
set -euo pipefail

usage() { sed -n '2,21s/^# \{0,1\}//p' "$0"; }
RUNS=3 QUICK=0 LONG=0 STACK=1 RUNNING=0 REPORT=1 OUT=
while [ $# -gt 0 ]; do
	case $1 in
	--runs)
		RUNS=$2
		shift
		;;
	--quick) QUICK=1 ;;
	--long) LONG=1 ;;
	--no-stack) STACK=0 ;;
	--running) RUNNING=1 ;;
	--no-report) REPORT=0 ;;
	--out)
		OUT=$2
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
LG=${CARGO_TARGET_DIR:-target}/release/rtdash-loadgen
AGENT=${RTDASH_BENCH_AGENT:-http://127.0.0.1:8081}
GATEWAY=${RTDASH_BENCH_GATEWAY:-http://127.0.0.1:8080}
AGGREGATOR=${RTDASH_BENCH_AGGREGATOR:-http://127.0.0.1:8082}
log() { printf 'bench: %s\n' "$*" >&2; }

if [ "$QUICK" = 1 ]; then
	PEER_EVENTS=20000000 INGEST_SECS=10 OPEN_SECS=20 PEER_HTTP_SECS=10 E2E_MARKERS=15 FANOUT_MARKERS=5
else
	PEER_EVENTS=100000000 INGEST_SECS=30 OPEN_SECS=60 PEER_HTTP_SECS=30 E2E_MARKERS=50 FANOUT_MARKERS=10
fi
[ "$LONG" = 1 ] && E2E_MARKERS=300

log "building rtdash-loadgen (release)"
cargo build --release -p rtdash-loadgen

# Machine description.
{
	cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
	mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	if [ "$STACK" = 0 ]; then
		stack="none (--no-stack)"
	elif [ "$RUNNING" = 1 ]; then
		stack="already running (--running): agent $AGENT, gateway $GATEWAY"
	else
		stack="started by bench/run.sh (./deploy/up.sh --no-demo --reset)"
	fi
	printf '{"cores (nproc)": "%s", "CPU": "%s", "memory": "%s", "kernel": "%s", "rustc": "%s", "commit": "%s", "date (UTC)": "%s", "load average at start": "%s", "mode": "%s", "stack": "%s"}\n' \
		"$(nproc)" "$cpu" "$mem" "$(uname -r)" "$(rustc --version)" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')" \
		"$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
		"$([ "$QUICK" = 1 ] && echo '--quick' || echo full)$([ "$LONG" = 1 ] && echo ' --long'), $RUNS runs" "$stack"
} >"$OUT/machine.json"
: >"$OUT/commands.tsv"

# measure NAME COMMAND...: run COMMAND --json RUNS times into NAME.<i>.json (stderr to NAME.<i>.log).
measure() {
	local name=$1 i
	shift
	printf '%s\t%s\n' "$name" "$*" >>"$OUT/commands.tsv"
	for ((i = 1; i <= RUNS; i++)); do
		log "$name run $i/$RUNS: $*"
		if ! timeout 900 "$@" --json >"$OUT/$name.$i.json" 2>"$OUT/$name.$i.log"; then
			log "$name run $i failed (see $OUT/$name.$i.log)"
		fi
	done
}

# 1. In-process peer benchmark, before anything else runs.
measure peer_inprocess "$LG" peer --mode inprocess --events "$PEER_EVENTS"
# The same without rtdash's built-in `events` metric: exactly the peers' aggregation.
measure peer_inprocess_exact "$LG" peer --mode inprocess --events "$PEER_EVENTS" --no-builtin-events

finish() {
	if [ "$REPORT" = 1 ]; then
		python3 "$ROOT/bench/report.py" "$OUT" "$ROOT/BENCHMARKS.md"
		log "BENCHMARKS.md updated from $OUT"
	else
		log "results in $OUT"
	fi
}

if [ "$STACK" = 0 ]; then
	finish
	exit 0
fi

# 2. A fresh stack (or the running one).
UP_PID=
stop_stack() {
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		log "stopping the stack"
		kill -TERM "$UP_PID" 2>/dev/null || true
		wait "$UP_PID" 2>/dev/null || true
	fi
}
if [ "$RUNNING" = 1 ]; then
	GATEWAY_PID=${RTDASH_BENCH_GATEWAY_PID:-}
	log "using the running stack: agent $AGENT, gateway $GATEWAY"
else
	export RTDASH_STATE="$OUT/stack"
	log "starting the stack (./deploy/up.sh --no-demo --reset; log: $OUT/up.log)"
	setsid ./deploy/up.sh --no-demo --reset >"$OUT/up.log" 2>&1 &
	UP_PID=$!
	trap stop_stack EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi
deadline=$((SECONDS + 900))
until curl -fsS -o /dev/null --max-time 2 "$GATEWAY/readyz" 2>/dev/null &&
	curl -fsS -o /dev/null --max-time 2 "$AGENT/readyz" 2>/dev/null; do
	if [ -n "$UP_PID" ] && ! kill -0 "$UP_PID" 2>/dev/null; then
		tail -n 30 "$OUT/up.log" >&2
		log "the stack did not start"
		exit 1
	fi
	((SECONDS < deadline)) || {
		log "the stack was not ready within 900 s"
		exit 1
	}
	sleep 1
done
if [ "$RUNNING" = 0 ]; then
	GATEWAY_PID=$(cut -d' ' -f1 "$RTDASH_STATE/pids/gateway.pid" 2>/dev/null || true)
fi
log "stack ready (gateway pid ${GATEWAY_PID:-unknown})"
# The loads span tenants: rtdash-loadgen sends the operator key (--running: $RTDASH_KEY, else
# the running stack's $RTDASH_STATE/operator.key).
if [ -z "${RTDASH_KEY:-}" ] && [ -s "${RTDASH_STATE:-.rtdash}/operator.key" ]; then
	RTDASH_KEY=$(cat "${RTDASH_STATE:-.rtdash}/operator.key")
	export RTDASH_KEY
fi

# core_metric NAME: the sum of the core aggregator's Prometheus samples NAME (0 if unreachable).
core_metric() {
	curl -fsS --max-time 5 "$AGGREGATOR/metrics" 2>/dev/null |
		awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f", s }'
}

# ingest NAME COMMAND...: like `measure`, and records what the core aggregator merged meanwhile
# (partial entries merged per second, consumer lag at the end) in aggregator_NAME.<i>.json.
ingest() {
	local name=$1 i m0 m1 b0 b1 t0 t1 lag
	shift
	printf '%s\t%s\n' "$name" "$*" >>"$OUT/commands.tsv"
	for ((i = 1; i <= RUNS; i++)); do
		log "$name run $i/$RUNS: $*"
		m0=$(core_metric rtdash_core_partials_merged_total)
		b0=$(core_metric rtdash_core_batches_applied_total)
		t0=$(date +%s.%N)
		timeout 900 "$@" --json >"$OUT/$name.$i.json" 2>"$OUT/$name.$i.log" || log "$name run $i failed"
		m1=$(core_metric rtdash_core_partials_merged_total)
		b1=$(core_metric rtdash_core_batches_applied_total)
		t1=$(date +%s.%N)
		lag=$(core_metric rtdash_core_consumer_lag_messages)
		python3 -c 'import json,sys; m0,m1,b0,b1,t0,t1,lag=map(float,sys.argv[1:]); s=max(t1-t0,1e-9); print(json.dumps({"partials_merged_per_sec":(m1-m0)/s,"batches_applied_per_sec":(b1-b0)/s,"lag_messages_at_end":lag,"seconds":s}))' \
			"$m0" "$m1" "$b0" "$b1" "$t0" "$t1" "$lag" >"$OUT/aggregator_$name.$i.json"
		# Let the aggregator drain its backlog before the next run (at most 120 s).
		for _ in $(seq 120); do
			[ "$(core_metric rtdash_core_consumer_lag_messages)" -le 50 ] && break
			sleep 1
		done
	done
}

# 3. Edge ingest: capacity (closed loop) and open loop at 100,000 events/s.
ingest ingest_max "$LG" load --agent "$AGENT" --gateway "$GATEWAY" --rate 0 --duration "$INGEST_SECS" --connections 8
ingest ingest_100k "$LG" load --agent "$AGENT" --gateway "$GATEWAY" --rate 100000 --duration "$OPEN_SECS"

# 4. Peer workload through the edge agent.
measure peer_http "$LG" peer --mode http --agent "$AGENT" --gateway "$GATEWAY" --duration "$PEER_HTTP_SECS"

# 5. Event to screen under load: the probe runs while `load` sends RATE events/s to other
# tenants. With VIEWERS > 1 the probe is `fanout --agent`: VIEWERS viewers watch the probe's
# dashboard and every marker is timed at every viewer (the issue's "1,000 viewers" setting);
# otherwise `latency` with its one viewer.
e2e() {
	local rate=$1 runs=$2 viewers=${3:-1} i load_secs probe_cmd name load_name
	load_secs=$((E2E_MARKERS + 20))
	if [ "$viewers" -gt 1 ]; then
		name="e2e_${rate}_${viewers}v"
		load_secs=$((load_secs + viewers / 500 + 20))
		probe_cmd=("$LG" fanout --agent "$AGENT" --gateway "$GATEWAY" --viewers "$viewers" --markers "$E2E_MARKERS" --interval-ms 1000 --settle-secs 10)
	else
		name="e2e_${rate}"
		probe_cmd=("$LG" latency --agent "$AGENT" --gateway "$GATEWAY" --markers "$E2E_MARKERS" --interval-ms 1000)
	fi
	load_name="e2eload_${name#e2e_}"
	printf '%s\t%s   (while: %s load --rate %s --duration %s)\n' "$name" "${probe_cmd[*]}" "$LG" "$rate" "$load_secs" >>"$OUT/commands.tsv"
	for ((i = 1; i <= runs; i++)); do
		log "$name: $viewers viewer(s) at $rate events/s, run $i/$runs"
		"$LG" load --agent "$AGENT" --rate "$rate" --duration "$load_secs" --progress 0 --json \
			>"$OUT/$load_name.$i.json" 2>"$OUT/$load_name.$i.log" &
		local load_pid=$!
		sleep 5
		timeout 1200 "${probe_cmd[@]}" --json >"$OUT/$name.$i.json" 2>"$OUT/$name.$i.log" || log "probe run failed"
		wait "$load_pid" || true
	done
}
e2e 100000 "$RUNS" 1000
[ "$LONG" = 0 ] && e2e 100000 "$RUNS"

# Highest sustainable rate with p99 under 5 s (one viewer): one run per rate, upwards from
# 25,000 events/s until a rate fails (100,000 events/s: the first run above).
: >"$OUT/sweep.txt"
if [ "$QUICK" = 0 ] && [ "$LONG" = 0 ]; then
	best=
	for rate in 25000 50000 75000 100000 150000 200000 300000 500000 750000 1000000; do
		[ "$rate" = 100000 ] || e2e "$rate" 1
		verdict=$(python3 - "$OUT" "$rate" <<'EOF'
import json, sys
out, rate = sys.argv[1], sys.argv[2]
try:
    probe = json.loads(open(f"{out}/e2e_{rate}.1.json").read().strip().splitlines()[-1])
    load = json.loads(open(f"{out}/e2eload_{rate}.1.json").read().strip().splitlines()[-1])
except Exception:
    print("fail no-result"); sys.exit()
ok = (probe["missing"] == 0 and probe["latency"]["p99_ms"] < 5000 and not load["fell_behind"]
      and load["overloaded_requests"] == 0)
print(("ok" if ok else "fail"), f"p99={probe['latency']['p99_ms']:.0f}ms accepted={load['accepted_rate']:.0f}/s fell_behind={load['fell_behind']} overloaded={load['overloaded_requests']}")
EOF
		)
		log "sweep $rate: $verdict"
		echo "- $rate events/s: $verdict" >>"$OUT/sweep.txt"
		case $verdict in ok*) best=$rate ;; *) break ;; esac
	done
	{
		echo
		echo "Highest rate tried with p99 under 5 s, no marker missing, no 429/503 and the load generator on schedule: ${best:-below 25000} events/s (one run per rate)."
	} >>"$OUT/sweep.txt"
fi

# 6. Fan-out: 1,000 and 10,000 viewers, then 10,000 beside 100,000 events/s.
PID_ARGS=()
[ -n "$GATEWAY_PID" ] && PID_ARGS=(--gateway-pid "$GATEWAY_PID")
measure fanout_1000 "$LG" fanout --gateway "$GATEWAY" --agent "$AGENT" --viewers 1000 --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}"
measure fanout_10000 "$LG" fanout --gateway "$GATEWAY" --agent "$AGENT" --viewers 10000 --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}"
fanout_secs=$((10 + 2 * FANOUT_MARKERS + 15 + 30))
printf '%s\t%s   (while: %s load --rate 100000 --duration %s)\n' fanout_10000_load \
	"$LG fanout --gateway $GATEWAY --agent $AGENT --viewers 10000 --markers $FANOUT_MARKERS ${PID_ARGS[*]}" "$LG" "$fanout_secs" >>"$OUT/commands.tsv"
for ((i = 1; i <= RUNS; i++)); do
	log "fanout 10000 under load, run $i/$RUNS"
	"$LG" load --agent "$AGENT" --rate 100000 --duration "$fanout_secs" --progress 0 --json >"$OUT/fanoutload.$i.json" 2>&1 &
	load_pid=$!
	timeout 900 "$LG" fanout --gateway "$GATEWAY" --agent "$AGENT" --viewers 10000 --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}" --json \
		>"$OUT/fanout_10000_load.$i.json" 2>"$OUT/fanout_10000_load.$i.log" || log "fanout run failed"
	kill "$load_pid" 2>/dev/null || true
	wait "$load_pid" 2>/dev/null || true
done

# 7. Metric query latency.
measure query "$LG" query --gateway "$GATEWAY" --tenant tenant-0 --metric events --requests 2000 --concurrency 8 --max-secs 30

stop_stack
trap - EXIT
finish
