#!/usr/bin/env bash
# Runs the whole rtdash stack on this machine, in the foreground, until Ctrl-C:
# NATS (JetStream) and QuestDB, then core-aggregator, gateway and edge-agent built in release
# mode, then the demo producer. Everything listens on 127.0.0.1 only. State (NATS store,
# QuestDB data), logs and pid files live in ${RTDASH_STATE:-<repo>/.rtdash}.
# On exit, for whatever reason, it stops everything it started.
#
#   ./deploy/up.sh [--no-demo] [--reset]
#     --no-demo  do not start the demo producer (rtdash-loadgen demo)
#     --reset    wipe the state dir first (start from empty NATS and QuestDB)
#
# Ports: gateway 8080 (dashboard, API), edge-agent 8081, core-aggregator 8082 (admin),
# NATS 4222 (monitor 8222), QuestDB HTTP 9000, ILP/TCP 9009, PostgreSQL wire 8812, min-HTTP 9003.
set -euo pipefail

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }
demo=1
reset=0
for arg in "$@"; do
	case $arg in
	--no-demo) demo=0 ;;
	--reset) reset=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT"

NATS_PORT=4222 NATS_MONITOR_PORT=8222
QDB_HTTP_PORT=9000 QDB_ILP_PORT=9009 QDB_PG_PORT=8812 QDB_MIN_HTTP_PORT=9003
GATEWAY_PORT=8080 AGENT_PORT=8081 AGGREGATOR_PORT=8082

if up=$(rtdash_read_pidfile "$RTDASH_STATE/up.pid"); then
	rtdash_die "a stack is already running from $RTDASH_STATE (up.sh pid $up); stop it with ./deploy/down.sh"
fi
rtdash_require_free_ports nats=$NATS_PORT nats-monitor=$NATS_MONITOR_PORT \
	questdb-http=$QDB_HTTP_PORT questdb-ilp=$QDB_ILP_PORT questdb-pg=$QDB_PG_PORT questdb-min-http=$QDB_MIN_HTTP_PORT \
	gateway=$GATEWAY_PORT edge-agent=$AGENT_PORT core-aggregator=$AGGREGATOR_PORT

"$RTDASH_ROOT/deploy/install.sh"
rtdash_log "building release binaries (cargo build --release --workspace --bins)"
cargo build --release --workspace --bins
rtdash_build_web

if [ "$reset" = 1 ] && [ -d "$RTDASH_STATE" ]; then
	[ -f "$RTDASH_STATE/.rtdash-state" ] || rtdash_die "--reset: $RTDASH_STATE is not an rtdash state dir (no .rtdash-state marker); not wiping it"
	rtdash_log "--reset: wiping $RTDASH_STATE"
	rm -rf "$RTDASH_STATE"
fi
mkdir -p "$RTDASH_STATE/logs" "$RTDASH_STATE/pids"
touch "$RTDASH_STATE/.rtdash-state"
rtdash_stop_all # pid files left by a stack that was killed: stop whatever of it survived
rtdash_write_pidfile "$RTDASH_STATE/up.pid" $$

cleanup() {
	trap - EXIT INT TERM
	rtdash_log "stopping the stack"
	rtdash_stop_all
	rm -f "$RTDASH_STATE/up.pid"
	rtdash_log "stopped; state and logs kept in $RTDASH_STATE (./deploy/down.sh wipes them)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rtdash_start_nats $NATS_PORT $NATS_MONITOR_PORT
rtdash_start_questdb $QDB_HTTP_PORT $QDB_ILP_PORT $QDB_PG_PORT $QDB_MIN_HTTP_PORT
rtdash_wait_nats $NATS_MONITOR_PORT
rtdash_wait_questdb $QDB_HTTP_PORT
rtdash_log "NATS ready on nats://127.0.0.1:$NATS_PORT, QuestDB ready on http://127.0.0.1:$QDB_HTTP_PORT"

# name:port, in start order.
services=("core-aggregator:$AGGREGATOR_PORT" "gateway:$GATEWAY_PORT" "edge-agent:$AGENT_PORT")
for svc in "${services[@]}"; do
	rtdash_spawn "${svc%%:*}" "target/release/${svc%%:*}" --config "deploy/local/${svc%%:*}.toml"
	rtdash_wait_http "${svc%%:*}" "http://127.0.0.1:${svc#*:}/readyz" 60
	rtdash_log "${svc%%:*} ready on 127.0.0.1:${svc#*:}"
done

watched=(nats questdb core-aggregator gateway edge-agent)
if [ "$demo" = 1 ]; then
	rtdash_spawn loadgen target/release/rtdash-loadgen demo --agent "http://127.0.0.1:$AGENT_PORT" \
		--gateway "http://127.0.0.1:$GATEWAY_PORT" --tenant demo
	rtdash_log "demo producer started (log: $RTDASH_STATE/logs/loadgen.log)"
fi

cat <<EOF

  rtdash is running.  Dashboard: http://127.0.0.1:$GATEWAY_PORT/?tenant=demo
  Logs: $RTDASH_STATE/logs/   Ctrl-C stops everything.

EOF

# Wait until a service ends. A service ending is an error and stops the stack; the demo
# producer ending is reported and the stack keeps running.
declare -A pid_of
for name in "${watched[@]}" loadgen; do
	pid=$(rtdash_service_pid "$name") && pid_of[$pid]=$name
done
while :; do
	status=0 ended=
	wait -n -p ended "${!pid_of[@]}" || status=$?
	if [ -z "$ended" ] || [ -z "${pid_of[$ended]:-}" ]; then
		continue
	fi
	name=${pid_of[$ended]}
	unset "pid_of[$ended]"
	rm -f "$(rtdash_pidfile "$name")"
	if [ "$name" = loadgen ]; then
		rtdash_log "demo producer exited with status $status (log: $RTDASH_STATE/logs/loadgen.log); the stack keeps running"
		continue
	fi
	rtdash_log "$name exited with status $status; last lines of $RTDASH_STATE/logs/$name.log:"
	tail -n 20 "$RTDASH_STATE/logs/$name.log" >&2
	exit 1
done
