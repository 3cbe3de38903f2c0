#!/usr/bin/env bash
# The StatsD peer of the producer-protocol benchmark (BENCHMARKS.md, "Producer protocols"):
# Prometheus statsd_exporter, built once and started on loopback in the foreground.
#
#   bench/peers/statsd_exporter.sh --install            # build only; print the binary's path
#   bench/peers/statsd_exporter.sh [UDP_PORT [WEB_PORT]] # start: StatsD on 127.0.0.1:UDP_PORT
#                                                        # (default 9125), /metrics on WEB_PORT (9102)
#
# `go install github.com/prometheus/statsd_exporter@v0.31.0` (from the Go module proxy, with the
# machine's Go) into ~/.cache/rtdash/statsd_exporter-v0.31.0/ (RTDASH_PEERS_CACHE overrides the
# root), reused while it is there. Started with its defaults but for the addresses (no TCP
# listener: the benchmark sends UDP only) and a receive buffer as large as the edge agent's
# (`statsd.recv_buffer_bytes`, 8 MiB; the kernel caps both at net.core.rmem_max). Its own counters
# tell what it took: `statsd_exporter_udp_packets_total`, `statsd_exporter_lines_total`,
# `statsd_exporter_events_total{type}`, and `statsd_exporter_udp_packet_drops_total` when its
# packet queue is full (`rtdash-loadgen protocols --statsd-peer ... --statsd-peer-metrics ...`).
set -euo pipefail

VERSION=v0.31.0
DIR=${RTDASH_PEERS_CACHE:-$HOME/.cache/rtdash}/statsd_exporter-$VERSION
BIN=$DIR/statsd_exporter

if [ ! -x "$BIN" ]; then
	command -v go >/dev/null || {
		echo "statsd_exporter: the go command is needed to build statsd_exporter $VERSION" >&2
		exit 1
	}
	echo "statsd_exporter: building github.com/prometheus/statsd_exporter@$VERSION (once; a few minutes)" >&2
	mkdir -p "$DIR"
	GOBIN="$DIR" GOFLAGS=-mod=mod go install "github.com/prometheus/statsd_exporter@$VERSION" >&2
fi
if [ "${1:-}" = --install ]; then
	echo "$BIN"
	exit 0
fi
udp_port=${1:-9125}
web_port=${2:-9102}
exec "$BIN" --statsd.listen-udp="127.0.0.1:$udp_port" --statsd.listen-tcp="" \
	--statsd.listen-unixgram="" --statsd.read-buffer=$((8 * 1024 * 1024)) \
	--web.listen-address="127.0.0.1:$web_port" --log.level=warn
