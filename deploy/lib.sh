# shellcheck shell=bash
# Helpers shared by deploy/*.sh. Source it; it defines variables and functions and runs nothing.
#
# Variables (each may be set in the environment beforehand):
#   RTDASH_CACHE               where install.sh puts nats-server and the QuestDB jar
#                              (default ~/.cache/rtdash)
#   RTDASH_STATE               state dir of a stack started by up.sh: data, logs, pid files
#                              (default <repo>/.rtdash)
#   RTDASH_NATS_SERVER         nats-server binary (default: the pinned one in the cache)
#   RTDASH_QUESTDB_JAR         QuestDB server jar (default: the pinned one in the cache)
#   RTDASH_JAVA                java binary (default: `java` on PATH)
#   RTDASH_NATS_SYNC_INTERVAL  JetStream fsync interval: a duration (default 2m, the
#                              nats-server default: acks may precede fsync) or `always`
#   RTDASH_QUESTDB_HEAP        QuestDB JVM max heap (default 1g)
#   RTDASH_STOP_TIMEOUT        seconds a service gets to stop after SIGTERM before SIGKILL
#                              (default 15)
#   RTDASH_NATS_MONITOR        1: give every nats-server (single node, cluster nodes, edge
#                              sites) its HTTP monitoring port on loopback, e.g. for a
#                              Prometheus exporter. Default 0: none, because nats-server
#                              answers it with `Access-Control-Allow-Origin: *`, so any web
#                              page in a browser on the machine could read it
#                              (docs/security.md, "NATS"); the scripts' health checks use the
#                              client port instead (deploy/tools/natsreq)

RTDASH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/versions.env
. "$RTDASH_ROOT/deploy/versions.env"

RTDASH_CACHE=${RTDASH_CACHE:-$HOME/.cache/rtdash}
RTDASH_STATE=${RTDASH_STATE:-$RTDASH_ROOT/.rtdash}
# Where install.sh puts the pinned versions; the test harness (tests/src/deploy.rs) uses the same layout.
RTDASH_NATS_SERVER_PINNED="$RTDASH_CACHE/nats-$NATS_SERVER_VERSION/nats-server"
RTDASH_QUESTDB_JAR_PINNED="$RTDASH_CACHE/questdb/questdb-$QUESTDB_VERSION.jar"
RTDASH_NATS_SERVER=${RTDASH_NATS_SERVER:-$RTDASH_NATS_SERVER_PINNED}
RTDASH_QUESTDB_JAR=${RTDASH_QUESTDB_JAR:-$RTDASH_QUESTDB_JAR_PINNED}
RTDASH_JAVA=${RTDASH_JAVA:-$(command -v java || echo java)}
RTDASH_NATS_SYNC_INTERVAL=${RTDASH_NATS_SYNC_INTERVAL:-2m}
RTDASH_QUESTDB_HEAP=${RTDASH_QUESTDB_HEAP:-1g}
RTDASH_STOP_TIMEOUT=${RTDASH_STOP_TIMEOUT:-15}
RTDASH_NATS_MONITOR=${RTDASH_NATS_MONITOR:-0}

# Order in which rtdash_stop_all stops services: producers first, stores last.
RTDASH_STOP_ORDER=(loadgen edge-agent gateway core-aggregator questdb nats)

# rtdash_build_web: builds the web UI into web/dist (the gateway serves it). Runs `npm ci` when
# web/node_modules is missing or older than the lockfile.
rtdash_build_web() {
	command -v npm >/dev/null || rtdash_die "npm not found: install Node.js 20+ to build the web UI"
	if [ ! -d "$RTDASH_ROOT/web/node_modules" ] || [ "$RTDASH_ROOT/web/package-lock.json" -nt "$RTDASH_ROOT/web/node_modules" ]; then
		rtdash_log "installing the web UI's packages (npm ci in web/)"
		(cd "$RTDASH_ROOT/web" && npm ci --no-audit --no-fund --loglevel=error) ||
			rtdash_die "npm ci in web/ failed; rerun ./deploy/up.sh"
		touch "$RTDASH_ROOT/web/node_modules"
	fi
	rtdash_log "building the web UI (npm run build in web/)"
	(cd "$RTDASH_ROOT/web" && npm run --silent build >/dev/null) ||
		rtdash_die "building the web UI failed: cd web && npm run build"
}

rtdash_log() { printf 'rtdash: %s\n' "$*" >&2; }
rtdash_die() {
	printf 'rtdash: error: %s\n' "$*" >&2
	exit 1
}

# rtdash_port_in_use PORT: true when something listens on PORT on any local address.
rtdash_port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# rtdash_require_free_ports NAME=PORT...: one line naming the first busy port, then exit 1.
rtdash_require_free_ports() {
	local spec
	for spec in "$@"; do
		if rtdash_port_in_use "${spec#*=}"; then
			rtdash_die "port ${spec#*=} (${spec%%=*}) is already in use; stop whatever holds it (./deploy/down.sh stops a stack started by up.sh)"
		fi
	done
}

# rtdash_render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT replacing @KEY@ with VALUE.
rtdash_render() {
	local template=$1 out=$2 text kv key
	shift 2
	text=$(<"$template")
	for kv in "$@"; do
		key=${kv%%=*}
		text=${text//"@$key@"/"${kv#*=}"}
	done
	if [[ $text =~ @[A-Z_]+@ ]]; then
		rtdash_die "$template: placeholder ${BASH_REMATCH[0]} left unset"
	fi
	printf '%s\n' "$text" >"$out"
}

# rtdash_render_text TEMPLATE KEY=VALUE...: print TEMPLATE with each @KEY@ replaced.
rtdash_render_text() { rtdash_render "$1" /dev/stdout "${@:2}"; }

# Process bookkeeping. A service runs as the leader of its own session and process group, so
# stopping it signals the whole group. Its pid file holds "<pid> <start time>" so a stale file
# never leads to signalling an unrelated process that reused the pid.
rtdash_pidfile() { printf '%s/pids/%s.pid' "$RTDASH_STATE" "$1"; }

rtdash_proc_starttime() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) } # drop "pid (comm) ": comm may contain spaces
	# shellcheck disable=SC2086 # split the remaining fields on purpose
	set -- $stat
	printf '%s' "${20}" # field 22 of /proc/<pid>/stat: start time in clock ticks
}

# rtdash_write_pidfile FILE PID
rtdash_write_pidfile() { printf '%s %s\n' "$2" "$(rtdash_proc_starttime "$2")" >"$1"; }

# rtdash_read_pidfile FILE: print the pid FILE names when that very process still runs.
rtdash_read_pidfile() {
	local pid start now
	[ -f "$1" ] || return 1
	read -r pid start <"$1" || return 1
	now=$(rtdash_proc_starttime "$pid") || return 1
	[ "$now" = "$start" ] || return 1
	printf '%s' "$pid"
}

# rtdash_service_pid NAME: print the pid of service NAME while it runs.
rtdash_service_pid() { rtdash_read_pidfile "$(rtdash_pidfile "$1")"; }

# rtdash_spawn NAME COMMAND...: start COMMAND in the background as its own session, output to
# $RTDASH_STATE/logs/NAME.log, pid file under $RTDASH_STATE/pids. Call it from the main shell
# (not in $(...) or a pipeline): the service gets SIGKILL if that shell dies without cleaning up.
rtdash_spawn() {
	local name=$1 log
	shift
	mkdir -p "$RTDASH_STATE/logs" "$RTDASH_STATE/pids"
	log="$RTDASH_STATE/logs/$name.log"
	printf '\n=== %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
	if command -v setpriv >/dev/null 2>&1; then
		setsid setpriv --pdeathsig KILL -- "$@" </dev/null >>"$log" 2>&1 &
	else
		setsid "$@" </dev/null >>"$log" 2>&1 &
	fi
	rtdash_write_pidfile "$(rtdash_pidfile "$name")" $!
}

# rtdash_group_alive PID: true while any non-zombie process is left in PID's session.
rtdash_group_alive() {
	local state
	# A service leads its own session, so its session id is its pid.
	for state in $(ps -o stat= -s "$1" 2>/dev/null); do
		[[ $state == Z* ]] || return 0
	done
	return 1
}

# rtdash_stop NAME: SIGTERM to NAME's process group, SIGKILL after RTDASH_STOP_TIMEOUT seconds.
rtdash_stop() {
	local name=$1 pid i
	if pid=$(rtdash_service_pid "$name"); then
		kill -TERM -- "-$pid" 2>/dev/null || true
		for ((i = 0; i < RTDASH_STOP_TIMEOUT * 10; i++)); do
			rtdash_group_alive "$pid" || break
			sleep 0.1
		done
		if rtdash_group_alive "$pid"; then
			rtdash_log "$name did not stop within ${RTDASH_STOP_TIMEOUT}s; killing it"
			kill -KILL -- "-$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true # reap it when it is our child
	fi
	rm -f "$(rtdash_pidfile "$name")"
}

# rtdash_stop_all: stop every service with a pid file in $RTDASH_STATE, producers first.
rtdash_stop_all() {
	local name file
	for name in "${RTDASH_STOP_ORDER[@]}"; do
		rtdash_stop "$name"
	done
	for file in "$RTDASH_STATE"/pids/*.pid; do
		[ -e "$file" ] || continue
		name=${file##*/}
		rtdash_stop "${name%.pid}"
	done
}

# rtdash_wait_ready NAME TIMEOUT_SECONDS WHAT CHECK...: run CHECK until it succeeds while
# service NAME still runs; on a timeout or an exit, say "NAME WHAT" and show NAME's last log lines.
rtdash_wait_ready() {
	local name=$1 timeout=$2 what=$3 deadline log
	shift 3
	log="$RTDASH_STATE/logs/$name.log"
	deadline=$((SECONDS + timeout))
	until "$@"; do
		if ! rtdash_service_pid "$name" >/dev/null; then
			rtdash_log "$name exited before it was ready; last lines of $log:"
			tail -n 20 "$log" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			rtdash_log "$name $what within ${timeout}s; last lines of $log:"
			tail -n 20 "$log" >&2
			return 1
		fi
		sleep 0.2
	done
}

# rtdash_http_ok URL: true when URL answers 2xx within 2 s.
rtdash_http_ok() {
	curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}

# rtdash_wait_http NAME URL TIMEOUT_SECONDS: wait for URL to answer 2xx while NAME still runs.
rtdash_wait_http() {
	rtdash_wait_ready "$1" "$3" "was not ready at $2" rtdash_http_ok "$2"
}

# rtdash_go_tool NAME: path of the small Go program in deploy/tools/NAME, built once into
# $RTDASH_CACHE/bin/rtdash-NAME-<key>, the key a hash of its sources, go.mod and go.sum: a
# cache shared by several checkouts holds each version once and never runs a stale one.
rtdash_go_tool() {
	local dir="$RTDASH_ROOT/deploy/tools/$1" key bin
	key=$(cd "$dir" && cat -- *.go go.mod go.sum 2>/dev/null | sha256sum | cut -c1-16)
	bin="$RTDASH_CACHE/bin/rtdash-$1-$key"
	if [ ! -x "$bin" ]; then
		command -v go >/dev/null || rtdash_die "go not found, needed once to build deploy/tools/$1 (see deploy/README.md)"
		mkdir -p "$RTDASH_CACHE/bin"
		# Built aside and renamed: scripts running side by side never run a half-written file.
		(cd "$dir" && go build -o "$bin.$BASHPID" . && mv -f "$bin.$BASHPID" "$bin") >&2 ||
			rtdash_die "building deploy/tools/$1 failed (needs Go, see deploy/README.md)"
	fi
	printf '%s\n' "$bin"
}

# rtdash_nats_request URL SUBJECT ENV_FILE [INBOX]: one request over an authenticated client
# connection (deploy/tools/natsreq) as the user of ENV_FILE (RTDASH_NATS__USER, __PASSWORD and
# __TLS_CA, passed through the environment, never the command line); prints the answer, fails
# without one within 2 s. Replies under INBOX.<random> (default _INBOX.<user>). Needs
# deploy/lockdown.sh sourced.
rtdash_nats_request() {
	local tool
	tool=$(rtdash_go_tool natsreq) || return 1
	(
		NATS_USER=$(rtdash_lockdown_env_value "$3" RTDASH_NATS__USER)
		NATS_PASSWORD=$(rtdash_lockdown_env_value "$3" RTDASH_NATS__PASSWORD)
		NATS_CA=$(rtdash_lockdown_env_value "$3" RTDASH_NATS__TLS_CA)
		export NATS_USER NATS_PASSWORD NATS_CA
		"$tool" ${4:+-inbox "$4"} "$1" "$2" 2>/dev/null
	)
}

# rtdash_nats_js_ready URL ENV_FILE: true when JetStream answers account info ($JS.API.INFO)
# without an error through URL, as the user of ENV_FILE.
rtdash_nats_js_ready() {
	local answer
	answer=$(rtdash_nats_request "$1" '$JS.API.INFO' "$2") && [[ $answer != *'"error"'* ]]
}

# rtdash_wait_nats_js NAME URL ENV_FILE TIMEOUT_SECONDS: wait until rtdash_nats_js_ready while
# service NAME still runs: the health check of every nats-server the scripts start.
rtdash_wait_nats_js() {
	rtdash_go_tool natsreq >/dev/null # built before the clock starts
	rtdash_wait_ready "$1" "$4" "(JetStream) did not answer on $2" rtdash_nats_js_ready "$2" "$3"
}

# rtdash_nats_monitoring PORT: the `http:` line of a rendered nats-server config: monitoring on
# 127.0.0.1:PORT when RTDASH_NATS_MONITOR=1, else a comment saying how to turn it on.
rtdash_nats_monitoring() {
	if [ "$RTDASH_NATS_MONITOR" = 1 ]; then
		printf 'http: "127.0.0.1:%s"' "$1"
	else
		printf '# No HTTP monitoring port (RTDASH_NATS_MONITOR=1 opens one on 127.0.0.1:%s).' "$1"
	fi
}

# rtdash_nats_monitor_note URLS PATHS: for the scripts' summaries: "URLS (PATHS)" when
# monitoring is on, else how to turn it on.
rtdash_nats_monitor_note() {
	if [ "$RTDASH_NATS_MONITOR" = 1 ]; then
		printf '%s (%s)' "$1" "$2"
	else
		printf 'off (RTDASH_NATS_MONITOR=1 turns it on)'
	fi
}

# rtdash_nats_monitor_ports NAME=PORT: NAME=PORT when monitoring is on, else nothing (for
# rtdash_require_free_ports).
rtdash_nats_monitor_ports() { [ "$RTDASH_NATS_MONITOR" != 1 ] || printf '%s\n' "$1"; }

# rtdash_start_nats CLIENT_PORT MONITOR_PORT: nats-server with JetStream under $RTDASH_STATE/nats
# (monitoring on MONITOR_PORT only with RTDASH_NATS_MONITOR=1).
rtdash_start_nats() {
	local dir="$RTDASH_STATE/nats"
	mkdir -p "$dir/store"
	rtdash_render "$RTDASH_ROOT/deploy/nats/local.conf" "$dir/nats.conf" \
		"NATS_PORT=$1" "NATS_MONITORING=$(rtdash_nats_monitoring "$2")" "NATS_STORE_DIR=$dir/store" \
		"NATS_SYNC_INTERVAL=$RTDASH_NATS_SYNC_INTERVAL"
	# Lockdown (deploy/lockdown.sh): users and permissions added to the rendered config.
	[ -z "${RTDASH_NATS_CONF_HOOK:-}" ] || "$RTDASH_NATS_CONF_HOOK" "$dir/nats.conf"
	rtdash_spawn nats "$RTDASH_NATS_SERVER" -c "$dir/nats.conf"
}

# rtdash_wait_nats CLIENT_PORT [TIMEOUT]: wait until JetStream answers the operator
# ($RTDASH_STATE/secrets/operator.env) on the client port.
rtdash_wait_nats() {
	rtdash_wait_nats_js nats "nats://127.0.0.1:$1" "$RTDASH_STATE/secrets/operator.env" "${2:-30}"
}

# rtdash_start_questdb HTTP_PORT ILP_PORT PG_PORT MIN_HTTP_PORT: QuestDB rooted at
# $RTDASH_STATE/questdb, with server.conf generated from deploy/questdb/server.conf.
rtdash_start_questdb() {
	local root="$RTDASH_STATE/questdb"
	# QuestDB unpacks its native libraries into java.io.tmpdir at every start and never
	# removes them: keep them under its root, emptied at each start.
	rm -rf "$root/tmp"
	mkdir -p "$root/conf" "$root/tmp"
	rtdash_render "$RTDASH_ROOT/deploy/questdb/server.conf" "$root/conf/server.conf" \
		"QDB_HTTP_PORT=$1" "QDB_ILP_PORT=$2" "QDB_PG_PORT=$3" "QDB_MIN_HTTP_PORT=$4"
	# Lockdown (deploy/lockdown.sh): passwords added to the rendered server.conf.
	[ -z "${RTDASH_QUESTDB_CONF_HOOK:-}" ] || "$RTDASH_QUESTDB_CONF_HOOK" "$root/conf/server.conf"
	rtdash_spawn questdb "$RTDASH_JAVA" -Xms128m "-Xmx$RTDASH_QUESTDB_HEAP" \
		"-Djava.io.tmpdir=$root/tmp" -p "$RTDASH_QUESTDB_JAR" -m io.questdb/io.questdb.ServerMain -d "$root"
}

# rtdash_wait_questdb HTTP_PORT [TIMEOUT]: wait until `select 1` answers.
rtdash_wait_questdb() {
	rtdash_wait_http questdb "http://127.0.0.1:$1/exec?query=select%201" "${2:-60}"
}
