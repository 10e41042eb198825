"""pz_compute over the real Airflow services: JWT login, trigger with conf over REST, outputs, resumability.

The run estimates the 2,000-galaxy DC2 slice (tests/conftest.py) with BPZ only, in partitions of 800 rows, so
stage III fans out into several mapped tasks while the whole run stays around a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import h5py
import httpx
import pytest
from fixtures.airflow import task_states, wait_for_dag, wait_for_run

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
RUN_TIMEOUT_S = 600
PARTITION_ROWS = 800


@pytest.fixture(scope="module")
def client(airflow_services):
    with airflow_services.client() as authenticated:
        wait_for_dag(authenticated, DAG_ID)
        yield authenticated


@pytest.fixture(scope="module")
def input_rows(dc2_slice) -> int:
    with h5py.File(dc2_slice) as catalog:
        return len(catalog["photometry/id"])


@pytest.fixture(scope="module")
def finished_run(client, dc2_paths, dc2_slice, tmp_path_factory) -> tuple[str, Path]:
    """(run id, output folder) of a pz_compute run triggered over REST and waited for."""
    output = tmp_path_factory.mktemp("pz_compute_rest") / "run"
    conf = {
        "release": "dc2-slice",
        "input": str(dc2_slice),
        "train": str(dc2_paths[0]),
        "output": str(output),
        "estimators": ["bpz"],
        "partition_rows": PARTITION_ROWS,
    }
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(client, DAG_ID, run_id)
    return run_id, output


def test_a_jwt_is_required(airflow_services):
    response = httpx.get(f"{airflow_services.url}/api/v2/dags/{DAG_ID}", timeout=30)
    assert response.status_code == 401


def test_the_dag_is_on_so_triggers_run(client):
    assert client.get(f"/api/v2/dags/{DAG_ID}").json()["is_paused"] is False


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"partition_rows": 0}, "partition_rows"),
        ({"backend": "cloud"}, "backend"),
        ({"estimators": []}, "estimators"),
        ({"release": "no spaces/allowed"}, "release"),
        ({"column_map": "sdss"}, "column_map"),
    ],
)
def test_an_invalid_conf_is_rejected_at_trigger_time(client, conf, field):
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 400, response.text
    assert f"param {field}" in response.json()["detail"]


def test_a_rest_triggered_run_completes_all_stages(client, finished_run, input_rows):
    run_id, _ = finished_run
    states = task_states(client, DAG_ID, run_id)
    # The local backend's run: the cluster variant of stage III is branched away.
    assert states.pop("stage_3_estimate.estimate_on_cluster") == "skipped", states
    assert states.pop("stage_4_postprocess.deliver_catalog[0]") == "skipped", states  # no destination
    assert set(states.values()) == {"success"}, states
    groups = {task_id.split(".")[0] for task_id in states}
    assert groups == {"stage_1_acquire", "stage_2_train", "stage_3_estimate", "stage_4_postprocess"}
    estimates = [task_id for task_id in states if task_id.startswith("stage_3_estimate.estimate[")]
    assert len(estimates) == -(-input_rows // PARTITION_ROWS) >= 2


def test_the_run_writes_the_photoz_catalog_and_metrics(client, finished_run, input_rows):
    run_id, output = finished_run
    xcom = client.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
        "stage_4_postprocess.assemble_catalog/xcomEntries/return_value",
        params={"map_index": 0, "deserialize": True},
    )
    assert xcom.status_code == 200, xcom.text
    summary = xcom.json()["value"]
    assert summary["estimator"] == "bpz"
    assert summary["n_rows"] == input_rows
    assert Path(summary["catalog"]).is_dir()
    assert Path(summary["catalog"]).is_relative_to(output)
    assert summary["metrics"]["n_objects"] == input_rows
    assert (output / "bpz" / "metrics.json").is_file()
    assert len(list((output / "bpz" / "partitions").glob("*.parquet"))) == -(-input_rows // PARTITION_ROWS)


def test_rerunning_a_finished_run_recomputes_nothing(client, finished_run):
    run_id, output = finished_run
    computed = sorted([*(output / "stage1").glob("*.parquet"), *(output / "models").iterdir(),
                       *(output / "bpz" / "partitions").glob("*.parquet")])  # fmt: skip
    written_at = {path: path.stat().st_mtime_ns for path in computed}

    response = client.post(
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True},
    )
    assert response.status_code == 200, response.text
    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(client, DAG_ID, run_id)

    assert {path: path.stat().st_mtime_ns for path in computed} == written_at
