#!/usr/bin/env bash
# Runs the whole rtdash stack on this machine, in the foreground, until Ctrl-C:
# NATS (JetStream) and QuestDB, then core-aggregator, gateway and edge-agent built in release
# mode, then the demo producer. Everything listens on 127.0.0.1 only. State (NATS store,
# QuestDB data), logs and pid files live in ${RTDASH_STATE:-<repo>/.rtdash}.
# On exit, for whatever reason, it stops everything it started.
#
#   ./deploy/up.sh [--no-demo] [--reset] [--profile release|debug] [--port-offset N] [--state DIR]
#     --no-demo        do not start the demo producer (rtdash-loadgen demo)
#     --reset          wipe the state dir first (start from empty NATS and QuestDB)
#     --profile P      cargo profile to build and run: release (default) or debug
#     --port-offset N  add N to every port below (a second stack beside the default one)
#     --state DIR      state dir (default $RTDASH_STATE, else <repo>/.rtdash)
#
# Ports: gateway 8080 (dashboard, API), edge-agent 8081, core-aggregator 8082 (admin),
# NATS 4222 (monitor 8222), QuestDB HTTP 9000, ILP/TCP 9009 (off: no password in QuestDB OSS),
# PostgreSQL wire 8812, min-HTTP 9003. NATS and QuestDB need the passwords in <state>/secrets.
# Binaries come from ${CARGO_TARGET_DIR:-<repo>/target}/<profile>/. Stop a stack from another
# terminal with ./deploy/down.sh (with the same --state).
set -euo pipefail

usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }
demo=1
reset=0
profile=release
port_offset=0
state=
while [ $# -gt 0 ]; do
	case $1 in
	--no-demo) demo=0 ;;
	--reset) reset=1 ;;
	--profile | --port-offset | --state)
		[ $# -ge 2 ] || {
			usage >&2
			exit 2
		}
		case $1 in
		--profile) profile=$2 ;;
		--port-offset) port_offset=$2 ;;
		--state) state=$2 ;;
		esac
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
case $profile in
release | debug) ;;
*)
	echo "up.sh: --profile must be release or debug, not '$profile'" >&2
	exit 2
	;;
esac
if ! [[ $port_offset =~ ^[0-9]+$ ]] || [ "$port_offset" -gt 56000 ]; then
	echo "up.sh: --port-offset must be a number from 0 to 56000, not '$port_offset'" >&2
	exit 2
fi
if [ -n "$state" ]; then
	mkdir -p "$state"
	RTDASH_STATE=$(cd "$state" && pwd)
	export RTDASH_STATE
fi

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT"

o=$port_offset
NATS_PORT=$((4222 + o)) NATS_MONITOR_PORT=$((8222 + o))
QDB_HTTP_PORT=$((9000 + o)) QDB_ILP_PORT=$((9009 + o)) QDB_PG_PORT=$((8812 + o)) QDB_MIN_HTTP_PORT=$((9003 + o))
GATEWAY_PORT=$((8080 + o)) AGENT_PORT=$((8081 + o)) AGGREGATOR_PORT=$((8082 + o))
bin_dir=${CARGO_TARGET_DIR:-$RTDASH_ROOT/target}/$profile

if up=$(rtdash_read_pidfile "$RTDASH_STATE/up.pid"); then
	rtdash_die "a stack is already running from $RTDASH_STATE (up.sh pid $up); stop it with ./deploy/down.sh"
fi
rtdash_require_free_ports nats=$NATS_PORT nats-monitor=$NATS_MONITOR_PORT \
	questdb-http=$QDB_HTTP_PORT questdb-ilp=$QDB_ILP_PORT questdb-pg=$QDB_PG_PORT questdb-min-http=$QDB_MIN_HTTP_PORT \
	gateway=$GATEWAY_PORT edge-agent=$AGENT_PORT core-aggregator=$AGGREGATOR_PORT

if [ -d "$RTDASH_STATE" ] && [ ! -f "$RTDASH_STATE/.rtdash-state" ] && [ -n "$(ls -A "$RTDASH_STATE")" ]; then
	rtdash_die "$RTDASH_STATE is not empty and not an rtdash state dir (no .rtdash-state marker); choose another --state"
fi

"$RTDASH_ROOT/deploy/install.sh"
if [ "$profile" = release ]; then
	rtdash_log "building release binaries (cargo build --release --workspace --bins)"
	cargo build --release --workspace --bins
else
	rtdash_log "building debug binaries (cargo build --workspace --bins)"
	cargo build --workspace --bins
fi
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

# --- lockdown (issue #16): NATS users and QuestDB passwords, generated at first start into
# $RTDASH_STATE/secrets (deploy/lockdown.sh); each service gets only its own.
# shellcheck source=deploy/lockdown.sh
. "$RTDASH_ROOT/deploy/lockdown.sh"
rtdash_lockdown_init
RTDASH_NATS_CONF_HOOK=rtdash_lockdown_nats_conf
RTDASH_QUESTDB_CONF_HOOK=rtdash_lockdown_questdb_conf
# --- end lockdown

rtdash_start_nats $NATS_PORT $NATS_MONITOR_PORT
rtdash_start_questdb $QDB_HTTP_PORT $QDB_ILP_PORT $QDB_PG_PORT $QDB_MIN_HTTP_PORT
rtdash_wait_nats $NATS_MONITOR_PORT
rtdash_lockdown_wait_questdb $QDB_HTTP_PORT
rtdash_log "NATS ready on nats://127.0.0.1:$NATS_PORT, QuestDB ready on http://127.0.0.1:$QDB_HTTP_PORT"

# What the TOML files in deploy/local/ cannot know: this stack's ports and state dir. The
# environment overrides the files (RTDASH_<COMPONENT>__<KEY>; RTDASH_NATS__*, RTDASH_QUESTDB__*
# for every component that has the section).
export RTDASH_NATS__URL="nats://127.0.0.1:$NATS_PORT"
export RTDASH_QUESTDB__HTTP="127.0.0.1:$QDB_HTTP_PORT"
export RTDASH_QUESTDB__PG_ADDR="127.0.0.1:$QDB_PG_PORT"
export RTDASH_CORE_AGGREGATOR__ADMIN_LISTEN="127.0.0.1:$AGGREGATOR_PORT"
export RTDASH_GATEWAY__LISTEN="127.0.0.1:$GATEWAY_PORT"
export RTDASH_EDGE_AGENT__LISTEN="127.0.0.1:$AGENT_PORT"
export RTDASH_EDGE_AGENT__STATE_DIR="$RTDASH_STATE/edge-agent"

# name:port, in start order.
services=("core-aggregator:$AGGREGATOR_PORT" "gateway:$GATEWAY_PORT" "edge-agent:$AGENT_PORT")
for svc in "${services[@]}"; do
	rtdash_lockdown_spawn "${svc%%:*}" "$bin_dir/${svc%%:*}" --config "deploy/local/${svc%%:*}.toml"
	rtdash_wait_http "${svc%%:*}" "http://127.0.0.1:${svc#*:}/readyz" 60
	rtdash_log "${svc%%:*} ready on 127.0.0.1:${svc#*:}"
done

watched=(nats questdb core-aggregator gateway edge-agent)
if [ "$demo" = 1 ]; then
	rtdash_spawn loadgen "$bin_dir/rtdash-loadgen" demo --agent "http://127.0.0.1:$AGENT_PORT" \
		--gateway "http://127.0.0.1:$GATEWAY_PORT" --tenant demo
	rtdash_log "demo producer started (log: $RTDASH_STATE/logs/loadgen.log)"
fi

cat <<EOF

  rtdash is running.  Dashboard: http://127.0.0.1:$GATEWAY_PORT/?tenant=demo
  Logs: $RTDASH_STATE/logs/   Ctrl-C stops everything.
  NATS and QuestDB passwords: $RTDASH_STATE/secrets/ (operator.env: NATS user \`operator\`;
  questdb.env: QuestDB console user admin).

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
