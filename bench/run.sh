#!/usr/bin/env bash
# Runs rtdash's benchmark suite against a freshly started stack and rewrites the tables of
# BENCHMARKS.md (between its `<!-- bench:KEY:begin/end -->` markers) with the medians and
# spread of the runs, the machine description and the exact commands.
#
#   ./bench/run.sh [--runs N] [--quick] [--long] [--no-stack] [--running] [--peers] [--fanout-peer]
#                  [--no-peers] [--no-report] [--out DIR]
#     --runs N     runs per measurement (default 3)
#     --quick      shorter runs (about 5 minutes in all; for checking the harness)
#     --long       event-to-screen with 1,000 viewers under 100,000 events/s, 5 minutes per
#                  run (no single-viewer runs, no rate sweep)
#     --no-stack   only the in-process peer benchmark and the peer engines (no services
#                  needed); rewrites only the peer tables
#     --running    use a stack that is already running instead of starting one: URLs from
#                  RTDASH_BENCH_AGENT / RTDASH_BENCH_GATEWAY / RTDASH_BENCH_AGGREGATOR (admin) /
#                  RTDASH_BENCH_NATS (default the up.sh ports), the gateway's pid from
#                  RTDASH_BENCH_GATEWAY_PID (optional), the operator key from RTDASH_KEY (else
#                  $RTDASH_STATE/operator.key); its gateway must not limit streams per client
#                  (live.max_streams_per_client = 0): the fan-out viewers share one address
#     --peers      only the peers side by side: rtdash in-process, Flink and Spark (alternated,
#                  nothing else running), then the stack and rtdash over HTTP; rewrites only the
#                  peer tables
#     --fanout-peer  only the fan-out peer: the gateway alone and Centrifugo, same viewers,
#                  markers and probe, alternated; rewrites only that table
#     --no-peers   leave Flink, Spark and Centrifugo out (no Java or Go needed)
#     (RTDASH_BENCH_SPARK_RATE: rows/s offered to Spark, default 500000;
#      RTDASH_BENCH_CENTRIFUGO_PORT: Centrifugo's port on 127.0.0.1, default 18000;
#      to check the harness on a busy machine, smaller runs than --quick's:
#      RTDASH_BENCH_PEER_EVENTS, RTDASH_BENCH_FLINK_ROWS, RTDASH_BENCH_SPARK_SECS,
#      RTDASH_BENCH_SPARK_WARMUP, RTDASH_BENCH_FANOUT_PEER_VIEWERS ("1000 10000"), and
#      RTDASH_BENCH_PROFILE=debug for debug builds; machine.json's mode lists any of them)
#     --no-report  leave BENCHMARKS.md alone (results stay in the results directory)
#     --out DIR    results directory (default target/bench/<UTC time>)
#
# Order: the in-process peer benchmark first, on a quiet machine, alternated run by run with
# the peer engines (bench/peers/: PyFlink and PySpark, installed once by bench/peers/setup.sh);
# then the stack is started with ./deploy/up.sh --no-demo (fresh state in the results
# directory, the usual ports 8080/8081/4222/9000..., so no other stack may be running) and the
# network benchmarks run against it, first (stack fresh and idle) the fan-out peer
# (Centrifugo, built once by bench/centrifugo/setup.sh) alternated with the gateway alone,
# then ingest, event to screen, fan-out and queries; the stack is stopped at the end,
# whatever happens. Every run is bounded in time. Raw results (one JSON object per run), the
# load average before each run (loadavg.tsv) and logs stay in the results directory.
set -euo pipefail

usage() { sed -n '2,43s/^# \{0,1\}//p' "$0"; }
RUNS=3 QUICK=0 LONG=0 STACK=1 RUNNING=0 REPORT=1 OUT= ONLY= PEERS=1
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
	--peers) ONLY=peers ;;
	--fanout-peer) ONLY=fanout-peer ;;
	--no-peers) PEERS=0 ;;
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
# RTDASH_BENCH_PROFILE=debug: debug builds of the load generator and the stack, only to check
# the harness where a release build is not at hand (its figures are not comparable).
PROFILE=${RTDASH_BENCH_PROFILE:-release}
case $PROFILE in
release) CARGO_PROFILE_ARGS=(--release) ;;
debug) CARGO_PROFILE_ARGS=() ;;
*)
	echo "bench: RTDASH_BENCH_PROFILE must be release or debug, not '$PROFILE'" >&2
	exit 2
	;;
esac
LG=${CARGO_TARGET_DIR:-target}/$PROFILE/rtdash-loadgen
AGENT=${RTDASH_BENCH_AGENT:-http://127.0.0.1:8081}
GATEWAY=${RTDASH_BENCH_GATEWAY:-http://127.0.0.1:8080}
AGGREGATOR=${RTDASH_BENCH_AGGREGATOR:-http://127.0.0.1:8082}
log() { printf 'bench: %s\n' "$*" >&2; }

NATS=${RTDASH_BENCH_NATS:-nats://127.0.0.1:4222}
CENTRIFUGO_PORT=${RTDASH_BENCH_CENTRIFUGO_PORT:-18000}
if [ "$QUICK" = 1 ]; then
	PEER_EVENTS=20000000 INGEST_SECS=10 OPEN_SECS=20 PEER_HTTP_SECS=10 E2E_MARKERS=15 FANOUT_MARKERS=5
	FLINK_ROWS=20000000 SPARK_SECS=50 SPARK_WARMUP=15 FANOUT_PEER_VIEWERS="1000"
else
	PEER_EVENTS=100000000 INGEST_SECS=30 OPEN_SECS=60 PEER_HTTP_SECS=30 E2E_MARKERS=50 FANOUT_MARKERS=10
	FLINK_ROWS=40000000 SPARK_SECS=90 SPARK_WARMUP=20 FANOUT_PEER_VIEWERS="1000 10000"
fi
# Spark's rate source is offered this many rows/s (its sustained rate in the earlier
# measurements); Spark's figure is its processed rows/s while a micro-batch runs.
SPARK_RATE=${RTDASH_BENCH_SPARK_RATE:-500000}
# Smaller engine runs for checking the harness on a loaded machine (the figures of such runs
# are not comparable): Flink's rows, Spark's seconds and warm-up, the fan-out peer's viewers.
FLINK_ROWS=${RTDASH_BENCH_FLINK_ROWS:-$FLINK_ROWS}
SPARK_SECS=${RTDASH_BENCH_SPARK_SECS:-$SPARK_SECS}
SPARK_WARMUP=${RTDASH_BENCH_SPARK_WARMUP:-$SPARK_WARMUP}
PEER_EVENTS=${RTDASH_BENCH_PEER_EVENTS:-$PEER_EVENTS}
FANOUT_PEER_VIEWERS=${RTDASH_BENCH_FANOUT_PEER_VIEWERS:-$FANOUT_PEER_VIEWERS}
[ "$LONG" = 1 ] && E2E_MARKERS=300

log "building rtdash-loadgen ($PROFILE)"
cargo build "${CARGO_PROFILE_ARGS[@]}" -p rtdash-loadgen

# The peers: PyFlink and PySpark in a cached virtual environment, Centrifugo built once.
RUN_ENGINES=0 RUN_FANOUT_PEER=0
if [ "$PEERS" = 1 ] && [ "$ONLY" != fanout-peer ]; then
	PEERS_DIR=$("$ROOT/bench/peers/setup.sh")
	RUN_ENGINES=1
fi
if [ "$PEERS" = 1 ] && [ "$STACK" = 1 ] && [ "$ONLY" != peers ]; then
	CENTRIFUGO_BIN=$("$ROOT/bench/centrifugo/setup.sh")
	RUN_FANOUT_PEER=1
fi
# shellcheck source=bench/centrifugo/server.sh
. "$ROOT/bench/centrifugo/server.sh"

# Machine description.
{
	cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
	mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	if [ "$STACK" = 0 ]; then
		stack="none (--no-stack)"
	elif [ "$RUNNING" = 1 ]; then
		stack="already running (--running): agent $AGENT, gateway $GATEWAY"
	else
		stack="started by bench/run.sh (./deploy/up.sh --no-demo --reset --profile $PROFILE)"
	fi
	avail=$(awk '/MemAvailable/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
	peers=none
	if [ "$RUN_ENGINES" = 1 ]; then
		peers="PyFlink $("$PEERS_DIR/flink/bin/python" -c 'import pyflink.version as v; print(v.__version__)'), PySpark $("$PEERS_DIR/spark/bin/python" -c 'import pyspark; print(pyspark.__version__)'), $(java -version 2>&1 | head -1 | tr -d '"')"
	fi
	if [ "$RUN_FANOUT_PEER" = 1 ]; then
		cf_version=$("$CENTRIFUGO_BIN" version 2>&1 | head -1)
		if [ "$peers" = none ]; then peers=$cf_version; else peers="$peers; $cf_version"; fi
	fi
	# Processes of another rtdash stack would share the cores with every run.
	others=$(pgrep -x -c 'edge-agent|core-aggregator|gateway|nats-server' 2>/dev/null || true)
	# Size overrides make the run's figures incomparable: the mode names them.
	overrides=$(env | grep -oE '^RTDASH_BENCH_(PEER_EVENTS|FLINK_ROWS|SPARK_SECS|SPARK_WARMUP|FANOUT_PEER_VIEWERS)=.*' | tr '\n' ' ' | sed 's/ $//' || true)
	printf '{"cores (nproc)": "%s", "CPU": "%s", "memory": "%s", "memory available at start": "%s", "kernel": "%s", "rustc": "%s", "peers": "%s", "commit": "%s", "date (UTC)": "%s", "load average at start": "%s", "rtdash or NATS processes at start": "%s", "mode": "%s", "stack": "%s"}\n' \
		"$(nproc)" "$cpu" "$mem" "$avail" "$(uname -r)" "$(rustc --version)" "$peers" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')" \
		"$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${others:-0}" \
		"$([ "$QUICK" = 1 ] && echo '--quick' || echo full)$([ "$LONG" = 1 ] && echo ' --long')${ONLY:+ --$ONLY}$([ "$PEERS" = 0 ] && echo ' --no-peers'), $RUNS runs${overrides:+, sizes overridden: $overrides}$([ "$PROFILE" = release ] || echo ", $PROFILE build")" "$stack"
} >"$OUT/machine.json"
[ "${others:-0}" = 0 ] || log "warning: $others rtdash or NATS processes are running already; they share the cores with every run"
[ "$RUNNING" = 1 ] && [ "$ONLY" != fanout-peer ] && log "warning: --running: the in-process peer runs share the cores with the running stack (idle, but not stopped)"
: >"$OUT/commands.tsv"
printf 'name\trun\tload average (1, 5, 15 min) before the run\n' >"$OUT/loadavg.tsv"

# command_once NAME COMMAND...: records NAME's command (first call only).
command_once() {
	local name=$1
	shift
	grep -q "^$name	" "$OUT/commands.tsv" || printf '%s\t%s\n' "$name" "$*" >>"$OUT/commands.tsv"
}

# measure_run NAME I COMMAND...: run I of COMMAND --json into NAME.<I>.json (stderr to
# NAME.<I>.log), with the load average before it in loadavg.tsv.
measure_run() {
	local name=$1 i=$2
	shift 2
	command_once "$name" "$@"
	printf '%s\t%s\t%s\n' "$name" "$i" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.tsv"
	log "$name run $i/$RUNS: $*"
	if ! timeout 900 "$@" --json >"$OUT/$name.$i.json" 2>"$OUT/$name.$i.log"; then
		log "$name run $i failed (see $OUT/$name.$i.log)"
	fi
}

# measure NAME COMMAND...: RUNS runs of COMMAND in a row (measure_run).
measure() {
	local name=$1 i
	shift
	for ((i = 1; i <= RUNS; i++)); do
		measure_run "$name" "$i" "$@"
	done
}

# engine_run NAME I COMMAND...: run I of a peer engine's script, which writes its JSON summary
# with --json-out NAME.<I>.json (output to NAME.<I>.log).
engine_run() {
	local name=$1 i=$2
	shift 2
	command_once "$name" "$@"
	printf '%s\t%s\t%s\n' "$name" "$i" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.tsv"
	log "$name run $i/$RUNS: $*"
	rm -f "$OUT/$name.$i.json"
	if ! timeout 900 "$@" --json-out "$OUT/$name.$i.json" >"$OUT/$name.$i.log" 2>&1; then
		log "$name run $i failed (see $OUT/$name.$i.log)"
	fi
}


finish() {
	if [ "$REPORT" = 1 ]; then
		python3 "$ROOT/bench/report.py" "$OUT" "$ROOT/BENCHMARKS.md" ${SECTIONS:+--sections "$SECTIONS"}
		log "BENCHMARKS.md updated from $OUT${SECTIONS:+ (sections $SECTIONS)}"
	else
		log "results in $OUT"
	fi
}
# Partial runs rewrite only their own tables (each says its commit and load average).
case $ONLY in
peers) SECTIONS=peer,peer-ratios ;;
fanout-peer) SECTIONS=fanout-peer ;;
*) SECTIONS= ;;
esac
[ "$STACK" = 0 ] && SECTIONS=peer,peer-ratios

# 1. The peer workload in-process, before anything else runs, alternated run by run with the
# peer engines (Flink, then Spark), so that a change of the machine's load does not favour
# one of them. Flink's JVM gets its script's default heap (--heap 8g) and Spark's driver its
# default 8g, one at a time.
if [ "$ONLY" != fanout-peer ]; then
	if [ "$RUN_ENGINES" = 1 ]; then
		avail_gib=$(awk '/MemAvailable/ {print int($2/1048576)}' /proc/meminfo)
		[ "$avail_gib" -ge 10 ] || log "warning: only $avail_gib GiB available; the peer engines' 8 GiB heaps may not fit"
	fi
	for ((i = 1; i <= RUNS; i++)); do
		measure_run peer_inprocess "$i" "$LG" peer --mode inprocess --events "$PEER_EVENTS"
		# The same without rtdash's built-in `events` metric: exactly the peers' aggregation.
		measure_run peer_inprocess_exact "$i" "$LG" peer --mode inprocess --events "$PEER_EVENTS" --no-builtin-events
		if [ "$RUN_ENGINES" = 1 ]; then
			engine_run peer_flink "$i" "$PEERS_DIR/flink/bin/python" bench/peers/flink_window_bench.py --rows "$FLINK_ROWS"
			engine_run peer_spark "$i" "$PEERS_DIR/spark/bin/python" bench/peers/spark_window_bench.py \
				--rate "$SPARK_RATE" --duration "$SPARK_SECS" --warmup "$SPARK_WARMUP"
		fi
	done
fi

if [ "$STACK" = 0 ]; then
	finish
	exit 0
fi

# 2. A fresh stack (or the running one).
UP_PID=
stop_stack() {
	centrifugo_stop
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		log "stopping the stack"
		kill -TERM "$UP_PID" 2>/dev/null || true
		wait "$UP_PID" 2>/dev/null || true
	fi
}
if [ "$RUNNING" = 1 ]; then
	GATEWAY_PID=${RTDASH_BENCH_GATEWAY_PID:-}
	log "using the running stack: agent $AGENT, gateway $GATEWAY"
	log "note: the fan-out runs open up to 10,000 streams from this one address: the running gateway needs live.max_streams_per_client = 0 (RTDASH_GATEWAY__LIVE__MAX_STREAMS_PER_CLIENT=0)"
else
	export RTDASH_STATE="$OUT/stack"
	# Every viewer of the fan-out runs comes from this one address: no per-client stream limit.
	export RTDASH_GATEWAY__LIVE__MAX_STREAMS_PER_CLIENT=0
	log "starting the stack (./deploy/up.sh --no-demo --reset --profile $PROFILE; log: $OUT/up.log)"
	setsid ./deploy/up.sh --no-demo --reset --profile "$PROFILE" >"$OUT/up.log" 2>&1 &
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
		printf '%s\t%s\t%s\n' "$name" "$i" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.tsv"
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


# fanout_peer: the gateway alone (markers published on NATS, `fanout --nats`) and Centrifugo
# (markers through its server API, `fanout --target centrifugo`): the same viewers, markers,
# interval and probe; the two alternate within each run, the first of the pair changing from
# run to run. Memory per viewer is taken against each server's resident memory before it had
# any viewer (RSS_FRESH in fresh_rss.json): freed memory that a server keeps for reuse would
# make "before this run" a wrong baseline.
fanout_peer() {
	local viewers i gw_cmd cf_cmd
	centrifugo_start "$CENTRIFUGO_BIN" "$OUT/centrifugo" "$CENTRIFUGO_PORT" || {
		log "Centrifugo did not start (see $OUT/centrifugo/centrifugo.log): the fan-out peer is left out"
		return 0
	}
	python3 -c 'import json,sys; print(json.dumps({"gateway_mib": float(sys.argv[1]) if sys.argv[1] else None, "centrifugo_mib": float(sys.argv[2])}))' \
		"$GATEWAY_RSS_FRESH" "$(awk '/VmRSS/ {print $2/1024}' "/proc/$CF_PID/status")" >"$OUT/fresh_rss.json"
	for viewers in $FANOUT_PEER_VIEWERS; do
		gw_cmd=("$LG" fanout --gateway "$GATEWAY" --nats "$NATS" --viewers "$viewers" --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}")
		cf_cmd=("$LG" fanout --target centrifugo --centrifugo "$CF_URL" --centrifugo-pid "$CF_PID" --viewers "$viewers" --markers "$FANOUT_MARKERS")
		for ((i = 1; i <= RUNS; i++)); do
			if ((i % 2)); then
				measure_run "fanoutpeer_gateway_$viewers" "$i" "${gw_cmd[@]}"
				measure_run "fanoutpeer_centrifugo_$viewers" "$i" "${cf_cmd[@]}"
			else
				measure_run "fanoutpeer_centrifugo_$viewers" "$i" "${cf_cmd[@]}"
				measure_run "fanoutpeer_gateway_$viewers" "$i" "${gw_cmd[@]}"
			fi
		done
	done
	centrifugo_stop
}
PID_ARGS=()
[ -n "$GATEWAY_PID" ] && PID_ARGS=(--gateway-pid "$GATEWAY_PID")
GATEWAY_RSS_FRESH=
[ -n "$GATEWAY_PID" ] && GATEWAY_RSS_FRESH=$(awk '/VmRSS/ {print $2/1024}' "/proc/$GATEWAY_PID/status" 2>/dev/null || true)

# The fan-out peer first, while the stack is fresh and idle: both servers' memory per viewer is
# taken against their resident memory before they ever had a viewer, which the gateway's own
# fan-out runs below (and the 1,000-viewer event-to-screen runs) would inflate.
if [ "$RUN_FANOUT_PEER" = 1 ]; then
	fanout_peer
elif [ "$ONLY" = fanout-peer ]; then
	log "--fanout-peer with --no-peers or --no-stack: nothing to run"
fi
# Partial runs: the peer workload over HTTP, or the fan-out peer (above); then stop.
if [ "$ONLY" = peers ]; then
	measure peer_http "$LG" peer --mode http --agent "$AGENT" --gateway "$GATEWAY" --duration "$PEER_HTTP_SECS"
fi
if [ -n "$ONLY" ]; then
	stop_stack
	trap - EXIT
	finish
	exit 0
fi

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
		printf '%s\t%s\t%s\n' "$name" "$i" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.tsv"
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
measure fanout_1000 "$LG" fanout --gateway "$GATEWAY" --agent "$AGENT" --viewers 1000 --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}"
measure fanout_10000 "$LG" fanout --gateway "$GATEWAY" --agent "$AGENT" --viewers 10000 --markers "$FANOUT_MARKERS" "${PID_ARGS[@]}"
fanout_secs=$((10 + 2 * FANOUT_MARKERS + 15 + 30))
printf '%s\t%s   (while: %s load --rate 100000 --duration %s)\n' fanout_10000_load \
	"$LG fanout --gateway $GATEWAY --agent $AGENT --viewers 10000 --markers $FANOUT_MARKERS ${PID_ARGS[*]}" "$LG" "$fanout_secs" >>"$OUT/commands.tsv"
for ((i = 1; i <= RUNS; i++)); do
	log "fanout 10000 under load, run $i/$RUNS"
	printf '%s\t%s\t%s\n' fanout_10000_load "$i" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.tsv"
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
