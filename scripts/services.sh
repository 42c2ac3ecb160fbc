#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The backing services for development and tests, on loopback:
# PostgreSQL 127.0.0.1:5432 (trust auth), Redis 127.0.0.1:6379, and Ceph RGW (S3)
# through scripts/ceph.sh.
#
#   scripts/services.sh up [--no-ceph]   reuse or start them; print the env lines
#   scripts/services.sh down [--purge]   stop Ceph, and PostgreSQL/Redis if this script started them
#   scripts/services.sh env              print the env lines again
#
# PG_PORT / REDIS_PORT move PostgreSQL / Redis off 5432 / 6379.
#
# Writes the env lines to ${ZEDGE_SERVICES_DIR:-<repo>/.services}/services.env,
# so `set -a; . .services/services.env; set +a` sets up a shell.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")
LOG_TAG=services
# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"

SERVICES_DIR=${ZEDGE_SERVICES_DIR:-$REPO_DIR/.services}
ENV_FILE=$SERVICES_DIR/services.env
# Markers for what this script started, so `down` stops only those.
STARTED_PG=$SERVICES_DIR/started-postgres
STARTED_REDIS=$SERVICES_DIR/started-redis

PG_HOST=127.0.0.1
PG_PORT=${PG_PORT:-5432}
REDIS_HOST=127.0.0.1
REDIS_PORT=${REDIS_PORT:-6379}
DATABASE_URL=postgres://postgres@$PG_HOST:$PG_PORT/postgres
REDIS_URL=redis://$REDIS_HOST:$REDIS_PORT

pg_answers() { command -v pg_isready >/dev/null && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
pg_trust_works() {
  PGCONNECT_TIMEOUT=5 psql -w -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' \
    >/dev/null 2>&1
}
redis_answers() {
  command -v redis-cli >/dev/null &&
    [[ $(timeout 5 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# "VERSION CLUSTER" of the Debian cluster configured for $PG_PORT, if any.
pg_cluster() {
  pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { printf "%s %s", $1, $2; exit }'
}

# Debian's default pg_hba asks for a password on 127.0.0.1; tests connect as
# postgres without one. Put a trust line first (first match wins).
pg_allow_trust() {
  local ver=$1 name=$2 hba
  hba=/etc/postgresql/$ver/$name/pg_hba.conf
  [[ -f $hba ]] || die "no $hba"
  if ! grep -qE '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    log "adding 'host all all 127.0.0.1/32 trust' to $hba (original kept in $SERVICES_DIR)"
    cp -p "$hba" "$SERVICES_DIR/pg_hba.conf.orig-$ver-$name"
    {
      echo '# Added by zedge-p2p scripts/services.sh: passwordless loopback for development.'
      echo 'host    all             all             127.0.0.1/32            trust'
      cat "$SERVICES_DIR/pg_hba.conf.orig-$ver-$name"
    } >"$hba"
  fi
}

pg_up() {
  if pg_answers; then
    if pg_trust_works; then
      log "PostgreSQL: already answering on $PG_HOST:$PG_PORT"
      return 0
    fi
    # Running but asks for a password: allow trust on loopback and reload.
    local c
    c=$(pg_cluster)
    [[ -n $c ]] || die "PostgreSQL on $PG_PORT refuses user postgres without a password, and it is not a Debian cluster"
    # shellcheck disable=SC2086 # "VERSION CLUSTER" splits into two arguments.
    pg_allow_trust $c
    # shellcheck disable=SC2086
    pg_ctlcluster --skip-systemctl-redirect $c reload
    sleep 0.5
    pg_trust_works || die "PostgreSQL still refuses user postgres without a password"
    return 0
  fi

  ensure_packages postgresql
  local c ver name=main
  c=$(pg_cluster)
  if [[ -z $c ]]; then
    # No cluster on this port (install without a main cluster, or main on
    # another port): create one.
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
    [[ -n $ver ]] || die "PostgreSQL is installed but no server version found"
    [[ -d /etc/postgresql/$ver/main ]] && name=zedge
    log "PostgreSQL: creating cluster $ver/$name on port $PG_PORT"
    pg_createcluster "$ver" "$name" --port "$PG_PORT" >&2
    c="$ver $name"
  fi
  # shellcheck disable=SC2086
  pg_allow_trust $c
  if pg_answers; then
    # The package's postinst may have started it already; reload for pg_hba.
    # shellcheck disable=SC2086
    pg_ctlcluster --skip-systemctl-redirect $c reload
  else
    log "PostgreSQL: starting cluster $c"
    # shellcheck disable=SC2086
    pg_ctlcluster --skip-systemctl-redirect $c start >&2
    printf '%s\n' "$c" >"$STARTED_PG"
  fi
  local i
  for ((i = 0; i < 300; i++)); do
    pg_answers && pg_trust_works && return 0
    sleep 0.1
  done
  die "PostgreSQL did not accept connections on $PG_HOST:$PG_PORT"
}

redis_up() {
  if redis_answers; then
    log "Redis: already answering on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  ensure_packages redis-server
  redis_answers && return 0 # the package may have started it
  log "Redis: starting on $REDIS_HOST:$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  # No persistence: this is a cache for tests, and it keeps start and stop instant.
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
  printf '%s\n' "$REDIS_PORT" >"$STARTED_REDIS"
  local i
  for ((i = 0; i < 100; i++)); do
    redis_answers && return 0
    sleep 0.1
  done
  die "Redis did not answer on $REDIS_HOST:$REDIS_PORT"
}

cmd_up() {
  local with_ceph=1 t0 s3_env=""
  [[ ${1:-} == --no-ceph ]] && with_ceph=0
  t0=$(now)
  mkdir -p "$SERVICES_DIR"
  pg_up
  redis_up
  if ((with_ceph == 1)); then
    s3_env=$("$SCRIPT_DIR/ceph.sh" up) || die "scripts/ceph.sh up failed"
  fi
  {
    printf 'DATABASE_URL=%s\nREDIS_URL=%s\n' "$DATABASE_URL" "$REDIS_URL"
    [[ -z $s3_env ]] || printf '%s\n' "$s3_env"
  } >"$ENV_FILE"
  log "all up in $(elapsed_since "$t0") s; env in $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_down() {
  local purge=()
  [[ ${1:-} == --purge ]] && purge=(--purge)
  "$SCRIPT_DIR/ceph.sh" down "${purge[@]}"
  if [[ -f $STARTED_REDIS ]]; then
    log "Redis: stopping (started by this script)"
    timeout 10 redis-cli -h "$REDIS_HOST" -p "$(cat "$STARTED_REDIS")" shutdown nosave >/dev/null 2>&1 || true
    rm -f "$STARTED_REDIS"
  fi
  if [[ -f $STARTED_PG ]]; then
    log "PostgreSQL: stopping $(cat "$STARTED_PG") (started by this script)"
    # shellcheck disable=SC2046 # "VERSION CLUSTER" splits into two arguments.
    pg_ctlcluster --skip-systemctl-redirect $(cat "$STARTED_PG") stop >&2 || true
    rm -f "$STARTED_PG"
  fi
  rm -f "$ENV_FILE"
}

cmd_env() {
  if [[ -f $ENV_FILE ]]; then
    cat "$ENV_FILE"
  else
    printf 'DATABASE_URL=%s\nREDIS_URL=%s\n' "$DATABASE_URL" "$REDIS_URL"
    "$SCRIPT_DIR/ceph.sh" env
  fi
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up [--no-ceph] | down [--purge] | env" >&2
    exit 2
    ;;
esac
