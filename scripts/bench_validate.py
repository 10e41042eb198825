"""Validation cost against estimate cost, measured side by side on one 150,000-row partition in one run.

The DC2 validation sample (shipped in RAIL) is tiled to a production-size partition with fresh ids, cleaned by
stage I, and estimated by the chosen estimator (trained once on the DC2 training sample); then the photo-z
table is validated with the ``photoz_table`` suite and the stage I partition with ``stage1_partition``. The
first validation in the process pays GX's import and context set-up once; a stage III worker that handles
many partitions pays it once, so the ratio uses the warm time (median of repeats) and the cold cost is
printed beside it.

Usage::

    .venv/bin/python scripts/bench_validate.py [--estimator bpz|fzboost] [--rows 150000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from pzlib.bench import tiled_input
from pzlib.cli import _quiet_rail_logs
from pzlib.estimate import EstimateConfig, PartitionEstimator, estimate_partition, train
from pzlib.pipeline import dc2_sample_paths
from pzlib.preprocess import PreprocessConfig, preprocess
from pzlib.validate.expectations import check_table


def timed(function, *arguments, **options) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*arguments, **options)
    return time.perf_counter() - started, result


def run(estimator: str, rows: int, workdir: Path, repeats: int) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    training_path, _ = dc2_sample_paths()
    config = EstimateConfig(estimator)
    model = train(training_path, workdir / f"{estimator}.pkl", config)
    [partition] = preprocess(tiled_input(rows, workdir), workdir / f"stage1_{rows}",
                             PreprocessConfig(partition_rows=rows, keep_columns=["redshift"]))
    output = workdir / f"photoz_{estimator}_{rows}.parquet"
    output.unlink(missing_ok=True)  # estimate_partition would skip a finished output
    estimator_stage = PartitionEstimator(model, config)
    estimate_seconds, _ = timed(estimate_partition, partition, output, estimator_stage)

    photoz, stage1 = pq.read_table(output), pq.read_table(partition)
    context = {"expected_rows": stage1.num_rows}
    first_seconds, _ = timed(check_table, photoz, "photoz_table", context)  # includes GX import and set-up
    photoz_seconds = statistics.median(timed(check_table, photoz, "photoz_table", context)[0]
                                       for _ in range(repeats))
    stage1_seconds = statistics.median(timed(check_table, stage1, "stage1_partition", context)[0]
                                       for _ in range(repeats))
    return {
        "estimator": estimator, "rows": photoz.num_rows,
        "estimate_seconds": estimate_seconds, "objects_per_second": photoz.num_rows / estimate_seconds,
        "validate_photoz_seconds": photoz_seconds, "validate_stage1_seconds": stage1_seconds,
        "validate_first_call_seconds": first_seconds,
        "ratio_photoz": photoz_seconds / estimate_seconds,
        "ratio_photoz_and_stage1": (photoz_seconds + stage1_seconds) / estimate_seconds,
        "ratio_first_call": first_seconds / estimate_seconds,
    }


def format_figures(figures: dict) -> str:
    both = figures["validate_photoz_seconds"] + figures["validate_stage1_seconds"]
    return "\n".join([
        f"validation vs estimate, {figures['rows']:,}-row partition, {figures['estimator']} (one process)",
        f"  estimate                     {figures['estimate_seconds']:8.2f} s  "
        f"({figures['objects_per_second']:,.0f} objects/s)",
        f"  validate photo-z table       {figures['validate_photoz_seconds']:8.2f} s  "
        f"ratio {100 * figures['ratio_photoz']:.1f}%",
        f"  validate stage I partition   {figures['validate_stage1_seconds']:8.2f} s",
        f"  both                         {both:8.2f} s  "
        f"ratio {100 * figures['ratio_photoz_and_stage1']:.1f}%   (budget 10%)",
        f"  first call (GX import+setup) {figures['validate_first_call_seconds']:8.2f} s  "
        f"ratio {100 * figures['ratio_first_call']:.1f}%",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimator", default="bpz", help="'bpz' (default, trains in seconds) or 'fzboost'")
    parser.add_argument("--rows", type=int, default=150_000, help="partition rows (default 150,000)")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench/validate"), help="work folder")
    parser.add_argument("--repeats", type=int, default=3, help="warm validations to take the median of")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args(argv)
    if options.rows <= 0 or options.repeats <= 0:
        parser.error("--rows and --repeats must be positive")
    _quiet_rail_logs()
    figures = run(options.estimator, options.rows, options.workdir, options.repeats)
    print(json.dumps(figures, indent=1) if options.json else format_figures(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
