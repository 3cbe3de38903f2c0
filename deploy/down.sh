#!/usr/bin/env bash
# Stops a stack started by ./deploy/up.sh (running or left behind) and wipes its state dir
# ${RTDASH_STATE:-<repo>/.rtdash}: NATS store, QuestDB data, logs.
#
#   ./deploy/down.sh [--state DIR]   (DIR: the state dir given to up.sh --state)
set -euo pipefail

case ${1:-} in
"") ;;
--state)
	[ $# -eq 2 ] || {
		echo "usage: ./deploy/down.sh [--state DIR]" >&2
		exit 2
	}
	RTDASH_STATE=$(realpath -m -- "$2")
	export RTDASH_STATE
	;;
-h | --help)
	sed -n '2,5s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "usage: ./deploy/down.sh [--state DIR]" >&2
	exit 2
	;;
esac

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -e "$RTDASH_STATE" ]; then
	rtdash_log "nothing to do: $RTDASH_STATE does not exist"
	exit 0
fi
[ -f "$RTDASH_STATE/.rtdash-state" ] || rtdash_die "$RTDASH_STATE is not an rtdash state dir (no .rtdash-state marker); not touching it"

# A running up.sh stops its own services in order when told to; give it the time to.
if up=$(rtdash_read_pidfile "$RTDASH_STATE/up.pid") && kill -TERM "$up" 2>/dev/null; then
	rtdash_log "stopping up.sh (pid $up)"
	for ((i = 0; i < (RTDASH_STOP_TIMEOUT + 5) * 10; i++)); do
		kill -0 "$up" 2>/dev/null || break
		sleep 0.1
	done
fi
rtdash_stop_all # whatever is left: up.sh was killed, or did not finish in time
rm -rf "$RTDASH_STATE"
rtdash_log "stack stopped; $RTDASH_STATE wiped"
