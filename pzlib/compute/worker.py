"""A stage III worker: one long-lived process that estimates every partition of one array task.

    python -m pzlib.compute.worker --plan ARRAY_DIR/plan.json --task-index 3

A Slurm array task runs it with its ``$SLURM_ARRAY_TASK_ID``, the local backend with the task's index.
Process start-up (RAIL imports, model load, compilation) is paid once per task, not per partition: every
partition of the task's share goes through the same loaded estimator (:mod:`pzlib.compute.estimate_partitions`,
which also keeps outputs that already exist and verify).

A partition that fails is recorded with its error and the worker goes on with the next one; the exit code is
0 only when every partition is done. SIGTERM (scancel, the local backend's cancel) removes the partial output
of the partition in progress, marks that partition cancelled and exits with 143.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

import structlog

from pzlib.cluster.plan import read_json, write_json
from pzlib.compute.array_plan import ArrayPlan, partition_marker_path
from pzlib.compute.estimate_partitions import estimate_partition
from pzlib.compute.spec import RunSpec

EXIT_PARTITION_FAILED = 1
EXIT_CANCELLED = 128 + signal.SIGTERM


class Cancelled(SystemExit):
    """SIGTERM arrived: unwinds the partition in progress (its writer removes the partial file)."""


def _on_sigterm(signum, frame):
    raise Cancelled(EXIT_CANCELLED)


def _say(message: str) -> None:
    print(f"[pz worker {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_task(plan_path: Path, task_index: int) -> int:
    """Estimate every partition of task ``task_index`` of the plan; return the process exit code."""
    # RAIL logs every chunk through structlog at info level; the job log keeps our per-partition lines instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    array_dir = plan_path.parent
    plan = ArrayPlan.read(plan_path)
    spec = RunSpec(**plan.params)
    host = socket.gethostname()
    share = plan.tasks[task_index]
    _say(f"task {task_index}: {len(share)} partition(s) of {plan.estimator} on {host}")
    failed = []
    marker = None
    try:
        for partition in share:
            marker = partition_marker_path(array_dir, partition)
            started = time.perf_counter()
            write_json(marker, {"state": "started", "task": task_index, "host": host, "started": time.time()})
            try:
                output = estimate_partition(spec, plan.estimator, plan.model_path, partition)
            except Exception as error:  # recorded, and the worker goes on with the next partition
                failed.append(partition)
                write_json(marker, {"state": "failed", "task": task_index, "host": host,
                                    "error": f"{type(error).__name__}: {error}",
                                    "traceback": traceback.format_exc()})
                print(f"partition {partition} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                _say(f"task {task_index}: {Path(partition).name} FAILED: {type(error).__name__}: {error}")
                continue
            seconds = time.perf_counter() - started
            write_json(marker, {"state": "done", "task": task_index, "host": host, "output": output,
                                "seconds": seconds})
            _say(f"task {task_index}: {Path(partition).name} → {output} in {seconds:.1f} s")
    except Cancelled:
        marker_state = (read_json(marker) if marker else None) or {}
        if marker_state.get("state") == "started":
            write_json(marker, {**marker_state, "state": "cancelled"})
        _say(f"task {task_index}: cancelled")
        raise
    _say(f"task {task_index}: {len(share) - len(failed)} of {len(share)} partition(s) done")
    return EXIT_PARTITION_FAILED if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pzlib.compute.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--plan", required=True, type=Path, help="the array's plan.json")
    parser.add_argument("--task-index", required=True, type=int, help="the array task to run")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    plan_path = args.plan.resolve()
    if read_json(plan_path) is None:
        parser.error(f"{plan_path}: no such plan")
    return run_task(plan_path, args.task_index)


if __name__ == "__main__":
    sys.exit(main())
