# shellcheck shell=bash
# Helpers for deploy/cluster/*.sh and deploy/edge/*.sh: a 3-node NATS JetStream cluster (the
# hub) and edge sites (leaf nodes) on loopback. Source it; it sources deploy/lib.sh, defines
# variables and functions, and runs nothing.
#
# Unlike ./deploy/up.sh (a foreground supervisor), these servers run in the background: the
# scripts start them and return, so that nodes can be stopped, killed and started again one at
# a time (fault drills). Each server leads its own process group; its pid file holds
# "<pid> <start time>" (deploy/lib.sh), so a stale file never leads to signalling another
# process.
#
# Variables (each may be set in the environment beforehand):
#   RTDASH_CLUSTER_STATE   state of the cluster: rendered configs, stores, logs, pid files
#                          (default <repo>/.rtdash-cluster)
#   RTDASH_CLUSTER_PORTS   first client, route, monitor and leafnode ports; node i adds i-1
#                          (default "4222 6222 8222 7422": n1 4222/6222/8222/7422, n2 4223...)
#   RTDASH_NATS_SYNC_INTERVAL  JetStream fsync cadence, see deploy/lib.sh (default 2m)
#   RTDASH_NATS_CLI        nats CLI binary (default: the pinned one, built on first use)
#   RTDASH_JS_ENV          env file with the user, password and CA the nats CLI connects with
#                          (RTDASH_NATS__USER, RTDASH_NATS__PASSWORD, RTDASH_NATS__TLS_CA);
#                          the edge scripts set it to the site's copy of operator.env
#
# Locked down (deploy/lockdown.sh, docs/security.md "NATS"): up.sh makes the users, passwords
# and TLS certificates at first start into $RTDASH_CLUSTER_STATE/secrets.

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# shellcheck source=deploy/lockdown.sh
. "$RTDASH_ROOT/deploy/lockdown.sh"

RTDASH_CLUSTER_STATE=${RTDASH_CLUSTER_STATE:-$RTDASH_ROOT/.rtdash-cluster}
RTDASH_CLUSTER_PORTS=${RTDASH_CLUSTER_PORTS:-4222 6222 8222 7422}
RTDASH_CLUSTER_NODES=(n1 n2 n3)
RTDASH_NATS_CLI_PINNED="$RTDASH_CACHE/natscli-$NATSCLI_VERSION/nats"
RTDASH_NATS_CLI=${RTDASH_NATS_CLI:-$RTDASH_NATS_CLI_PINNED}

# rtdash_cluster_ports NODE: print "client route monitor leaf" for NODE (n1, n2, n3).
rtdash_cluster_ports() {
	local i=${1#n} client route monitor leaf
	[[ $i =~ ^[1-3]$ ]] || rtdash_die "no cluster node $1 (the nodes are ${RTDASH_CLUSTER_NODES[*]})"
	read -r client route monitor leaf <<<"$RTDASH_CLUSTER_PORTS"
	printf '%s %s %s %s\n' $((client + i - 1)) $((route + i - 1)) $((monitor + i - 1)) $((leaf + i - 1))
}

# rtdash_join SEPARATOR WORD...: print the words joined by SEPARATOR.
rtdash_join() {
	local sep=$1 out=
	shift
	out=$1
	shift
	while [ "$#" -gt 0 ]; do
		out+="$sep$1"
		shift
	done
	printf '%s' "$out"
}

# rtdash_cluster_urls KIND: every node's URL of KIND (client, leaf, monitor), comma-separated.
rtdash_cluster_urls() {
	local node client route monitor leaf urls=()
	for node in "${RTDASH_CLUSTER_NODES[@]}"; do
		read -r client route monitor leaf <<<"$(rtdash_cluster_ports "$node")"
		case $1 in
		client) urls+=("nats://127.0.0.1:$client") ;;
		leaf) urls+=("nats-leaf://127.0.0.1:$leaf") ;;
		monitor) urls+=("http://127.0.0.1:$monitor") ;;
		*) rtdash_die "rtdash_cluster_urls: unknown kind $1" ;;
		esac
	done
	rtdash_join , "${urls[@]}"
	echo
}

# rtdash_spawn_detached NAME COMMAND...: like rtdash_spawn (deploy/lib.sh), but the service
# outlives the calling script (no parent-death signal): for servers that up.sh starts and
# down.sh stops. Uses $RTDASH_STATE for logs and pid files.
rtdash_spawn_detached() {
	local name=$1 log
	shift
	mkdir -p "$RTDASH_STATE/logs" "$RTDASH_STATE/pids"
	log="$RTDASH_STATE/logs/$name.log"
	printf '\n=== %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
	setsid "$@" </dev/null >>"$log" 2>&1 &
	rtdash_write_pidfile "$(rtdash_pidfile "$name")" $!
}

# rtdash_kill NAME: SIGKILL to NAME's process group (a crash), pid file removed.
rtdash_kill() {
	local pid
	if pid=$(rtdash_service_pid "$1"); then
		kill -KILL -- "-$pid" 2>/dev/null || true
		while rtdash_group_alive "$pid"; do sleep 0.05; done
	fi
	rm -f "$(rtdash_pidfile "$1")"
}

# rtdash_require_nats_server: one line and exit 1 when the pinned nats-server is missing.
rtdash_require_nats_server() {
	[ -x "$RTDASH_NATS_SERVER" ] || rtdash_die "nats-server not found at $RTDASH_NATS_SERVER; run ./deploy/install.sh (or set RTDASH_NATS_SERVER)"
}

# rtdash_check_state_dir DIR: refuse to touch DIR unless it carries rtdash's marker.
rtdash_check_state_dir() {
	[ ! -e "$1" ] || [ -f "$1/.rtdash-state" ] || rtdash_die "$1 is not an rtdash state dir (no .rtdash-state marker); not touching it"
}

# rtdash_start_cluster_node NODE: render NODE's config from deploy/cluster/node.conf and start
# it in the background, unless it already runs. Uses RTDASH_STATE=$RTDASH_CLUSTER_STATE.
rtdash_start_cluster_node() {
	local node=$1 client route monitor leaf routes=() r dir secrets="$RTDASH_STATE/secrets" route_password
	read -r client route monitor leaf <<<"$(rtdash_cluster_ports "$node")"
	if rtdash_service_pid "$node" >/dev/null; then
		rtdash_log "$node already runs (client port $client)"
		return 0
	fi
	# shellcheck disable=SC2046 # no word or one
	rtdash_require_free_ports "$node-client=$client" "$node-route=$route" "$node-leafnode=$leaf" \
		$(rtdash_nats_monitor_ports "$node-monitor=$monitor")
	[ -f "$secrets/route.env" ] || rtdash_die "$secrets/route.env missing: ./deploy/cluster/up.sh makes the credentials"
	route_password=$(rtdash_lockdown_env_value "$secrets/route.env" ROUTE_PASSWORD)
	for r in "${RTDASH_CLUSTER_NODES[@]}"; do
		routes+=("\"nats-route://route:$route_password@127.0.0.1:$(rtdash_cluster_ports "$r" | cut -d' ' -f2)\"")
	done
	dir="$RTDASH_STATE/$node"
	mkdir -p "$dir/store"
	# The rendered config holds the route password: 0600.
	(
		umask 077
		rtdash_render "$RTDASH_ROOT/deploy/cluster/node.conf" "$dir/nats.conf" \
			"NAME=$node" "PORT=$client" "CLUSTER_PORT=$route" "MONITORING=$(rtdash_nats_monitoring "$monitor")" \
			"LEAF_PORT=$leaf" "ROUTES=$(rtdash_join ', ' "${routes[@]}")" "STORE_DIR=$dir/store" \
			"SYNC_INTERVAL=$RTDASH_NATS_SYNC_INTERVAL" "ROUTE_PASSWORD=$route_password" \
			"TLS_CERT=$secrets/tls/server.pem" "TLS_KEY=$secrets/tls/server-key.pem" \
			"TLS_CA=$secrets/tls/ca.pem" "USERS_INCLUDE=../secrets/nats-users.conf"
	)
	rtdash_spawn_detached "$node" "$RTDASH_NATS_SERVER" -c "$dir/nats.conf"
	rtdash_log "$node started (client 127.0.0.1:$client, route $route, leafnode $leaf$([ "$RTDASH_NATS_MONITOR" != 1 ] || echo ", monitor $monitor"))"
}

# rtdash_wait_cluster_node NODE [TIMEOUT]: wait until NODE takes the operator's connection
# and the cluster's JetStream (its meta leader) answers account info through it.
rtdash_wait_cluster_node() {
	local client
	client=$(rtdash_cluster_ports "$1" | cut -d' ' -f1)
	rtdash_wait_nats_js "$1" "nats://127.0.0.1:$client" "$RTDASH_STATE/secrets/operator.env" "${2:-60}"
}

# rtdash_install_natscli: build the pinned nats CLI into the cache on first use (about two
# minutes; needs Go and the Go module proxy), then print its path.
rtdash_install_natscli() {
	if [ "$RTDASH_NATS_CLI" != "$RTDASH_NATS_CLI_PINNED" ]; then
		[ -x "$RTDASH_NATS_CLI" ] || rtdash_die "RTDASH_NATS_CLI=$RTDASH_NATS_CLI is not an executable"
		printf '%s\n' "$RTDASH_NATS_CLI"
		return 0
	fi
	if ! [ -x "$RTDASH_NATS_CLI" ] || ! "$RTDASH_NATS_CLI" --version 2>/dev/null | grep -qF "${NATSCLI_VERSION#v}"; then
		command -v go >/dev/null || rtdash_die "go not found, needed once to build the nats CLI $NATSCLI_VERSION (or set RTDASH_NATS_CLI)"
		local dir tmp log="$RTDASH_CACHE/logs/natscli.log"
		dir=$(dirname "$RTDASH_NATS_CLI")
		mkdir -p "$dir" "$RTDASH_CACHE/logs"
		rtdash_log "building the nats CLI $NATSCLI_VERSION with go install (once, about two minutes)"
		tmp=$(mktemp -d "$dir/.build.XXXXXX")
		if ! GOBIN="$tmp" go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" >"$log" 2>&1; then
			rm -rf "$tmp"
			rtdash_die "go install github.com/nats-io/natscli/nats@$NATSCLI_VERSION failed (log: $log)"
		fi
		mv -f "$tmp/nats" "$RTDASH_NATS_CLI"
		rm -rf "$tmp"
	fi
	printf '%s\n' "$RTDASH_NATS_CLI"
}

# rtdash_js_api SERVERS SUBJECT [BODY]: one JetStream API request (e.g.
# '$JS.API.STREAM.INFO.RTDASH_PARTIALS') to SERVERS (comma-separated URLs); prints the JSON
# answer. Fails when there is no answer; an API error is in the answer's .error, see
# rtdash_js_ok.
rtdash_js_api() {
	local cli
	cli=$(rtdash_install_natscli) || exit 1
	(
		# The user, password and CA from RTDASH_JS_ENV, through the CLI's environment (never
		# its command line, which other users of the machine can read).
		if [ -n "${RTDASH_JS_ENV:-}" ]; then
			NATS_USER=$(rtdash_lockdown_env_value "$RTDASH_JS_ENV" RTDASH_NATS__USER)
			NATS_PASSWORD=$(rtdash_lockdown_env_value "$RTDASH_JS_ENV" RTDASH_NATS__PASSWORD)
			NATS_CA=$(rtdash_lockdown_env_value "$RTDASH_JS_ENV" RTDASH_NATS__TLS_CA)
			export NATS_USER NATS_PASSWORD NATS_CA
		fi
		"$cli" --no-context --server "$1" --timeout 10s request --raw --no-templates "$2" "${3:-}" 2>/dev/null
	)
}

# rtdash_js_ok WHAT JSON: exit 1 with one line naming WHAT when JSON is an API error.
rtdash_js_ok() {
	local err
	err=$(jq -r '.error | if . == null then empty else "\(.description) (\(.err_code))" end' <<<"$2") ||
		rtdash_die "$1: not a JetStream API answer: ${2:0:200}"
	[ -z "$err" ] || rtdash_die "$1: $err"
}
