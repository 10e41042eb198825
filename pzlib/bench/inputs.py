"""Benchmark inputs: the DC2 validation set shipped in RAIL, tiled to any size, and cut into partitions.

Every measuring tool of :mod:`pzlib.bench` runs on these, so their figures are comparable; the files are made
once in the caller's work folder and reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiled_input(rows: int | None, workdir: Path) -> Path:
    """The DC2 validation set, or ``rows`` rows of it tiled with fresh ids (RAIL's HDF5 layout)."""
    import tables_io

    from pzlib.samples import dc2_sample_paths

    source = dc2_sample_paths()[1]
    if rows is None:
        return source
    target = workdir / f"dc2_validation_x{rows}.hdf5"
    if not target.exists():
        columns = tables_io.read(str(source))["photometry"]
        n_source = len(columns["id"])
        take = np.arange(rows) % n_source
        tiled = {name: values[take] for name, values in columns.items()}
        tiled["id"] = np.arange(rows, dtype=np.int64)
        staging = target.with_name(f".tmp-{target.name}")  # tables_io picks the format from the suffix
        tables_io.write({"photometry": tiled}, str(staging))
        staging.replace(target)
    return target


def split_input(input_path: Path, parts: int, workdir: Path) -> list[Path]:
    """``input_path`` cut into ``parts`` Parquet partitions of (nearly) equal rows, made once."""
    from pzlib.catalog import open_catalog, write_parquet

    paths = [workdir / f"{input_path.stem}_part{index + 1}of{parts}.parquet" for index in range(parts)]
    if not all(path.exists() for path in paths):
        table = open_catalog(input_path).read()
        bounds = np.linspace(0, table.num_rows, parts + 1).astype(int)
        for path, start, stop in zip(paths, bounds[:-1], bounds[1:], strict=True):
            write_parquet(table.slice(start, stop - start), path)
    return paths
