#!/usr/bin/env bash
# The chaos soak: the distributed deployment (3-node NATS cluster with R3 streams and buckets,
# 2 core aggregators, 2 gateways behind one address, 2 edge agents, QuestDB) on loopback under
# a steady load with late events, while a seeded schedule kills (SIGKILL) and restarts a random
# component every 20-60 s, or freezes one (SIGSTOP/SIGCONT) for 5-30 s, and the alert webhook
# receiver fails for minutes. At the end every window of every series is checked against an
# exact oracle and every alert transition against what the receiver got; the report prints
# the schedule, per-fault recovery times, lost and duplicated events, and RSS and open file
# descriptors of every process (first/last/max). The driver is the test
# tests/tests/chaos_soak.rs (rtdash_tests::chaos); a 3-minute version runs in ./deploy/test.sh.
#
# Usage: ./deploy/chaos.sh [--minutes N] [--seed S] [--no-build]
#   --minutes N   length of the load (default 30)
#   --seed S      seed of the schedule and the values, decimal or 0x hex (default 0x20)
# The report goes to stdout and to target/chaos/<UTC time>-seed-<S>.log. Exit 0 when it passed.
set -uo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT" || exit 1
export RTDASH_NATS_SERVER RTDASH_QUESTDB_JAR RTDASH_JAVA

minutes=30 seed=0x20 build=1
while [ $# -gt 0 ]; do
	case $1 in
	--minutes)
		minutes=${2:?--minutes needs a value}
		shift
		;;
	--seed)
		seed=${2:?--seed needs a value}
		shift
		;;
	--no-build) build=0 ;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) rtdash_die "unknown argument $1 (see --help)" ;;
	esac
	shift
done
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || rtdash_die "--minutes must be a number, not $minutes"
[[ $seed =~ ^(0x[0-9a-fA-F]+|[0-9]+)$ ]] || rtdash_die "--seed must be decimal or 0x hex, not $seed"

if [ ! -x "$RTDASH_NATS_SERVER" ] || [ ! -f "$RTDASH_QUESTDB_JAR" ]; then
	./deploy/install.sh || rtdash_die "install failed"
fi
if [ "$build" = 1 ]; then
	# The test starts these binaries (and refuses ones older than their sources).
	cargo build --workspace --bins || rtdash_die "cargo build --workspace --bins failed"
	cargo test -p rtdash-tests --no-run --test chaos_soak || rtdash_die "building the soak failed"
fi

mkdir -p target/chaos
log="target/chaos/$(date -u +%Y%m%dT%H%M%SZ)-seed-$seed.log"
rtdash_log "chaos soak: $minutes minutes, seed $seed; load average now: $(cut -d' ' -f1-3 /proc/loadavg); log $log"
{
	echo "command: ./deploy/chaos.sh --minutes $minutes --seed $seed"
	echo "started: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
} >"$log"
status=0
RTDASH_CHAOS_MINUTES=$minutes RTDASH_CHAOS_SEED=$seed \
	cargo test -q -p rtdash-tests --test chaos_soak chaos_soak -- --ignored --exact --nocapture \
	2>&1 | tee -a "$log" || status=$?
echo "ended: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$log"
line=$(grep -h '^CHAOS-RESULT ' "$log" | tail -n 1)
if [ "$status" = 0 ] && [[ $line == *" pass" ]]; then
	rtdash_log "chaos soak passed (report in $log)"
else
	rtdash_log "chaos soak FAILED (exit $status; report and logs in $log)"
	exit 1
fi
