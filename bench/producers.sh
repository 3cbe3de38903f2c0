#!/usr/bin/env bash
# The producer-protocol benchmark (BENCHMARKS.md, "Producer protocols") against a running stack
# whose edge agent serves the tenant `bench` on every entry point:
#
#   RTDASH_EDGE_AGENT__SEGMENT__TENANT=bench RTDASH_EDGE_AGENT__OTLP__TENANT=bench \
#   RTDASH_EDGE_AGENT__STATSD__TENANT=bench ./deploy/up.sh --no-demo --state <fresh dir>
#   bench/producers.sh <state dir> [OUT_DIR]
#
# Per run (3 by default, RUNS): `POST /v1/events`, Segment `/v1/batch` and OTLP `/v1/logs`
# (protobuf), each closed loop for DURATION seconds (default 10); then DogStatsD datagrams at
# each rate of STATSD_RATES (datagrams/s, 10 lines each) to the agent and, alternated, to the
# StatsD peer (Prometheus statsd_exporter, started here by bench/peers/statsd_exporter.sh on
# 127.0.0.1:9125, /metrics on 9102). A StatsD figure counts only what the receiver's own counter
# took: the agent's `rtdash_agent_protocol_events_total{protocol="statsd",outcome="accepted"}`,
# the exporter's `statsd_exporter_events_total`. Output: one log per run in OUT_DIR (default
# target/bench/producers-<UTC time>), the load average before each in loadavg.tsv.
# AGENT (default http://127.0.0.1:8081) and STATSD (127.0.0.1:8125) follow the stack's ports.
set -euo pipefail

state=${1:?usage: bench/producers.sh <state dir> [OUT_DIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${2:-$root/target/bench/producers-$(date -u +%Y%m%dT%H%M%SZ)}
runs=${RUNS:-3}
duration=${DURATION:-10}
rates=${STATSD_RATES:-10000 25000 50000 100000}
agent=${AGENT:-http://127.0.0.1:8081}
statsd=${STATSD:-127.0.0.1:8125}
loadgen=${CARGO_TARGET_DIR:-$root/target}/release/rtdash-loadgen
key=$(cat "$state/operator.key")
mkdir -p "$out"

"$root/bench/peers/statsd_exporter.sh" --install >/dev/null
"$root/bench/peers/statsd_exporter.sh" 9125 9102 >"$out/statsd_exporter.log" 2>&1 &
peer=$!
trap 'kill "$peer" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:9102/metrics && break
	sleep 0.2
done

printf 'name\trun\tload average (1, 5, 15 min) before the run\n' >"$out/loadavg.tsv"
for run in $(seq "$runs"); do
	printf 'http\t%s\t%s\n' "$run" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
	"$loadgen" --key "$key" protocols --agent "$agent" --duration "$duration" \
		--only events,segment,otlp | tee "$out/http.$run.log"
	for rate in $rates; do
		printf 'statsd-%s\t%s\t%s\n' "$rate" "$run" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
		"$loadgen" --key "$key" protocols --agent "$agent" --statsd "$statsd" --duration "$duration" \
			--statsd-rate "$rate" --only statsd | tee "$out/statsd-$rate.$run.log"
		printf 'peer-%s\t%s\t%s\n' "$rate" "$run" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
		"$loadgen" protocols --duration "$duration" --statsd-rate "$rate" --only statsd-peer \
			--statsd-peer 127.0.0.1:9125 --statsd-peer-metrics http://127.0.0.1:9102/metrics |
			tee "$out/peer-$rate.$run.log"
	done
done
echo "results in $out"
