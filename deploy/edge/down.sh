#!/usr/bin/env bash
# Stops edge site SITE's server. Its state is kept by default: the JetStream store holds what
# the hub has not sourced yet, and ./deploy/edge/up.sh SITE resumes from it.
#
#   ./deploy/edge/down.sh SITE [--kill] [--wipe]
#     --kill  SIGKILL (a crash) instead of a graceful stop
#     --wipe  also delete the site's state, remove its sources from the hub streams and its
#             leaf user from the hub's users (anything the hub has not sourced yet is lost)
set -euo pipefail

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
site='' kill=0 wipe=0
for arg in "$@"; do
	case $arg in
	--kill) kill=1 ;;
	--wipe) wipe=1 ;;
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
		site=$arg
		;;
	esac
done
[ -n "$site" ] || { usage >&2 && exit 2; }

# shellcheck source=deploy/edge/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rtdash_check_site "$site"
dir="$RTDASH_EDGE_STATE/$site"
RTDASH_STATE=$dir
if [ ! -e "$dir" ]; then
	rtdash_log "nothing to do: $dir does not exist"
	exit 0
fi
rtdash_check_state_dir "$dir"

if [ "$kill" = 1 ]; then
	rtdash_kill "edge-$site"
	rtdash_log "edge-$site killed (SIGKILL)"
else
	rtdash_stop "edge-$site"
	rtdash_log "edge-$site stopped"
fi
if [ "$wipe" = 1 ]; then
	if ! (rtdash_hub_sources "$site" remove); then
		rtdash_log "warning: could not remove site $site's sources from the hub; rerun with the hub up, or the hub keeps retrying them"
	fi
	rtdash_edge_remove_hub_leaf_user "$site"
	rm -rf "$dir"
	rtdash_log "$dir wiped"
else
	rtdash_log "state kept in $dir (./deploy/edge/up.sh $site resumes; --wipe deletes it)"
fi
