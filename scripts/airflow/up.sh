#!/usr/bin/env bash
# Start the embedded default's Airflow services in the background: the api-server first, and the
# dag-processor, triggerer and scheduler once the API answers (they and every task talk to it); with
# PZ_PROFILE=production (`make up PROFILE=production`), the Celery workers too, before the scheduler. Each runs
# fully detached in its own session (setsid, stdin from /dev/null), logs to
# $AIRFLOW_HOME/logs/services/<service>.log and leaves its pid in $AIRFLOW_HOME/run/<service>.pid, which is
# all scripts/airflow/down.sh needs to stop exactly these processes. Migrates the metadata DB first and
# returns once every service reports healthy (and every Celery worker answers a ping); prints the URL and the
# login. The production profile first creates its two Postgres databases and its bucket when they are missing,
# then runs docker/airflow-init.sh, as the docker deployment does: migration, the FAB admin, the roles.
#
# A service counts as running only if its own process (the session leader) is alive and is that service:
# processes a dead service left behind (a killed scheduler's task processes keep its session alive) do not
# count. Services that run are kept; a dead one's orphaned processes are stopped (nothing would record what
# they finish; the scheduler retries their tasks) and the service is started again. So `make up` after a
# crash or a kill of any service brings the whole set back, and a run in progress carries on by itself.
#
# PZ_AIRFLOW_PASSWORD      the admin's password written on first start (default: admin; production: a random
#                          one kept in $AIRFLOW_HOME/api_secrets)
# PZ_AIRFLOW_START_TIMEOUT seconds to wait for the services to become healthy (default: 180)
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

mkdir -p "$PZ_AIRFLOW_RUN_DIR" "$PZ_AIRFLOW_SERVICE_LOGS"

running=()
missing=()
for service in "${PZ_AIRFLOW_SERVICES[@]}"; do
    if [[ -n "$(pz_airflow_service_pid "$service")" ]]; then
        running+=("$service")
    else
        pz_airflow_stop_service "$service" 0
        missing+=("$service")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "Airflow is already up at $PZ_AIRFLOW_URL (state in $AIRFLOW_HOME)."
    exit 0
elif ((${#running[@]} > 0)); then
    echo "Airflow services running: ${running[*]}; starting the others: ${missing[*]}"
fi

# wait_for SERVICES... WHAT: until the API answers (WHAT=answers) or reports every service healthy
# (WHAT=healthy), as long as each of SERVICES is alive; at most PZ_AIRFLOW_START_TIMEOUT seconds in all.
deadline=$((SECONDS + ${PZ_AIRFLOW_START_TIMEOUT:-180}))
wait_for() {
    local what="${*: -1}"
    PZ_WORKER_HOST="${HOSTNAME:-$(hostname)}" \
        "$PZ_AIRFLOW_PYTHON" - "$PZ_AIRFLOW_URL" "$((deadline - SECONDS))" "$PZ_AIRFLOW_RUN_DIR" "$what" \
        "${@:1:$#-1}" <<'PY'
import json, os, sys, time, urllib.request

url, timeout, run_dir, what, services = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
deadline = time.monotonic() + timeout
health = None
while time.monotonic() < deadline:
    for service in services:
        pid = int(open(os.path.join(run_dir, f"{service}.pid")).read())
        try:
            # The state follows the parenthesised command name; a zombie ('Z') has exited.
            alive = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z"
        except OSError:
            alive = False
        if not alive:
            sys.exit(f"airflow {service} exited during start-up")
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except (OSError, ValueError):
        health = None
    if health and (what == "answers" or all(part and part.get("status") == "healthy" for part in health.values())):
        break
    time.sleep(1)
else:
    sys.exit(f"the API did not answer within {timeout:.0f} s" if what == "answers" and health is None
             else f"not healthy after {timeout:.0f} s; last health report: {health}")
workers = [f"{service}@{os.environ['PZ_WORKER_HOST']}" for service in services if service.startswith("worker-")]
if what == "healthy" and workers:
    from airflow.providers.celery.executors.celery_executor import app

    while time.monotonic() < deadline:
        answered = app.control.ping(destination=workers, timeout=2)
        if {name for reply in answered for name in reply} >= set(workers):
            sys.exit(0)
        time.sleep(1)
    sys.exit(f"the Celery workers {', '.join(workers)} did not all answer within {timeout:.0f} s")
PY
}

# A Celery worker's tasks record its name as their host (profiles/production.env: hostname_callable).
start() {
    local arguments
    arguments="$(pz_airflow_command "$1")"
    # shellcheck disable=SC2086  # the arguments are single words
    PZ_CELERY_HOSTNAME="$(awk '/--celery-hostname/ {print $4}' <<<"$arguments")" \
        setsid "$PZ_AIRFLOW_BIN" $arguments </dev/null >>"$PZ_AIRFLOW_SERVICE_LOGS/$1.log" 2>&1 &
    echo "$!" >"$PZ_AIRFLOW_RUN_DIR/$1.pid"
    echo "started airflow $1 (pid $!)"
}

give_up() {
    echo "$1" >&2
    for service in "${PZ_AIRFLOW_SERVICES[@]}"; do
        echo "--- last lines of $PZ_AIRFLOW_SERVICE_LOGS/$service.log" >&2
        tail -n 15 "$PZ_AIRFLOW_SERVICE_LOGS/$service.log" >&2 || true
    done
    "$(dirname "${BASH_SOURCE[0]}")/down.sh" >&2
    exit 1
}

# run_logged NAME COMMAND...: run COMMAND with its output in $PZ_AIRFLOW_SERVICE_LOGS/NAME.log; on failure,
# show the log's end and stop.
run_logged() {
    local log="$PZ_AIRFLOW_SERVICE_LOGS/$1.log"
    if ! "${@:2}" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "$1 failed; full log: $log" >&2
        exit 1
    fi
}

if [[ " ${missing[*]} " == *" api-server "* && "${PZ_PROFILE:-}" == production ]]; then
    echo "Setting up the production profile: databases $PZ_AIRFLOW_DB and $PZ_REGISTRY_DB, $PZ_STORAGE_URL, FAB users and roles ..."
    # The databases, when missing (in docker, the postgres service's init script makes them).
    run_logged create-databases "$PZ_AIRFLOW_PYTHON" - "$PZ_POSTGRES_URL" "$PZ_AIRFLOW_DB" "$PZ_REGISTRY_DB" <<'PY'
import sys

import sqlalchemy

server, names = sys.argv[1], sys.argv[2:]
engine = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
with engine.connect() as connection:
    for name in names:
        if connection.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                              {"name": name}).first() is None:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
PY
    run_logged airflow-init env PATH="$(dirname "$PZ_AIRFLOW_BIN"):$PATH" AIRFLOW_ADMIN_USERNAME=admin \
        AIRFLOW_ADMIN_PASSWORD="${PZ_AIRFLOW_PASSWORD:-$PZ_AIRFLOW_ADMIN_PASSWORD}" \
        AIRFLOW_ADMIN_EMAIL="admin@${HOSTNAME:-localhost}" "$PZ_PLATFORM_ROOT/docker/airflow-init.sh"
elif [[ " ${missing[*]} " == *" api-server "* ]]; then
    # A DB a running api-server serves is migrated already.
    echo "Migrating the metadata DB ($AIRFLOW_HOME) ..."
    run_logged db-migrate "$PZ_AIRFLOW_BIN" db migrate
fi

# A known login for the embedded default. SimpleAuthManager keeps passwords in this JSON file and only
# generates one for a user the file lacks, so writing it before the first start fixes the password.
passwords_file="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
if [[ "${PZ_PROFILE:-}" != production && ! -s "$passwords_file" ]]; then
    (umask 077 && PZ_AIRFLOW_PASSWORD="${PZ_AIRFLOW_PASSWORD:-admin}" "$PZ_AIRFLOW_PYTHON" -c \
        'import json, os, sys; json.dump({"admin": os.environ["PZ_AIRFLOW_PASSWORD"]}, open(sys.argv[1], "w"))' \
        "$passwords_file")
fi

if [[ " ${missing[*]} " == *" api-server "* ]]; then
    start api-server
    echo "Waiting for the API to answer ..."
    wait_for api-server answers || give_up "airflow api-server did not start"
fi
for service in "${missing[@]}"; do
    [[ "$service" == api-server ]] || start "$service"
done

echo "Waiting for the services to report healthy ..."
wait_for "${PZ_AIRFLOW_SERVICES[@]}" healthy || give_up "the Airflow services did not all start"

if [[ "${PZ_PROFILE:-}" == production ]]; then
    # The password the FAB admin was created with (a later PZ_AIRFLOW_PASSWORD changes nothing; `airflow users
    # reset-password` does).
    password="${PZ_AIRFLOW_PASSWORD:-$PZ_AIRFLOW_ADMIN_PASSWORD}"
else
    password="$("$PZ_AIRFLOW_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' \
        "$passwords_file")"
fi
cat <<MSG
Airflow is up: $PZ_AIRFLOW_URL
Login: admin / $password
Services: ${PZ_AIRFLOW_SERVICES[*]} (logs in $PZ_AIRFLOW_SERVICE_LOGS, task logs in $AIRFLOW_HOME/logs)
Stop them with: make down${PZ_PROFILE:+ PROFILE=$PZ_PROFILE}
MSG
