#!/usr/bin/env bash
# Starts (or completes) edge site SITE: a NATS leaf node with its own JetStream domain
# edge-SITE on 127.0.0.1, in the background, connected to the hub cluster
# (./deploy/cluster/up.sh); then creates the site's edge streams and config mirror, and adds
# the site's sources to the hub streams. Idempotent: run it again to finish a setup that
# stopped half-way (e.g. the hub streams did not exist yet) or to restart a stopped site.
# State (config, JetStream store = the outage buffer, logs): ${RTDASH_EDGE_STATE:-<repo>/.rtdash-edge}/SITE.
#
#   ./deploy/edge/up.sh SITE [--port N] [--no-sources]
#     SITE          1-32 of a-z 0-9 -, unique in the deployment (subject token, domain edge-SITE)
#     --port N      client port for the site's edge-agent (default: first free from 4231;
#                   kept for the site); monitoring (RTDASH_NATS_MONITOR=1) on N+4000
#     --no-sources  do not touch the hub (only the site's own server and streams)
#
# Needs the nats CLI for JetStream API requests (built once into the cache with Go, pinned in
# deploy/versions.env) and jq. Buffer size: RTDASH_EDGE_BUFFER_BYTES, RTDASH_EDGE_MAX_AGE.
# Needs the hub's credentials (./deploy/cluster/up.sh makes them; RTDASH_HUB_SECRETS): at the
# site's first start it adds the site's leaf user `leaf-SITE` to the hub's users and reloads
# the hub's nodes. The site's own secrets (<state>/SITE/secrets) hold none of the hub's
# passwords: its server has users of its own (docs/security.md, "NATS").
set -euo pipefail

usage() { sed -n '2,18s/^# \{0,1\}//p' "$0"; }
site='' port='' sources=1
while [ "$#" -gt 0 ]; do
	case $1 in
	--port)
		[ "$#" -ge 2 ] || { usage >&2 && exit 2; }
		port=$2
		shift
		;;
	--no-sources) sources=0 ;;
	-h | --help)
		usage
		exit 0
		;;
	-*)
		usage >&2
		exit 2
		;;
	*)
		[ -z "$site" ] || { usage >&2 && exit 2; }
		site=$1
		;;
	esac
	shift
done
[ -n "$site" ] || { usage >&2 && exit 2; }

# shellcheck source=deploy/edge/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rtdash_check_site "$site"
rtdash_require_nats_server
command -v jq >/dev/null || rtdash_die "jq not found; install it (apt-get install -y jq)"
[[ -z $port || $port =~ ^[0-9]+$ ]] || rtdash_die "--port $port: not a port number"

dir="$RTDASH_EDGE_STATE/$site"
RTDASH_STATE=$dir
rtdash_check_state_dir "$dir"
mkdir -p "$dir"
touch "$dir/.rtdash-state"

PORT='' MONITOR_PORT='' LINK=up
if [ -f "$dir/site.env" ]; then
	rtdash_edge_load "$site"
	[ -z "$port" ] || [ "$port" = "$PORT" ] || rtdash_die "edge site $site uses port $PORT; ./deploy/edge/down.sh $site --wipe first to move it"
elif [ -n "$port" ]; then
	PORT=$port MONITOR_PORT=$((port + 4000))
else
	taken=' '
	for env in "$RTDASH_EDGE_STATE"/*/site.env; do
		[ -f "$env" ] && taken+="$(sed -n 's/^PORT=//p' "$env") "
	done
	for ((p = 4231; p < 4300; p++)); do
		[[ $taken == *" $p "* ]] && continue
		rtdash_port_in_use "$p" || rtdash_port_in_use $((p + 4000)) || break
	done
	((p < 4300)) || rtdash_die "no free port pair in 4231-4299 / 8231-8299; pass --port"
	PORT=$p MONITOR_PORT=$((p + 4000))
fi
rtdash_edge_save "$site"
leaf_url="nats://127.0.0.1:$PORT"
# First start: the site's own passwords, its leaf user on the hub, the hub's CA and certificate.
rtdash_edge_secrets "$site"

# 1. The site's server.
name="edge-$site"
disabled=false
[ "$LINK" = up ] || disabled=true
if pid=$(rtdash_service_pid "$name"); then
	# Its configuration again, reloaded: its users or its link's user may have changed (an
	# older site given users of its own).
	rtdash_edge_render_conf "$site" "$disabled"
	kill -HUP "$pid"
	rtdash_wait_nats_js "$name" "$leaf_url" "$dir/secrets/operator.env" 30
	rtdash_log "$name already runs on $leaf_url (configuration reloaded)"
else
	# shellcheck disable=SC2046 # no word or one
	rtdash_require_free_ports "$name=$PORT" $(rtdash_nats_monitor_ports "$name-monitor=$MONITOR_PORT")
	rtdash_edge_render_conf "$site" "$disabled"
	rtdash_spawn_detached "$name" "$RTDASH_NATS_SERVER" -c "$dir/nats.conf"
	rtdash_wait_nats_js "$name" "$leaf_url" "$dir/secrets/operator.env" 30
	rtdash_log "$name started on $leaf_url (JetStream domain $name)"
fi
if [ "$LINK" = up ]; then
	(rtdash_edge_wait_link "$site" up 10) || rtdash_log "warning: $name has no link to the hub yet ($RTDASH_HUB_LEAF_URLS); it buffers until it has"
else
	rtdash_log "the link of $name is cut (./deploy/edge/link.sh $site restore)"
fi

# 2. Partition count: the hub's, recorded on the edge streams for the edge-agent.
partitions=
if info=$(rtdash_hub_js_api "\$JS.API.STREAM.INFO.RTDASH_PARTIALS"); then
	partitions=$(jq -r '.config.metadata["rtdash.partitions"] // empty' <<<"$info")
fi
if [ -z "$partitions" ] && info=$(rtdash_js_api "$leaf_url" "\$JS.API.STREAM.INFO.RTDASH_EDGE_PARTIALS"); then
	partitions=$(jq -r '.config.metadata["rtdash.partitions"] // empty' <<<"$info")
fi
if [ -z "$partitions" ]; then
	partitions=${RTDASH_STREAMS__PARTITIONS:-8}
	rtdash_log "warning: partition count not readable from the hub; using $partitions (RTDASH_STREAMS__PARTITIONS)"
fi

# 3. The edge streams (LIMITS retention) and the config mirror, in the site's domain.
for kind in "${RTDASH_EDGE_KINDS[@]}"; do
	config=$(rtdash_render_text "$RTDASH_ROOT/deploy/edge/edge-stream.json" \
		"STREAM=$(rtdash_edge_stream "$kind")" "SITE=$site" "KIND=$kind" \
		"MAX_AGE_NS=$((RTDASH_EDGE_MAX_AGE * 1000000000))" "MAX_BYTES=$RTDASH_EDGE_BUFFER_BYTES" \
		"DUPLICATE_WINDOW_NS=120000000000" "PARTITIONS=$partitions")
	rtdash_js_ensure_stream "$leaf_url" "$config"
done
rtdash_js_ensure_stream "$leaf_url" "$(rtdash_render_text "$RTDASH_ROOT/deploy/edge/config-mirror.json" "SITE=$site")"
# The keys mirror: the agent verifies ingest keys from it, also while the link is down.
rtdash_js_ensure_stream "$leaf_url" "$(rtdash_render_text "$RTDASH_ROOT/deploy/edge/keys-mirror.json" "SITE=$site")"
rtdash_log "edge streams ${RTDASH_EDGE_KINDS[*]}, the config and keys mirrors are in domain $name"

# 4. The hub sources each edge stream.
if [ "$sources" = 1 ]; then
	rtdash_hub_sources "$site" add
	rtdash_log "hub streams source site $site (through \$JS.$name.API)"
fi

cat <<EOF

  Edge site $site is up: nats-server $name, JetStream domain $name, $partitions partitions.
  Client URL:  $leaf_url    Monitoring: $(rtdash_nats_monitor_note "http://127.0.0.1:$MONITOR_PORT" "/healthz /jsz /leafz")
  Logs:        $dir/logs/

  The site's edge-agent connects to $leaf_url over TLS as the site's own user
  edge-agent and publishes partials to rtdash.edge.$site.partials.<p> (see
  deploy/README.md, "Edge sites"):
    export RTDASH_NATS__URL=$leaf_url
    set -a; . $dir/secrets/edge-agent.env; set +a   # user, password file, RTDASH_NATS__TLS_CA
    export RTDASH_EDGE_AGENT__SITE=$site              # edge subjects, no hub streams here
    export RTDASH_EDGE_AGENT__AGENT_ID=$site-<host>   # optional: else $site-<random>, kept
  Cut / restore the link: ./deploy/edge/link.sh $site cut|restore   Stop: ./deploy/edge/down.sh $site

EOF
