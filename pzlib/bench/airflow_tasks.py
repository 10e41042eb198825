"""Stage III on the local Airflow backend: what each mapped estimate task costs beyond its compute.

Starts a throwaway Airflow (scripts/airflow/up.sh, state in a temporary folder, a free port — a developer's own
`make up` is neither used nor disturbed), triggers pz_compute over REST on the DC2 validation set tiled to
ROWS rows in PARTITIONS partitions (BPZ only, nothing published), waits for it, and reads the mapped
``stage_3_estimate.estimate`` task instances. The compute each partition needs comes from the runtime model
of ``pz bench scaling`` (a + b·rows on one core, var/bench/scaling.json); the per-partition overhead is what
stage III's span, times the tasks Airflow runs at once, leaves over:

    overhead = (span × concurrent tasks − Σ (a + b·rows)) / partitions

It covers each task's process (interpreter, Airflow's task runner, DAG parse, imports), scheduling latency, the
output's validation check and the XCom. The figure is saved in var/bench/overhead.json as the 'local'
backend's, where ``pz forecast --backend local`` reads it.

    .venv/bin/python scripts/bench_airflow_tasks.py [--rows 60000] [--partitions 12]
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import io
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow.parquet as pq

from pzlib.bench import runtime_model
from pzlib.bench.inputs import tiled_input
from pzlib.estimate import configure_rail_logging
from pzlib.resources import source_checkout
from pzlib.samples import dc2_sample_paths

DAG_ID = "pz_compute"
TASK_ID = "stage_3_estimate.estimate"


def _checkout() -> Path:
    """The checkout this runs from: the throwaway Airflow is its scripts/airflow/ with its airflow.cfg."""
    checkout = source_checkout()
    if checkout is None:
        raise SystemExit("scripts/bench_airflow_tasks.py starts Airflow with a pz-platform checkout's scripts/airflow/ "
                         "and airflow.cfg: run it from a checkout")
    return checkout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _concurrent_tasks() -> int:
    """How many tasks of one DAG run Airflow runs at once with this repo's airflow.cfg."""
    settings = configparser.ConfigParser(interpolation=None)
    settings.read(_checkout() / "airflow.cfg")
    return min(settings.getint("core", "parallelism"), settings.getint("core", "max_active_tasks_per_dag"))


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_dag(state_dir: Path, conf: dict, timeout_s: float) -> list[dict]:
    """Start Airflow in ``state_dir``, run pz_compute with ``conf``, stop Airflow; the estimate task instances."""
    port, password = _free_port(), secrets.token_urlsafe(12)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    environment.update(PZ_AIRFLOW_HOME=str(state_dir), PZ_AIRFLOW_PORT=str(port), PZ_AIRFLOW_PASSWORD=password,
                       PZ_AIRFLOW_BIN=str(Path(sys.executable).parent / "airflow"), PZ_STATE_DIR=str(state_dir / "pz"))
    url = f"http://127.0.0.1:{port}"
    airflow_scripts = _checkout() / "scripts" / "airflow"
    started = subprocess.run([airflow_scripts / "up.sh"], env=environment, capture_output=True, text=True,
                             timeout=400)
    try:
        if started.returncode != 0:
            raise RuntimeError(f"up.sh failed:\n{started.stdout}\n{started.stderr}")
        token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            deadline = time.monotonic() + 180
            while client.get(f"/api/v2/dags/{DAG_ID}").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{DAG_ID} not parsed in 180 s: {client.get('/api/v2/importErrors').text}")
                time.sleep(2)
            response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
            response.raise_for_status()
            run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(response.json()['dag_run_id'], safe='')}"
            deadline = time.monotonic() + timeout_s
            while (state := client.get(run_path).json()["state"]) not in ("success", "failed"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{DAG_ID} not finished in {timeout_s:.0f} s")
                time.sleep(3)
            instances = client.get(f"{run_path}/taskInstances", params={"limit": 1000}).json()["task_instances"]
            if state != "success":
                failed = [f"{ti['task_id']}[{ti['map_index']}]" for ti in instances if ti["state"] == "failed"]
                raise RuntimeError(f"{DAG_ID} failed: {', '.join(failed)} (logs under {state_dir}/logs)")
    finally:
        subprocess.run([airflow_scripts / "down.sh"], env=environment, capture_output=True, text=True, timeout=120)
    return [ti for ti in instances if ti["task_id"] == TASK_ID]


def warm_bpz_data(pz_state_dir: Path) -> None:
    """Build BPZ's AB files in the run's state folder once, as on a machine that has run BPZ before.

    BPZ-lite writes a missing AB file non-atomically on first use; two fresh tasks starting together can read
    one half-written and fail, which is not the steady state this benchmark measures.
    """
    from pzlib.estimate import EstimateConfig, PartitionEstimator, train

    os.environ["PZ_STATE_DIR"] = str(pz_state_dir)
    config = EstimateConfig("bpz")
    with contextlib.redirect_stdout(io.StringIO()):  # BPZ prints a line per AB file it writes
        model = train(dc2_sample_paths()[0], pz_state_dir / "warm-up" / "bpz.pkl", config)
        assert PartitionEstimator(model, config).fast is not None
    del os.environ["PZ_STATE_DIR"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000, help="rows of the tiled DC2 input (default 60,000)")
    parser.add_argument("--partitions", type=int, default=12)
    checkout = _checkout()
    parser.add_argument("--scaling-file", default=str(checkout / runtime_model.SCALING_FILE))
    parser.add_argument("--overhead-file", default=str(checkout / runtime_model.OVERHEAD_FILE))
    parser.add_argument("--workdir", default=str(checkout / "var" / "bench"), help="where the tiled input is kept")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the DAG run")
    args = parser.parse_args()
    fit = runtime_model.load_scaling(args.scaling_file).estimators["bpz"].fit  # a + b·rows of BPZ, one core
    configure_rail_logging("WARNING")

    input_path = tiled_input(args.rows, Path(args.workdir))
    state_dir = Path(tempfile.mkdtemp(prefix="bench-airflow-", dir=args.workdir))
    warm_bpz_data(state_dir / "pz")
    output = state_dir / "pz_compute"
    conf = {"release": "bench", "input": str(input_path), "train": str(dc2_sample_paths()[0]),
            "output": str(output), "estimators": ["bpz"], "partition_rows": -(-args.rows // args.partitions),
            "publish": False}
    instances = run_dag(state_dir, conf, args.timeout)  # on failure the state folder stays, for its logs
    partition_rows = [pq.read_metadata(path).num_rows for path in sorted((output / "stage1").glob("*.parquet"))]
    shutil.rmtree(state_dir)

    concurrent = _concurrent_tasks()
    queued = [_time(ti["queued_when"]) for ti in instances]
    starts = [_time(ti["start_date"]) for ti in instances]
    ends = [_time(ti["end_date"]) for ti in instances]
    span = max(ends) - min(queued)
    compute = sum(fit.seconds(rows) for rows in partition_rows)
    overhead = (span * concurrent - compute) / len(instances)
    durations = [end - start for start, end in zip(starts, ends, strict=True)]
    latencies = [start - queued_at for queued_at, start in zip(queued, starts, strict=True)]
    print(f"stage III of pz_compute on the local Airflow backend: {len(instances)} mapped tasks "
          f"({sum(partition_rows):,} DC2 rows, BPZ), at most {concurrent} at once")
    print(f"  span, first task queued → last task done:           {span:7.1f} s")
    print(f"  compute of the partitions by the runtime model a + b·rows (a = {fit.intercept_s:.3f} s, "
          f"b = {fit.seconds_per_row * 1e6:.2f} µs): {compute:7.1f} s")
    print(f"  task duration (start → end), median:                 {statistics.median(durations):7.2f} s")
    print(f"  queued → running, median:                            {statistics.median(latencies):7.2f} s")
    print(f"  overhead per partition, (span × {concurrent} − compute) / {len(instances)}: {overhead:7.2f} s")
    source = (f"scripts/bench_airflow_tasks.py on {platform.node()} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
              f"pz_compute, local backend (LocalExecutor, {concurrent} tasks at once), {len(instances)} partitions "
              f"of {max(partition_rows):,} DC2 rows (BPZ): (stage III span {span:.1f} s × {concurrent} − compute "
              f"{compute:.1f} s by a + b·rows with a = {fit.intercept_s:.3f} s, b = {fit.seconds_per_row * 1e6:.2f} µs "
              f"from {args.scaling_file}) / {len(instances)} partitions")
    saved = runtime_model.save_overhead("local", runtime_model.PartitionOverhead(overhead, source), args.overhead_file)
    print(f"saved → {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
