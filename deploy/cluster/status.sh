#!/usr/bin/env bash
# Prints the state of the cluster started by ./deploy/cluster/up.sh: per node whether it runs
# and the cluster's JetStream answers through it (as the operator, over its client port: no
# monitoring port needed), and per stream its leader, messages and replicas.
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

status=0 answering=
operator_env="$RTDASH_STATE/secrets/operator.env"
for node in "${RTDASH_CLUSTER_NODES[@]}"; do
	read -r client _ _ leaf <<<"$(rtdash_cluster_ports "$node")"
	if pid=$(rtdash_service_pid "$node"); then
		health="no answer"
		if rtdash_nats_js_ready "nats://127.0.0.1:$client" "$operator_env"; then
			health=ok
			answering=${answering:-nats://127.0.0.1:$client}
		fi
		[ "$health" = ok ] || status=1
		printf '%s  pid %-8s client %s  leafnode %s  JetStream: %s\n' "$node" "$pid" "$client" "$leaf" "$health"
	else
		printf '%s  down\n' "$node"
		status=1
	fi
done
# Per stream: its leader, messages, and each other replica's state (current or lagging).
if [ -n "$answering" ]; then
	echo
	list=$(rtdash_nats_request "$answering" '$JS.API.STREAM.LIST' "$operator_env") || list='{}'
	jq -r '
		if (.streams // []) == [] then "no streams yet" else
		.streams[] | "stream \(.config.name): leader \(.cluster.leader // "none"), \(.state.messages) messages; replicas:" +
			([.cluster.replicas[]? | " \(.name) " + (if .current then "current" else "lag \(.lag // "?")" end)] | join(","))
		end' <<<"$list"
fi
exit "$status"
