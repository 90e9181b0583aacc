#!/usr/bin/env bash
# Start a private PostgreSQL server (Debian's postgresql package) for the history tests.
# Usage: start-postgres.sh DIR PORT USER PASS DB
# Everything lives in DIR (data/, postgres.log, the Unix socket); it listens on 127.0.0.1:PORT
# only, password (scram-sha-256) auth for USER, who owns the database DB. Run as root, the server
# runs as the `postgres` system user (PostgreSQL refuses root) and DIR is handed to it.
# Idempotent and flock-protected: a server already started from DIR is left running.
# Exit 3: PostgreSQL is not installed; exit 4: PORT is taken by something else.
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 DIR PORT USER PASS DB" >&2; exit 2; }
dir=$1 port=$2 user=$3 pass=$4 db=$5
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 3; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
exec 9>"$dir/.start.lock"
flock 9

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi

ready() { as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; }

if [ -s "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    ready && exit 0
fi
if ready; then
    echo "something already answers on 127.0.0.1:$port; pick another port" >&2
    exit 4
fi

if [ ! -s "$dir/data/PG_VERSION" ]; then
    # The password goes through a file only the server's user reads, not argv.
    pwfile=$(mktemp "$dir/.pw.XXXXXX")
    printf '%s\n' "$pass" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
    as_owner "$bin/initdb" -D "$dir/data" -U "$user" --pwfile="$pwfile" --auth=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$pwfile"
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
fi

as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null 2>&1 9>&- || {
    echo "postgres on 127.0.0.1:$port did not come up; last lines of $dir/postgres.log:" >&2
    tail -n 20 "$dir/postgres.log" >&2
    grep -q 'already in use' "$dir/postgres.log" && exit 4
    exit 1
}
# USER (the superuser) owns DB, created once; the password reaches psql by the environment.
export PGPASSWORD=$pass
if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
fi
