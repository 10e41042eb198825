"""The runtime model against a real run: ``pz forecast``'s wall time for stage III next to the measured wall time
of the same stage III, ≥ 100 partitions on the Slurm test cluster (scripts/cluster/up.sh), in one command.

    .venv/bin/python scripts/bench_forecast.py [--partitions 120] [--partition-rows 2000] [--estimator bpz]

One run does, in this order (the machine's load average is recorded before and after each step):

1. **Inputs.** The DC2 validation set tiled to ``partitions × partition_rows`` rows and cut by stage I into
   partitions of ``partition_rows``; a second, small input for the calibration array; the estimator trained
   once (stage II) and used by both arrays.
2. **Scaling, re-measured.** :func:`pzlib.bench.runtime_model.measure_scaling` at sizes bracketing the partition
   (¼×, 1×, 4× by default), each size in a fresh single-threaded process: the setup ``s`` (model load and a
   warm-up batch, once per worker) and ``a′ + b·rows`` fitted to the rest (a partition in a loaded worker).
3. **Overhead, re-measured** on the cluster by a separate calibration array (one worker per core, a few
   partitions each, same partition size), driven as the DAG drives stage III (:func:`pzlib.bench.cluster.drive`):
   the workers' pace is the median seconds from the end of one partition to the end of the next in a worker (the
   run's ``timings.jsonl``, written by the workers; each worker's first partition left out, it also sets the
   output validation up and warms the estimator); the *per-partition overhead* is that pace less
   the engine's ``a′ + b·rows``: what stage III adds per partition (input row count, output validation,
   SHA-256, markers); the *settlement* per partition is the driver's verification of the outputs once the array
   has ended, divided by its partitions; the *per-array overhead* is the array's wall time (submission to
   settled) less the last worker's partitions at that pace, ``s`` and the settlement: submission, scheduling,
   worker process start and imports, the first output validation's set-up (great_expectations), exit, noticing
   the end (polling every ``poll_interval_s``).
4. **The real run**: stage III over all partitions as one job array of long-lived workers, one per core
   (``max_concurrent`` = the cluster's CPUs), timed from submission to settled.

The test cluster is shared: each array waits until no other job is on the cluster (the wait is reported, not
timed), and the jobs found on it right after each array are reported. So is the machine: the report gives the
share of their cores the workers got in each array (sacct's CPU time over elapsed time), their pace in each
and, to explain a miss, the difference at the run's own pace (what is left to the fixed terms; not the check).
5. **The forecast**: :func:`pzlib.bench.runtime_model.forecast` for the same objects, cores and partition rows with
   the figures of 2 and 3, printed next to the measured wall time with their difference in %, and written as
   JSON.

With the calibration at the run's partition size, ``a′ + b·rows + overhead`` adds up to the calibration's
measured pace: the check proves the model's shape (a fixed part per array and per worker, then ``ceil(P / C)``
rounds of one partition per worker) carried from a few partitions per worker to many, on the same machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pzlib.config import load_settings

DEFAULT_PARTITIONS = 120
DEFAULT_PARTITION_ROWS = 2_000
"""Small partitions keep stage III short (about a minute on the 2-core test cluster): the machine is shared, and
the other users' load changes less between the calibration array and the run."""
CALIBRATION_PARTITIONS_PER_WORKER = 8
POLL_INTERVAL_S = 2.0
"""Seconds between polls of the arrays (the delay in noticing an array's end is part of its overhead)."""
TOLERANCE = 0.10


def _state_dir() -> Path:
    return load_settings().state_dir


@dataclass
class CheckConfig:
    """What one forecast-vs-real run does."""

    partitions: int = DEFAULT_PARTITIONS
    partition_rows: int = DEFAULT_PARTITION_ROWS
    estimator: str = "bpz"
    cores: int | None = None
    """Array tasks at once, one single-threaded worker each; None: the cluster's CPUs (cluster.json)."""
    calibration_partitions_per_worker: int = CALIBRATION_PARTITIONS_PER_WORKER
    scaling_sizes: tuple[int, ...] | None = None
    """Rows of the scaling runs; None: ¼, 1 and 4 times ``partition_rows``."""
    poll_interval_s: float = POLL_INTERVAL_S
    workdir: Path = field(default_factory=lambda: _state_dir() / "bench" / "forecast")
    cluster_json: Path = field(default_factory=lambda: _state_dir() / "cluster" / "cluster.json")
    keep_runs: bool = False
    """Keep the two run folders (default: removed once measured; the tiled inputs are kept for the next run)."""

    def __post_init__(self):
        from pzlib.bench.runtime_model import check_count
        from pzlib.estimate import BUILTIN_ESTIMATORS

        self.partitions = check_count("partitions", self.partitions)
        self.partition_rows = check_count("partition_rows", self.partition_rows)
        # Two at least: a worker's pace is measured from the end of its first partition.
        self.calibration_partitions_per_worker = check_count("calibration_partitions_per_worker",
                                                              self.calibration_partitions_per_worker, 2)
        if self.cores is not None:
            self.cores = check_count("cores", self.cores)
        if self.estimator not in BUILTIN_ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(BUILTIN_ESTIMATORS)}, got {self.estimator!r}")
        if not self.poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be a positive number of seconds, got {self.poll_interval_s!r}")
        if self.scaling_sizes is None:
            rows = self.partition_rows
            self.scaling_sizes = (max(1, rows // 4), rows, 4 * rows)
        self.scaling_sizes = tuple(sorted({check_count("scaling_sizes", size) for size in self.scaling_sizes}))
        if len(self.scaling_sizes) < 2:
            raise ValueError(f"scaling_sizes needs at least two different row counts to fit a + b·rows, got "
                             f"{self.scaling_sizes}")
        self.workdir = Path(self.workdir).resolve()
        self.cluster_json = Path(self.cluster_json)
        if not self.cluster_json.is_file():
            raise ValueError(f"{self.cluster_json}: no cluster facts here; start the test cluster with "
                             "scripts/cluster/up.sh (or pass the cluster.json it wrote)")

    def cluster_cores(self) -> int:
        return self.cores or int(json.loads(self.cluster_json.read_text())["cpus"])


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def prepare(name: str, partitions: int, config: CheckConfig, cores: int) -> tuple:
    """A run folder holding stage I of ``partitions × partition_rows`` tiled DC2 rows: (spec, partition paths)."""
    from pzlib.bench.inputs import tiled_input
    from pzlib.compute.acquire import acquire
    from pzlib.compute.spec import RunSpec
    from pzlib.samples import dc2_sample_paths

    input_path = tiled_input(partitions * config.partition_rows, config.workdir)
    output = config.workdir / f"run-{name}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    spec = RunSpec(release="forecast-check", input=str(input_path), train=str(dc2_sample_paths()[0]),
                   output=str(output), estimators=[config.estimator], partition_rows=config.partition_rows,
                   backend="slurm", resources={"max_concurrent": cores})
    paths = acquire(spec)
    if len(paths) != partitions:
        raise RuntimeError(f"stage I cut {partitions * config.partition_rows:,} rows into {len(paths)} partitions, "
                           f"expected {partitions}")
    return spec, paths


def worker_loops(spec, estimator: str) -> list[dict]:
    """Per array task of the run's only array: its partitions and the span from its first partition's start to
    its last partition's end (the run's ``timings.jsonl``, written by the workers)."""
    from pzlib.cluster.plan import read_json
    from pzlib.compute.timings import timings_path

    state = read_json(Path(spec.output).resolve() / estimator / "jobs" / "state.json")
    spans = {}
    for line in timings_path(spec.output).read_text().splitlines():
        entry = json.loads(line)
        if entry["stage"] == "stage_3_estimate":
            spans[entry["key"]] = (entry["started"], entry["ended"])
    loops = []
    for share in state["arrays"][-1]["tasks"]:
        task_spans = [spans[f"{estimator}/{Path(path).name}"] for path in share]
        loops.append({"partitions": len(share), "spans": [[start, end] for start, end in task_spans]})
    return loops


def run_array(spec, paths: list[str], model_path: str, config: CheckConfig, slurm) -> dict:
    """Stage III of ``paths`` as job arrays driven to the end; the figures of :func:`pzlib.bench.cluster.drive`
    and the workers' loops."""
    from pzlib.bench.cluster import drive
    from pzlib.compute.estimate_array import EstimateArray

    stage = EstimateArray(spec, config.estimator, model_path, paths, slurm, owner="forecast-check")
    waited_s = wait_for_idle_cluster(slurm, config.poll_interval_s)
    load_before = _load()
    figures = drive(stage, config.poll_interval_s)
    if figures["arrays"] != 1 or figures["outputs"] != len(paths):
        raise RuntimeError(f"stage III of {spec.output} took {figures['arrays']} arrays for {figures['outputs']} of "
                           f"{len(paths)} outputs: a partition failed, not a measurement (see its jobs folder)")
    handle = figures["handle"]
    return {"wall_s": figures["wall_s"], "submission_s": figures["submission_s"], "settle_s": figures["settle_s"],
            "polls": len(figures["polls"]), "job_id": handle.job_id, "tasks": handle.task_count,
            "outputs": figures["outputs"], "loops": worker_loops(spec, config.estimator),
            "load_before": load_before, "load_after": _load(), "waited_for_idle_cluster_s": waited_s,
            "other_jobs_after": _other_jobs(slurm), "cpu_share": cpu_share(slurm, handle.job_id)}


def _slurm_seconds(text: str) -> float:
    """Seconds of a sacct duration: [D-][HH:]MM:SS[.mmm]."""
    days, _, clock = text.rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = 60 * seconds + float(part)
    return seconds + 86400 * int(days or 0)


def cpu_share(slurm, job_id: str) -> float | None:
    """The CPU time the array's tasks got over their elapsed time (sacct; 1 = a whole core each all along):
    the share of its cores the other users of this machine left it. None when sacct has no record yet."""
    result = slurm.shell.run(f"sacct -j {job_id} -n -P -o JobID,ElapsedRaw,TotalCPU")
    cpu = elapsed = 0.0
    for line in result.stdout.split():
        task, elapsed_raw, total_cpu = line.split("|")
        if "." not in task and elapsed_raw and total_cpu:
            cpu += _slurm_seconds(total_cpu)
            elapsed += float(elapsed_raw)
    return cpu / elapsed if cpu > 0 and elapsed > 0 else None


IDLE_WAIT_S = 900


def _other_jobs(slurm) -> list[str]:
    return slurm.shell.run("squeue -h -o '%i %j %T'").stdout.split("\n")[:-1]


def wait_for_idle_cluster(slurm, poll_interval_s: float, timeout_s: float = IDLE_WAIT_S) -> float:
    """Wait until no job is queued or running on the cluster (the test cluster is shared: another job's tasks
    would hold the cores the array is timed on); return the seconds waited."""
    started = time.perf_counter()
    while jobs := _other_jobs(slurm):
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"the cluster has been busy for {timeout_s:.0f} s (jobs: {', '.join(jobs[:5])}); "
                               "run the check when it is free")
        time.sleep(poll_interval_s)
    return time.perf_counter() - started


def worker_pace(loops: list[dict]) -> float:
    """The workers' median seconds per partition after their first, each from the end of the one before (so with
    the gap between them): the first also sets the output validation up and warms the estimator up, counted once
    per array. The median: on a shared machine one worker can lose its core for a while."""
    return float(np.median([later[1] - earlier[1] for loop in loops
                            for earlier, later in itertools.pairwise(loop["spans"])]))


def measured_overhead(calibration: dict, fit, setup_s: float, partition_rows: int):
    """(the per-partition and per-array overheads of the calibration array, the workers' seconds per partition);
    see the module's description."""
    from pzlib.bench.runtime_model import PartitionOverhead

    loops = calibration["loops"]
    per_partition = worker_pace(loops)
    engine = fit.seconds(partition_rows)
    last = max(loops, key=lambda loop: loop["spans"][-1][1])
    partitions = sum(loop["partitions"] for loop in loops)
    settle_s = calibration["settle_s"] / partitions
    array_s = calibration["wall_s"] - last["partitions"] * per_partition - setup_s - calibration["settle_s"]
    source = (f"pzlib.bench.forecast_check calibration array {calibration['job_id']} on the Slurm test cluster at "
              f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {partitions} partitions of {partition_rows:,} rows in "
              f"{len(loops)} long-lived workers; per partition: the workers' median {per_partition:.3f} s (end to "
              f"end of successive partitions, each worker's first left out) less the engine's a′ + b·rows = "
              f"{engine:.3f} s; per array: "
              f"{calibration['wall_s']:.2f} s submission to settled less the last worker's {last['partitions']} "
              f"partitions at that pace, the setup s = {setup_s:.2f} s and the settlement, polled every "
              f"{calibration['poll_interval_s']:g} s; settlement: {calibration['settle_s']:.2f} s / {partitions}")
    return (PartitionOverhead(per_partition - engine, source, array_seconds=array_s, settle_seconds=settle_s),
            per_partition)


def run_check(config: CheckConfig, say=print) -> dict:
    """Steps 1–5 of the module's description; returns the report (also what ``main`` writes as JSON)."""
    from pzlib.bench.cluster import define_connection
    from pzlib.bench.runtime_model import ForecastConfig, ScalingConfig, forecast, measure_scaling
    from pzlib.cluster.airflow import backend_for
    from pzlib.compute.train import train_model

    config.workdir.mkdir(parents=True, exist_ok=True)
    cores = config.cluster_cores()
    report: dict = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"), "load_start": _load(),
                    "estimator": config.estimator, "partitions": config.partitions,
                    "partition_rows": config.partition_rows, "objects": config.partitions * config.partition_rows,
                    "cores": cores}
    started = time.perf_counter()
    say(f"1. inputs: {config.partitions} × {config.partition_rows:,} rows and a calibration of "
        f"{cores} × {config.calibration_partitions_per_worker} partitions (load {_load()})")
    spec, paths = prepare("run", config.partitions, config, cores)
    calibration_spec, calibration_paths = prepare("calibration", cores * config.calibration_partitions_per_worker,
                                                  config, cores)
    model_path = train_model(spec, config.estimator)
    report["prepare_s"] = time.perf_counter() - started

    say(f"2. scaling of {config.estimator} at {', '.join(f'{size:,}' for size in config.scaling_sizes)} rows, "
        f"fresh single-thread processes (load {_load()})")
    load_before = _load()
    scaling = measure_scaling(ScalingConfig(estimators=(config.estimator,), sizes=config.scaling_sizes,
                                            workdir=config.workdir / "scaling"))
    measured = scaling.estimators[config.estimator]
    fit, setup_s = measured.stream_fit, measured.setup_s
    report["scaling"] = {"a_s": measured.fit.intercept_s, "stream_a_s": fit.intercept_s,
                         "b_s_per_row": fit.seconds_per_row, "r_squared": fit.r_squared, "setup_s": setup_s,
                         "process_startup_s": measured.process_startup_s,
                         "runs": [asdict(run) for run in measured.runs], "load_before": load_before,
                         "load_after": _load()}

    # Through the SSH provider's hook, as the pz_compute DAG connects.
    slurm = backend_for("slurm", define_connection(config.cluster_json))
    with slurm:
        say(f"3. calibration array: {len(calibration_paths)} partitions on {cores} cores (load {_load()})")
        calibration = run_array(calibration_spec, calibration_paths, model_path, config, slurm)
        calibration["poll_interval_s"] = config.poll_interval_s
        overhead, per_partition = measured_overhead(calibration, fit, setup_s, config.partition_rows)
        calibration["seconds_per_partition"] = per_partition
        report["calibration"] = calibration
        report["overhead"] = asdict(overhead)
        say(f"4. the run: {len(paths)} partitions on {cores} cores (load {_load()})")
        run = run_array(spec, paths, model_path, config, slurm)
        report["run"] = run

    result = forecast(scaling, ForecastConfig(objects=report["objects"], cores=cores,
                                              partition_rows=config.partition_rows, backend="slurm",
                                              estimators=(config.estimator,)), {"slurm": overhead})
    (item,) = result.estimators
    report["forecast"] = result.as_dict()
    report["forecast_s"] = item.wall_seconds
    report["measured_s"] = run["wall_s"]
    report["difference_pct"] = 100 * (item.wall_seconds - run["wall_s"]) / run["wall_s"]
    report["within_tolerance"] = abs(report["difference_pct"]) <= 100 * TOLERANCE
    # Not the check, what explains a miss: the run's own pace in the forecast leaves only its fixed terms (array
    # overhead, setup, settlement) to differ; the pace follows the share of the cores the shared machine leaves.
    if all(loop["partitions"] >= 2 for loop in run["loops"]):
        run["seconds_per_partition"] = worker_pace(run["loops"])
        own_pace = item.wall_seconds + item.waves * (run["seconds_per_partition"] - item.partition_seconds)
        report["difference_at_the_runs_pace_pct"] = 100 * (own_pace - run["wall_s"]) / run["wall_s"]
    report["load_end"] = _load()
    report["total_s"] = time.perf_counter() - started
    if not config.keep_runs:
        for folder in (spec.output, calibration_spec.output):
            shutil.rmtree(folder)
    return report


def report_lines(report: dict) -> list[str]:
    """The forecast and the measured wall time side by side, and what each rests on."""
    forecast = report["forecast"]["estimators"][0]
    scaling, run, calibration, overhead = report["scaling"], report["run"], report["calibration"], report["overhead"]
    return [
        f"stage III of {report['estimator']}: {report['objects']:,} objects in {report['partitions']} partitions of "
        f"{report['partition_rows']:,} rows on {report['cores']} cores of the Slurm test cluster "
        f"({run['tasks']} long-lived workers, job {run['job_id']})",
        f"  forecast (pz forecast, same objects, cores, partition rows): {report['forecast_s']:8.1f} s",
        f"  measured (submission to settled):                            {report['measured_s']:8.1f} s",
        f"  difference: {report['difference_pct']:+.1f}% "
        f"({'within' if report['within_tolerance'] else 'OUTSIDE'} ±{100 * TOLERANCE:.0f}%)",
        f"  forecast = array {forecast['array_seconds']:.2f} s + setup {forecast['worker_setup_seconds']:.2f} s + "
        f"{forecast['waves']} rounds × {forecast['partition_seconds']:.3f} s/partition + settlement "
        f"{forecast['settle_seconds']:.2f} s",
        f"  scaling: a = {scaling['a_s']:.3f} s, of which the setup s = {scaling['setup_s']:.3f} s; without it "
        f"a′ = {scaling['stream_a_s']:.3f} s, b = {scaling['b_s_per_row'] * 1e6:.2f} µs/row, R² = "
        f"{scaling['r_squared']:.4f}; overhead "
        f"{overhead['seconds']:.3f} s/partition + {overhead['array_seconds']:.2f} s/array (calibration: "
        f"{calibration['seconds_per_partition']:.3f} s/partition in a worker, {calibration['wall_s']:.1f} s wall)",
        f"  load average (1 min): start {report['load_start']}, scaling {scaling['load_before']}→"
        f"{scaling['load_after']}, calibration {calibration['load_before']}→{calibration['load_after']}, run "
        f"{run['load_before']}→{run['load_after']}, end {report['load_end']}; waited "
        f"{calibration['waited_for_idle_cluster_s']:.0f} s and {run['waited_for_idle_cluster_s']:.0f} s for an idle "
        f"cluster; other jobs on it right after the arrays: "
        f"{len(calibration['other_jobs_after'])} and {len(run['other_jobs_after'])}",
        f"  the workers' pace: calibration {calibration['seconds_per_partition']:.3f} s/partition"
        + (f", run {run['seconds_per_partition']:.3f} s/partition" if "seconds_per_partition" in run else "")
        + f" (share of their cores, sacct CPU time / elapsed: {_share(calibration)} and {_share(run)})"
        + (f"; at the run's own pace the forecast would differ by {report['difference_at_the_runs_pace_pct']:+.1f}%"
           if "difference_at_the_runs_pace_pct" in report else ""),
    ]


def _share(array: dict) -> str:
    return f"{100 * array['cpu_share']:.0f}%" if array["cpu_share"] else "not recorded"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument("--partition-rows", type=int, default=DEFAULT_PARTITION_ROWS)
    parser.add_argument("--estimator", default="bpz")
    parser.add_argument("--cores", type=int, help="array tasks at once (default: the cluster's CPUs)")
    parser.add_argument("--calibration-per-worker", type=int, default=CALIBRATION_PARTITIONS_PER_WORKER,
                        help="partitions per worker of the calibration array")
    parser.add_argument("--scaling-sizes", help="rows of the scaling runs, e.g. 1250,5000,20000 (default: ¼, 1 and 4 "
                        "times --partition-rows)")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S)
    parser.add_argument("--cluster-json", help="the test cluster's facts (default: STATE_DIR/cluster/cluster.json)")
    parser.add_argument("--workdir", help="inputs and runs (default: STATE_DIR/bench/forecast)")
    parser.add_argument("--json", help="write the report here (default: WORKDIR/forecast_check.json)")
    parser.add_argument("--keep-runs", action="store_true", help="keep the run folders")
    args = parser.parse_args(argv)
    import structlog

    from pzlib.bench.runtime_model import parse_sizes

    # RAIL logs every chunk at info level through structlog; this report is the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    options = {"cluster_json": args.cluster_json, "workdir": args.workdir}
    try:
        sizes = parse_sizes(args.scaling_sizes) if args.scaling_sizes else None
        config = CheckConfig(scaling_sizes=sizes, partitions=args.partitions, partition_rows=args.partition_rows,
                             estimator=args.estimator,
                             cores=args.cores, calibration_partitions_per_worker=args.calibration_per_worker,
                             poll_interval_s=args.poll_interval, keep_runs=args.keep_runs,
                             **{name: value for name, value in options.items() if value})
    except ValueError as error:
        parser.error(str(error))
    report = run_check(config)
    for line in report_lines(report):
        print(line)
    output = Path(args.json) if args.json else config.workdir / "forecast_check.json"
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"  report: {output}")
    return 0 if report["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
