"""pz_compute through `airflow dags test` with one bad stage I partition: only that partition's mapped stage III
task fails, with a message naming the partition file, the column and the problem; the others succeed."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
from fixtures.airflow import AIRFLOW_SCRIPTS, airflow_environment

from pzlib.catalog import file_sha256, write_parquet
from pzlib.compute.acquire import acquire
from pzlib.compute.spec import RunSpec
from pzlib.preprocess import MANIFEST_NAME


def test_a_bad_partition_fails_only_its_own_mapped_task(dc2_paths, dc2_300, tmp_path):
    output = tmp_path / "run"
    conf = {"input": str(dc2_300), "train": str(dc2_paths[0]), "estimators": ["bpz"], "partition_rows": 100,
            "publish": False, "retries": 0}
    # Stage I made ahead with the run's own params, then partition 1 turned bad with its manifest updated to
    # match (as a stage I bug would leave it): the DAG's stage I keeps it, and stage III meets it.
    spec = RunSpec.from_params({"release": "dc2-demo", "output": str(output),
                                         **{k: v for k, v in conf.items() if k != "retries"}})
    assert len(acquire(spec)) == 3
    bad = output / "stage1" / "part-00001.parquet"
    table = pq.read_table(bad)
    write_parquet(table.set_column(table.schema.get_field_index("mag_r_lsst"), "mag_r_lsst",
                                   table.column("mag_r_lsst").cast(pa.string())), bad)
    manifest_path = output / "stage1" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"][1] = file_sha256(bad)
    manifest_path.write_text(json.dumps(manifest))
    environment = airflow_environment(tmp_path / "airflow", PZ_DEMO_OUTPUT=str(output), PZ_DEMO_CONF=json.dumps(conf),
                                      PZ_STATE_DIR=str(tmp_path / "pz"))

    result = subprocess.run([AIRFLOW_SCRIPTS / "demo.sh"], env=environment, capture_output=True, text=True,
                            timeout=900)

    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    [run] = json.loads(_airflow(environment, "dags list-runs pz_compute -o json"))
    tasks = json.loads(_airflow(environment, f"tasks states-for-dag-run pz_compute {run['run_id']} -o json"))
    states = {(task["task_id"], str(task["map_index"])): task["state"] for task in tasks}
    estimates = {index: state for (task_id, index), state in states.items() if task_id == "stage_3_estimate.estimate"}
    assert estimates == {"0": "success", "1": "failed", "2": "success"}
    assert states[("stage_1_acquire.partition_input", "")] == "success"
    assert sorted(path.name for path in (output / "bpz" / "partitions").iterdir()) == [
        "part-00000.parquet", "part-00002.parquet"]
    log = (tmp_path / "airflow" / "logs" / "services" / "demo.log").read_text()
    assert f"{bad}, column 'mag_r_lsst': expected a numeric column, found string" in log


def _airflow(environment: dict[str, str], command: str) -> str:
    """The last line an `airflow` CLI command prints (its JSON answer, after any warnings), run against the
    instance of ``environment`` (its env.sh settings)."""
    result = subprocess.run(["bash", "-c", f'source "{AIRFLOW_SCRIPTS}/env.sh" && "$PZ_AIRFLOW_BIN" {command}'],
                            env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]
