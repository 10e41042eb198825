"""Stage I throughput for ``pz bench``: the benchmark's DC2 rows through cleaning, flux → magnitude, dereddening
and partitioning, in rows per second and per CPU-second, with the process's peak memory.

The DC2 sample holds magnitudes only, so the flux steps run on the same rows written back as a survey catalog
would hold them (:func:`flux_catalog`: nJy fluxes, NaN for a non-detection, and an E(B−V) column). Each step is
stage I's own code and includes the ones before it, so its figure is the throughput of stage I configured that
way: *cleaning* is a magnitude catalog cleaned in memory (non-detections to the sentinel, RAIL's names, float32);
*flux → magnitude* the flux catalog cleaned; *dereddening* the flux catalog cleaned and dereddened;
*partitioning* all of :func:`pzlib.preprocess.preprocess` on the flux catalog, file to 150,000-row partition
files (reading, cleaning, dereddening, writing, checksums, manifest). Input batches are read before the clock
for the in-memory steps. CPU time is the process's (every thread; stage I starts no process). A measurement
repeats its step for at least :data:`MIN_SECONDS`, and each step keeps its best of ``repeats`` measurements, as
the estimator sides do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pzlib.bench.compare import peak_rss_bytes

STAGE1_STEPS = ("cleaning", "flux_to_magnitude", "dereddening", "partitioning")
"""The steps measured, in order; each includes the ones before it."""

FLUX_COLUMN_MAP = {"value_template": "{band}_flux", "error_template": "{band}_fluxErr", "kind": "flux",
                   "ra_column": None, "dec_column": None, "ebv_column": "ebv"}
"""How stage I reads :func:`flux_catalog`."""

MIN_SECONDS = 0.5
"""A measurement repeats its step until this much wall time has passed (a small input cleans in milliseconds)."""

BATCH_ROWS = 100_000
"""Rows per input batch, as :func:`pzlib.preprocess.preprocess` reads them."""


def flux_catalog(input_path: Path, workdir: Path) -> Path:
    """``input_path``'s rows as a flux catalog (Parquet, made once): f = 10^((31.4 − m)/2.5) nJy and
    σ_f = σ_m·f·0.4·ln 10 per band, NaN where the magnitude is the non-detection sentinel, and an E(B−V)
    between 0 and 0.1 (DC2 has none; its values do not change the work)."""
    import pyarrow as pa

    from pzlib.catalog import open_catalog, write_parquet
    from pzlib.column_maps import LSST_BANDS
    from pzlib.preprocess import NJY_AB_ZEROPOINT, UNPHYSICAL_MAGNITUDE, output_error_column, output_mag_column

    target = workdir / f"{input_path.stem}_fluxes.parquet"
    if target.exists():
        return target
    table = open_catalog(input_path).read()
    columns = {"id": table.column("id")}
    for band in LSST_BANDS:
        mag = table.column(output_mag_column(band)).to_numpy().astype(np.float64)
        mag_err = table.column(output_error_column(band)).to_numpy().astype(np.float64)
        measured = np.abs(mag) < UNPHYSICAL_MAGNITUDE
        flux = np.where(measured, 10.0 ** ((NJY_AB_ZEROPOINT - mag) / 2.5), np.nan)
        columns[f"{band}_flux"] = flux
        columns[f"{band}_fluxErr"] = np.where(measured, mag_err * flux * 0.4 * np.log(10.0), np.nan)
    columns["ebv"] = np.random.default_rng(0).uniform(0.0, 0.1, table.num_rows)
    return write_parquet(pa.table(columns), target)


def run_stage1(input_path: Path, flux_path: Path, workdir: Path, repeats: int) -> dict:
    """Time the steps (see the module's docstring) in this process: per step rows, best wall and CPU seconds;
    and the process's peak RSS."""
    from pzlib.catalog import open_catalog
    from pzlib.preprocess import PreprocessConfig, clean_batch, preprocess

    magnitudes = PreprocessConfig()
    fluxes = PreprocessConfig(columns=FLUX_COLUMN_MAP)
    dereddened = PreprocessConfig(columns=FLUX_COLUMN_MAP, deredden=True)

    def batches(path: Path, config: PreprocessConfig) -> list:
        reader = open_catalog(path)
        return list(reader.iter_batches(config.input_columns(reader.column_names), BATCH_ROWS))

    def clean_all(path: Path, config: PreprocessConfig):
        read = batches(path, config)
        return lambda: sum(clean_batch(batch, config).num_rows for batch in read)

    def partition_all():
        output = Path(tempfile.mkdtemp(dir=workdir, prefix=".stage1-"))
        try:
            partitions = preprocess(flux_path, output, dereddened)
            return sum(open_catalog(path).num_rows for path in partitions)
        finally:
            shutil.rmtree(output)

    steps = {"cleaning": clean_all(input_path, magnitudes), "flux_to_magnitude": clean_all(flux_path, fluxes),
             "dereddening": clean_all(flux_path, dereddened), "partitioning": partition_all}
    figures = {}
    for name in STAGE1_STEPS:
        runs = []
        for _ in range(repeats):
            cpu, wall, passes = time.process_time(), time.perf_counter(), 0
            while passes == 0 or time.perf_counter() - wall < MIN_SECONDS:
                rows = steps[name]()
                passes += 1
            runs.append(((time.perf_counter() - wall) / passes, (time.process_time() - cpu) / passes))
        figures[name] = {"rows": rows, "seconds": min(run[0] for run in runs),
                         "cpu_seconds": min(run[1] for run in runs)}
    return {"steps": figures, "peak_rss": peak_rss_bytes()}


def measure_stage1(input_path: Path, workdir: Path, repeats: int) -> dict:
    """:func:`run_stage1` in a fresh interpreter (its peak RSS its own): per step rows/s and rows per
    CPU-second, and the peak RSS in MiB."""
    flux_path = flux_catalog(input_path, workdir)
    command = [sys.executable, "-m", "pzlib.bench.stage1", str(input_path), str(flux_path), str(workdir),
               str(repeats)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"stage I benchmark failed:\n{completed.stderr[-3000:]}")
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    steps = {name: {"rows": step["rows"], "rows_per_second": step["rows"] / step["seconds"],
                    "rows_per_cpu_second": step["rows"] / step["cpu_seconds"]}
             for name, step in measured["steps"].items()}
    return {"steps": steps, "peak_rss_mib": measured["peak_rss"] / 2**20}


def format_stage1(figures: dict) -> str:
    """One line of :func:`measure_stage1`'s figures."""
    labels = {"cleaning": "cleaning", "flux_to_magnitude": "+ flux→mag", "dereddening": "+ dereddening",
              "partitioning": "+ partitioning (file → files)"}
    steps = ", ".join(f"{labels[name]} {step['rows_per_cpu_second']:,.0f}"
                      for name, step in figures["steps"].items())
    return (f"  stage I rows/CPU-s (each step includes the ones before): {steps}; "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    input_arg, flux_arg, workdir_arg, repeats_arg = sys.argv[1:]
    print(json.dumps(run_stage1(Path(input_arg), Path(flux_arg), Path(workdir_arg), int(repeats_arg))))
