# shellcheck shell=bash
# Helpers for deploy/edge/*.sh: an edge site is a NATS leaf node with its own JetStream domain
# (edge-<site>) beside the site's edge-agent, connected to the hub cluster (deploy/cluster/).
# Source it; it sources deploy/cluster/lib.sh and runs nothing.
#
# Subject scheme of site <site> (what a directly connected agent publishes to rtdash.<kind>.<x>):
#   rtdash.edge.<site>.partials.<p>      -> edge stream RTDASH_EDGE_PARTIALS -> hub RTDASH_PARTIALS, rtdash.partials.<p>
#   rtdash.edge.<site>.dlq.<tenant>      -> edge stream RTDASH_EDGE_DLQ      -> hub RTDASH_DLQ, rtdash.dlq.<tenant>
#   rtdash.edge.<site>.events.<tenant>   -> edge stream RTDASH_EDGE_EVENTS   -> hub RTDASH_EVENTS, rtdash.events.<tenant>
# plus KV_rtdash_config in the edge domain: a read-only mirror of the hub's rtdash_config bucket.
#
# Variables (each may be set in the environment beforehand):
#   RTDASH_EDGE_STATE         parent of every site's state dir (default <repo>/.rtdash-edge)
#   RTDASH_EDGE_BUFFER_BYTES  max_bytes of each edge stream: the buffer for an outage
#                             (default 1073741824, 1 GiB); the leaf's JetStream store is
#                             capped at 3 x this + 256 MiB
#   RTDASH_EDGE_MAX_AGE       max_age of the edge streams, seconds (default 86400: a day)
#   RTDASH_HUB_URL            the hub's client URLs for JetStream API requests
#                             (default: the cluster's, deploy/cluster/lib.sh)
#   RTDASH_HUB_LEAF_URLS      the hub's leafnode URLs (default: the cluster's)
#   RTDASH_HUB_SECRETS        the hub's secrets (default: the cluster's,
#                             $RTDASH_CLUSTER_STATE/secrets): its operator makes the hub-side
#                             requests (sources, partition count); a site's `leaf-<site>` user
#                             is added there, its CA signs the site's certificate, and the
#                             site copies that user, the CA and its certificate from there
#
# Locked down like the hub (docs/security.md, "NATS"): the site's server takes TLS and users
# of its own on its client port (its agent connects as edge-agent, these scripts as its
# operator; passwords made for the site, none of the hub's), and authenticates to the hub's
# leafnode ports as the `leaf-<site>` user over TLS.

# shellcheck source=deploy/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../cluster/lib.sh"

RTDASH_EDGE_STATE=${RTDASH_EDGE_STATE:-$RTDASH_ROOT/.rtdash-edge}
RTDASH_EDGE_BUFFER_BYTES=${RTDASH_EDGE_BUFFER_BYTES:-1073741824}
RTDASH_EDGE_MAX_AGE=${RTDASH_EDGE_MAX_AGE:-86400}
RTDASH_HUB_URL=${RTDASH_HUB_URL:-$(rtdash_cluster_urls client)}
RTDASH_HUB_LEAF_URLS=${RTDASH_HUB_LEAF_URLS:-$(rtdash_cluster_urls leaf)}
RTDASH_HUB_SECRETS=${RTDASH_HUB_SECRETS:-$RTDASH_CLUSTER_STATE/secrets}
RTDASH_EDGE_KINDS=(partials dlq events)

# rtdash_edge_secrets SITE: the site's secrets in <site>/secrets (0700, files 0600), made at
# its first start; nothing in them lets the site connect to the hub's client port:
#   operator.env, edge-agent.env + edge-agent/nats-password
#                    the site's own passwords for its own server: `operator` for these
#                    scripts' setup and health checks at the site, `edge-agent` for its agent
#                    (RTDASH_NATS__TLS_CA and RTDASH_NATS__PASSWORD_FILE point into <site>/secrets)
#   nats-users.conf  deploy/nats/users.conf with those two, every hub-only user with a
#                    password nobody keeps (rendered again when the template is newer)
#   leaf.env         the site's `leaf-<site>` user for its link (rtdash_edge_hub_leaf_user)
#   tls/             the hub's CA (ca.pem) and a server certificate of the site's own, signed by
#                    it (the CA's key stays with the hub)
# A site set up before it had users of its own (copies of the hub's operator and edge-agent
# passwords, the hub's server key) gets new ones. Then set RTDASH_JS_ENV to the site's
# operator.env. A real site gets leaf.env and tls/ from the hub's machine, where the CA's
# key signs the site's certificate (with its names in RTDASH_TLS_SANS).
rtdash_edge_secrets() {
	local site=$1 dir="$RTDASH_EDGE_STATE/$1/secrets" hub=$RTDASH_HUB_SECRETS file leaf_env
	if [ ! -f "$dir/own-users" ]; then
		for file in tls/ca.pem tls/ca-key.pem; do
			[ -f "$hub/$file" ] || rtdash_die "$hub/$file missing: start the hub first (./deploy/cluster/up.sh makes the credentials), or set RTDASH_HUB_SECRETS"
		done
		[ ! -f "$dir/nats-users.conf" ] ||
			rtdash_log "edge site $site: replacing its copies of the hub's passwords with its own (restart its edge-agent)"
		(
			umask 077
			mkdir -p "$dir"
			chmod 700 "$dir"
			# Older sites: a copy of the hub's server certificate and key.
			rm -f "$dir/tls/server.pem" "$dir/tls/server-key.pem"
			rm -rf "$dir/edge-agent"
			for file in operator edge-agent; do
				{
					rtdash_lockdown_user_env "$file"
					printf 'RTDASH_NATS__TLS_CA=%s\n' "$dir/tls/ca.pem"
				} >"$dir/$file.env"
			done
			rtdash_lockdown_password_files "$dir" edge-agent
			# Older sites: the hub's leaf password (the hub no longer has that user).
			rm -f "$dir/leaf.env"
		)
		# A certificate of its own, signed by the hub's CA (RTDASH_TLS_SANS: the site's names).
		rtdash_lockdown_tls "$dir/tls" "$hub/tls"
		rtdash_edge_site_users "$site"
		touch "$dir/own-users"
		rtdash_log "edge site $site: its own server passwords and certificate (the hub's CA) in $dir"
	elif [ "$RTDASH_ROOT/deploy/nats/users.conf" -nt "$dir/nats-users.conf" ]; then
		rtdash_edge_site_users "$site"
	fi
	# The link's user: made on the hub's side at the site's first start, copied (again after
	# the hub's state was made anew). Without the hub's secrets here (a site on its own
	# machine) the site's copy serves.
	if [ -f "$hub/nats-users.conf" ] || [ ! -f "$dir/leaf.env" ]; then
		leaf_env=$(rtdash_edge_hub_leaf_user "$site")
		if [ "$(rtdash_lockdown_env_value "$leaf_env" RTDASH_NATS__PASSWORD)" != \
			"$(rtdash_lockdown_env_value "$dir/leaf.env" RTDASH_NATS__PASSWORD 2>/dev/null)" ]; then
			(umask 077 && sed "s|^RTDASH_NATS__TLS_CA=.*|RTDASH_NATS__TLS_CA=$dir/tls/ca.pem|" "$leaf_env" >"$dir/leaf.env")
			rtdash_log "edge site $site: links to the hub as leaf-$site (copied from $leaf_env)"
		fi
	fi
	RTDASH_JS_ENV="$dir/operator.env"
}

# rtdash_edge_site_users SITE: render the site's users file (deploy/nats/users.conf) with the
# hashes of its own operator and edge-agent passwords; every other user of the template gets
# the hash of a password that is thrown away (those users have no use at a site).
rtdash_edge_site_users() {
	local dir="$RTDASH_EDGE_STATE/$1/secrets" name
	for name in "${RTDASH_LOCKDOWN_NATS_USERS[@]}"; do
		case $name in
		operator | edge-agent) rtdash_lockdown_password "$dir" "$name" nats ;;
		*) printf '%s\n' "$(rtdash_lockdown_secret)" ;;
		esac
	done | rtdash_lockdown_render_users "$dir/nats-users.conf"
}

# rtdash_edge_hub_leaf_user SITE: on the hub's side, the `leaf-SITE` user
# (rtdash_lockdown_leaf_user in the hub's state, $RTDASH_HUB_SECRETS/..): made at the site's
# first start, and the hub's running nodes reload their users (SIGHUP). Prints the path of
# the user's env file.
rtdash_edge_hub_leaf_user() {
	local state=${RTDASH_HUB_SECRETS%/secrets}
	(
		RTDASH_STATE=$state
		[ -f "$RTDASH_STATE/secrets/nats-users.conf" ] ||
			rtdash_die "$RTDASH_STATE/secrets/nats-users.conf missing: start the hub first (./deploy/cluster/up.sh), or set RTDASH_HUB_SECRETS"
		if [ ! -f "$RTDASH_STATE/secrets/leaf/$1.env" ]; then
			rtdash_lockdown_leaf_user "$1" >/dev/null
			rtdash_edge_hub_reload
			rtdash_log "hub: user leaf-$1 added for edge site $1"
		fi
		printf '%s\n' "$RTDASH_STATE/secrets/leaf/$1.env"
	)
}

# rtdash_edge_hub_reload: SIGHUP to every hub node that runs from $RTDASH_STATE (they read the
# users file again); a hub started otherwise reloads it itself.
rtdash_edge_hub_reload() {
	local node pid reloaded=0
	for node in "${RTDASH_CLUSTER_NODES[@]}"; do
		if pid=$(rtdash_service_pid "$node"); then
			kill -HUP "$pid"
			reloaded=$((reloaded + 1))
		fi
	done
	[ "$reloaded" -gt 0 ] ||
		rtdash_log "no hub node of $RTDASH_STATE runs here: reload the hub's servers (SIGHUP) so they take $RTDASH_STATE/secrets/nats-users.conf"
}

# rtdash_edge_remove_hub_leaf_user SITE: on the hub's side, delete the `leaf-SITE` user and
# reload the hub's running nodes.
rtdash_edge_remove_hub_leaf_user() {
	(
		RTDASH_STATE=${RTDASH_HUB_SECRETS%/secrets}
		[ -f "$RTDASH_STATE/secrets/leaf/$1.env" ] || exit 0
		rtdash_lockdown_remove_leaf_user "$1"
		rtdash_edge_hub_reload
		rtdash_log "hub: user leaf-$1 removed"
	)
}

# rtdash_hub_js_api SUBJECT [BODY]: rtdash_js_api to the hub ($RTDASH_HUB_URL) as the hub's
# operator ($RTDASH_HUB_SECRETS/operator.env): the hub-side steps of these scripts.
rtdash_hub_js_api() {
	RTDASH_JS_ENV="$RTDASH_HUB_SECRETS/operator.env" rtdash_js_api "$RTDASH_HUB_URL" "$@"
}

# rtdash_check_site SITE: one line and exit 1 unless SITE is 1-32 of [a-z0-9-], not starting
# or ending with '-' (it becomes a subject token and part of the domain edge-<site>).
rtdash_check_site() {
	[[ $1 =~ ^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$ ]] ||
		rtdash_die "edge site id '$1': use 1 to 32 of a-z, 0-9 and '-', not starting or ending with '-'"
}

# rtdash_edge_stream KIND: RTDASH_EDGE_PARTIALS, RTDASH_EDGE_DLQ, RTDASH_EDGE_EVENTS.
rtdash_edge_stream() { printf 'RTDASH_EDGE_%s' "${1^^}"; }
# rtdash_hub_stream KIND: RTDASH_PARTIALS, RTDASH_DLQ, RTDASH_EVENTS.
rtdash_hub_stream() { printf 'RTDASH_%s' "${1^^}"; }

# rtdash_edge_render_conf SITE DISABLED: (re)write the site's nats.conf from
# deploy/edge/leaf.conf, its link disabled when DISABLED is true. Needs PORT and MONITOR_PORT
# from the site's site.env (rtdash_edge_load).
rtdash_edge_render_conf() {
	local dir="$RTDASH_EDGE_STATE/$1" hub_urls=() url user password
	rtdash_edge_secrets "$1"
	user=$(rtdash_lockdown_env_value "$dir/secrets/leaf.env" RTDASH_NATS__USER)
	password=$(rtdash_lockdown_env_value "$dir/secrets/leaf.env" RTDASH_NATS__PASSWORD)
	IFS=, read -ra urls <<<"$RTDASH_HUB_LEAF_URLS"
	# nats-leaf://127.0.0.1:7422 -> nats-leaf://leaf-<site>:<password>@127.0.0.1:7422
	for url in "${urls[@]}"; do hub_urls+=("\"${url/:\/\//://$user:$password@}\""); done
	mkdir -p "$dir/store"
	# The rendered config holds the leaf password: 0600.
	(
		umask 077
		rtdash_render "$RTDASH_ROOT/deploy/edge/leaf.conf" "$dir/nats.conf" \
			"NAME=edge-$1" "DOMAIN=edge-$1" "PORT=$PORT" "MONITORING=$(rtdash_nats_monitoring "$MONITOR_PORT")" \
			"STORE_DIR=$dir/store" "MAX_FILE_STORE=$((3 * RTDASH_EDGE_BUFFER_BYTES + 268435456))" \
			"SYNC_INTERVAL=$RTDASH_NATS_SYNC_INTERVAL" "HUB_URLS=$(rtdash_join ', ' "${hub_urls[@]}")" \
			"LINK_DISABLED=$2" "TLS_CERT=$dir/secrets/tls/server.pem" \
			"TLS_KEY=$dir/secrets/tls/server-key.pem" "TLS_CA=$dir/secrets/tls/ca.pem" \
			"USERS_INCLUDE=secrets/nats-users.conf"
	)
}

# rtdash_edge_load SITE: read the site's site.env (PORT, MONITOR_PORT, LINK) into variables;
# exit 1 when the site was never set up.
rtdash_edge_load() {
	local env="$RTDASH_EDGE_STATE/$1/site.env"
	[ -f "$env" ] || rtdash_die "edge site $1 is not set up ($env missing); run ./deploy/edge/up.sh $1"
	# shellcheck source=/dev/null
	. "$env"
}

# rtdash_edge_save SITE: write PORT, MONITOR_PORT, LINK to the site's site.env.
rtdash_edge_save() {
	printf 'PORT=%s\nMONITOR_PORT=%s\nLINK=%s\n' "$PORT" "$MONITOR_PORT" "$LINK" >"$RTDASH_EDGE_STATE/$1/site.env"
}

# rtdash_edge_links SITE: 1 while the site's link to the hub carries requests (the hub's
# JetStream answers account info, $JS.hub.API.INFO, asked at the site as its operator with
# replies under _INBOX.edge.SITE, which the `leaf-SITE` user's permissions let through), else 0.
# No monitoring port needed.
rtdash_edge_links() {
	if rtdash_nats_request "nats://127.0.0.1:$PORT" '$JS.hub.API.INFO' \
		"$RTDASH_EDGE_STATE/$1/secrets/operator.env" "_INBOX.edge.$1" >/dev/null; then
		echo 1
	else
		echo 0
	fi
}

# rtdash_edge_wait_link SITE up|down [TIMEOUT]: wait until the leaf node's link is up / down.
rtdash_edge_wait_link() {
	local deadline=$((SECONDS + ${3:-20})) n
	while :; do
		n=$(rtdash_edge_links "$1")
		case $2:$n in
		up:[1-9]* | down:0) return 0 ;;
		esac
		((SECONDS < deadline)) || rtdash_die "edge site $1: link not $2 within ${3:-20}s (hub reachable through it: $n; log: $RTDASH_EDGE_STATE/$1/logs/edge-$1.log)"
		sleep 0.2
	done
}

# rtdash_js_ensure_stream SERVERS CONFIG_JSON: create the stream, or update an existing one
# to CONFIG_JSON. Idempotent. (A create of an existing stream is not: JetStream counts its
# max_bytes reservation twice and answers "insufficient storage resources".)
rtdash_js_ensure_stream() {
	local name answer op=UPDATE
	name=$(jq -r .name <<<"$2")
	answer=$(rtdash_js_api "$1" "\$JS.API.STREAM.INFO.$name") || rtdash_die "no JetStream answer from $1 (stream $name)"
	if [ "$(jq -r '.error.err_code // empty' <<<"$answer")" = 10059 ]; then # not found
		op=CREATE
	else
		rtdash_js_ok "stream $name at $1" "$answer"
	fi
	answer=$(rtdash_js_api "$1" "\$JS.API.STREAM.$op.$name" "$2") || rtdash_die "no JetStream answer from $1 (stream $name)"
	rtdash_js_ok "stream $name at $1 (${op,,})" "$answer"
}

# rtdash_hub_sources SITE add|remove: add (or replace) / remove the site's source entry on each
# hub stream, keeping every other source. Needs the hub streams (the core aggregator creates
# them).
rtdash_hub_sources() {
	local site=$1 action=$2 kind hub edge source info config answer
	for kind in "${RTDASH_EDGE_KINDS[@]}"; do
		hub=$(rtdash_hub_stream "$kind")
		edge=$(rtdash_edge_stream "$kind")
		info=$(rtdash_hub_js_api "\$JS.API.STREAM.INFO.$hub") ||
			rtdash_die "no JetStream answer from the hub at $RTDASH_HUB_URL; is the cluster up (./deploy/cluster/up.sh)?"
		if [ "$(jq -r '.error.err_code // empty' <<<"$info")" = 10059 ]; then
			rtdash_die "hub stream $hub does not exist yet: start a core-aggregator against the hub (it creates the topology), then rerun"
		fi
		rtdash_js_ok "hub stream $hub" "$info"
		source=$(rtdash_render_text "$RTDASH_ROOT/deploy/edge/hub-source.json" \
			"STREAM=$edge" "DOMAIN=edge-$site" "SITE=$site" "KIND=$kind")
		config=$(jq -c --argjson s "$source" --arg action "$action" '.config
			| .sources = ([(.sources // [])[] | select(.name != $s.name or .external.api != $s.external.api)]
				+ (if $action == "add" then [$s] else [] end))
			| if (.sources | length) == 0 then del(.sources) else . end' <<<"$info")
		answer=$(rtdash_hub_js_api "\$JS.API.STREAM.UPDATE.$hub" "$config") ||
			rtdash_die "no JetStream answer from the hub at $RTDASH_HUB_URL (update $hub)"
		rtdash_js_ok "hub stream $hub: $action source of site $site" "$answer"
	done
}
