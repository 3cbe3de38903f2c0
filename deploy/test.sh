#!/usr/bin/env bash
# Runs rtdash's checks and tests; on a fresh machine it first installs what they need
# (./deploy/install.sh). Steps:
#   install  ./deploy/install.sh
#   fmt      cargo fmt --all --check
#   clippy   cargo clippy --workspace --all-targets -- -D warnings
#   build    cargo build --workspace --bins (debug: the integration tests start these binaries)
#   test     cargo test --workspace (integration tests start their own nats-server, QuestDB
#            and services on free ports)
#   web      npm ci in web/, then a throwaway stack of the debug binaries just built
#            (./deploy/up.sh --profile debug --no-demo, ports +RTDASH_TEST_PORT_OFFSET (default
#            10000), state in a temporary dir), npm test against it (API types check, lint,
#            build, unit tests, browser test; RTDASH_BROWSER_TEST_REQUIRED=1), then the stack
#            is stopped, whatever happened
# Every step runs even when an earlier one failed (install excepted; web needs build); prints a
# summary and exits non-zero if any step failed.
# shellcheck disable=SC2317 # functions run through step and traps
set -uo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT" || exit 1

# The integration-test harness (tests/src) starts these binaries.
export RTDASH_NATS_SERVER RTDASH_QUESTDB_JAR RTDASH_JAVA
# A clean clone gains nothing from incremental compilation, and its files cost disk and time.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

names=() results=()
started=$SECONDS
failed=0

# step NAME COMMAND...: run COMMAND, record status and duration.
step() {
	local name=$1 t0=$SECONDS status=0
	shift
	printf '\n=== %s: %s\n' "$name" "$*"
	"$@" || status=$?
	names+=("$name")
	if [ "$status" = 0 ]; then
		results+=("ok       $((SECONDS - t0))s")
	else
		results+=("FAILED   $((SECONDS - t0))s (exit $status)")
		failed=1
	fi
	return "$status"
}

skip() {
	names+=("$1")
	results+=("skipped  ($2)")
}

summary() {
	printf '\n=== summary (%ss)\n' "$((SECONDS - started))"
	local i
	for i in "${!names[@]}"; do
		printf '  %-8s %s\n' "${names[$i]}" "${results[$i]}"
	done
	if [ "$failed" = 0 ]; then echo "all steps passed"; else echo "some steps FAILED"; fi
}

# --- the browser test's stack ------------------------------------------------------------------
# A stack of its own: debug binaries, ports shifted by an offset so that it never meets a
# developer's ./deploy/up.sh (or another test run), state in a temporary directory.
stack_dir='' stack_state='' stack_pid=''

# stack_ports_free OFFSET: true when every port of a stack at OFFSET is free.
stack_ports_free() {
	local port
	for port in 4222 8222 9000 9009 8812 9003 8080 8081 8082; do
		! rtdash_port_in_use $((port + $1)) || return 1
	done
}

# stack_stop: stops the stack (up.sh stops its services in order; down.sh makes sure nothing is
# left and wipes the state). Logs are kept in test-artifacts/stack-logs/ when STACK_KEEP_LOGS=1.
stack_stop() {
	[ -n "$stack_dir" ] || return 0
	if [ "${STACK_KEEP_LOGS:-0}" = 1 ] && [ -d "$stack_state/logs" ]; then
		rm -rf test-artifacts/stack-logs
		mkdir -p test-artifacts/stack-logs
		cp -r "$stack_state/logs/." test-artifacts/stack-logs/
		cp "$stack_dir/up.log" test-artifacts/stack-logs/ 2>/dev/null
		echo "stack logs kept in test-artifacts/stack-logs/"
	fi
	if [ -n "$stack_pid" ]; then
		# up.sh stops its services in order on SIGTERM. It handles the signal once its current
		# command ends; when that is a build, the build is stopped too.
		local i
		kill -TERM "$stack_pid" 2>/dev/null
		for ((i = 0; i < 900; i++)); do
			kill -0 "$stack_pid" 2>/dev/null || break
			[ "$i" = 600 ] && pkill -TERM -P "$stack_pid" 2>/dev/null
			sleep 0.1
		done
		kill -KILL "$stack_pid" 2>/dev/null
		wait "$stack_pid" 2>/dev/null
		stack_pid=
	fi
	# Whatever is left (up.sh killed before it stopped everything), then the state.
	if [ -f "$stack_state/.rtdash-state" ]; then
		./deploy/down.sh --state "$stack_state" >>"$stack_dir/up.log" 2>&1 ||
			echo "warning: ./deploy/down.sh --state $stack_state failed" >&2
	fi
	rm -rf "$stack_dir"
	stack_dir=
}

# stack_start: starts up.sh in the background and waits until the gateway and the agent are
# ready (the agent starts last). Fails, with the end of up.sh's output, when up.sh exits first.
stack_start() {
	local offset=${RTDASH_TEST_PORT_OFFSET:-10000} tries=0 deadline
	while ! stack_ports_free "$offset"; do
		tries=$((tries + 1))
		if [ "$tries" -ge 5 ]; then
			echo "no free port set for the test stack (tried offsets up to $offset)" >&2
			return 1
		fi
		offset=$((offset + 100))
	done
	stack_dir=$(mktemp -d "${TMPDIR:-/tmp}/rtdash-test-stack.XXXXXX") || return 1
	stack_state="$stack_dir/state"
	GATEWAY_URL="http://127.0.0.1:$((8080 + offset))"
	AGENT_URL="http://127.0.0.1:$((8081 + offset))"
	echo "test stack: ports +$offset, state $stack_state (up.sh output: $stack_dir/up.log)"
	# up.sh gets SIGTERM (and so stops its services) if this script dies without cleaning up.
	local pdeath=()
	command -v setpriv >/dev/null 2>&1 && pdeath=(setpriv --pdeathsig TERM --)
	# The alerts browser test's webhook receiver listens on loopback, which webhooks may reach
	# only where the operator allows it.
	RTDASH_GATEWAY__WEBHOOK_ALLOW_DESTINATIONS='["127.0.0.1"]' \
		RTDASH_CORE_AGGREGATOR__ALERTS__NOTIFIER__ALLOW_DESTINATIONS='["127.0.0.1"]' \
		"${pdeath[@]}" ./deploy/up.sh --profile debug --no-demo --port-offset "$offset" \
		--state "$stack_state" >"$stack_dir/up.log" 2>&1 </dev/null &
	stack_pid=$!
	deadline=$((SECONDS + 600)) # includes QuestDB's first start and the web build
	until curl -fsS -o /dev/null --max-time 2 "$AGENT_URL/readyz" 2>/dev/null &&
		curl -fsS -o /dev/null --max-time 2 "$GATEWAY_URL/readyz" 2>/dev/null; do
		if ! kill -0 "$stack_pid" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "the test stack did not come up; end of up.sh's output:" >&2
			tail -n 40 "$stack_dir/up.log" >&2
			return 1
		fi
		sleep 0.5
	done
	echo "test stack ready: gateway $GATEWAY_URL, edge-agent $AGENT_URL"
}

web_tests() {
	local status=0
	(cd web && npm ci --no-audit --no-fund) || return 1
	stack_start || {
		STACK_KEEP_LOGS=1 stack_stop
		return 1
	}
	# The browser test creates the keys it signs in with, using the stack's operator key.
	(cd web && RTDASH_GATEWAY_URL=$GATEWAY_URL RTDASH_AGENT_URL=$AGENT_URL \
		RTDASH_OPERATOR_KEY_FILE="$stack_state/operator.key" \
		RTDASH_BROWSER_TEST_REQUIRED=1 npm test) || status=$?
	STACK_KEEP_LOGS=$((status != 0)) stack_stop
	return "$status"
}

trap 'stack_stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if step install ./deploy/install.sh; then
	step fmt cargo fmt --all --check
	step clippy cargo clippy --workspace --all-targets -- -D warnings
	if step build cargo build --workspace --bins; then
		step test cargo test --workspace
		if [ -f web/package.json ]; then
			step web web_tests
		else
			skip web "no web/package.json"
		fi
	else
		skip test "build failed"
		skip web "build failed"
	fi
else
	skip rest "install failed"
fi
summary
exit "$failed"
