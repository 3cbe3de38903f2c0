# shellcheck shell=bash
# NATS users and QuestDB passwords of a stack started by ./deploy/up.sh (issue #16,
# docs/security.md "NATS" and "QuestDB"). Source it after deploy/lib.sh; it defines functions
# and runs nothing.
#
# At first start rtdash_lockdown_init generates, under $RTDASH_STATE/secrets (mode 0700):
#   nats-users.conf      the NATS users with bcrypt hashes of their passwords and their subject
#                        permissions (included by the server config; no clear text)
#   <service>/nats-password, <service>/questdb-password
#                        per service (core-aggregator, gateway, edge-agent; directory 0700,
#                        files 0600): its passwords, which it reads from the files
#                        (`nats.password_file`, `questdb.password_file`), so they are never in
#                        a process environment
#   <service>.env        its NATS user, its QuestDB user and the paths of those files, as
#                        RTDASH_* variables exported only into that service's process
#   operator.env         the `operator` NATS user (every subject) for the nats CLI
#   leaf/<site>.env      per edge site, made when the site is added (rtdash_lockdown_leaf_user,
#                        deploy/edge/up.sh): the `leaf-<site>` NATS user its leaf node
#                        authenticates with on the hub's leafnode port (deploy/nats/leaf-user.conf)
#   questdb.env          QuestDB's admin (HTTP basic auth, PostgreSQL) and read-only passwords
# Later starts reuse them (nats-users.conf is rendered again when deploy/nats/users.conf is
# newer; a service env file of an older state that still holds a password has it moved into
# the service's password file). Passwords are 32 characters from the OS RNG.
# The distributed configurations (deploy/cluster, deploy/edge) also call rtdash_lockdown_tls:
# a CA and a server certificate made with openssl at first start.

RTDASH_LOCKDOWN_SERVICES=(core-aggregator gateway edge-agent)
# Every NATS user of deploy/nats/users.conf, in the order of RTDASH_LOCKDOWN_HASHES.
RTDASH_LOCKDOWN_NATS_USERS=("${RTDASH_LOCKDOWN_SERVICES[@]}" operator)
RTDASH_LOCKDOWN_HASHES=(AGGREGATOR_HASH GATEWAY_HASH AGENT_HASH OPERATOR_HASH)

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
	local bin
	bin=$(rtdash_go_tool bcrypt) || exit 1
	"$bin"
}

# rtdash_lockdown_nats_users: renders deploy/nats/users.conf with the hashes of the passwords
# in the users' env files, and a `leaf-<site>` user for each site in secrets/leaf/, into
# $RTDASH_STATE/secrets/nats-users.conf.
rtdash_lockdown_nats_users() {
	local dir="$RTDASH_STATE/secrets" name sites=()
	for name in "${RTDASH_LOCKDOWN_NATS_USERS[@]}"; do
		# A state made before a user existed: give it one.
		[ -f "$dir/$name.env" ] || (umask 077 && rtdash_lockdown_user_env "$name" >"$dir/$name.env")
	done
	for name in "$dir"/leaf/*.env; do
		[ -f "$name" ] || continue
		name=${name##*/}
		sites+=("${name%.env}")
	done
	{
		for name in "${RTDASH_LOCKDOWN_NATS_USERS[@]}"; do
			rtdash_lockdown_password "$dir" "$name" nats
		done
		for name in "${sites[@]}"; do
			rtdash_lockdown_password "$dir/leaf" "$name" nats
		done
	} | rtdash_lockdown_render_users "$dir/nats-users.conf" "${sites[@]}"
}

# rtdash_lockdown_render_users OUT [SITE...]: renders deploy/nats/users.conf into OUT (0600)
# with the bcrypt hashes of the passwords on stdin, one a line: those of
# RTDASH_LOCKDOWN_NATS_USERS in that order, then those of the leaf users of SITE... (one block
# of deploy/nats/leaf-user.conf each).
rtdash_lockdown_render_users() {
	local out=$1 sites=("${@:2}") hashes i values=() leaf_users='' n=${#RTDASH_LOCKDOWN_HASHES[@]}
	mapfile -t hashes < <(rtdash_lockdown_bcrypt)
	[ ${#hashes[@]} -eq $((n + ${#sites[@]})) ] || rtdash_die "could not hash the NATS passwords"
	for i in "${!RTDASH_LOCKDOWN_HASHES[@]}"; do
		values+=("${RTDASH_LOCKDOWN_HASHES[$i]}=${hashes[$i]}")
	done
	for i in "${!sites[@]}"; do
		leaf_users+=$(rtdash_render_text "$RTDASH_ROOT/deploy/nats/leaf-user.conf" \
			"SITE=${sites[$i]}" "LEAF_HASH=${hashes[n + i]}")$'\n'
	done
	(
		umask 077
		rtdash_render "$RTDASH_ROOT/deploy/nats/users.conf" "$out" "${values[@]}" "LEAF_USERS=$leaf_users"
	)
}

# rtdash_lockdown_leaf_user SITE: the hub's `leaf-SITE` user: at the site's first addition a
# password into $RTDASH_STATE/secrets/leaf/SITE.env (0600; user, password and the CA), and the
# users file rendered again with it. Prints that env file's path; a no-op for a known site.
rtdash_lockdown_leaf_user() {
	local dir="$RTDASH_STATE/secrets" env="$RTDASH_STATE/secrets/leaf/$1.env"
	if [ ! -f "$env" ]; then
		(
			umask 077
			mkdir -p "$dir/leaf"
			rtdash_lockdown_user_env "leaf-$1" >"$env.new"
			printf 'RTDASH_NATS__TLS_CA=%s\n' "$dir/tls/ca.pem" >>"$env.new"
			mv "$env.new" "$env"
		)
		rtdash_lockdown_nats_users
	fi
	printf '%s\n' "$env"
}

# rtdash_lockdown_remove_leaf_user SITE: delete the hub's `leaf-SITE` user (its env file) and
# render the users file again without it.
rtdash_lockdown_remove_leaf_user() {
	local env="$RTDASH_STATE/secrets/leaf/$1.env"
	[ -f "$env" ] || return 0
	rm -f "$env"
	rtdash_lockdown_nats_users
}

# rtdash_lockdown_user_env NAME: prints the RTDASH_NATS__USER/PASSWORD lines of NATS user NAME
# with a new password.
rtdash_lockdown_user_env() {
	printf 'RTDASH_NATS__USER=%s\nRTDASH_NATS__PASSWORD=%s\n' "$1" "$(rtdash_lockdown_secret)"
}

# rtdash_lockdown_password DIR NAME KIND: prints NATS user (or service) NAME's password of
# KIND (nats, questdb) from DIR: its password file, else its env file (operator, leaf, and the
# services of a state made before the password files).
rtdash_lockdown_password() {
	local file="$1/$2/$3-password" key=RTDASH_NATS__PASSWORD
	[ "$3" = questdb ] && key=RTDASH_QUESTDB__PASSWORD
	if [ -f "$file" ]; then
		printf '%s\n' "$(cat "$file")"
	else
		printf '%s\n' "$(rtdash_lockdown_env_value "$1/$2.env" "$key")"
	fi
}

# rtdash_lockdown_password_files DIR NAME...: moves the passwords out of the env files of
# services NAME in DIR: RTDASH_NATS__PASSWORD=<p> becomes <p> in DIR/NAME/nats-password (0600)
# and RTDASH_NATS__PASSWORD_FILE=<that path> in the env file; the same for
# RTDASH_QUESTDB__PASSWORD (questdb-password). Files already moved are left alone.
rtdash_lockdown_password_files() {
	local dir=$1 name kind key value
	shift
	for name in "$@"; do
		for kind in nats questdb; do
			key=RTDASH_NATS__PASSWORD
			[ "$kind" = questdb ] && key=RTDASH_QUESTDB__PASSWORD
			grep -q "^$key=" "$dir/$name.env" || continue
			value=$(rtdash_lockdown_env_value "$dir/$name.env" "$key")
			(
				umask 077
				mkdir -p "$dir/$name"
				chmod 700 "$dir/$name"
				printf '%s\n' "$value" >"$dir/$name/$kind-password"
				sed -i "s|^$key=.*|${key}_FILE=$dir/$name/$kind-password|" "$dir/$name.env"
			)
		done
	done
}

# rtdash_lockdown_init: generates the secrets at first start (see above); afterwards only
# renders the NATS users again when their template changed. Every time: the services'
# passwords are in their password files, not in their env files.
rtdash_lockdown_init() {
	local dir="$RTDASH_STATE/secrets"
	if [ -f "$dir/nats-users.conf" ] && [ -f "$dir/questdb.env" ]; then
		# Permissions change with the code (deploy/nats/users.conf newer than the rendered
		# file, as after an update): render them again, with the same passwords.
		if [ "$RTDASH_ROOT/deploy/nats/users.conf" -nt "$dir/nats-users.conf" ]; then
			rtdash_log "deploy/nats/users.conf changed: rendering the NATS users again (same passwords)"
			rtdash_lockdown_nats_users
		fi
	else
		rtdash_lockdown_generate
	fi
	rtdash_lockdown_password_files "$dir" "${RTDASH_LOCKDOWN_SERVICES[@]}"
}

# rtdash_lockdown_generate: the first start's secrets (see above); the services' passwords
# are written into their env files, then moved into their password files by
# rtdash_lockdown_password_files, as those of an older state are.
rtdash_lockdown_generate() {
	local dir="$RTDASH_STATE/secrets" admin readonly name
	rtdash_log "first start: generating NATS and QuestDB passwords into $dir (mode 0600)"
	(
		umask 077
		mkdir -p "$dir"
		chmod 700 "$dir"
		admin=$(rtdash_lockdown_secret)
		readonly=$(rtdash_lockdown_secret)
		printf 'QDB_ADMIN_USER=admin\nQDB_ADMIN_PASSWORD=%s\nQDB_READONLY_USER=rtdash_ro\nQDB_READONLY_PASSWORD=%s\n' \
			"$admin" "$readonly" >"$dir/questdb.env"
		for name in "${RTDASH_LOCKDOWN_NATS_USERS[@]}"; do
			{
				rtdash_lockdown_user_env "$name"
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

# rtdash_lockdown_spawn NAME COMMAND...: rtdash_spawn with NAME's env file (its users and the
# paths of its password files) exported into that one process (the variables are unset again
# in this shell afterwards).
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

# rtdash_lockdown_tls DIR: at first start, a CA and a server certificate it signs, made with
# openssl (EC P-256), into DIR (mode 0700): ca.pem (the CA clients and servers verify
# against), ca-key.pem (the CA's key: only needed to sign new certificates; keep it offline in
# a real deployment), server.pem and server-key.pem (every NATS server of this machine:
# client, route and leafnode ports; extended key usage serverAuth and clientAuth, because
# routes present it as a client too). Subject alternative names: 127.0.0.1 and localhost,
# plus RTDASH_TLS_SANS (space-separated, e.g. "DNS:nats.example.com IP:10.0.0.5"). Keys are
# 0600. A no-op when server.pem exists; delete server.pem to make a new server certificate
# with the same CA (rotation: docs/security.md).
# rtdash_lockdown_tls DIR CA_DIR: the same with the CA of CA_DIR (its ca.pem and ca-key.pem):
# DIR gets a copy of ca.pem and a server certificate of its own, not the CA's key (an edge
# site's, deploy/edge/up.sh).
rtdash_lockdown_tls() {
	local dir=$1 ca=${2:-$1} sans="IP:127.0.0.1,DNS:localhost" san
	[ -f "$dir/server.pem" ] && [ -f "$dir/ca.pem" ] && return 0
	command -v openssl >/dev/null ||
		rtdash_die "openssl not found: it makes the NATS TLS certificates at first start (apt-get install -y openssl)"
	for san in ${RTDASH_TLS_SANS:-}; do sans+=",$san"; done
	(
		umask 077
		mkdir -p "$dir"
		chmod 700 "$dir"
		if [ "$ca" != "$dir" ]; then
			[ -f "$ca/ca-key.pem" ] || { echo "$ca/ca-key.pem missing: the CA's key signs the certificate" && exit 1; }
			cp "$ca/ca.pem" "$dir/ca.pem"
		elif [ ! -f "$dir/ca.pem" ]; then
			openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
				-days 3650 -subj "/CN=rtdash NATS CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
				-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
		fi
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-subj "/CN=rtdash NATS server" -keyout "$dir/server-key.pem" -out "$dir/server.csr"
		printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
			"extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans" >"$dir/server.ext"
		openssl x509 -req -in "$dir/server.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" \
			-set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "$dir/server.ext" \
			-out "$dir/server.pem"
		rm -f "$dir/server.csr" "$dir/server.ext"
	) >"$dir.log" 2>&1 || {
		cat "$dir.log" >&2
		rtdash_die "openssl could not make the TLS certificates in $dir"
	}
	rm -f "$dir.log"
	chmod 644 "$dir/ca.pem" "$dir/server.pem"
}

# rtdash_lockdown_route_secret: at first start, the password of the `route` user the cluster's
# nodes authenticate to each other with, into $RTDASH_STATE/secrets/route.env (0600).
rtdash_lockdown_route_secret() {
	local file="$RTDASH_STATE/secrets/route.env"
	[ -f "$file" ] && return 0
	(umask 077 && printf 'ROUTE_PASSWORD=%s\n' "$(rtdash_lockdown_secret)" >"$file")
}

# rtdash_lockdown_distributed_init: what the cluster and its edge sites need, at first start:
# the users and passwords of rtdash_lockdown_init, the route password, the certificates
# ($RTDASH_STATE/secrets/tls), and RTDASH_NATS__TLS_CA in every NATS user's env file.
rtdash_lockdown_distributed_init() {
	local dir="$RTDASH_STATE/secrets" name
	rtdash_lockdown_init
	rtdash_lockdown_route_secret
	rtdash_lockdown_tls "$dir/tls"
	for name in "${RTDASH_LOCKDOWN_NATS_USERS[@]}"; do
		grep -q '^RTDASH_NATS__TLS_CA=' "$dir/$name.env" ||
			printf 'RTDASH_NATS__TLS_CA=%s\n' "$dir/tls/ca.pem" >>"$dir/$name.env"
	done
}

# rtdash_lockdown_env_value FILE KEY: prints KEY's value in env file FILE.
rtdash_lockdown_env_value() { sed -n "s/^$2=//p" "$1" | head -n 1; }
