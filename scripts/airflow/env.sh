# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file
# Sourced, not run: the environment shared by every Airflow process of the embedded default.
#
# PZ_AIRFLOW_HOME  runtime state folder (default <repo>/var/airflow): SQLite DB, logs, pid files, passwords
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
# Start order; `down` stops them in reverse.
PZ_AIRFLOW_SERVICES=(dag-processor scheduler triggerer api-server)

# pz_airflow_session_pids PID: the processes of the session whose leader was PID (the service and every
# process it started, task processes included), provided that session is an Airflow one. Empty otherwise,
# so a stale pid file whose number the system has since reused matches nothing.
pz_airflow_session_pids() {
    local session_pids
    session_pids="$(pgrep -s "$1" 2>/dev/null || true)"
    [[ -n "$session_pids" ]] || return 0
    if pgrep -s "$1" -f airflow >/dev/null 2>&1; then
        echo "$session_pids"
    fi
}
