# Sourced by bench/run.sh: starts and stops the fan-out peer, Centrifugo, on loopback.
#
#   centrifugo_start BIN DIR PORT   # sets CF_PID and CF_URL, exports the probe's secrets
#   centrifugo_stop
#
# The configuration (DIR/config.json, mode 600): the HTTP server on 127.0.0.1:PORT only, the
# unidirectional SSE transport on (`/connection/uni_sse`), connection JWTs verified with an
# HMAC SHA-256 secret, the server API behind an API key, the health endpoint, log level warn;
# everything else Centrifugo's defaults (in-memory engine, no history, pings every 25 s). The
# secret and the key are fresh random values of each run, handed to `rtdash-loadgen fanout
# --target centrifugo` in RTDASH_CENTRIFUGO_HMAC_SECRET / RTDASH_CENTRIFUGO_API_KEY and never
# printed. Its open-file limit is raised to the hard limit (10,000 viewers need 10,000
# descriptors).

CF_PID= CF_URL=

centrifugo_start() {
	local bin=$1 dir=$2 port=$3 i
	mkdir -p "$dir"
	RTDASH_CENTRIFUGO_HMAC_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	RTDASH_CENTRIFUGO_API_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	export RTDASH_CENTRIFUGO_HMAC_SECRET RTDASH_CENTRIFUGO_API_KEY
	(
		umask 077
		cat >"$dir/config.json" <<JSON
{
  "http_server": { "address": "127.0.0.1", "port": $port },
  "log": { "level": "warn" },
  "client": { "token": { "hmac_secret_key": "$RTDASH_CENTRIFUGO_HMAC_SECRET" } },
  "http_api": { "key": "$RTDASH_CENTRIFUGO_API_KEY" },
  "uni_sse": { "enabled": true },
  "health": { "enabled": true }
}
JSON
	)
	if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" 2>/dev/null; then
		echo "centrifugo: port $port is already in use" >&2
		return 1
	fi
	(
		ulimit -n "$(ulimit -Hn)"
		exec "$bin" --config "$dir/config.json"
	) >"$dir/centrifugo.log" 2>&1 &
	CF_PID=$!
	CF_URL="http://127.0.0.1:$port"
	for i in $(seq 100); do
		if curl -fsS -o /dev/null --max-time 2 "$CF_URL/health" 2>/dev/null; then
			return 0
		fi
		kill -0 "$CF_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "centrifugo: did not become healthy (log: $dir/centrifugo.log)" >&2
	tail -n 20 "$dir/centrifugo.log" >&2
	centrifugo_stop
	return 1
}

centrifugo_stop() {
	if [ -n "$CF_PID" ] && kill -0 "$CF_PID" 2>/dev/null; then
		kill -TERM "$CF_PID" 2>/dev/null || true
		wait "$CF_PID" 2>/dev/null || true
	fi
	CF_PID=
}
