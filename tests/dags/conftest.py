"""Fixtures for the DAG tests: the real Airflow services of this repo, in a throwaway state folder.

`airflow_services` runs scripts/airflow/up.sh once per session with its own PZ_AIRFLOW_HOME and free ports,
and stops exactly what it started with down.sh (which goes by the pid files in that state folder).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest
from airflow_instance import AIRFLOW_SCRIPTS, AirflowServices, airflow_environment, free_port

# db migrate on a fresh SQLite file plus four services importing Airflow, on two shared cores.
UP_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def airflow_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    """api-server, scheduler, dag-processor and triggerer, started by up.sh in a temporary state folder."""
    state_dir = tmp_path_factory.mktemp("airflow")
    port = free_port()
    password = secrets.token_urlsafe(12)
    environment = airflow_environment(
        state_dir,
        PZ_AIRFLOW_PORT=str(port),
        PZ_AIRFLOW_PASSWORD=password,
        PZ_AIRFLOW_START_TIMEOUT=str(UP_TIMEOUT_S - 60),
    )
    try:
        started = subprocess.run(
            [AIRFLOW_SCRIPTS / "up.sh"], env=environment, capture_output=True, text=True, timeout=UP_TIMEOUT_S
        )
        assert started.returncode == 0, f"up.sh failed:\n{started.stdout}\n{started.stderr}"
        yield AirflowServices(f"http://127.0.0.1:{port}", "admin", password, state_dir)
    finally:
        stopped = subprocess.run(
            [AIRFLOW_SCRIPTS / "down.sh"], env=environment, capture_output=True, text=True, timeout=120
        )
        assert stopped.returncode == 0, f"down.sh failed:\n{stopped.stdout}\n{stopped.stderr}"
