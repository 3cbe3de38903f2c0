# shellcheck shell=bash
# NATS users and QuestDB passwords of a stack started by ./deploy/up.sh (issue #16,
# docs/security.md "NATS" and "QuestDB"). Source it after deploy/lib.sh; it defines functions
# and runs nothing.
#
# At first start rtdash_lockdown_init generates, under $RTDASH_STATE/secrets (mode 0700):
#   nats-users.conf      the NATS users with bcrypt hashes of their passwords and their subject
#                        permissions (included by the server config; no clear text)
#   <service>.env        per service (core-aggregator, gateway, edge-agent), mode 0600: its
#                        NATS user and password and its QuestDB credentials, as RTDASH_*
#                        variables, exported only into that service's process
#   operator.env         the `operator` NATS user (every subject) for the nats CLI
#   questdb.env          QuestDB's admin (HTTP basic auth, PostgreSQL) and read-only passwords
# Later starts reuse them (nats-users.conf is rendered again when deploy/nats/users.conf is
# newer). Passwords are 32 characters from the OS RNG.

RTDASH_LOCKDOWN_SERVICES=(core-aggregator gateway edge-agent)

# rtdash_lockdown_secret: 32 random characters [A-Za-z0-9].
rtdash_lockdown_secret() {
	local s=
	while [ ${#s} -lt 32 ]; do
		s+=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
	done
	printf '%s' "${s:0:32}"
}

# rtdash_lockdown_bcrypt: bcrypt hashes of the passwords on stdin (one a line), one a line,
# with the small Go program in deploy/tools/bcrypt (built once into $RTDASH_CACHE/bin).
rtdash_lockdown_bcrypt() {
	local bin="$RTDASH_CACHE/bin/rtdash-bcrypt"
	if [ ! -x "$bin" ] || [ "$RTDASH_ROOT/deploy/tools/bcrypt/main.go" -nt "$bin" ]; then
		mkdir -p "$RTDASH_CACHE/bin"
		(cd "$RTDASH_ROOT/deploy/tools/bcrypt" && go build -o "$bin" .) >&2 ||
			rtdash_die "building deploy/tools/bcrypt failed (needs Go, see deploy/README.md)"
	fi
	"$bin"
}

# rtdash_lockdown_nats_users TEMPLATE OUT: renders deploy/nats/users.conf with the hashes of
# the passwords in the services' env files.
rtdash_lockdown_nats_users() {
	local dir="$RTDASH_STATE/secrets" hashes
	mapfile -t hashes < <(
		for name in "${RTDASH_LOCKDOWN_SERVICES[@]}" operator; do
			# shellcheck disable=SC1090
			(. "$dir/$name.env" && printf '%s\n' "$RTDASH_NATS__PASSWORD")
		done | rtdash_lockdown_bcrypt
	)
	[ ${#hashes[@]} -eq 4 ] || rtdash_die "could not hash the NATS passwords"
	(
		umask 077
		rtdash_render "$RTDASH_ROOT/deploy/nats/users.conf" "$dir/nats-users.conf" \
			"AGGREGATOR_HASH=${hashes[0]}" "GATEWAY_HASH=${hashes[1]}" \
			"AGENT_HASH=${hashes[2]}" "OPERATOR_HASH=${hashes[3]}"
	)
}

# rtdash_lockdown_init: generates the secrets at first start (see above); afterwards only
# renders the NATS users again when their template changed.
rtdash_lockdown_init() {
	local dir="$RTDASH_STATE/secrets" admin readonly name
	if [ -f "$dir/nats-users.conf" ] && [ -f "$dir/questdb.env" ]; then
		# Permissions change with the code (deploy/nats/users.conf newer than the rendered
		# file, as after an update): render them again, with the same passwords.
		if [ "$RTDASH_ROOT/deploy/nats/users.conf" -nt "$dir/nats-users.conf" ]; then
			rtdash_log "deploy/nats/users.conf changed: rendering the NATS users again (same passwords)"
			rtdash_lockdown_nats_users
		fi
		return 0
	fi
	rtdash_log "first start: generating NATS and QuestDB passwords into $dir (mode 0600)"
	(
		umask 077
		mkdir -p "$dir"
		chmod 700 "$dir"
		admin=$(rtdash_lockdown_secret)
		readonly=$(rtdash_lockdown_secret)
		printf 'QDB_ADMIN_USER=admin\nQDB_ADMIN_PASSWORD=%s\nQDB_READONLY_USER=rtdash_ro\nQDB_READONLY_PASSWORD=%s\n' \
			"$admin" "$readonly" >"$dir/questdb.env"
		for name in "${RTDASH_LOCKDOWN_SERVICES[@]}" operator; do
			{
				printf 'RTDASH_NATS__USER=%s\nRTDASH_NATS__PASSWORD=%s\n' "$name" "$(rtdash_lockdown_secret)"
				case $name in
				core-aggregator)
					# ILP over HTTP and /exec, with QuestDB's HTTP basic auth.
					printf 'RTDASH_QUESTDB__USER=admin\nRTDASH_QUESTDB__PASSWORD=%s\n' "$admin"
					;;
				gateway)
					# PostgreSQL wire protocol, read-only user: the gateway only queries.
					printf 'RTDASH_QUESTDB__USER=rtdash_ro\nRTDASH_QUESTDB__PASSWORD=%s\n' "$readonly"
					printf 'RTDASH_GATEWAY__QUESTDB__CREATE_TABLE=false\n'
					printf 'RTDASH_GATEWAY__ENSURE_TOPOLOGY=false\n'
					;;
				esac
			} >"$dir/$name.env"
		done
	)
	rtdash_lockdown_nats_users
}

# rtdash_lockdown_nats_conf CONF: appends the users include to a rendered server config
# (nats-server resolves an include relative to the including file: CONF is <state>/nats/).
rtdash_lockdown_nats_conf() {
	printf '\n# Users and permissions (deploy/lockdown.sh, deploy/nats/users.conf).\ninclude "../secrets/nats-users.conf"\n' >>"$1"
}

# rtdash_lockdown_questdb_conf SERVER_CONF: appends deploy/questdb/auth.conf with the
# passwords to a rendered server.conf (mode 0600: QuestDB reads them in clear).
rtdash_lockdown_questdb_conf() {
	local conf=$1
	# shellcheck disable=SC1091
	. "$RTDASH_STATE/secrets/questdb.env"
	chmod 600 "$conf"
	(
		umask 077
		rtdash_render "$RTDASH_ROOT/deploy/questdb/auth.conf" "$conf.auth" \
			"QDB_ADMIN_USER=$QDB_ADMIN_USER" "QDB_ADMIN_PASSWORD=$QDB_ADMIN_PASSWORD" \
			"QDB_READONLY_USER=$QDB_READONLY_USER" "QDB_READONLY_PASSWORD=$QDB_READONLY_PASSWORD"
	)
	printf '\n' >>"$conf"
	cat "$conf.auth" >>"$conf"
	rm -f "$conf.auth"
}

# rtdash_lockdown_wait_questdb HTTP_PORT [TIMEOUT]: wait until `select 1` answers with the
# admin password (given to curl on stdin, never on its command line).
rtdash_lockdown_wait_questdb() {
	local deadline=$((SECONDS + ${2:-60}))
	# shellcheck disable=SC1091
	. "$RTDASH_STATE/secrets/questdb.env"
	until printf 'user = "%s:%s"\n' "$QDB_ADMIN_USER" "$QDB_ADMIN_PASSWORD" |
		curl -fsS -o /dev/null --max-time 2 -K - "http://127.0.0.1:$1/exec?query=select%201" 2>/dev/null; do
		if ! rtdash_service_pid questdb >/dev/null || ((SECONDS >= deadline)); then
			rtdash_log "QuestDB was not ready within ${2:-60}s; last lines of $RTDASH_STATE/logs/questdb.log:"
			tail -n 20 "$RTDASH_STATE/logs/questdb.log" >&2
			return 1
		fi
		sleep 0.2
	done
}

# rtdash_lockdown_spawn NAME COMMAND...: rtdash_spawn with NAME's secrets file exported into
# that one process (the variables are unset again in this shell afterwards).
rtdash_lockdown_spawn() {
	local name=$1 file="$RTDASH_STATE/secrets/$1.env" line vars=()
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		vars+=("${line%%=*}")
		export "${line?}"
	done <"$file"
	rtdash_spawn "$@"
	unset "${vars[@]}"
}
