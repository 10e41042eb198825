#!/usr/bin/env bash
# `make demo`: run the pz_compute DAG end to end on the embedded default (SQLite metadata DB, local storage,
# local processes) with `airflow dags test`, on the DC2 sample shipped with RAIL, then print where the
# photo-z tables are and their metrics against the true redshifts.
#
# PZ_DEMO_OUTPUT  run folder (default <repo>/var/demo); a rerun reuses every output that exists and verifies.
# PZ_DEMO_CONF    extra DAG params as a JSON object merged over the defaults (e.g. '{"estimators": ["bpz"]}').
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

output="$(realpath -m "${PZ_DEMO_OUTPUT:-$PZ_PLATFORM_ROOT/var/demo}")"
mkdir -p "$AIRFLOW_HOME/logs/services"
"$PZ_AIRFLOW_BIN" db migrate >"$AIRFLOW_HOME/logs/services/db-migrate.log" 2>&1 || {
    tail -n 30 "$AIRFLOW_HOME/logs/services/db-migrate.log" >&2
    exit 1
}
# Every estimator the platform is tuned for, so that the release's comparison report shows them side by side.
conf="$("$PZ_AIRFLOW_PYTHON" -c 'import json, sys
from pzlib.estimate import BUILTIN_ESTIMATORS
print(json.dumps({"release": "dc2-demo", "output": sys.argv[1], "estimators": list(BUILTIN_ESTIMATORS),
                  **json.loads(sys.argv[2])}))' "$output" "${PZ_DEMO_CONF:-{\}}")"
echo "demo: pz_compute on the DC2 sample (train 10,225 galaxies, estimate 20,449) → $output"
echo "demo: estimators $("$PZ_AIRFLOW_PYTHON" -c 'import json, sys; print(", ".join(json.loads(sys.argv[1])["estimators"]))' "$conf")"
echo "demo: the first run trains them (FlexZBoost's grid search and GPz take a few minutes on 2 cores)"
log="$AIRFLOW_HOME/logs/services/demo.log"
if ! "$PZ_AIRFLOW_BIN" dags test pz_compute -c "$conf" >"$log" 2>&1; then
    grep -E "ERROR|Error|error" "$log" | tail -n 20 >&2
    echo "demo: the DAG run failed; full log: $log" >&2
    exit 1
fi
echo "demo: pz_compute run succeeded (Airflow log: $log); photo-z tables and metrics:"
"$(dirname "$PZ_AIRFLOW_BIN")/pz" summary "$output"
