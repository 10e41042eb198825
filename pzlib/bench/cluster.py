"""Stage III on the Slurm backend: what submission and polling cost next to the compute they drive.

Runs stage III of a 20-partition run (the DC2 validation set tiled to ROWS rows, BPZ) as one job array on the
test cluster of scripts/cluster/up.sh, through ``pzlib.compute.estimate_array`` exactly as the pz_compute DAG
does, and times every backend call: the SSH connection, the submission, each poll, the settlement. Prints
the submission and polling time as a fraction of the compute wall time (from the first task's start to the
last task's end, as Slurm accounted them; goal ≤ 5%), the SSH and Slurm commands issued per poll, and — side
by side, same partitions — the local backend's wall time.

    .venv/bin/python scripts/bench_cluster.py [--rows 200000] [--partitions 20] [--poll-interval 10]

Needs root and the test cluster (scripts/cluster/up.sh). The tiled input is kept in var/bench/cluster for the
next run; the two run folders are removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import structlog

from pzlib.bench.inputs import tiled_input
from pzlib.cluster.backend import DEFAULT_POLL_INTERVAL_S, Done, Waiting, all_terminal
from pzlib.cluster.local import LocalBackend
from pzlib.cluster.slurm import CLUSTER_TIME_FORMAT, SlurmBackend, settings_from_cluster_json
from pzlib.compute.acquire import acquire
from pzlib.compute.estimate_array import EstimateArray
from pzlib.compute.spec import RunSpec
from pzlib.compute.train import train_model
from pzlib.config import load_settings
from pzlib.samples import dc2_sample_paths


def prepare(rows: int, partitions: int, workdir: Path, backend: str, slots: int) -> tuple[RunSpec, list]:
    """Stages I and II of the tiled DC2 input in a fresh run folder for ``backend``."""
    input_path = tiled_input(rows, workdir)
    train_path = dc2_sample_paths()[0]
    output = workdir / f"run-{backend}-{datetime.now():%Y%m%d-%H%M%S}"
    spec = RunSpec(release="bench", input=str(input_path), train=str(train_path), output=str(output),
                            estimators=["bpz"], partition_rows=-(-rows // partitions), backend=backend,
                            resources={"max_concurrent": slots, "mem": "2G"})
    partition_paths = acquire(spec)
    train_model(spec, "bpz")
    return spec, partition_paths


def drive(stage: EstimateArray, poll_interval_s: float) -> dict:
    """Stage III to the end, timing each backend call; the figures of one run."""
    backend = stage.backend
    figures: dict = {"polls": [], "arrays": 0}
    started = time.perf_counter()
    progress = stage.advance()
    figures["submission_s"] = time.perf_counter() - started
    while isinstance(progress, Waiting):
        figures["arrays"] += 1
        handle = progress.handle
        while True:
            time.sleep(poll_interval_s)
            before = dict(getattr(backend, "stats", {}))
            polled = time.perf_counter()
            states = backend.states([handle])
            figures["polls"].append({"seconds": time.perf_counter() - polled, "before": before,
                                     "after": dict(getattr(backend, "stats", {}))})
            if all_terminal(states, handle):
                break
        figures["detected_at"] = time.time()
        settling = time.perf_counter()
        progress = stage.advance(states)
        figures["settle_s"] = time.perf_counter() - settling
        figures["handle"] = handle
    assert isinstance(progress, Done)
    figures["wall_s"] = time.perf_counter() - started
    figures["outputs"] = len(progress.result["output_paths"])
    return figures


def slurm_compute_span(backend: SlurmBackend, handle) -> tuple[float, float]:
    """(first start, last end) of the array's tasks, as Unix times, from sacct (after the measured run)."""
    result = backend.shell.run(f"sacct -X -n -P -S {handle.submitted_at} -j {handle.job_id} -o JobID,Start,End")
    starts, ends = [], []
    for line in result.stdout.split():
        _, start, end = line.split("|")
        starts.append(datetime.strptime(start, CLUSTER_TIME_FORMAT).timestamp())
        ends.append(datetime.strptime(end, CLUSTER_TIME_FORMAT).timestamp())
    return min(starts), max(ends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the tiled DC2 input (default 200,000)")
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL_S,
                        help=f"seconds between polls (default {DEFAULT_POLL_INTERVAL_S:g}, as in the Airflow trigger)")
    parser.add_argument("--slots", type=int, default=2, help="array tasks at once (default 2: the test cluster)")
    state_dir = load_settings().state_dir
    parser.add_argument("--cluster-json", default=str(state_dir / "cluster" / "cluster.json"))
    parser.add_argument("--workdir", default=str(state_dir / "bench" / "cluster"))
    args = parser.parse_args()
    # RAIL logs every chunk at info level through structlog; this report is the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    spec, partitions = prepare(args.rows, args.partitions, workdir, "slurm", args.slots)
    slurm = SlurmBackend(settings_from_cluster_json(args.cluster_json))
    with slurm:
        connecting = time.perf_counter()
        slurm.shell.run("true")
        connect_s = time.perf_counter() - connecting
        stage = EstimateArray(spec, "bpz", str(spec.model_path("bpz")), partitions, slurm, owner="bench")
        figures = drive(stage, args.poll_interval)
        first_start, last_end = slurm_compute_span(slurm, figures["handle"])
        connections = slurm.stats["ssh_connections"]

    local_spec, local_partitions = prepare(args.rows, args.partitions, workdir, "local", args.slots)
    with LocalBackend() as local:
        local_figures = drive(EstimateArray(local_spec, "bpz", str(local_spec.model_path("bpz")), local_partitions,
                                            local, owner="bench"), args.poll_interval)
    for run_folder in (spec.output_path, local_spec.output_path):
        shutil.rmtree(run_folder)

    polls = figures["polls"]
    poll_seconds = [poll["seconds"] for poll in polls]
    ssh_per_poll = {poll["after"]["ssh_commands"] - poll["before"]["ssh_commands"] for poll in polls}
    slurm_per_poll = {poll["after"]["slurm_commands"] - poll["before"]["slurm_commands"] for poll in polls}
    compute_s = last_end - first_start
    overhead_s = connect_s + figures["submission_s"] + sum(poll_seconds)
    fraction = overhead_s / compute_s
    tasks = figures["handle"].task_count
    print(f"stage III, {len(partitions)} partitions ({args.rows:,} rows, BPZ) on the Slurm test cluster: "
          f"{figures['arrays']} job array of {tasks} task(s), at most {args.slots} at once")
    print(f"  compute wall time (first task start → last task end, sacct): {compute_s:7.1f} s")
    print(f"  SSH connection (once for the whole run, {connections} in all): {connect_s:7.2f} s")
    print(f"  submission (plan + one round trip: mkdir, date, sbatch):   {figures['submission_s']:7.2f} s")
    print(f"  polling: {len(polls)} polls every {args.poll_interval:g} s, median "
          f"{statistics.median(poll_seconds):.3f} s each:        {sum(poll_seconds):7.2f} s")
    print(f"  settling (verify {figures['outputs']} outputs):                            "
          f"{figures['settle_s']:7.2f} s")
    print(f"  submission + polling overhead (connection, submission, polls) / compute wall time: "
          f"{overhead_s:.2f} s / {compute_s:.1f} s = {100 * fraction:.1f}% "
          f"(goal ≤ 5%: {'met' if fraction <= 0.05 else 'NOT met'})")
    print(f"  with the settlement too: {100 * (overhead_s + figures['settle_s']) / compute_s:.1f}%")
    print(f"  commands per poll: {', '.join(map(str, sorted(ssh_per_poll)))} SSH command(s), "
          f"{', '.join(map(str, sorted(slurm_per_poll)))} Slurm command(s) (sacct + squeue), on one connection")
    print(f"  end noticed {figures['detected_at'] - last_end:.1f} s after the last task ended "
          f"(poll interval {args.poll_interval:g} s; sacct times are whole seconds)")
    print(f"  stage III wall time, submission to settled: slurm {figures['wall_s']:.1f} s, "
          f"local backend (same partitions, {args.slots} worker processes) {local_figures['wall_s']:.1f} s "
          f"(ratio {figures['wall_s'] / local_figures['wall_s']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
