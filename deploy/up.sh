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
# NATS 4222 (HTTP monitoring 8222 only with RTDASH_NATS_MONITOR=1), QuestDB HTTP 9000,
# ILP/TCP 9009 (off: no password in QuestDB OSS), PostgreSQL wire 8812, min-HTTP 9003.
# NATS and QuestDB need the passwords in <state>/secrets (each service reads its own from
# files there; no password is in a process environment).
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
# shellcheck disable=SC2046 # no word or one
rtdash_require_free_ports nats=$NATS_PORT $(rtdash_nats_monitor_ports nats-monitor=$NATS_MONITOR_PORT) \
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
# $RTDASH_STATE/secrets (deploy/lockdown.sh); each service gets only its own, as files
# (<service>/nats-password, questdb-password) whose paths its env file names.
# shellcheck source=deploy/lockdown.sh
. "$RTDASH_ROOT/deploy/lockdown.sh"
rtdash_lockdown_init
RTDASH_NATS_CONF_HOOK=rtdash_lockdown_nats_conf
RTDASH_QUESTDB_CONF_HOOK=rtdash_lockdown_questdb_conf
# --- end lockdown

rtdash_start_nats $NATS_PORT $NATS_MONITOR_PORT
rtdash_start_questdb $QDB_HTTP_PORT $QDB_ILP_PORT $QDB_PG_PORT $QDB_MIN_HTTP_PORT
rtdash_wait_nats $NATS_PORT
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

# Access control (docs/security.md): the operator key, generated at first start (mode 0600),
# is the credential that spans tenants; the services read it from the file.
operator_key_file="$RTDASH_STATE/operator.key"
if [ ! -s "$operator_key_file" ]; then
	(
		umask 077
		id=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
		secret=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		printf 'rtd_%s_%s\n' "$id" "$secret" >"$operator_key_file"
	)
	rtdash_log "generated the operator key: $operator_key_file"
fi
chmod 600 "$operator_key_file"
operator_key=$(cat "$operator_key_file")
export RTDASH_GATEWAY__AUTH__OPERATOR_KEY_FILE="$operator_key_file"
export RTDASH_EDGE_AGENT__AUTH__OPERATOR_KEY_FILE="$operator_key_file"

# demo_key ROLE NAME: a key of the demo tenant kept in $RTDASH_STATE/<NAME>.key (0600), created
# with the operator key on first start and again whenever the kept one no longer works.
demo_key() {
	local role=$1 name=$2 file="$RTDASH_STATE/$2.key" key answer
	if [ -s "$file" ]; then
		key=$(cat "$file")
		if [ "$role" = ingest ]; then
			# An ingest key reads nothing: an empty batch answers without 401/403 with it.
			answer=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
				-H 'content-type: application/json' --data '[]' "http://127.0.0.1:$AGENT_PORT/v1/events")
			case $answer in 401 | 403) ;; *) printf '%s' "$key" && return ;; esac
		elif curl -sf -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$GATEWAY_PORT/v1/session"; then
			printf '%s' "$key"
			return
		fi
	fi
	answer=$(curl -sf -H "Authorization: Bearer $operator_key" -H 'content-type: application/json' \
		--data "{\"tenant_id\":\"demo\",\"role\":\"$role\",\"name\":\"$name\"}" \
		"http://127.0.0.1:$GATEWAY_PORT/v1/keys") || rtdash_die "could not create the $name key (POST /v1/keys)"
	key=$(printf '%s' "$answer" | sed -n 's/.*"key":"\(rtd_[A-Za-z0-9_-]*\)".*/\1/p')
	[ -n "$key" ] || rtdash_die "POST /v1/keys answered no key: $answer"
	(umask 077 && printf '%s\n' "$key" >"$file")
	printf '%s' "$key"
}

# name:port, in start order.
services=("core-aggregator:$AGGREGATOR_PORT" "gateway:$GATEWAY_PORT" "edge-agent:$AGENT_PORT")
for svc in "${services[@]}"; do
	rtdash_lockdown_spawn "${svc%%:*}" "$bin_dir/${svc%%:*}" --config "deploy/local/${svc%%:*}.toml"
	rtdash_wait_http "${svc%%:*}" "http://127.0.0.1:${svc#*:}/readyz" 60
	rtdash_log "${svc%%:*} ready on 127.0.0.1:${svc#*:}"
done

# The demo's keys: the producer sends events with an ingest key and sets up its metrics and
# dashboard with the editor key, which also signs the browser in.
editor_key=$(demo_key editor demo-editor)
watched=(nats questdb core-aggregator gateway edge-agent)
if [ "$demo" = 1 ]; then
	ingest_key=$(demo_key ingest demo-ingest)
	RTDASH_KEY="$ingest_key" RTDASH_GATEWAY_KEY="$editor_key" \
		rtdash_spawn loadgen "$bin_dir/rtdash-loadgen" demo --agent "http://127.0.0.1:$AGENT_PORT" \
		--gateway "http://127.0.0.1:$GATEWAY_PORT" --tenant demo
	rtdash_log "demo producer started (log: $RTDASH_STATE/logs/loadgen.log)"
fi

cat <<EOF

  rtdash is running.  Dashboard (signed in as the demo tenant's editor):
    http://127.0.0.1:$GATEWAY_PORT/#key=$editor_key
  Operator key (every tenant, keys; keep it secret): $operator_key_file
  Demo keys: $RTDASH_STATE/demo-editor.key, $RTDASH_STATE/demo-ingest.key
  Logs: $RTDASH_STATE/logs/   Ctrl-C stops everything.
  NATS and QuestDB passwords: $RTDASH_STATE/secrets/ (<service>/: each service's files;
  operator.env: NATS user \`operator\`; questdb.env: QuestDB console user admin).

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
