# shellcheck shell=bash
# Helpers shared by scripts/ceph.sh and scripts/services.sh. Sourced, not run.
#
# Convention: everything meant for a human goes to stderr; stdout carries only the
# shell-sourceable KEY=value lines, so `eval "$(scripts/services.sh up)"` works.

# Debian's tools (ceph, pg_ctlcluster, ...) are scripts for /usr/bin/python3 and
# /usr/bin/perl; a pyenv python3 earlier on PATH cannot import `rados`.
export PATH="/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

log() { printf '[%s] %s\n' "${LOG_TAG:-scripts}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds since the epoch with microseconds (bash >= 5).
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# Process state letter (R, S, D, Z, ...) or empty when the pid does not exist.
pid_state() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  printf '%s' "${stat%% *}"
}

# A pid is alive when it exists and is not a zombie: daemonised ceph processes are
# re-parented to an init that reaps late, so their zombies linger after they exit.
pid_alive() {
  local state
  [[ -n ${1:-} ]] || return 1
  state=$(pid_state "$1")
  [[ -n $state && $state != Z && $state != X ]]
}

# stop_pid PID NAME GRACE_SECONDS: SIGTERM, wait, then SIGKILL.
# Returns 0 when the process ended by itself, 2 when it had to be killed.
stop_pid() {
  local pid=$1 name=$2 grace=$3 i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    pid_alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running after ${grace}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" || return 2
    sleep 0.1
  done
  log "warning: $name (pid $pid) survived SIGKILL"
  return 2
}

# Wait until no apt/dpkg process runs (another install may be going on in the
# background), up to 15 minutes. apt's own locks are fcntl locks, which flock
# cannot wait on, so look at the processes instead.
wait_for_apt() {
  local i
  for ((i = 0; i < 900; i++)); do
    if ! pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null; then
      return 0
    fi
    ((i % 30 == 0)) && log "waiting for a running apt/dpkg to finish"
    sleep 1
  done
  die "apt/dpkg still busy after 15 minutes"
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# ensure_packages PKG...: install whichever are missing (apt-get update once).
APT_UPDATED=${APT_UPDATED:-0}
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) == 0 ]] || die "packages missing (${missing[*]}) and not root to install them"
  wait_for_apt
  # Re-check: the background install may have brought them in meanwhile.
  missing=()
  for p in "$@"; do
    pkg_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local apt_opts=(-o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)
  if [[ $APT_UPDATED != 1 ]]; then
    apt-get "${apt_opts[@]}" update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}
