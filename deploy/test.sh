#!/usr/bin/env bash
# Runs rtdash's checks and tests; on a fresh machine it first installs what they need
# (./deploy/install.sh). Steps: install, cargo fmt --check, cargo clippy (-D warnings),
# cargo test --workspace (integration tests start their own nats-server and QuestDB), and the
# browser tests in web/ when web/package.json exists. Every step runs even when an earlier
# one failed (install excepted); prints a summary and exits non-zero if any step failed.
set -uo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RTDASH_ROOT" || exit 1

# The integration-test harness (tests/src) starts these binaries.
export RTDASH_NATS_SERVER RTDASH_QUESTDB_JAR RTDASH_JAVA

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

# shellcheck disable=SC2317 # called through step
web_tests() { (cd web && npm ci && npm test); }

if step install ./deploy/install.sh; then
	step fmt cargo fmt --all --check
	step clippy cargo clippy --workspace --all-targets -- -D warnings
	step test cargo test --workspace
	if [ -f web/package.json ]; then
		step web web_tests
	else
		skip web "no web/package.json"
	fi
else
	skip rest "install failed"
fi
summary
exit "$failed"
