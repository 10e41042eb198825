"""pz_compute survives one fault per run, with no human in the loop: the run ends `success` by itself, with
no task cleared by hand, and its photo-z tables hold exactly what an undisturbed run's hold.

The faults are real: SIGKILL to the scheduler or to the api-server, then `make up` (scripts/airflow/up.sh);
`make down` and `make up` (down.sh, up.sh) in the middle of a run; SIGKILL to a stage III task process while
its output file is open for writing. Each hits a run of its own (own output folder) while stage III runs, on
the session's Airflow instance (left up, as `make up` leaves it). The runs estimate the 2,000-galaxy DC2 slice
with BPZ in partitions of 800 rows, as tests/dags/test_pz_compute_rest.py does, without publishing (stage IV's
publishing is not what these faults hit).

"Identical" compares the contents of each partition's photo-z table (schema and every value) and the metrics
of the assembled catalog; the Parquet files' key-value metadata legitimately differ (their provenance names
the run's own stage I partition paths), and so do their bytes (write times). At the end the module prints one
line per fault: what happened, the time from the fault to the run's end, the run's wall time against the
undisturbed run's, and whether the outputs are identical.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.airflow import AirflowServices, task_states, wait_for_dag, wait_for_run

from pzlib.retries import TASK_RETRIES

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
RUN_TIMEOUT_S = 900
PARTITION_ROWS = 800
ESTIMATE_TASK = "stage_3_estimate.estimate"
POLL_S = 0.5


@pytest.fixture(scope="module")
def client(airflow_services: AirflowServices):
    with airflow_services.client() as authenticated:
        wait_for_dag(authenticated, DAG_ID)
        yield authenticated


@pytest.fixture(scope="module")
def recoveries(request):
    """Lines of the closing table, one per fault; printed when the module is done."""
    lines: list[str] = []
    yield lines
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("", *lines, sep="\n")


@pytest.fixture(scope="module")
def trigger(client, dc2_paths, dc2_slice):
    """Trigger a pz_compute run writing to ``output``; returns its run id."""

    def trigger_run(output: Path, **changes) -> str:
        conf = {"release": "dc2-faults", "input": str(dc2_slice), "train": str(dc2_paths[0]), "output": str(output),
                "estimators": ["bpz"], "partition_rows": PARTITION_ROWS, "publish": False, **changes}
        response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    return trigger_run


@pytest.fixture(scope="module")
def reference(client, trigger, tmp_path_factory) -> dict:
    """The undisturbed run: its output folder, wall time and outputs."""
    output = tmp_path_factory.mktemp("reference") / "run"
    run_id = trigger(output)
    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(client, DAG_ID, run_id)
    started, ended = run_times(client, run_id)
    return {"output": output, "wall_s": ended - started, "tables": photoz_tables(output),
            "metrics": assembled_metrics(output)}


def run_times(client: httpx.Client, run_id: str) -> tuple[float, float]:
    """(start, end) of a finished run, as POSIX times, from Airflow's own record."""
    run = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}").json()
    return tuple(datetime.fromisoformat(run[key]).timestamp() for key in ("start_date", "end_date"))


def photoz_tables(output: Path) -> dict[str, pa.Table]:
    """{file name: table} of the run's stage III outputs, key-value metadata left out."""
    paths = sorted((output / "bpz" / "partitions").glob("*.parquet"))
    assert paths, f"no photo-z table in {output}"
    return {path.name: pq.read_table(path).replace_schema_metadata(None) for path in paths}


def assembled_metrics(output: Path) -> dict:
    return json.loads((output / "bpz" / "metrics.json").read_text())["metrics"]


def temporary_files(output: Path) -> list[Path]:
    """Files a writer left under a temporary name (``.name.tmp-XXXX``, ``.name.tmp``)."""
    return [path for path in output.rglob(".*") if ".tmp" in path.name]


def wait_for_stage_3(client: httpx.Client, run_id: str) -> None:
    """Return once a stage III task of the run is running."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        states = task_states(client, DAG_ID, run_id)
        if any(task.startswith(ESTIMATE_TASK + "[") and state == "running" for task, state in states.items()):
            return
        assert "failed" not in states.values(), states
        time.sleep(POLL_S)
    raise AssertionError(f"stage III of {run_id} never started: {task_states(client, DAG_ID, run_id)}")


def finish_and_compare(client, run_id: str, output: Path, reference: dict, fault: str, fault_at: float,
                       services_back_at: float, what_happened: str, recoveries: list[str]) -> dict[str, dict]:
    """Wait for the run, check it against the reference and record its line of the closing table; returns the
    run's task instances.

    Time to recover: from the fault until the last task it interrupted started again (a task tried more than
    once), or, when no task had to run again, until the services were back.
    """
    state = wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)
    instances = task_instances(client, run_id)
    assert state == "success", {task: instance["state"] for task, instance in instances.items()}
    started, ended = run_times(client, run_id)
    rerun = [datetime.fromisoformat(instance["start_date"]).timestamp() for instance in instances.values()
             if instance["try_number"] > 1]
    recovered = (f"{len(rerun)} task(s) run again, the last restarted {max(rerun) - fault_at:.0f} s after the fault"
                 if rerun else f"no task run again; services back {services_back_at - fault_at:.0f} s after the fault")
    tables = photoz_tables(output)
    identical = tables.keys() == reference["tables"].keys() and all(
        tables[name].equals(reference["tables"][name]) for name in tables
    ) and assembled_metrics(output) == reference["metrics"]
    recoveries.append(
        f"FAULT {fault}: {what_happened}; {recovered}; run success {ended - fault_at:.0f} s after the fault "
        f"(wall {ended - started:.0f} s, undisturbed run {reference['wall_s']:.0f} s); outputs identical: "
        f"{'yes' if identical else 'NO'}"
    )
    assert tables.keys() == reference["tables"].keys()
    for name, table in tables.items():
        assert table.equals(reference["tables"][name]), f"{name} differs from the undisturbed run's"
    assert assembled_metrics(output) == reference["metrics"]
    assert temporary_files(output) == []
    return instances


def task_instances(client: httpx.Client, run_id: str) -> dict[str, dict]:
    """{task_id[map_index]: task instance (state, try_number, max_tries, start_date, ...)} of a run."""
    response = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                          params={"limit": 1000})
    response.raise_for_status()
    return {task["task_id"] + (f"[{task['map_index']}]" if task["map_index"] >= 0 else ""): task
            for task in response.json()["task_instances"]}


@pytest.mark.parametrize("retries", [None, 0, TASK_RETRIES + 2])
def test_bad_input_fails_at_once_whatever_retries_the_run_allows(client, trigger, tmp_path, retries):
    """A missing input fails its task on the first try (a retry would meet it again); the run's task instances
    carry the retries its ``retries`` param asks for, or the default."""
    changes = {"input": str(tmp_path / "missing.parquet")} | ({} if retries is None else {"retries": retries})
    run_id = trigger(tmp_path / "run", **changes)

    assert wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S) == "failed"
    instances = task_instances(client, run_id)
    assert {instance["max_tries"] for instance in instances.values()} == {TASK_RETRIES if retries is None else retries}
    failed = {task: instance["try_number"] for task, instance in instances.items() if instance["state"] == "failed"}
    assert failed == {"stage_1_acquire.partition_input": 1}


def test_a_killed_scheduler_comes_back_with_make_up_and_the_run_finishes(
        airflow_services, client, trigger, reference, recoveries, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    wait_for_stage_3(client, run_id)
    fault_at = time.time()
    killed = airflow_services.service_pid("scheduler")
    os.kill(killed, signal.SIGKILL)

    restarted = airflow_services.script("up.sh")
    back_at = time.time()

    assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
    assert airflow_services.service_pid("scheduler") != killed, restarted.stdout
    # Its task processes kept its session alive: they are stopped, and only the scheduler is started.
    assert "had died; stopping its orphaned processes" in restarted.stdout, restarted.stdout
    assert "starting the others: scheduler\n" in restarted.stdout, restarted.stdout
    finish_and_compare(client, run_id, output, reference, "scheduler SIGKILL mid stage III + make up", fault_at,
                       back_at, "make up stopped its orphaned task processes and restarted it; the tasks it held "
                       "were given back to the new scheduler", recoveries)


def test_a_killed_api_server_comes_back_with_make_up_and_the_run_finishes(
        airflow_services, client, trigger, reference, recoveries, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    wait_for_stage_3(client, run_id)
    fault_at = time.time()
    os.kill(airflow_services.service_pid("api-server"), signal.SIGKILL)

    restarted = airflow_services.script("up.sh")
    back_at = time.time()

    assert restarted.returncode == 0, f"{restarted.stdout}\n{restarted.stderr}"
    assert "starting the others: api-server\n" in restarted.stdout, restarted.stdout
    finish_and_compare(client, run_id, output, reference, "api-server SIGKILL mid stage III + make up", fault_at,
                       back_at, "make up restarted it, the other services kept; tasks waited for the API",
                       recoveries)


def test_make_down_and_make_up_in_the_middle_of_a_run(
        airflow_services, client, trigger, reference, recoveries, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    wait_for_stage_3(client, run_id)
    fault_at = time.time()

    stopped = airflow_services.script("down.sh", timeout_s=240)
    started = airflow_services.script("up.sh")
    back_at = time.time()

    assert stopped.returncode == 0, f"{stopped.stdout}\n{stopped.stderr}"
    assert started.returncode == 0, f"{started.stdout}\n{started.stderr}"
    finish_and_compare(client, run_id, output, reference, "make down + make up mid stage III", fault_at, back_at,
                       "every service stopped (scheduler first, api-server last) and started again", recoveries)


def test_a_task_process_killed_while_it_writes_is_retried_and_leaves_no_temporary_file(
        airflow_services, client, trigger, reference, recoveries, tmp_path):
    output = tmp_path / "run"
    run_id = trigger(output)
    fault_at, temporary = kill_a_writer(output / "bpz" / "partitions", airflow_services.service_pid("scheduler"))

    instances = finish_and_compare(client, run_id, output, reference, "stage III task SIGKILL while it writes",
                                   fault_at, fault_at, f"the writer of {temporary.name} killed; the task retried, "
                                   "the dead writer's file swept", recoveries)
    estimate_tries = {task: instance["try_number"] for task, instance in instances.items()
                      if task.startswith(ESTIMATE_TASK)}
    assert max(estimate_tries.values()) >= 2, estimate_tries


def kill_a_writer(partitions: Path, scheduler_pid: int) -> tuple[float, Path]:
    """SIGKILL the task process (of the scheduler's session) that holds a temporary photo-z table open for
    writing, as soon as one appears; returns when it was killed and the file it was writing."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        temporaries = set(partitions.glob(".*.tmp-*")) if partitions.is_dir() else set()
        for process in psutil.process_iter() if temporaries else ():
            try:
                if os.getsid(process.pid) != scheduler_pid:
                    continue
                writing = temporaries & {Path(opened.path) for opened in process.open_files()}
            except (OSError, psutil.Error):
                continue
            if writing:
                process.send_signal(signal.SIGKILL)
                return time.time(), writing.pop()
        time.sleep(POLL_S / 10)
    raise AssertionError(f"no task process was seen writing in {partitions}")
