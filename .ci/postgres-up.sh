#!/usr/bin/env bash
# Start Debian's PostgreSQL on this machine for the job service's store tests, for CI and by hand.
# Run as root:  sudo .ci/postgres-up.sh
#
# What it leaves running: the packaged cluster (pg_lsclusters; one is created when the package made
# none), listening on 127.0.0.1:$PGPORT, with the role $PG_ROLE (password $PG_PASSWORD, CREATEDB: the
# tests create a database of their own for each test and drop it afterwards) and the database $PG_DB
# owned by it.  The last line it prints is the URL the tests read from TEST_DATABASE_URL:
#   postgresql://ladder:ladder@127.0.0.1:5432/ladder_test
# The password is a fixed test credential of a database bound to the loopback, not a secret.
#
# Idempotent: a running cluster is left running, an existing role gets its password and CREATEDB
# set again, an existing database is kept.  Exits non-zero, with the cluster's log tail, when the
# server does not accept connections within PG_UP_WAIT_S seconds (default 30).
#
# Needs the Debian package postgresql (.ci/run installs it).
set -euo pipefail

PG_ROLE=${PG_ROLE:-ladder}
PG_PASSWORD=${PG_PASSWORD:-ladder}
PG_DB=${PG_DB:-ladder_test}
WAIT_S=${PG_UP_WAIT_S:-30}

log() { printf '[postgres-up %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[postgres-up %s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (sudo $0)"
for bin in pg_lsclusters pg_ctlcluster pg_createcluster pg_isready; do
    command -v "$bin" >/dev/null 2>&1 || die "$bin not found: apt-get install -y postgresql"
done
[[ $PG_ROLE =~ ^[a-z_][a-z0-9_]*$ && $PG_DB =~ ^[a-z_][a-z0-9_]*$ ]] ||
    die "PG_ROLE and PG_DB must be plain lower-case identifiers (got '$PG_ROLE', '$PG_DB')"
[[ $PG_PASSWORD != *"'"* ]] || die "PG_PASSWORD may not contain a single quote"

# The first cluster of the newest installed version: "<version> <name> <port> <status> ..."
read -r version cluster port status _ < <(pg_lsclusters -h | sort -k1,1V | tail -n1) || true
if [[ -z ${version:-} ]]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
    [[ -n $version ]] || die "no PostgreSQL server installed under /usr/lib/postgresql"
    log "no cluster: creating $version/main"
    pg_createcluster "$version" main >/dev/null
    read -r version cluster port status _ < <(pg_lsclusters -h | sort -k1,1V | tail -n1)
fi

logfile=/var/log/postgresql/postgresql-${version}-${cluster}.log
if [[ $status != online* ]]; then
    log "starting cluster $version/$cluster on port $port"
    pg_ctlcluster "$version" "$cluster" start ||
        { tail -n 40 "$logfile" >&2 2>/dev/null || true; die "pg_ctlcluster $version $cluster start failed"; }
else
    log "cluster $version/$cluster already running on port $port"
fi

ready=0
for _ in $(seq "$WAIT_S"); do
    if pg_isready -q -h 127.0.0.1 -p "$port"; then ready=1; break; fi
    sleep 1
done
if (( ! ready )); then
    tail -n 40 "$logfile" >&2 2>/dev/null || true
    die "PostgreSQL on 127.0.0.1:$port did not accept connections within ${WAIT_S} s"
fi

psql_admin() { su -s /bin/sh postgres -c "psql -v ON_ERROR_STOP=1 -q -X -p $port $*"; }

if [[ $(psql_admin "-tAc \"SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'\"") == 1 ]]; then
    psql_admin "-c \"ALTER ROLE $PG_ROLE WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD'\""
else
    log "creating role $PG_ROLE"
    psql_admin "-c \"CREATE ROLE $PG_ROLE WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD'\""
fi
if [[ $(psql_admin "-tAc \"SELECT 1 FROM pg_database WHERE datname = '$PG_DB'\"") != 1 ]]; then
    log "creating database $PG_DB"
    psql_admin "-c \"CREATE DATABASE $PG_DB OWNER $PG_ROLE\""
fi

url="postgresql://${PG_ROLE}:${PG_PASSWORD}@127.0.0.1:${port}/${PG_DB}"
PGPASSWORD=$PG_PASSWORD psql -q -X -h 127.0.0.1 -p "$port" -U "$PG_ROLE" -d "$PG_DB" -tAc 'SELECT 1' >/dev/null ||
    die "cannot log in as $PG_ROLE over TCP on 127.0.0.1:$port (pg_hba.conf?)"
log "ready: $url"
printf '%s\n' "$url"
