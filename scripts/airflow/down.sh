#!/usr/bin/env bash
# Stop exactly the Airflow services scripts/airflow/up.sh started, by the pid files it left in
# $AIRFLOW_HOME/run, one at a time in reverse start order: the scheduler first (no new task starts), then the
# triggerer and the dag-processor, and the api-server last, so that the tasks the scheduler stops can still
# report to it. Each service was started as the leader of its own session, so "what it started" is that
# session: the service gets SIGTERM, and whatever is left of its session after PZ_AIRFLOW_STOP_TIMEOUT
# seconds (default 30) gets SIGKILL; a dead service's orphaned processes get SIGKILL at once.
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

stop_timeout="${PZ_AIRFLOW_STOP_TIMEOUT:-30}"
stopped_any=false
for ((i = ${#PZ_AIRFLOW_SERVICES[@]} - 1; i >= 0; i--)); do
    report="$(pz_airflow_stop_service "${PZ_AIRFLOW_SERVICES[i]}" "$stop_timeout")"
    if [[ -n "$report" ]]; then
        echo "$report"
        stopped_any=true
    fi
done
$stopped_any || echo "no Airflow services of this project were running (state in $AIRFLOW_HOME)"
