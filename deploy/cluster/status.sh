#!/usr/bin/env bash
# Prints the state of the cluster started by ./deploy/cluster/up.sh: per node whether it runs
# and is healthy, the JetStream meta leader, and per stream its leader, replicas and messages.
# Exits 1 when a node is down or unhealthy.
#
#   ./deploy/cluster/status.sh
set -euo pipefail

case ${1:-} in
"") ;;
-h | --help)
	sed -n '2,6s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	sed -n '2,6s/^# \{0,1\}//p' "$0" >&2
	exit 2
	;;
esac

# shellcheck source=deploy/cluster/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RTDASH_STATE=$RTDASH_CLUSTER_STATE

status=0 monitors=()
for node in "${RTDASH_CLUSTER_NODES[@]}"; do
	read -r client _ monitor leaf <<<"$(rtdash_cluster_ports "$node")"
	if pid=$(rtdash_service_pid "$node"); then
		health=$(curl -sS --max-time 2 "http://127.0.0.1:$monitor/healthz" 2>&1 | jq -r '.status + (if .error then ": " + .error else "" end)' 2>/dev/null || echo "no answer")
		[ "$health" = ok ] || status=1
		printf '%s  pid %-8s client %s  leafnode %s  health: %s\n' "$node" "$pid" "$client" "$leaf" "$health"
		monitors+=("$node=$monitor")
	else
		printf '%s  down\n' "$node"
		status=1
	fi
done
# Per stream: its leader, and the messages in each running node's own replica.
declare -A leader=() counts=() seen=()
names=()
for spec in "${monitors[@]}"; do
	node=${spec%%=*}
	jsz=$(curl -fsS --max-time 2 "http://127.0.0.1:${spec#*=}/jsz?accounts=true&streams=true" || echo '{}')
	[ -n "${meta:-}" ] || meta=$(jq -r '.meta_cluster.leader // "none"' <<<"$jsz")
	while read -r name lead messages; do
		[ -n "$name" ] || continue
		[ -n "${seen[$name]:-}" ] || names+=("$name")
		seen[$name]=1
		[ "$lead" = - ] || leader[$name]=$lead
		counts[$name]+=" $node=$messages"
	done < <(jq -r '.account_details[]?.stream_detail[]? | "\(.name) \(.cluster.leader // "-") \(.state.messages)"' <<<"$jsz")
done
if [ "${#monitors[@]}" -gt 0 ]; then
	printf '\nJetStream meta leader: %s\n' "$meta"
	[ "${#names[@]}" -gt 0 ] || echo "no streams yet"
	for name in "${names[@]}"; do
		printf 'stream %s: leader %s; messages per replica:%s\n' "$name" "${leader[$name]:-none}" "${counts[$name]}"
	done
fi
exit "$status"
