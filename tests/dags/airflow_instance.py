"""The Airflow test instance's helpers moved to tests/fixtures/airflow.py (shared with tests/plugins, and home of
the `airflow_services` fixture); the DAG tests still import them under this name."""

from fixtures.airflow import (  # noqa: F401
    AIRFLOW_BIN,
    AIRFLOW_SCRIPTS,
    REPO_ROOT,
    AirflowServices,
    airflow_environment,
    free_port,
    task_states,
    wait_for_dag,
    wait_for_run,
)
