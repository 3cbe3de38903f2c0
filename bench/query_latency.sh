#!/usr/bin/env bash
# The query-latency benchmark of issue #15 (BENCHMARKS.md, "Queries over long ranges") against
# a running stack started by ./deploy/up.sh --no-demo --state <state dir>:
#
#   bench/query_latency.sh <state dir> [OUT_DIR]
#
# Seeds 30 days of the rollup tiers 1h and 1d for the metric `query_bench` of tenant `bench`
# (10 regions x 10 hosts = 100 series and the total; `rtdash-loadgen seed-tiers`), then per run
# (3 by default, RUNS) two open-loop query runs at RATE requests/s (default 200) for SECS
# seconds (default 30), each after one query sent alone (`--cold`; only the first run's is
# cold, the gateway caches the rows of closed windows):
#   p99 by region per hour over 7 days:  stat=p99&window=1h&group_by=region&from=now-7d
#   unique users per day over 30 days:   stat=unique&window=1d&from=now-30d
# GATEWAY (default http://127.0.0.1:8080) and QUESTDB (127.0.0.1:9000) follow the stack's ports.
set -euo pipefail

state=${1:?usage: bench/query_latency.sh <state dir> [OUT_DIR]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${2:-$root/target/bench/queries-$(date -u +%Y%m%dT%H%M%SZ)}
runs=${RUNS:-3}
rate=${RATE:-200}
secs=${SECS:-30}
gateway=${GATEWAY:-http://127.0.0.1:8080}
questdb=${QUESTDB:-127.0.0.1:9000}
loadgen=${CARGO_TARGET_DIR:-$root/target}/release/rtdash-loadgen
key=$(cat "$state/operator.key")
mkdir -p "$out"
set -a
# shellcheck disable=SC1091
. "$state/secrets/questdb.env"
set +a

printf 'name\trun\tload average (1, 5, 15 min) before the run\n' >"$out/loadavg.tsv"
printf 'seed\t1\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
"$loadgen" --key "$key" seed-tiers --gateway "$gateway" --questdb "$questdb" --tenant bench \
	--metric query_bench --days 30 | tee "$out/seed.log"
requests=$((rate * secs))
for run in $(seq "$runs"); do
	printf 'p99_by_region_1h_7d\t%s\t%s\n' "$run" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
	"$loadgen" --key "$key" query --gateway "$gateway" --tenant bench --metric query_bench \
		--stat p99 --window 1h --group-by region --range 7d --cold \
		--rate "$rate" --requests "$requests" --max-secs "$secs" --concurrency 64 |
		tee "$out/p99_by_region_1h_7d.$run.log"
	printf 'unique_1d_30d\t%s\t%s\n' "$run" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.tsv"
	"$loadgen" --key "$key" query --gateway "$gateway" --tenant bench --metric query_bench \
		--stat unique --window 1d --range 30d --cold \
		--rate "$rate" --requests "$requests" --max-secs "$secs" --concurrency 64 |
		tee "$out/unique_1d_30d.$run.log"
done
echo "results in $out"
