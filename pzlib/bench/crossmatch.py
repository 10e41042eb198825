"""Training Set Maker overhead: a 1e6 × 1e5 cross-match through the DAG task path against lsdb called directly.

The inputs are the DC2 cross-match sample at benchmark size (pzlib.crossmatch.sample_data: 1,000,000 objects
as a HATS collection with a 5" margin cache, and a 100,000-row spec-z catalog as HATS), built once into
``var/bench/crossmatch`` and reused. Both paths run in this process on the same HATS inputs, with the same
Dask scheduler (threads) and the same object columns:

- **lsdb**: ``lsdb.open_catalog`` on both catalogs, ``crossmatch`` (radius 1", one neighbour), ``compute()``;
- **task**: what the ``training_set_maker`` task runs, ``make_training_set(TsmConfig.from_params(conf))``:
  request checks against the catalogs' metadata, the same cross-match, duplicate resolution, fluxes to
  dereddened AB magnitudes, the train/test split, the Parquet output and the report, all written to disk.

Both are run once first (imports, Numba compiles, page cache), then alternately ``--repeats`` times; times
are medians, and the overhead is the median of the ratios of each task run to the lsdb run just before it.
Wall time is what a user waits; CPU time (all threads of this process) is the work done, the steadier ratio
on a machine shared with other jobs. rows/s counts the rows of both inputs.

Usage::

    .venv/bin/python scripts/bench_crossmatch.py [--objects 1000000] [--specz 100000] [--repeats 7] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pzlib.config import load_settings
from pzlib.crossmatch import TsmConfig
from pzlib.crossmatch.outputs import dask_threads
from pzlib.crossmatch.sample_data import SampleConfig, make_sample_data
from pzlib.crossmatch.tsm import check_inputs, make_training_set


def lsdb_direct(specz_path: Path, objects_path: Path, columns: list[str], workers: int) -> int:
    """The cross-match as an lsdb user writes it; returns the number of matched rows."""
    import lsdb

    with dask_threads(workers):
        specz = lsdb.open_catalog(specz_path)
        objects = lsdb.open_catalog(objects_path, columns=columns)
        matched = specz.crossmatch(objects, n_neighbors=1, radius_arcsec=1.0, suffix_method="overlapping_columns",
                                   log_changes=False)
        return len(matched.compute(progress_bar=False))


def task_path(conf: dict) -> dict:
    """What the training_set_maker task runs, output folder emptied first so nothing is kept from a rerun."""
    shutil.rmtree(conf["output_dir"], ignore_errors=True)
    return make_training_set(TsmConfig.from_params(conf))


def timed(function, *arguments) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process's threads, result)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    result = function(*arguments)
    return time.perf_counter() - started, time.process_time() - started_cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--specz", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=load_settings().state_dir / "bench" / "crossmatch")
    options = parser.parse_args(argv)

    folder = options.workdir / f"sample-{options.objects}x{options.specz}"
    started = time.perf_counter()
    sample = make_sample_data(folder, SampleConfig(n_objects=options.objects, reference_rows=options.specz,
                                                   partition_rows=150_000, surveys=()))
    print(f"inputs: {folder} ({time.perf_counter() - started:.1f} s; built once, then reused)")
    n_rows = options.objects + options.specz

    with tempfile.TemporaryDirectory(dir=options.workdir) as scratch:
        conf = sample.tsm_params(Path(scratch) / "training_set", specz_catalog=str(sample.reference_hats),
                                 workers=options.workers)
        columns = check_inputs(TsmConfig.from_params(conf)).object_read_columns
        first_lsdb, _, _ = timed(lsdb_direct, sample.reference_hats, sample.objects, columns, options.workers)
        first_task, _, _ = timed(task_path, conf)
        print(f"first runs (imports, Numba compiles, cold cache): lsdb {first_lsdb:.2f} s, task {first_task:.2f} s")
        runs = {"lsdb": {"wall": [], "cpu": []}, "task": {"wall": [], "cpu": []}}
        for _ in range(options.repeats):
            wall, cpu, matched = timed(lsdb_direct, sample.reference_hats, sample.objects, columns, options.workers)
            runs["lsdb"]["wall"].append(wall)
            runs["lsdb"]["cpu"].append(cpu)
            wall, cpu, report = timed(task_path, conf)
            runs["task"]["wall"].append(wall)
            runs["task"]["cpu"].append(cpu)

    medians = {path: {kind: statistics.median(values) for kind, values in times.items()}
               for path, times in runs.items()}
    # Each task run is compared with the lsdb run just before it (same load on a shared machine).
    overhead = {kind: statistics.median(task / direct for task, direct in zip(runs["task"][kind], runs["lsdb"][kind],
                                                                            strict=True)) - 1
                for kind in ("wall", "cpu")}
    for path, label in (("lsdb", "lsdb direct"), ("task", "task path  ")):
        wall, cpu = medians[path]["wall"], medians[path]["cpu"]
        print(f"{label}: {wall:6.2f} s wall {n_rows / wall:12,.0f} rows/s | {cpu:6.2f} s CPU "
              f"{n_rows / cpu:12,.0f} rows/CPU-s   (wall runs: {', '.join(f'{v:.2f}' for v in runs[path]['wall'])})")
    print(f"overhead   : {100 * overhead['wall']:+.1f}% wall, {100 * overhead['cpu']:+.1f}% CPU (median of the "
          f"{options.repeats} side-by-side ratios; goal ≤ 10%)")
    print(f"matched {report['n_specz_matched']:,} of {report['n_specz']:,} spec-z; training set "
          f"{report['output']['rows']:,} rows × {len(report['output']['columns'])} columns")
    figures = {
        "objects": options.objects, "specz": options.specz, "workers": options.workers, "repeats": options.repeats,
        "object_columns": len(columns), "lsdb_matched_rows": matched, "training_set_rows": report["output"]["rows"],
        "matched_fraction": report["matched_fraction"],
        "runs_s": {path: {kind: [round(v, 3) for v in values] for kind, values in times.items()}
                   for path, times in runs.items()},
        "lsdb_rows_per_s": round(n_rows / medians["lsdb"]["wall"]),
        "task_rows_per_s": round(n_rows / medians["task"]["wall"]),
        "overhead_wall": round(overhead["wall"], 4), "overhead_cpu": round(overhead["cpu"], 4),
    }
    print("BENCH_CROSSMATCH " + json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
