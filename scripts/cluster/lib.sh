# shellcheck shell=bash disable=SC2034  # (variables are used by the scripts that source this)
# Shared by up.sh, down.sh and status.sh (sourced, not run): where the single-node test cluster keeps its
# state, which daemons it runs, and how a daemon is started detached, checked and stopped through its pid file.
#
# Every daemon runs in the foreground of its own session (setsid), so the pid we record is the daemon's own
# pid; "running" means that pid is alive, not a zombie, and still has the daemon's name (pid files outlive
# reboots and pids get reused).

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER_DIR=${PZ_CLUSTER_DIR:-$REPO_ROOT/var/cluster}
ETC_DIR=$CLUSTER_DIR/etc
RUN_DIR=$CLUSTER_DIR/run
LOG_DIR=$CLUSTER_DIR/log
SLURM_CONF_FILE=$ETC_DIR/slurm.conf

# Start order; down.sh stops in reverse. Each name is also the daemon's process name (/proc/PID/comm).
# mariadbd only has a pid file when up.sh had to start a private one.
DAEMONS=(mariadbd munged slurmdbd slurmctld slurmd sshd)

# Slurm commands (ours and those run over SSH, via sshd's SetEnv) find the generated config through this.
export SLURM_CONF=$SLURM_CONF_FILE

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# Serialises up.sh and down.sh runs (parallel test workers each run up.sh) until the script exits. The
# lock's descriptor is one of those start_detached closes, so no daemon keeps the lock.
hold_cluster_lock() {
    mkdir -p "$CLUSTER_DIR"
    exec {lock_fd}>"$CLUSTER_DIR/.lock"
    flock "$lock_fd"
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }

# Prints the daemon's pid and succeeds when its pid file names a live process of that name (comm, unlike
# exe, is readable without root).
daemon_pid() {
    local name=$1 pid comm
    pid=$(cat "$(pid_file "$name")" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && pid_alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name" ]] || return 1
    printf '%s\n' "$pid"
}

# Starts "$@" as daemon NAME: own session, stdin from /dev/null, stdout/stderr appended to log/NAME.log and
# no other inherited file descriptor, so a caller that captures our output (CI, subprocess.run) sees EOF
# when up.sh exits instead of waiting for the daemons.
start_detached() {
    local name=$1
    shift
    (
        for fd_path in "/proc/$BASHPID/fd/"*; do
            fd=${fd_path##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done
        # Not a process-group leader here, so setsid calls setsid() itself instead of forking: $! stays
        # the daemon's pid.
        exec setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1
    ) &
    printf '%s\n' "$!" >"$(pid_file "$name")"
}

# Succeeds while PID is alive and not a zombie (PID 1 on this kind of machine reaps late).
pid_alive() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Waits up to TIMEOUT seconds for daemon NAME to be gone; fails if it is still there.
wait_stopped() {
    local name=$1 timeout=$2 deadline=$((SECONDS + $2))
    while daemon_pid "$name" >/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# Stops daemon NAME if its pid file names it: SIGTERM, then SIGKILL after TIMEOUT seconds.
stop_daemon() {
    local name=$1 timeout=${2:-15} pid
    if ! pid=$(daemon_pid "$name"); then
        rm -f "$(pid_file "$name")"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_stopped "$name" "$timeout"; then
        log "$name did not stop within ${timeout}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_stopped "$name" 5 || die "could not stop $name (pid $pid)"
    fi
    rm -f "$(pid_file "$name")"
}
