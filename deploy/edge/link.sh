#!/usr/bin/env bash
# Takes the link between edge site SITE and the hub down or up, both servers running: the
# leaf node's remote is re-rendered with `disabled: true|false` and the server reloads its
# configuration (SIGHUP). nats-server closes a disabled remote's connection and does not
# redial it. While cut, the site keeps accepting (acks from its own domain) and buffers; once
# restored, the hub sources what it missed (its source retry backoff is 10 s per failed
# attempt, at most 2 min, so catching up after a long cut can take that long).
#
#   ./deploy/edge/link.sh SITE cut|restore|status
set -euo pipefail

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
[ "$#" = 2 ] || { usage >&2 && exit 2; }
site=$1 action=$2
case $action in
cut | restore | status) ;;
*)
	usage >&2
	exit 2
	;;
esac

# shellcheck source=deploy/edge/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rtdash_check_site "$site"
RTDASH_STATE="$RTDASH_EDGE_STATE/$site"
rtdash_edge_load "$site"
name="edge-$site"
pid=$(rtdash_service_pid "$name") || rtdash_die "$name is not running; ./deploy/edge/up.sh $site starts it"

case $action in
status)
	linked=no
	[ "$(rtdash_edge_links "$site")" = 0 ] || linked=yes
	printf '%s: link %s (configured), hub reachable through it: %s\n' "$name" "$LINK" "$linked"
	exit 0
	;;
cut) LINK=down disabled=true ;;
restore) LINK=up disabled=false ;;
esac
rtdash_edge_render_conf "$site" "$disabled"
rtdash_edge_save "$site"
kill -HUP "$pid"
rtdash_edge_wait_link "$site" "$LINK" 20
rtdash_log "$name: link $LINK"
