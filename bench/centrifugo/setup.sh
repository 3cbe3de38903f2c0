#!/usr/bin/env bash
# Builds the fan-out peer, Centrifugo, once and prints the path of its binary:
#
#   bench/centrifugo/setup.sh       # -> ~/.cache/rtdash/centrifugo-v6.9.1/centrifugo
#
# `go install github.com/centrifugal/centrifugo/v6@v6.9.1` (from the Go module proxy, with the
# machine's Go) into a cache directory keyed by the version; reused while it is there and says
# its version. The version is stamped the way Centrifugo's release builds do (`-X
# .../internal/build.Version`): a plain `go install` leaves it at 0.0.0, which only changes
# `centrifugo version` and a "development build" warning in the log.
# RTDASH_CENTRIFUGO_CACHE overrides the cache root.
set -euo pipefail

VERSION=v6.9.1
DIR=${RTDASH_CENTRIFUGO_CACHE:-$HOME/.cache/rtdash}/centrifugo-$VERSION
BIN=$DIR/centrifugo

if [ ! -x "$BIN" ] || ! "$BIN" version 2>/dev/null | grep -q "v${VERSION#v} "; then
	command -v go >/dev/null || {
		echo "centrifugo: the go command is needed to build Centrifugo $VERSION" >&2
		exit 1
	}
	echo "centrifugo: building github.com/centrifugal/centrifugo/v6@$VERSION (once; a few minutes)" >&2
	mkdir -p "$DIR"
	GOBIN="$DIR" GOFLAGS=-mod=mod go install \
		-ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=${VERSION#v}" \
		"github.com/centrifugal/centrifugo/v6@$VERSION" >&2
fi
"$BIN" version >&2
echo "$BIN"
