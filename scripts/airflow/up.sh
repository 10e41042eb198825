#!/usr/bin/env bash
# Start the embedded default's Airflow services in the background: api-server, scheduler, dag-processor,
# triggerer. Each runs fully detached in its own session (setsid, stdin from /dev/null), logs to
# $AIRFLOW_HOME/logs/services/<service>.log and leaves its pid in $AIRFLOW_HOME/run/<service>.pid, which is
# all scripts/airflow/down.sh needs to stop exactly these processes. Migrates the metadata DB first and
# returns once the API answers and every service reports healthy; prints the URL and the login.
#
# PZ_AIRFLOW_PASSWORD      the admin's password written on first start (default: admin)
# PZ_AIRFLOW_START_TIMEOUT seconds to wait for the services to become healthy (default: 180)
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

mkdir -p "$PZ_AIRFLOW_RUN_DIR" "$PZ_AIRFLOW_SERVICE_LOGS"

running=()
for service in "${PZ_AIRFLOW_SERVICES[@]}"; do
    pid_file="$PZ_AIRFLOW_RUN_DIR/$service.pid"
    if [[ -f "$pid_file" && -n "$(pz_airflow_session_pids "$(<"$pid_file")")" ]]; then
        running+=("$service")
    fi
done
if ((${#running[@]} == ${#PZ_AIRFLOW_SERVICES[@]})); then
    echo "Airflow is already up at $PZ_AIRFLOW_URL (state in $AIRFLOW_HOME)."
    exit 0
elif ((${#running[@]} > 0)); then
    echo "Only some Airflow services are running (${running[*]}); run 'make down' first, then 'make up'." >&2
    exit 1
fi

echo "Migrating the metadata DB ($AIRFLOW_HOME) ..."
if ! "$PZ_AIRFLOW_BIN" db migrate >"$PZ_AIRFLOW_SERVICE_LOGS/db-migrate.log" 2>&1; then
    tail -n 30 "$PZ_AIRFLOW_SERVICE_LOGS/db-migrate.log" >&2
    echo "airflow db migrate failed; full log: $PZ_AIRFLOW_SERVICE_LOGS/db-migrate.log" >&2
    exit 1
fi

# A known login for the embedded default. SimpleAuthManager keeps passwords in this JSON file and only
# generates one for a user the file lacks, so writing it before the first start fixes the password.
passwords_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
if [[ ! -s "$passwords_file" ]]; then
    (umask 077 && PZ_AIRFLOW_PASSWORD="${PZ_AIRFLOW_PASSWORD:-admin}" "$PZ_AIRFLOW_PYTHON" -c \
        'import json, os, sys; json.dump({"admin": os.environ["PZ_AIRFLOW_PASSWORD"]}, open(sys.argv[1], "w"))' \
        "$passwords_file")
fi

# Every process runs on this machine and writes its task logs under $AIRFLOW_HOME/logs, where the api-server
# reads them; the scheduler's and triggerer's log servers would only open ports on all interfaces.
declare -A service_options=([scheduler]=--skip-serve-logs [triggerer]=--skip-serve-logs)
for service in "${PZ_AIRFLOW_SERVICES[@]}"; do
    # shellcheck disable=SC2086  # options are single words
    setsid "$PZ_AIRFLOW_BIN" "$service" ${service_options[$service]:-} \
        </dev/null >>"$PZ_AIRFLOW_SERVICE_LOGS/$service.log" 2>&1 &
    echo "$!" >"$PZ_AIRFLOW_RUN_DIR/$service.pid"
done

echo "Waiting for the services to report healthy ..."
if ! "$PZ_AIRFLOW_PYTHON" - "$PZ_AIRFLOW_URL" "${PZ_AIRFLOW_START_TIMEOUT:-180}" \
    "$PZ_AIRFLOW_RUN_DIR" "${PZ_AIRFLOW_SERVICES[@]}" <<'PY'; then
import json, os, sys, time, urllib.request

url, timeout, run_dir, services = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
deadline = time.monotonic() + timeout
health = None
while time.monotonic() < deadline:
    for service in services:
        pid = int(open(os.path.join(run_dir, f"{service}.pid")).read())
        if not os.path.exists(f"/proc/{pid}"):
            sys.exit(f"airflow {service} exited during start-up")
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except OSError:
        health = None
    if health and all(part and part.get("status") == "healthy" for part in health.values()):
        sys.exit(0)
    time.sleep(1)
sys.exit(f"not healthy after {timeout:.0f} s; last health report: {health}")
PY
    for service in "${PZ_AIRFLOW_SERVICES[@]}"; do
        echo "--- last lines of $PZ_AIRFLOW_SERVICE_LOGS/$service.log" >&2
        tail -n 15 "$PZ_AIRFLOW_SERVICE_LOGS/$service.log" >&2
    done
    "$(dirname "${BASH_SOURCE[0]}")/down.sh" >&2
    exit 1
fi

password="$("$PZ_AIRFLOW_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' \
    "$passwords_file")"
cat <<MSG
Airflow is up: $PZ_AIRFLOW_URL
Login: admin / $password
Services: ${PZ_AIRFLOW_SERVICES[*]} (logs in $PZ_AIRFLOW_SERVICE_LOGS, task logs in $AIRFLOW_HOME/logs)
Stop them with: make down
MSG
