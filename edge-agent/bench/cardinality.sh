#!/usr/bin/env bash
# Peak memory of the edge agent with 1,000,000 distinct values of one dimension inside one
# window (issue 4): a private nats-server and agent on free loopback ports, the `purchases`
# metric (dimensions region, plan, device; distinct user_id) with its series cap raised to
# 2,000,000, then ingest_load sends 1,000,000 events, each with a region value of its own, in
# batches of 1,000. Prints the agent's peak RSS (VmHWM), its memory metrics and the time taken.
#
#   edge-agent/bench/cardinality.sh [AGENT_BINARY] [MEMORY_BUDGET_BYTES]
#
# AGENT_BINARY defaults to target/release/edge-agent (build: cargo build --release -p
# edge-agent --bins --examples); MEMORY_BUDGET_BYTES to 4 GiB, so the budget does not cap
# the figure (give 536870912 to watch the default 512 MiB budget hold, answering 503s).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
agent_bin=${1:-$root/target/release/edge-agent}
budget=${2:-4294967296}
load_bin=$root/target/release/examples/ingest_load
nats_bin=${RTDASH_NATS_SERVER:-$(ls -d "${RTDASH_CACHE:-$HOME/.cache/rtdash}"/nats-v*/nats-server | tail -1)}
for bin in "$agent_bin" "$load_bin" "$nats_bin"; do
	[ -x "$bin" ] || { echo "missing $bin" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/rtdash-cardinality.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(free_port) agent_port=$(free_port)

cat >"$dir/nats.conf" <<CONF
listen: "127.0.0.1:$nats_port"
jetstream { store_dir: "$dir/store", max_file_store: 8G }
CONF
"$nats_bin" -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
pids+=($!)

cat >"$dir/metrics.toml" <<CONF
[[metric]]
name = "purchases"
event_type = "purchase"
field = "amount"
unique = "user_id"
dimensions = ["region", "plan", "device"]
max_series_per_window = 2000000
CONF
export RTDASH_NATS__URL=nats://127.0.0.1:$nats_port
export RTDASH_EDGE_AGENT__LISTEN=127.0.0.1:$agent_port
export RTDASH_EDGE_AGENT__STATE_DIR=$dir/agent
export RTDASH_EDGE_AGENT__METRICS_FILE=$dir/metrics.toml
export RTDASH_EDGE_AGENT__MEMORY_BUDGET_BYTES=$budget
sleep 0.5
"$agent_bin" >"$dir/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$agent_port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$agent_port/readyz" >/dev/null || { cat "$dir/agent.log"; exit 1; }
echo "agent $agent_bin (pid $agent), memory budget $budget bytes; RSS at start: $(awk '/VmRSS/ {print $2, $3}' /proc/$agent/status)"

# Every 0.2 s: the allocator's figure and what counts against the budget (peaks kept).
(
	peak_alloc=0 peak_used=0
	while kill -0 "$agent" 2>/dev/null; do
		m=$(curl -fsS "http://127.0.0.1:$agent_port/metrics" 2>/dev/null) || break
		a=$(awk '/^rtdash_agent_memory_allocated_bytes / {printf "%d", $2}' <<<"$m")
		u=$(awk '/^rtdash_agent_memory_budget_used_bytes / {printf "%d", $2}' <<<"$m")
		((${a:-0} > peak_alloc)) && peak_alloc=$a
		((${u:-0} > peak_used)) && peak_used=$u
		printf '%s %s\n' "$peak_alloc" "$peak_used" >"$dir/peaks"
		sleep 0.2
	done
) &
pids+=($!)
start=$(date +%s.%N)
"$load_bin" --addr "127.0.0.1:$agent_port" --connections 2 --batch 1000 --regions 1000000 \
	--max-events 1000000 --seconds 120 --bodies 1 2>/dev/null
end=$(date +%s.%N)
sleep 1.5 # a few more flushes
metrics=$(curl -fsS "http://127.0.0.1:$agent_port/metrics")
echo "took $(echo "$end - $start" | bc) s"
grep -E '^rtdash_agent_(events_accepted_total|series_overflowed_total|memory_[a-z_]+|requests_throttled_total)' <<<"$metrics" | grep -v ' 0$' || true
read -r peak_alloc peak_used <"$dir/peaks"
echo "peak seen every 0.2 s: allocator's allocated $((peak_alloc / 1048576)) MiB, counted against the budget $((peak_used / 1048576)) MiB"
echo "agent peak RSS (VmHWM): $(awk '/VmHWM/ {printf "%.1f MiB\n", $2 / 1024}' /proc/$agent/status), RSS now: $(awk '/VmRSS/ {printf "%.1f MiB\n", $2 / 1024}' /proc/$agent/status)"
