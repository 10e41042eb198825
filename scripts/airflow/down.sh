#!/usr/bin/env bash
# Stop exactly the Airflow services scripts/airflow/up.sh started, by the pid files it left in
# $AIRFLOW_HOME/run. Each service was started as the leader of its own session, so "what it started" is that
# session: the service first gets SIGTERM (the scheduler then stops its running tasks), and whatever is
# left of its session after PZ_AIRFLOW_STOP_TIMEOUT seconds (default 30) gets SIGKILL.
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

stop_timeout="${PZ_AIRFLOW_STOP_TIMEOUT:-30}"
stopped=()
for ((i = ${#PZ_AIRFLOW_SERVICES[@]} - 1; i >= 0; i--)); do
    service="${PZ_AIRFLOW_SERVICES[i]}"
    pid_file="$PZ_AIRFLOW_RUN_DIR/$service.pid"
    [[ -f "$pid_file" ]] || continue
    pid="$(<"$pid_file")"
    if [[ -n "$(pz_airflow_session_pids "$pid")" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        stopped+=("$service:$pid")
    else
        rm -f "$pid_file"
    fi
done

for entry in "${stopped[@]}"; do
    service="${entry%%:*}"
    pid="${entry#*:}"
    for ((waited = 0; waited < stop_timeout; waited++)); do
        [[ -n "$(pz_airflow_session_pids "$pid")" ]] || break
        sleep 1
    done
    leftover="$(pz_airflow_session_pids "$pid")"
    if [[ -n "$leftover" ]]; then
        echo "airflow $service did not stop within ${stop_timeout}s; killing its processes: ${leftover//$'\n'/ }"
        # shellcheck disable=SC2086  # one pid per word
        kill -KILL $leftover 2>/dev/null || true
    fi
    rm -f "$PZ_AIRFLOW_RUN_DIR/$service.pid"
    echo "stopped airflow $service (pid $pid)"
done
((${#stopped[@]} > 0)) || echo "no Airflow services of this project were running (state in $AIRFLOW_HOME)"
