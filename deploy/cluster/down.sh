#!/usr/bin/env bash
# Stops nodes of the cluster started by ./deploy/cluster/up.sh.
#
#   ./deploy/cluster/down.sh                 stop every node (SIGTERM) and wipe the state
#   ./deploy/cluster/down.sh --keep          stop every node, keep the state (up.sh resumes it)
#   ./deploy/cluster/down.sh [--kill] n2...  stop (or with --kill, SIGKILL: a crash) only the
#                                            nodes named; state kept; ./deploy/cluster/up.sh
#                                            starts them again on the same store
#
# State: ${RTDASH_CLUSTER_STATE:-<repo>/.rtdash-cluster}.
set -euo pipefail

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }
kill=0 keep=0 nodes=()
for arg in "$@"; do
	case $arg in
	--kill) kill=1 ;;
	--keep) keep=1 ;;
	n[1-3]) nodes+=("$arg") ;;
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

# shellcheck source=deploy/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RTDASH_STATE=$RTDASH_CLUSTER_STATE

if [ ! -e "$RTDASH_STATE" ]; then
	rtdash_log "nothing to do: $RTDASH_STATE does not exist"
	exit 0
fi
rtdash_check_state_dir "$RTDASH_STATE"

if [ "${#nodes[@]}" -gt 0 ]; then
	for node in "${nodes[@]}"; do
		if [ "$kill" = 1 ]; then
			rtdash_kill "$node"
			rtdash_log "$node killed (SIGKILL); ./deploy/cluster/up.sh starts it again"
		else
			rtdash_stop "$node"
			rtdash_log "$node stopped; ./deploy/cluster/up.sh starts it again"
		fi
	done
	exit 0
fi
[ "$kill" = 0 ] || rtdash_die "--kill needs node names (n1 n2 n3)"

for node in "${RTDASH_CLUSTER_NODES[@]}"; do
	rtdash_stop "$node"
done
if [ "$keep" = 1 ]; then
	rtdash_log "cluster stopped; state kept in $RTDASH_STATE"
else
	rm -rf "$RTDASH_STATE"
	rtdash_log "cluster stopped; $RTDASH_STATE wiped"
fi
