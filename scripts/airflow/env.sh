# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file
# Sourced, not run: the environment shared by every Airflow process of the embedded default.
#
# PZ_AIRFLOW_HOME  runtime state folder (default <repo>/var/airflow): SQLite DB, logs, pid files, passwords,
#                  the instance's secrets
# PZ_AIRFLOW_PORT  api-server port (default: airflow.cfg's [api] port, 8080)
# PZ_AIRFLOW_BIN   the airflow command (default <repo>/.venv/bin/airflow)
# A project-specific PZ_AIRFLOW_HOME, rather than AIRFLOW_HOME, keeps a developer's own AIRFLOW_HOME for
# other work from redirecting this project's state.

PZ_PLATFORM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PZ_PLATFORM_ROOT
AIRFLOW_HOME="$(realpath -m "${PZ_AIRFLOW_HOME:-$PZ_PLATFORM_ROOT/var/airflow}")"
export AIRFLOW_HOME
export AIRFLOW_CONFIG="$PZ_PLATFORM_ROOT/airflow.cfg"
# Tasks import pzlib from this checkout even when the package is not installed in the environment.
export PYTHONPATH="$PZ_PLATFORM_ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ -n "${PZ_AIRFLOW_PORT:-}" ]]; then
    export AIRFLOW__API__PORT="$PZ_AIRFLOW_PORT"
    export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PZ_AIRFLOW_PORT"
fi
PZ_AIRFLOW_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:8080}"
PZ_AIRFLOW_BIN="${PZ_AIRFLOW_BIN:-$PZ_PLATFORM_ROOT/.venv/bin/airflow}"
PZ_AIRFLOW_PYTHON="$(dirname "$PZ_AIRFLOW_BIN")/python"
PZ_AIRFLOW_RUN_DIR="$AIRFLOW_HOME/run"
PZ_AIRFLOW_SERVICE_LOGS="$AIRFLOW_HOME/logs/services"
# Start order: the api-server first (the other services and every task talk to it), the scheduler last (it
# starts tasks). `down` stops them in reverse: the scheduler first, the api-server last.
PZ_AIRFLOW_SERVICES=(api-server dag-processor triggerer scheduler)

# The instance's JWT secret (the scheduler signs its tasks' tokens with it, the api-server checks them and
# the UI's and REST clients' logins) and the api-server's secret key: made on first use, kept in
# PZ_AIRFLOW_SECRETS_FILE (mode 0600) across restarts, and exported to every Airflow process; airflow.cfg
# holds neither.
PZ_AIRFLOW_SECRETS_FILE="$AIRFLOW_HOME/api_secrets"
if [[ ! -s "$PZ_AIRFLOW_SECRETS_FILE" ]]; then
    mkdir -p "$AIRFLOW_HOME"
    "$PZ_AIRFLOW_PYTHON" - "$PZ_AIRFLOW_SECRETS_FILE" <<'PY'
import os, secrets, sys, tempfile

path = sys.argv[1]
# mkstemp makes the file 0600; the link publishes it whole, and a script starting at the same moment that
# linked its own first keeps it (then both use that one).
descriptor, staging = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".api_secrets.tmp-")
with os.fdopen(descriptor, "w") as staged:
    staged.write(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(48)}\n"
                 f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(48)}\n")
try:
    os.link(staging, path)
except FileExistsError:
    pass
finally:
    os.unlink(staging)
PY
fi
while IFS='=' read -r secret_name secret_value; do
    case "$secret_name" in
        AIRFLOW__API_AUTH__JWT_SECRET | AIRFLOW__API__SECRET_KEY) export "$secret_name=$secret_value" ;;
    esac
done <"$PZ_AIRFLOW_SECRETS_FILE"
unset secret_name secret_value

# pz_airflow_alive PID: whether process PID runs (exists and is not a zombie waiting to be reaped).
pz_airflow_alive() {
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z* ]]
}

# pz_airflow_service_pid SERVICE: the pid in SERVICE's pid file if that process is alive, leads its own
# session (as up.sh starts every service) and is that Airflow service; empty otherwise. A service whose
# process died, or whose pid the system has since given to another process, is not running, whatever is
# left of its session.
pz_airflow_service_pid() {
    local pid_file="$PZ_AIRFLOW_RUN_DIR/$1.pid" pid command
    [[ -f "$pid_file" ]] || return 0
    pid="$(<"$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && pz_airflow_alive "$pid" || return 0
    [[ "$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]] || return 0
    command="$(ps -o args= -p "$pid" 2>/dev/null || true)"
    # Airflow retitles some of its processes ("airflow api_server -- host:..."): read '_' as '-'.
    if [[ "${command//_/-}" == *"airflow $1"* ]]; then
        echo "$pid"
    fi
}

# pz_airflow_session_pids PID: the live processes of the session whose leader was PID (the service and
# every process it started, task processes included), provided that session is an Airflow one. Empty
# otherwise, so a stale pid file whose number the system has since reused matches nothing.
pz_airflow_session_pids() {
    local processes
    processes="$(ps -o pid=,stat=,args= -s "$1" 2>/dev/null | awk '$2 !~ /^Z/' || true)"
    if [[ "$processes" == *airflow* ]]; then
        awk '{print $1}' <<<"$processes"
    fi
}

# pz_airflow_stop_service SERVICE TIMEOUT: stop SERVICE and everything its session holds. A running service
# gets SIGTERM (the scheduler then stops its tasks) and TIMEOUT seconds before what is left gets SIGKILL. A
# dead service's orphans (a killed scheduler's task processes, say) get SIGKILL at once: nothing would record
# what they finish, and the task instances they held go back to the scheduler, which retries them.
pz_airflow_stop_service() {
    local service="$1" timeout="$2" pid_file="$PZ_AIRFLOW_RUN_DIR/$1.pid" pid leftover waited
    [[ -f "$pid_file" ]] || return 0
    pid="$(<"$pid_file")"
    if [[ -n "$(pz_airflow_service_pid "$service")" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((waited = 0; waited < timeout; waited++)); do
            [[ -n "$(pz_airflow_session_pids "$pid")" ]] || break
            sleep 1
        done
        leftover="$(pz_airflow_session_pids "$pid")"
        if [[ -n "$leftover" ]]; then
            echo "airflow $service did not stop within ${timeout}s; killing its processes: ${leftover//$'\n'/ }"
        fi
        echo "stopped airflow $service (pid $pid)"
    elif [[ "$pid" =~ ^[0-9]+$ ]] && ! pz_airflow_alive "$pid"; then
        leftover="$(pz_airflow_session_pids "$pid")"
        if [[ -n "$leftover" ]]; then
            echo "airflow $service (pid $pid) had died; stopping its orphaned processes: ${leftover//$'\n'/ }"
        fi
    fi
    if [[ -n "${leftover:-}" ]]; then
        # shellcheck disable=SC2086  # one pid per word
        kill -KILL $leftover 2>/dev/null || true
        for ((waited = 0; waited < 50; waited++)); do
            [[ -n "$(pz_airflow_session_pids "$pid")" ]] || break
            sleep 0.2
        done
    fi
    rm -f "$pid_file"
}
