#!/usr/bin/env bash
# Runs rtdash's fault scenarios on the real binaries and prints a pass/fail summary with lost
# and duplicated events per scenario. Each scenario is one integration test
# (tests/tests/fault_<name>.rs) that starts its own servers on free loopback ports, from the
# configurations in deploy/ (deploy/cluster/node.conf, deploy/edge/leaf.conf and
# deploy/edge/*.json), posts a steady load of 3,000 events/s to the real edge-agent, injects the
# fault mid-load, and checks every window and series in QuestDB against the exact count of
# accepted events. It prints one line
#   FAULT-RESULT scenario=... sent=... accepted=... stored=... lost=... duplicated=... pass|FAIL
# which this script collects.
#
#   aggregator  1 of 2 core aggregators killed (SIGKILL): partitions taken over within the
#               lease time, numbers exact                                        (~40 s)
#   nats_node   1 of 3 NATS nodes (the partials stream's leader) killed, restarted 10 s later;
#               R3 streams                                                        (~45 s)
#   gateway     the gateway serving 3 live viewers killed; they reconnect through the same
#               address (a failover proxy) with Last-Event-ID to the other gateway and see
#               exact values again                                                (~30 s)
#   leaf_cut    an edge site's leaf node cut from the hub for 2 minutes under load, then
#               reconnected                                                        (~5 min)
#
# Usage: ./deploy/faults.sh [--no-build] [scenario ...]    (default: all four, in that order)
# Environment: RTDASH_FAULT_CUT_SECS (leaf cut length, default 120). Logs of each run:
# target/faults/<UTC time>/<scenario>.log.
set -uo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT" || exit 1
export RTDASH_NATS_SERVER RTDASH_QUESTDB_JAR RTDASH_JAVA

all=(aggregator nats_node gateway leaf_cut)
build=1
scenarios=()
for arg in "$@"; do
	case $arg in
	--no-build) build=0 ;;
	-h | --help)
		sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		if [[ " ${all[*]} " != *" $arg "* ]]; then
			rtdash_die "unknown scenario $arg (one of: ${all[*]})"
		fi
		scenarios+=("$arg")
		;;
	esac
done
[ "${#scenarios[@]}" -gt 0 ] || scenarios=("${all[@]}")

if [ ! -x "$RTDASH_NATS_SERVER" ] || [ ! -f "$RTDASH_QUESTDB_JAR" ]; then
	./deploy/install.sh || rtdash_die "install failed"
fi
if [ "$build" = 1 ]; then
	# The tests start these binaries (and refuse ones older than their sources).
	cargo build --workspace --bins || rtdash_die "cargo build --workspace --bins failed"
	targets=()
	for scenario in "${scenarios[@]}"; do targets+=(--test "fault_$scenario"); done
	cargo test -p rtdash-tests --no-run "${targets[@]}" || rtdash_die "building the fault tests failed"
fi

logs="target/faults/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$logs"
# field KEY: the value of KEY=... in $line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }

rows=()
failed=0
started=$SECONDS
for scenario in "${scenarios[@]}"; do
	log="$logs/$scenario.log"
	printf '=== %s: cargo test -p rtdash-tests --test fault_%s -- --include-ignored --nocapture\n' \
		"$scenario" "$scenario"
	t0=$SECONDS
	status=0
	: >"$log"
	if [ "$build" = 1 ]; then
		# Again per scenario (a no-op when nothing changed): the tests refuse binaries older
		# than their sources, which matters in a working tree others edit meanwhile.
		cargo build -q --workspace --bins >>"$log" 2>&1 || status=$?
	fi
	[ "$status" != 0 ] || cargo test -q -p rtdash-tests --test "fault_$scenario" -- \
		--include-ignored --nocapture >>"$log" 2>&1 || status=$?
	seconds=$((SECONDS - t0))
	line=$(grep -h '^FAULT-RESULT ' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		verdict=FAIL
		rows+=("$(printf '%-10s %-5s %9s %9s %9s %6s %10s %6s  %s' "$scenario" FAIL - - - - - \
			"${seconds}s" "no result line (exit $status): $(grep -m 1 -E '^(Error|error)' "$log" | cut -c 1-160); see $log")")
	else
		verdict=pass
		if [ "$status" != 0 ] || [[ $line != *" pass" ]] || [ "$(field lost)" != 0 ] ||
			[ "$(field duplicated)" != 0 ]; then
			verdict=FAIL
		fi
		details=$(sed -e 's/^FAULT-RESULT //' -e 's/ \(pass\|FAIL\)$//' <<<"$line" |
			tr ' ' '\n' | grep -v -E '^(scenario|sent|accepted|stored|lost|duplicated)=' |
			tr '\n' ' ')
		rows+=("$(printf '%-10s %-5s %9s %9s %9s %6s %10s %6s  %s' "$scenario" "$verdict" \
			"$(field sent)" "$(field accepted)" "$(field stored)" "$(field lost)" \
			"$(field duplicated)" "${seconds}s" "$details")")
	fi
	[ "$verdict" = pass ] || failed=1
	printf '%s (%ss)\n' "$verdict" "$seconds"
	[ "$verdict" = pass ] || tail -n 40 "$log"
done

printf '\n=== fault scenarios (%ss, logs in %s)\n' "$((SECONDS - started))" "$logs"
printf '%-10s %-5s %9s %9s %9s %6s %10s %6s  %s\n' scenario result sent accepted stored lost \
	duplicated time details
for row in "${rows[@]}"; do printf '%s\n' "$row"; done
if [ "$failed" = 0 ]; then
	echo "all fault scenarios passed: zero lost, zero duplicated"
else
	echo "some fault scenarios FAILED"
	exit 1
fi
