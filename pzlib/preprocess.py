"""Stage I: turn a survey catalog into clean, skinny, partitioned tables that every estimator reads.

Each record batch is column-mapped to RAIL's names (``mag_{band}_lsst`` / ``mag_err_{band}_lsst``, ``id``,
``ra``/``dec``), fluxes (nJy) become AB magnitudes (m = −2.5·log10(f) + 31.4, σ_m = σ_f / (f·0.4·ln 10)),
±inf, NaN and non-detections become RAIL's non-detection sentinel (the estimators then substitute RAIL's
magnitude limits, exactly as stock RAIL does), magnitudes are optionally dereddened with the SFD
coefficients and rounded, row filters are applied, and the rows are split into partitions of N rows, each
written atomically. A finished stage leaves a manifest recording each partition's rows and SHA-256; a rerun
with the same input and config keeps the partitions when every one still has those bytes, and redoes the stage
otherwise.

The checks ``pz`` makes of a catalog's photometry serve stage III too: :func:`check_partition_photometry` holds
a stage I partition to what stage I writes (numeric, finite values) before an estimator sees it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import operator
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pzlib.catalog import (
    AtomicParquetWriter,
    CatalogError,
    check_writable,
    file_sha256,
    input_identity,
    open_catalog,
    read_json_record,
    write_text_atomically,
)
from pzlib.column_maps import ColumnMap, column_map
from pzlib.storage.s3_access import S3Access

log = logging.getLogger(__name__)

NONDETECT_SENTINEL = 99.0
"""RAIL's ``nondetect_val``: the magnitude that marks a non-detection."""

SFD_EXTINCTION_COEFFICIENTS = {"u": 4.81, "g": 3.64, "r": 2.70, "i": 2.06, "z": 1.58, "y": 1.31}
"""A_band / E(B−V) for the LSST bands (Schlafly & Finkbeiner 2011 recalibration of SFD)."""

UNPHYSICAL_MAGNITUDE = 90.0
"""|m| at or beyond this is an input's own non-detection marker (RAIL's 99 and −99), never a measurement."""

NJY_AB_ZEROPOINT = 31.4
"""AB magnitude of a 1 nJy source."""

MANIFEST_NAME = "_stage1.json"

_FILTER_PATTERN = re.compile(r"^\s*(\w+)\s*(<=|>=|==|!=|<|>)\s*([-+]?[\d.eE+-]+)\s*$")
_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
              "==": operator.eq, "!=": operator.ne}


def output_mag_column(band: str) -> str:
    return f"mag_{band}_lsst"


def output_error_column(band: str) -> str:
    return f"mag_err_{band}_lsst"


@dataclass
class PreprocessConfig:
    """How stage I cleans and partitions a catalog."""

    columns: ColumnMap | str | dict = "lsst_mag"
    """Column map (preset name, dict of fields, or :class:`~pzlib.catalog.ColumnMap`)."""
    sentinel: float = NONDETECT_SENTINEL
    """Magnitude written for ±inf, NaN and non-detections."""
    deredden: bool = False
    """Subtract A_band = k_band · E(B−V), reading E(B−V) from the column map's ``ebv_column``."""
    round_decimals: int | None = None
    """Round magnitudes and errors to this many decimals (smaller, better-compressing files)."""
    filters: list[str] = field(default_factory=list)
    """Row filters: a boolean column name (``detect_isPrimary``) or ``column op number`` (``mag_i_lsst < 25.3``),
    applied after cleaning, with the output column names."""
    partition_rows: int = 150_000
    """Rows per output partition."""
    keep_columns: list[str] = field(default_factory=list)
    """Input columns copied through unchanged (e.g. a true-redshift column for validation)."""

    def __post_init__(self):
        self.columns = column_map(self.columns)
        if self.partition_rows <= 0:
            raise ValueError(f"partition_rows must be positive, got {self.partition_rows}")
        if self.round_decimals is not None and not 0 <= self.round_decimals <= 10:
            raise ValueError(f"round_decimals must be between 0 and 10, got {self.round_decimals}")
        if not math.isfinite(self.sentinel):
            raise ValueError(f"sentinel must be a finite number, got {self.sentinel}")
        if self.deredden and not self.columns.ebv_column:
            raise ValueError("deredden needs the column map's ebv_column (the E(B−V) column)")
        if self.deredden:
            missing = [b for b in self.columns.bands if b not in SFD_EXTINCTION_COEFFICIENTS]
            if missing:
                raise ValueError(f"no SFD extinction coefficient for band(s) {', '.join(missing)}")
        for expression in self.filters:
            parse_filter(expression)

    def input_columns(self, available: list[str] | None = None) -> list[str]:
        """Every input column stage I reads; sky positions only when ``available`` has them (or is None)."""
        positions = self.columns.position_columns()
        if available is not None and not all(c in available for c in positions):
            positions = []
        columns = [self.columns.id_column, *positions, *self.columns.photometry_columns()]
        if self.deredden:
            columns.append(self.columns.ebv_column)
        columns += [c for c in self.keep_columns if c not in columns]
        columns += [name for expression in self.filters for name in [parse_filter(expression)[0]]
                    if name not in columns and not name.startswith("mag_")]
        return columns

    def fingerprint(self) -> str:
        """Stable hash of the config, recorded in the manifest so a changed config reruns the stage."""
        values = asdict(self)
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_filter(expression: str) -> tuple[str, object, float | None]:
    """``(column, comparison, value)`` of a filter; a bare column name means 'is true'."""
    if re.fullmatch(r"\s*\w+\s*", expression):
        return expression.strip(), None, None
    match = _FILTER_PATTERN.match(expression)
    if not match:
        raise ValueError(
            f"cannot parse row filter {expression!r}: use a boolean column name or 'column < number'"
        )
    column, symbol, value = match.groups()
    return column, _OPERATORS[symbol], float(value)


def flux_to_mag(flux: np.ndarray, flux_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes and errors of nJy fluxes; non-positive or non-finite fluxes give NaN.

    Examples
    --------
    >>> flux_to_mag(np.array([3631e9]), np.array([3631e8]))[0].round(6)
    array([-0.])
    """
    flux = np.asarray(flux, dtype=np.float64)
    flux_err = np.asarray(flux_err, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        detected = np.isfinite(flux) & (flux > 0)
        mag = np.where(detected, -2.5 * np.log10(np.where(detected, flux, 1.0)) + NJY_AB_ZEROPOINT, np.nan)
        mag_err = np.where(detected, flux_err / (flux * 0.4 * np.log(10.0)), np.nan)
    return mag, mag_err


def clean_batch(batch: pa.RecordBatch | pa.Table, config: PreprocessConfig, source: str = "input") -> pa.Table:
    """One batch of the input catalog, cleaned and renamed to RAIL's column names.

    Raises
    ------
    CatalogError
        When a photometry or id column is not numeric (names ``source`` and the column).
    """
    columns = config.columns
    out: dict[str, pa.Array | np.ndarray] = {"id": batch.column(columns.id_column)}
    if columns.ra_column and columns.dec_column and columns.ra_column in batch.schema.names:
        out["ra"] = _numeric(batch, columns.ra_column, source)
        out["dec"] = _numeric(batch, columns.dec_column, source)
    ebv = _numeric(batch, columns.ebv_column, source) if config.deredden else None
    for band in columns.bands:
        value = _numeric(batch, columns.value_column(band), source)
        error = _numeric(batch, columns.error_column(band), source)
        if columns.kind == "flux":
            mag, mag_err = flux_to_mag(value, error)
        else:
            mag, mag_err = value.astype(np.float64), error.astype(np.float64)
        undetected = (~np.isfinite(mag) | ~np.isfinite(mag_err) | (np.abs(mag) >= UNPHYSICAL_MAGNITUDE)
                      | (mag == config.sentinel) | (mag_err < 0))
        if ebv is not None:
            mag = mag - SFD_EXTINCTION_COEFFICIENTS[band] * ebv
        if config.round_decimals is not None:
            mag, mag_err = np.round(mag, config.round_decimals), np.round(mag_err, config.round_decimals)
        mag[undetected] = config.sentinel
        mag_err[undetected] = config.sentinel
        out[output_mag_column(band)] = mag.astype(np.float32)
        out[output_error_column(band)] = mag_err.astype(np.float32)
    for name in config.keep_columns:
        out[name] = batch.column(name)
    for expression in config.filters:
        name = parse_filter(expression)[0]
        if name not in out:
            out[name] = batch.column(name)
    table = pa.table(out)
    mask = _filter_mask(table, config, source)
    if mask is not None:
        table = table.filter(mask)
    extra = [parse_filter(e)[0] for e in config.filters]
    drop = [name for name in extra if name not in config.keep_columns and not name.startswith("mag_")]
    return table.drop_columns([name for name in dict.fromkeys(drop) if name in table.column_names])


def check_partition_photometry(batches: Iterable[pa.RecordBatch], columns: list[str], source: str) -> None:
    """Hold a stage I partition, read as ``batches``, to what stage I writes before an estimator reads it: each of
    ``columns`` numeric, as ``pz`` requires of any input, and finite (stage I writes the non-detection sentinel,
    never NaN or ±inf, so a non-finite value means the partition was not made by stage I or was damaged since).

    Raises
    ------
    CatalogError
        Naming ``source``, the column and what is wrong with it.
    """
    rows = 0
    not_finite = dict.fromkeys(columns, 0)
    for batch in batches:
        rows += batch.num_rows
        for name in columns:
            not_finite[name] += int(np.count_nonzero(~np.isfinite(_numeric(batch, name, source))))
    for name, count in not_finite.items():
        if count:
            share = f"all {rows}" if count == rows else f"{count} of {rows}"
            raise CatalogError(source, f"{share} values are NaN or infinite; a stage I partition holds the "
                               "non-detection sentinel instead (make it with `pz preprocess`)", name)


def _numeric(batch: pa.RecordBatch | pa.Table, name: str, source: str) -> np.ndarray:
    column = batch.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise CatalogError(source, f"expected a numeric column, found {column.type}", name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False).astype(np.float64)


def _filter_mask(table: pa.Table, config: PreprocessConfig, source: str) -> pa.Array | None:
    mask = None
    for expression in config.filters:
        name, comparison, value = parse_filter(expression)
        column = table.column(name)
        if comparison is None:
            if not pa.types.is_boolean(column.type):
                raise CatalogError(source, f"row filter '{expression}' needs a boolean column, found {column.type}",
                                   name)
            condition = pc.fill_null(column, False)
        else:
            values = column.to_numpy(zero_copy_only=False)
            condition = pa.array(comparison(values, value))
        mask = condition if mask is None else pc.and_(mask, condition)
    return mask


def partition_path(output_dir: str | os.PathLike, index: int) -> Path:
    return Path(output_dir) / f"part-{index:05d}.parquet"


def completed_partitions(output_dir: str | os.PathLike, identity: dict,
                         config: PreprocessConfig) -> list[Path] | None:
    """The partitions of a finished stage I for the input of this ``identity`` (:func:`pzlib.catalog.input_identity`)
    and this config, or None if it must (re)run: each one must still have the bytes whose SHA-256 the manifest
    recorded (a damaged one is logged)."""
    manifest_path = Path(output_dir) / MANIFEST_NAME
    manifest = read_json_record(manifest_path)
    if manifest is None:
        return None
    if manifest.get("input") != identity or manifest.get("config") != config.fingerprint():
        return None
    if "sha256" not in manifest:
        log.warning("%s records no checksums (an older stage I): recomputing stage I", manifest_path)
        return None
    partitions = [Path(output_dir) / name for name in manifest["partitions"]]
    for path, sha256 in zip(partitions, manifest["sha256"], strict=True):
        if not path.exists():
            return None
        if file_sha256(path) != sha256:
            log.warning("stage I partition %s failed its checksum (%s records another SHA-256); recomputing stage I",
                        path, manifest_path)
            return None
    return partitions


def _commit(writer: AtomicParquetWriter, check: Callable[[pa.Table, Path], None] | None) -> None:
    if check is None:
        writer.commit()
    else:
        writer.commit_checked(check)


def preprocess(input_path: str | os.PathLike, output_dir: str | os.PathLike, config: PreprocessConfig,
               progress=None, check: Callable[[pa.Table, Path], None] | None = None,
               s3: S3Access | None = None) -> list[Path]:
    """Run stage I on a catalog; returns the partition files (skipping the work if it is already done).

    Parameters
    ----------
    input_path : path-like or str
        Any catalog :func:`pzlib.catalog.open_catalog` reads, a local path or a URL; the manifest records its
        identity (size and modification time, or every object's size and ETag), so a changed input reruns the stage.
    output_dir : path-like
        Folder for ``part-NNNNN.parquet`` files and the manifest.
    config : PreprocessConfig
    progress : callable, optional
        Called with the number of input rows consumed after each batch.
    check : callable, optional
        ``check(table, partition_path)`` validates each partition's rows (kept in memory as written, no
        read-back) before the file gets its final name.
    s3 : S3Access, optional
        How an ``s3://`` input is reached; by default the platform's settings (``PZ_S3_*``).

    Raises
    ------
    CatalogError
        Missing or non-numeric columns, an unreadable input, an unwritable output folder, no rows left.
    """
    output_dir = Path(output_dir)
    # Taken before the input is read: an input that changes while it is read has another identity on the rerun.
    identity = input_identity(input_path, s3)
    done = completed_partitions(output_dir, identity, config)
    if done is not None:
        log.info("kept %d verified stage I partition(s) in %s (same input and config)", len(done), output_dir)
        return done
    reader = open_catalog(input_path, s3=s3)
    input_columns = config.input_columns(reader.column_names)
    reader.require_columns(input_columns)
    check_writable(output_dir / MANIFEST_NAME)
    partitions: list[Path] = []
    rows: list[int] = []
    checksums: list[str] = []
    writer: AtomicParquetWriter | None = None
    batch_rows = min(config.partition_rows, 100_000)
    try:
        for batch in reader.iter_batches(input_columns, batch_rows):
            cleaned = clean_batch(batch, config, source=str(input_path))
            offset = 0
            while offset < cleaned.num_rows:
                if writer is None:
                    writer = AtomicParquetWriter(partition_path(output_dir, len(partitions)), cleaned.schema,
                                                 keep_rows=check is not None)
                take = min(config.partition_rows - writer.num_rows, cleaned.num_rows - offset)
                writer.write(cleaned.slice(offset, take))
                offset += take
                if writer.num_rows == config.partition_rows:
                    _commit(writer, check)
                    partitions.append(writer.path)
                    rows.append(writer.num_rows)
                    checksums.append(writer.sha256)
                    writer = None
            if progress:
                progress(batch.num_rows)
        if writer is not None:
            _commit(writer, check)
            partitions.append(writer.path)
            rows.append(writer.num_rows)
            checksums.append(writer.sha256)
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if not partitions:
        raise CatalogError(input_path, f"no rows left after the row filters {config.filters}")
    for stale in set(output_dir.glob("part-*.parquet")) - set(partitions):
        stale.unlink()
    manifest = {"input": identity, "config": config.fingerprint(),
                "partitions": [p.name for p in partitions], "rows": rows, "sha256": checksums}
    write_text_atomically(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=1))
    return partitions
