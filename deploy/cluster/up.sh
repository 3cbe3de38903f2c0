#!/usr/bin/env bash
# Starts a 3-node NATS JetStream cluster on 127.0.0.1 in the background and returns once
# every node is healthy. Idempotent: nodes that already run are left alone, so after a node
# was stopped or killed (./deploy/cluster/down.sh [--kill] n2) this starts just that one.
# State (rendered configs, JetStream stores, logs, pid files): ${RTDASH_CLUSTER_STATE:-<repo>/.rtdash-cluster}.
#
#   ./deploy/cluster/up.sh [--reset]
#     --reset  stop the cluster and wipe its state first (empty stores)
#
# Ports (RTDASH_CLUSTER_PORTS="4222 6222 8222 7422" moves them): clients 4222-4224,
# routes 6222-6224, edge leaf nodes 7422-7424, monitoring 8222-8224 (only with
# RTDASH_NATS_MONITOR=1). JetStream domain: hub.
# fsync cadence: RTDASH_NATS_SYNC_INTERVAL (default 2m, the nats-server default; `always`).
#
# Locked down: TLS on client, route and leafnode ports, users and passwords made at first
# start into <state>/secrets (deploy/lockdown.sh; docs/security.md, "NATS").
#
# The rtdash services then run against it with (deploy/README.md, "Cluster"):
#   RTDASH_NATS__URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
#   RTDASH_STREAMS__REPLICAS=3
#   and their own <state>/secrets/<service>.env (user, password file, RTDASH_NATS__TLS_CA)
set -euo pipefail

usage() { sed -n '2,22s/^# \{0,1\}//p' "$0"; }
reset=0
for arg in "$@"; do
	case $arg in
	--reset) reset=1 ;;
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

rtdash_require_nats_server
rtdash_check_state_dir "$RTDASH_STATE"
if [ "$reset" = 1 ] && [ -d "$RTDASH_STATE" ]; then
	rtdash_log "--reset: stopping the cluster and wiping $RTDASH_STATE"
	for node in "${RTDASH_CLUSTER_NODES[@]}"; do rtdash_stop "$node"; done
	rm -rf "$RTDASH_STATE"
fi
mkdir -p "$RTDASH_STATE"
touch "$RTDASH_STATE/.rtdash-state"
# First start: NATS users and passwords, the route password, the TLS CA and certificate
# (deploy/lockdown.sh) into $RTDASH_STATE/secrets; later starts reuse them.
rtdash_lockdown_distributed_init

# All nodes first: a node's JetStream becomes healthy only once a majority is up.
for node in "${RTDASH_CLUSTER_NODES[@]}"; do
	rtdash_start_cluster_node "$node"
done
for node in "${RTDASH_CLUSTER_NODES[@]}"; do
	rtdash_wait_cluster_node "$node" 60
done

cat <<EOF

  NATS JetStream cluster "rtdash" (domain hub) is up: ${RTDASH_CLUSTER_NODES[*]}.
  Clients:     $(rtdash_cluster_urls client)
  Leaf nodes:  $(rtdash_cluster_urls leaf)
  Monitoring:  $(rtdash_nats_monitor_note "$(rtdash_cluster_urls monitor)" "/healthz /jsz /routez /leafz")
  Logs:        $RTDASH_STATE/logs/

  TLS and users: CA $RTDASH_STATE/secrets/tls/ca.pem; each service's user, CA and password
  file in $RTDASH_STATE/secrets/<service>.env, its passwords in
  $RTDASH_STATE/secrets/<service>/ (0600); the nats CLI's in operator.env.

  Run the rtdash services against it with:
    export RTDASH_NATS__URL=$(rtdash_cluster_urls client)
    export RTDASH_STREAMS__REPLICAS=3
    (set -a; . $RTDASH_STATE/secrets/core-aggregator.env; exec target/release/core-aggregator run)
  Status: ./deploy/cluster/status.sh   Stop: ./deploy/cluster/down.sh

EOF
