"""A throwaway Airflow instance of this repo for tests: its environment, REST client and wait helpers.

Everything goes through scripts/airflow/ (env.sh, up.sh, down.sh), the scripts `make up` and `make down` use,
with PZ_AIRFLOW_HOME pointing at a temporary folder and free ports, so a developer's own `make up` (state in
var/airflow, port 8080) is neither used nor disturbed.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SCRIPTS = REPO_ROOT / "scripts" / "airflow"
AIRFLOW_BIN = Path(sys.executable).parent / "airflow"


def airflow_environment(state_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for scripts/airflow/ with its state in `state_dir`.

    Every AIRFLOW* variable of the caller's environment is dropped so that a developer's own Airflow
    settings cannot leak into the test instance; env.sh sets what this project needs.
    """
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    environment.update(
        PZ_AIRFLOW_HOME=str(state_dir),
        PZ_AIRFLOW_BIN=str(AIRFLOW_BIN),
        **overrides,
    )
    return environment


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class AirflowServices:
    """The running test instance: where it listens, how to log in, where its state is."""

    url: str
    username: str
    password: str
    state_dir: Path

    def client(self) -> httpx.Client:
        """An HTTP client on the public REST API, authenticated with a JWT from ``POST /auth/token``."""
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        assert response.status_code == 201, response.text
        token = response.json()["access_token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def wait_for_dag(client: httpx.Client, dag_id: str, timeout_s: float = 120) -> dict:
    """The DAG's record once the dag-processor has parsed it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/api/v2/dags/{dag_id}")
        if response.status_code == 200:
            return response.json()
        time.sleep(2)
    errors = client.get("/api/v2/importErrors").json()
    raise AssertionError(f"DAG {dag_id} not parsed within {timeout_s:.0f} s; import errors: {errors}")


def wait_for_run(client: httpx.Client, dag_id: str, run_id: str, timeout_s: float) -> str:
    """The run's final state ('success' or 'failed'); on a timeout, fails with the task states."""
    deadline = time.monotonic() + timeout_s
    run_path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    while time.monotonic() < deadline:
        state = client.get(run_path).json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    states = task_states(client, dag_id, run_id)
    raise AssertionError(f"run {run_id} not finished in {timeout_s:.0f} s; task states: {states}")


def task_states(client: httpx.Client, dag_id: str, run_id: str) -> dict[str, str]:
    """{task_id[map_index]: state} of a run, for assertions and failure messages."""
    response = client.get(
        f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances", params={"limit": 1000}
    )
    response.raise_for_status()
    return {
        task["task_id"] + (f"[{task['map_index']}]" if task["map_index"] >= 0 else ""): task["state"]
        for task in response.json()["task_instances"]
    }
