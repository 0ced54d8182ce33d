#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tests and the demo: loopback only, trust auth, no fsync.
# Usage: scripts/postgres.sh start|stop|status|dsn|destroy
#   FRAUD_PG_DIR   cluster directory (default: .fraud/postgres); data, socket, log and port live there.
#                  As root, where the `postgres` user cannot reach it (a checkout under /root, a
#                  mktemp folder), the cluster lives in /var/tmp/fraud-postgres/<hash of the path>.
#   FRAUD_PG_PORT  TCP port on 127.0.0.1 for `start` (default: 54329)
#   FRAUD_PG_BIN   server binaries (default: /usr/lib/postgresql/15/bin)
# Idempotent: installs Debian's postgresql-15 only when its binaries are missing, initialises the
# cluster once, and `start`/`stop` do nothing when it already is in that state. `start` and `dsn`
# print the DSN (database `fraud`, user `fraud`) on stdout; failures exit non-zero with one line.
# As root the server runs as the `postgres` user, which then owns the cluster directory.
set -euo pipefail
source "$(dirname "$0")/debian.sh"

DIR="${FRAUD_PG_DIR:-.fraud/postgres}"
PORT="${FRAUD_PG_PORT:-54329}"
PG_BIN="${FRAUD_PG_BIN:-/usr/lib/postgresql/15/bin}"
DATA="$DIR/data"

die() { printf 'postgres.sh: %s\n' "$*" >&2; exit 1; }
log() { printf '[postgres] %s\n' "$*" >&2; }

as_owner() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  [[ -x $PG_BIN/pg_ctl ]] || need_packages postgresql-15 || exit 1
  id postgres >/dev/null 2>&1 || [[ $EUID -ne 0 ]] || die "user postgres not found (it comes with postgresql-15)"
}

# locate [quiet] : makes DIR absolute and, as root, one the postgres user can reach and owns.
locate() {
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
  if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1; then
    chown postgres: "$DIR"
    if ! runuser -u postgres -- test -x "$DIR"; then
      local requested=$DIR
      DIR=/var/tmp/fraud-postgres/$(sha256sum <<<"$requested" | cut -c1-12)
      mkdir -p -m 0755 /var/tmp/fraud-postgres "$DIR"
      [[ ${1:-} == quiet ]] || log "user postgres cannot reach $requested; the cluster lives in $DIR"
    fi
    chown postgres: "$DIR"
  fi
  DATA="$DIR/data"
}

running() { [[ -f $DATA/PG_VERSION ]] && as_owner "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

dsn() {
  [[ -f $DIR/port ]] || die "no cluster in $DIR (run: $0 start)"
  printf 'postgresql://fraud@127.0.0.1:%s/fraud\n' "$(cat "$DIR/port")"
}

start() {
  install
  locate
  if running; then dsn; return; fi
  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initialising a cluster in $DATA"
    as_owner "$PG_BIN/initdb" -D "$DATA" -U fraud -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null \
      || die "initdb failed"
  fi
  # A busy port would only show up as a failed start deep in the server log.
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on 127.0.0.1 is taken (another PostgreSQL?); choose another with FRAUD_PG_PORT"
  fi
  printf '%s\n' "$PORT" >"$DIR/port"
  as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 30 start \
    -o "-h 127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null || die "server did not start; see $DIR/postgres.log"
  if [[ -z $(as_owner "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U fraud -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'fraud'") ]]; then
    as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U fraud fraud || die "createdb fraud failed"
  fi
  log "running on 127.0.0.1:$PORT (data in $DATA)"
  dsn
}

stop() {
  if running; then
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" -w -t 30 -m fast stop >/dev/null || die "pg_ctl stop failed"
    log "stopped"
  fi
}

destroy() { stop; rm -rf "$DIR"; }

case "${1:-}" in
  start) start ;;
  stop) locate quiet; stop ;;
  status) locate quiet; if running; then log "running"; else log "not running"; exit 3; fi ;;
  dsn) locate quiet; dsn ;;
  destroy) locate quiet; destroy ;;
  *) die "usage: $0 start|stop|status|dsn|destroy" ;;
esac
