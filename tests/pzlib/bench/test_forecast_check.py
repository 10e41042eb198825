"""pzlib.bench.forecast_check: a tiny forecast-vs-real run on the Slurm test cluster (no timing is asserted: the
figures are whatever this machine measures), and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.cluster import CLUSTER_DIR

from pzlib.bench.forecast_check import CheckConfig

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_forecast.py"


def test_a_tiny_check_runs_both_arrays_and_reports_forecast_and_measurement(slurm_cluster, tmp_path):
    report_path = tmp_path / "report.json"
    # Scaling sizes far apart: on a loaded machine, small runs differ by noise more than by size.
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--partitions", "6", "--partition-rows", "500", "--calibration-per-worker", "2",
         "--scaling-sizes", "200,20000", "--cluster-json", str(CLUSTER_DIR / "cluster.json"), "--workdir",
         str(tmp_path), "--json", str(report_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert report_path.exists(), completed.stderr[-3000:]
    output = completed.stdout
    report = json.loads(report_path.read_text())
    assert completed.returncode == (0 if report["within_tolerance"] else 1)
    cores = json.loads((CLUSTER_DIR / "cluster.json").read_text())["cpus"]
    assert (report["partitions"], report["objects"], report["cores"]) == (6, 3_000, cores)
    run, calibration = report["run"], report["calibration"]
    assert run["outputs"] == 6 and run["tasks"] == min(6, cores)
    assert sum(loop["partitions"] for loop in run["loops"]) == 6
    assert calibration["outputs"] == 2 * cores and all(loop["partitions"] == 2 for loop in calibration["loops"])
    (item,) = report["forecast"]["estimators"]
    assert item["partitions"] == 6 and item["workers"] == min(6, cores) and item["waves"] == -(-6 // cores)
    assert report["forecast_s"] == item["wall_seconds"] > 0 and report["measured_s"] == run["wall_s"] > 0
    assert report["difference_pct"] == pytest.approx(100 * (report["forecast_s"] / report["measured_s"] - 1))
    assert report["overhead"]["source"].startswith("pzlib.bench.forecast_check calibration array")
    assert item["settle_seconds"] == pytest.approx(6 * report["overhead"]["settle_seconds"])
    assert run["waited_for_idle_cluster_s"] >= 0 and isinstance(run["other_jobs_after"], list)
    assert run["cpu_share"] is None or run["cpu_share"] > 0  # sacct's CPU time over elapsed
    assert [run["rows"] for run in report["scaling"]["runs"]] == [200, 20_000]
    for key in ("load_start", "load_end"):
        assert report[key] >= 0
    assert f"{report['forecast_s']:8.1f} s" in output and f"{report['measured_s']:8.1f} s" in output
    assert f"difference: {report['difference_pct']:+.1f}%" in output
    assert not list(tmp_path.glob("run-*")), "the run folders are removed"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"partitions": 0}, "partitions must be at least 1"),
        ({"partition_rows": 2.5}, "partition_rows must be a whole number"),
        ({"calibration_partitions_per_worker": 1}, "calibration_partitions_per_worker must be at least 2"),
        ({"estimator": "som"}, "estimator must be one of"),
        ({"poll_interval_s": 0}, "poll_interval_s must be a positive number"),
        ({"scaling_sizes": (500,)}, "at least two different row counts"),
        ({"cluster_json": "nowhere/cluster.json"}, "nowhere/cluster.json: no cluster facts here"),
    ],
)
def test_bad_configuration_is_one_message(arguments, message, tmp_path):
    facts = tmp_path / "cluster.json"
    facts.write_text(json.dumps({"cpus": 2}))
    with pytest.raises(ValueError, match=message):
        CheckConfig(**{"cluster_json": facts, "workdir": tmp_path, **arguments})
