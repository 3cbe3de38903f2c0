#!/usr/bin/env bash
# Installs the peer engines of the side-by-side benchmark into throwaway virtual environments
# and prints the directory that holds them:
#
#   bench/peers/setup.sh            # -> ~/.cache/rtdash/peers-venv/<key>, with flink/ and spark/
#
# Pinned: PyFlink (apache-flink) 2.3.0 and PySpark 4.0.5 from PyPI, each in a virtual
# environment of its own (their py4j pins differ), created with the machine's python3; both
# run on the machine's Java 17 (`java` on PATH or JAVA_HOME). The directory is keyed by the
# pinned versions and the Python version, so a change of pin installs afresh and an unchanged
# one reuses the cache (a `.complete` file marks a finished install; a broken one is removed
# and redone). RTDASH_PEERS_VENV overrides the cache root.
set -euo pipefail

FLINK_VERSION=2.3.0
SPARK_VERSION=4.0.5
PYTHON=${PYTHON:-python3}

log() { printf 'peers: %s\n' "$*" >&2; }

java_major=$(java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}')
if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
	log "Java 17 or newer is needed on PATH (found: ${java_major:-none})"
	exit 1
fi
py=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
ROOT=${RTDASH_PEERS_VENV:-$HOME/.cache/rtdash/peers-venv}
DIR="$ROOT/flink-$FLINK_VERSION-spark-$SPARK_VERSION-py$py"

install() { # NAME REQUIREMENT
	local venv="$DIR/$1"
	if [ -f "$venv/.complete" ]; then
		return
	fi
	rm -rf "$venv"
	log "installing $2 into $venv (once; a few minutes)"
	"$PYTHON" -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "$2" >&2
	"$venv/bin/pip" freeze >"$venv/.complete"
}
mkdir -p "$DIR"
install flink "apache-flink==$FLINK_VERSION"
install spark "pyspark==$SPARK_VERSION"
echo "$DIR"
