# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file
# Sourced, not run: the environment shared by every Airflow process of the embedded default, or of the
# production profile.
#
# PZ_PROFILE       empty (the embedded default: airflow.cfg alone) or production (profiles/production.env over
#                  airflow.cfg: Postgres, Celery workers on Redis, FAB logins, products on S3; see below)
# PZ_AIRFLOW_HOME  runtime state folder (default <repo>/var/airflow, <repo>/var/airflow-production for the
#                  production profile): SQLite DB, logs, pid files, passwords, the instance's secrets
# PZ_AIRFLOW_PORT  api-server port (default: airflow.cfg's [api] port, 8080)
# PZ_AIRFLOW_BIN   the airflow command (default <repo>/.venv/bin/airflow)
# A project-specific PZ_AIRFLOW_HOME, rather than AIRFLOW_HOME, keeps a developer's own AIRFLOW_HOME for
# other work from redirecting this project's state.

PZ_PLATFORM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PZ_PLATFORM_ROOT
case "${PZ_PROFILE:-}" in
    "") pz_default_home="$PZ_PLATFORM_ROOT/var/airflow" ;;
    production) pz_default_home="$PZ_PLATFORM_ROOT/var/airflow-production" ;;
    *)
        echo "unknown PZ_PROFILE '$PZ_PROFILE': leave it empty (the embedded default) or set it to production" >&2
        return 2
        ;;
esac
AIRFLOW_HOME="$(realpath -m "${PZ_AIRFLOW_HOME:-$pz_default_home}")"
unset pz_default_home
export AIRFLOW_HOME
export AIRFLOW_CONFIG="$PZ_PLATFORM_ROOT/airflow.cfg"
# RAIL's log level for the pz commands (pzlib.estimate.configure_rail_logging) configures structlog for the whole
# process; Airflow logs through structlog too (its executor fails with it), so no Airflow process inherits it.
unset PZ_RAIL_LOG_LEVEL
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
# Names of the secrets generated per instance (see below).
PZ_AIRFLOW_SECRET_NAMES=(AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY)

if [[ "${PZ_PROFILE:-}" == production ]]; then
    # The profile's settings (profiles/production.env, which docker/compose.yaml reads too); a variable the
    # caller set wins, as compose's `environment` wins over its `env_file`.
    while IFS='=' read -r setting_name setting_value; do
        [[ "$setting_name" =~ ^[A-Z][A-Z0-9_]*$ && -z "${!setting_name+set}" ]] && export "$setting_name=$setting_value"
    done <"$PZ_PLATFORM_ROOT/profiles/production.env"
    unset setting_name setting_value
    # Where this machine's servers are. The databases are created by up.sh when missing; each instance uses a
    # Redis database of its own (a number) so that its queues are its own.
    # PZ_POSTGRES_URL     server of both databases (default postgresql+psycopg://postgres@127.0.0.1:5432)
    # PZ_AIRFLOW_DB       Airflow's metadata database and Celery's results (default pz_airflow_prod)
    # PZ_REGISTRY_DB      the PZ Server registry (default pz_registry_prod)
    # PZ_REDIS_URL        Celery's broker (default redis://127.0.0.1:6379/0)
    # PZ_STORAGE_URL      products (default s3://pz-platform/products; the bucket is created when missing), on
    #                     the S3 store of PZ_S3_ENDPOINT_URL, PZ_S3_REGION, PZ_S3_ACCESS_KEY_ID and
    #                     PZ_S3_SECRET_ACCESS_KEY (pzlib's settings; empty: AWS and boto3's own lookup)
    PZ_POSTGRES_URL="${PZ_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432}"
    PZ_AIRFLOW_DB="${PZ_AIRFLOW_DB:-pz_airflow_prod}"
    PZ_REGISTRY_DB="${PZ_REGISTRY_DB:-pz_registry_prod}"
    export PZ_POSTGRES_URL PZ_AIRFLOW_DB PZ_REGISTRY_DB
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$PZ_POSTGRES_URL/$PZ_AIRFLOW_DB"
    # Airflow would derive an asyncpg URL, a driver we do not install; psycopg 3 is an async driver too.
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC="$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    export AIRFLOW__CELERY__BROKER_URL="${PZ_REDIS_URL:-redis://127.0.0.1:6379/0}"
    export AIRFLOW__CELERY__RESULT_BACKEND="db+$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    export PZ_DATABASE_URL="$PZ_POSTGRES_URL/$PZ_REGISTRY_DB"
    export PZ_STORAGE_URL="${PZ_STORAGE_URL:-s3://pz-platform/products}"
    # Celery workers, started after the triggerer and stopped after the scheduler: worker-1 ... worker-N.
    PZ_AIRFLOW_SERVICES=(api-server dag-processor triggerer)
    for ((worker = 1; worker <= PZ_CELERY_WORKERS; worker++)); do
        PZ_AIRFLOW_SERVICES+=("worker-$worker")
    done
    unset worker
    PZ_AIRFLOW_SERVICES+=(scheduler)
    # Fernet key: Airflow encrypts connections' passwords and variables with it. The FAB admin's password.
    PZ_AIRFLOW_SECRET_NAMES+=(AIRFLOW__CORE__FERNET_KEY PZ_AIRFLOW_ADMIN_PASSWORD)
fi

# The instance's JWT secret (the scheduler signs its tasks' tokens with it, the api-server checks them and
# the UI's and REST clients' logins) and the api-server's secret key (also FAB's session key), and in the
# production profile the Fernet key and the FAB admin's password: made on first use, kept in
# PZ_AIRFLOW_SECRETS_FILE (mode 0600) across restarts, and exported to every Airflow process; no file of the
# repository holds any of them.
PZ_AIRFLOW_SECRETS_FILE="$AIRFLOW_HOME/api_secrets"
if [[ ! -s "$PZ_AIRFLOW_SECRETS_FILE" ]]; then
    mkdir -p "$AIRFLOW_HOME"
    "$PZ_AIRFLOW_PYTHON" - "$PZ_AIRFLOW_SECRETS_FILE" "${PZ_AIRFLOW_SECRET_NAMES[@]}" <<'PY'
import base64, os, secrets, sys, tempfile

path, names = sys.argv[1], sys.argv[2:]
# A Fernet key is 32 random bytes in URL-safe base64; the others are 48 random bytes.
values = {name: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() if name.endswith("FERNET_KEY")
          else secrets.token_urlsafe(48) for name in names}
# mkstemp makes the file 0600; the link publishes it whole, and a script starting at the same moment that
# linked its own first keeps it (then both use that one).
descriptor, staging = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".api_secrets.tmp-")
with os.fdopen(descriptor, "w") as staged:
    staged.writelines(f"{name}={value}\n" for name, value in values.items())
try:
    os.link(staging, path)
except FileExistsError:
    pass
finally:
    os.unlink(staging)
PY
fi
while IFS='=' read -r secret_name secret_value; do
    if [[ " ${PZ_AIRFLOW_SECRET_NAMES[*]} " == *" $secret_name "* ]]; then
        export "$secret_name=$secret_value"
    fi
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
    local pid_file="$PZ_AIRFLOW_RUN_DIR/$1.pid" pid command arguments
    [[ -f "$pid_file" ]] || return 0
    pid="$(<"$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && pz_airflow_alive "$pid" || return 0
    [[ "$(ps -o sid= -p "$pid" 2>/dev/null | tr -d ' ')" == "$pid" ]] || return 0
    command="$(ps -o args= -p "$pid" 2>/dev/null || true)"
    arguments="$(pz_airflow_command "$1")"
    arguments="${arguments% --skip-serve-logs}"
    # Airflow retitles some of its processes ("airflow api_server -- host:..."): read '_' as '-'. Celery
    # retitles a worker "[celeryd: worker-1@host:MainProcess] -active- (celery worker --celery-hostname ...)".
    if [[ "${command//_/-}" == *"airflow $arguments"* || "$command" == "[celeryd: "*"($arguments"* ]]; then
        echo "$pid"
    fi
}

# pz_airflow_command SERVICE: the arguments of `airflow` that run SERVICE; a Celery worker worker-N is named
# worker-N@<this host>. Every process runs on this machine and writes its task logs under $AIRFLOW_HOME/logs,
# where the api-server reads them; the log servers of the scheduler, the triggerer and the workers would only
# open ports on all interfaces (and two workers would want the same one).
pz_airflow_command() {
    case "$1" in
        worker-*) echo "celery worker --celery-hostname $1@${HOSTNAME:-$(hostname)} --skip-serve-logs" ;;
        scheduler | triggerer) echo "$1 --skip-serve-logs" ;;
        *) echo "$1" ;;
    esac
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
