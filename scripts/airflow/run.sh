#!/usr/bin/env bash
# Run one command in the environment of this instance's Airflow processes (scripts/airflow/env.sh: the profile's
# settings, its databases, its secrets), with the project's .venv/bin first on PATH; for the commands an operator
# runs next to the services, e.g. with PZ_PROFILE=production:
#   scripts/airflow/run.sh airflow users create --role pz-user --username alice ...
#   scripts/airflow/run.sh pz token create alice
set -euo pipefail
# shellcheck source=scripts/airflow/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PATH="$(dirname "$PZ_AIRFLOW_BIN"):$PATH" exec "$@"
