"""Validation cost against estimate cost, measured side by side on one 150,000-row partition in one run.

The DC2 validation sample (shipped in RAIL) is tiled to a production-size partition with fresh ids, cleaned by
stage I, and estimated by the chosen estimator with the engine stage III uses (``EstimateConfig``'s default:
the fast path; ``--engine rail`` for stock RAIL), trained once on the DC2 training sample, with the photo-z
table validated as stage III does it (``photoz_table`` suite on the rows written, before the file gets its
name: the check is timed inside the estimate, and the estimate's own time is the rest); the stage I partition
is validated as stage I does it (``stage1_partition`` on the rows in memory). Rounds, median of ``--repeats``.
The first estimate in the process pays the model load and JIT compilation, the first validation GX's import
and context set-up; a stage III worker that handles many partitions pays them once, so the ratios use the
medians and the cold validation is printed beside them.

Usage::

    .venv/bin/python scripts/bench_validate.py [--estimator bpz|fzboost] [--engine fast|rail] [--rows 150000]
        [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from pzlib.bench.inputs import tiled_input
from pzlib.estimate import EstimateConfig, PartitionEstimator, configure_rail_logging, estimate_partition, train
from pzlib.preprocess import PreprocessConfig, preprocess
from pzlib.samples import dc2_sample_paths
from pzlib.validate.expectations import check_table


def timed(function, *arguments, **options) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) of one call."""
    started, started_cpu = time.perf_counter(), time.process_time()
    function(*arguments, **options)
    return time.perf_counter() - started, time.process_time() - started_cpu


def estimate_then_check(partition: Path, output: Path, estimator: PartitionEstimator, context: dict) -> tuple:
    """(estimate wall, estimate CPU, check wall, check CPU) of stage III on one partition: ``estimate_partition``
    with the pipeline's check of the rows written, timed apart."""
    checked: list[tuple[float, float]] = []

    def check(table, final: Path) -> None:
        checked.append(timed(check_table, table, "photoz_table", context, source=str(final)))

    total = timed(estimate_partition, partition, output, estimator, check=check)
    [(check_wall, check_cpu)] = checked
    return total[0] - check_wall, total[1] - check_cpu, check_wall, check_cpu


def run(estimator: str, rows: int, workdir: Path, repeats: int, engine: str | None = None) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    training_path, _ = dc2_sample_paths()
    config = EstimateConfig(estimator) if engine is None else EstimateConfig(estimator, engine=engine)
    model = train(training_path, workdir / f"{estimator}.pkl", config)
    [partition] = preprocess(tiled_input(rows, workdir), workdir / f"stage1_{rows}",
                             PreprocessConfig(partition_rows=rows, keep_columns=["redshift"]))
    output = workdir / f"photoz_{estimator}_{rows}.parquet"
    estimator_stage = PartitionEstimator(model, config)
    n_rows = pq.read_metadata(partition).num_rows
    photoz_context = {"expected_rows": n_rows}
    stage1_context = {"bands": list(config.bands)}
    # Rounds of estimate then validations, so that both sides see the same machine load; medians of the rounds.
    # CPU seconds are printed beside wall seconds: on a loaded machine they move less.
    rounds: dict[str, list[tuple[float, float]]] = {"estimate": [], "photoz": [], "stage1": []}
    stage1_rows = pq.read_table(partition)  # stage I checks the rows it writes, before the file exists
    output.unlink(missing_ok=True)  # estimate_partition would skip a finished output
    cold = estimate_then_check(partition, output, estimator_stage, photoz_context)  # model load, JIT, GX import
    for _ in range(repeats):
        output.unlink()
        estimate_wall, estimate_cpu, check_wall, check_cpu = estimate_then_check(partition, output,
                                                                                estimator_stage, photoz_context)
        rounds["estimate"].append((estimate_wall, estimate_cpu))
        rounds["photoz"].append((check_wall, check_cpu))
        rounds["stage1"].append(timed(check_table, stage1_rows, "stage1_partition", stage1_context))
    wall = {name: statistics.median(times[0] for times in measured) for name, measured in rounds.items()}
    cpu = {name: statistics.median(times[1] for times in measured) for name, measured in rounds.items()}
    return {
        "estimator": estimator, "engine": config.engine, "rows": n_rows, "repeats": repeats,
        "estimate_seconds": wall["estimate"], "objects_per_second": n_rows / wall["estimate"],
        "estimate_first_round_seconds": cold[0],
        "validate_photoz_seconds": wall["photoz"], "validate_stage1_seconds": wall["stage1"],
        "validate_first_call_seconds": cold[2],
        "ratio_photoz": wall["photoz"] / wall["estimate"],
        "ratio_photoz_and_stage1": (wall["photoz"] + wall["stage1"]) / wall["estimate"],
        "ratio_first_call": cold[2] / wall["estimate"],
        "cpu_seconds": cpu,
        "cpu_ratio_photoz": cpu["photoz"] / cpu["estimate"],
        "cpu_ratio_photoz_and_stage1": (cpu["photoz"] + cpu["stage1"]) / cpu["estimate"],
    }


def format_figures(figures: dict) -> str:
    both = figures["validate_photoz_seconds"] + figures["validate_stage1_seconds"]
    cpu = figures["cpu_seconds"]
    return "\n".join([
        f"validation vs estimate, {figures['rows']:,}-row partition, {figures['estimator']} "
        f"({figures['engine']} engine, one process)",
        f"  estimate                     {figures['estimate_seconds']:8.2f} s  "
        f"({figures['objects_per_second']:,.0f} objects/s; first round, with model load and JIT: "
        f"{figures['estimate_first_round_seconds']:.2f} s)",
        f"  validate photo-z table       {figures['validate_photoz_seconds']:8.2f} s  "
        f"ratio {100 * figures['ratio_photoz']:.1f}%",
        f"  validate stage I partition   {figures['validate_stage1_seconds']:8.2f} s",
        f"  both                         {both:8.2f} s  "
        f"ratio {100 * figures['ratio_photoz_and_stage1']:.1f}%   (budget 10%)",
        f"  first call (GX import+setup) {figures['validate_first_call_seconds']:8.2f} s  "
        f"ratio {100 * figures['ratio_first_call']:.1f}%",
        f"  CPU seconds: estimate {cpu['estimate']:.2f}, photo-z table {cpu['photoz']:.2f} "
        f"(ratio {100 * figures['cpu_ratio_photoz']:.1f}%), stage I {cpu['stage1']:.2f} "
        f"(both: {100 * figures['cpu_ratio_photoz_and_stage1']:.1f}%)",
        f"  (medians of {figures['repeats']} rounds)",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="bpz", help="'bpz' (default, trains in seconds) or 'fzboost'")
    parser.add_argument("--engine", choices=("fast", "rail"), default=None,
                        help="estimate engine (default: EstimateConfig's, the one stage III uses)")
    parser.add_argument("--rows", type=int, default=150_000, help="partition rows (default 150,000)")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench/validate"), help="work folder")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (estimate + validations) to take medians of")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(argv)
    if options.rows <= 0 or options.repeats <= 0:
        parser.error("--rows and --repeats must be positive")
    configure_rail_logging("WARNING")
    figures = run(options.estimator, options.rows, options.workdir, options.repeats, options.engine)
    print(json.dumps(figures, indent=1) if options.json else format_figures(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
