#!/usr/bin/env bash
# Installs what rtdash needs beyond Go, Java, Rust and curl into ${RTDASH_CACHE:-~/.cache/rtdash}:
# the pinned nats-server (built with `go install`), the pinned QuestDB jar (from Maven Central,
# sha1-checked) and, for the browser tests, chromium (apt). Idempotent: what is present and
# intact is kept, so a second run takes well under a second. Versions: deploy/versions.env.
#
# Environment: RTDASH_CACHE; RTDASH_NATS_SERVER / RTDASH_QUESTDB_JAR / RTDASH_JAVA to use other
# binaries (then they are only checked, not installed); RTDASH_SKIP_CHROMIUM=1 to skip chromium;
# RTDASH_MAVEN_URL (default https://repo1.maven.org/maven2) for a Maven mirror.
set -euo pipefail

# shellcheck source=deploy/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

maven=${RTDASH_MAVEN_URL:-https://repo1.maven.org/maven2}
logs="$RTDASH_CACHE/logs"
started=$EPOCHREALTIME

# fail WHAT HOW: the one line a failure prints.
fail() {
	printf 'rtdash install: FAILED: %s. %s\n' "$1" "$2" >&2
	exit 1
}
note() { printf 'rtdash install: %s\n' "$*" >&2; }

mkdir -p "$RTDASH_CACHE" "$logs" || fail "cannot create $RTDASH_CACHE" "Set RTDASH_CACHE to a writable directory and rerun ./deploy/install.sh"
command -v curl >/dev/null || fail "curl not found" "Install curl (apt-get install -y curl) and rerun ./deploy/install.sh"

# One install at a time (test.sh and up.sh both call this).
exec 9>"$RTDASH_CACHE/.install.lock"
flock 9

# --- Java (not installed here; QuestDB needs it) ---------------------------------------------
java_major() { "$1" -version 2>&1 | sed -n 's/.* version "\([0-9]*\)[."].*/\1/p' | head -n 1; }
java_bin=$(command -v "$RTDASH_JAVA" 2>/dev/null) ||
	fail "java not found ($RTDASH_JAVA)" "Install Java $JAVA_MIN_MAJOR+ (apt-get install -y openjdk-17-jre-headless) or set RTDASH_JAVA, then rerun ./deploy/install.sh"
java_version=$(java_major "$java_bin")
if [ -z "$java_version" ] || [ "$java_version" -lt "$JAVA_MIN_MAJOR" ]; then
	fail "$java_bin is Java ${java_version:-?}, QuestDB $QUESTDB_VERSION needs $JAVA_MIN_MAJOR+" "Install Java $JAVA_MIN_MAJOR+ or set RTDASH_JAVA, then rerun ./deploy/install.sh"
fi

# --- nats-server -----------------------------------------------------------------------------
nats_ok() { [ -x "$1" ] && "$1" --version 2>/dev/null | grep -qF "$NATS_SERVER_VERSION"; }
if [ "$RTDASH_NATS_SERVER" != "$RTDASH_NATS_SERVER_PINNED" ]; then
	[ -x "$RTDASH_NATS_SERVER" ] || fail "RTDASH_NATS_SERVER=$RTDASH_NATS_SERVER is not an executable" "Unset RTDASH_NATS_SERVER to install the pinned one, then rerun ./deploy/install.sh"
elif ! nats_ok "$RTDASH_NATS_SERVER"; then
	command -v go >/dev/null || fail "go not found, needed to build nats-server $NATS_SERVER_VERSION" "Install Go $GO_MIN_VERSION+ and rerun ./deploy/install.sh"
	note "building nats-server $NATS_SERVER_VERSION with go install (about a minute)"
	dir=$(dirname "$RTDASH_NATS_SERVER")
	mkdir -p "$dir"
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	if ! GOBIN="$tmp" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" >"$logs/nats-server.log" 2>&1; then
		rm -rf "$tmp"
		fail "go install github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION (log: $logs/nats-server.log)" "Check Go and network access to the Go module proxy, then rerun ./deploy/install.sh"
	fi
	mv -f "$tmp/nats-server" "$RTDASH_NATS_SERVER"
	rm -rf "$tmp"
	nats_ok "$RTDASH_NATS_SERVER" || fail "$RTDASH_NATS_SERVER does not report version $NATS_SERVER_VERSION" "Delete $dir and rerun ./deploy/install.sh"
fi

# --- QuestDB jar -----------------------------------------------------------------------------
jar_ok() { [ -f "$1" ] && [ -f "$1.sha1" ] && [ "$(sha1sum <"$1" | cut -d' ' -f1)" = "$(cut -c1-40 <"$1.sha1")" ]; }
if [ "$RTDASH_QUESTDB_JAR" != "$RTDASH_QUESTDB_JAR_PINNED" ]; then
	[ -f "$RTDASH_QUESTDB_JAR" ] || fail "RTDASH_QUESTDB_JAR=$RTDASH_QUESTDB_JAR does not exist" "Unset RTDASH_QUESTDB_JAR to install the pinned one, then rerun ./deploy/install.sh"
elif ! jar_ok "$RTDASH_QUESTDB_JAR"; then
	url="$maven/org/questdb/questdb/$QUESTDB_VERSION/questdb-$QUESTDB_VERSION.jar"
	jar=$RTDASH_QUESTDB_JAR
	mkdir -p "$(dirname "$jar")"
	err=$(curl -fsSL --retry 3 --connect-timeout 20 -o "$jar.sha1.part" "$url.sha1" 2>&1) ||
		fail "download of $url.sha1 (${err:-curl failed})" "Check network access to $maven (or set RTDASH_MAVEN_URL), then rerun ./deploy/install.sh"
	mv -f "$jar.sha1.part" "$jar.sha1"
	if ! jar_ok "$jar"; then # a jar that is already there and intact is kept
		note "downloading QuestDB $QUESTDB_VERSION (30 MB)"
		err=$(curl -fsSL --retry 3 --connect-timeout 20 -o "$jar.part" "$url" 2>&1) ||
			fail "download of $url (${err:-curl failed})" "Check network access to $maven (or set RTDASH_MAVEN_URL), then rerun ./deploy/install.sh"
		mv -f "$jar.part" "$jar"
		jar_ok "$jar" || {
			rm -f "$jar"
			fail "sha1 of $url does not match $url.sha1" "Rerun ./deploy/install.sh (a partial or corrupted download was removed)"
		}
	fi
fi

# --- chromium (browser tests) ----------------------------------------------------------------
chromium=/usr/bin/chromium
if [ -x "$chromium" ]; then
	:
elif [ "${RTDASH_SKIP_CHROMIUM:-0}" = 1 ]; then
	chromium="skipped (RTDASH_SKIP_CHROMIUM=1)"
else
	if [ "$(id -u)" = 0 ]; then
		sudo=()
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		fail "chromium is missing and installing it needs root" "Run 'sudo apt-get install -y chromium' (or set RTDASH_SKIP_CHROMIUM=1), then rerun ./deploy/install.sh"
	fi
	note "installing chromium with apt-get (a few minutes)"
	apt_install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	if ! apt_install >"$logs/chromium.log" 2>&1; then
		"${sudo[@]}" apt-get update >>"$logs/chromium.log" 2>&1 || true
		apt_install >>"$logs/chromium.log" 2>&1 ||
			fail "apt-get install chromium (log: $logs/chromium.log)" "Check apt sources and network, then rerun ./deploy/install.sh"
	fi
	[ -x "$chromium" ] || fail "apt-get installed chromium but $chromium is missing" "Check the chromium package, then rerun ./deploy/install.sh"
fi

elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
printf 'rtdash install: ready in %ss (cache %s)\n' "$elapsed" "$RTDASH_CACHE"
printf '  nats-server  %s (%s)\n' "$RTDASH_NATS_SERVER" "$("$RTDASH_NATS_SERVER" --version 2>&1 | head -n 1)"
printf '  questdb jar  %s\n' "$RTDASH_QUESTDB_JAR"
printf '  java         %s (%s)\n' "$java_bin" "$java_version"
printf '  chromium     %s\n' "$chromium"
