"""Training Set Maker: a spec-z catalog cross-matched with a release's object catalog (lsdb on HATS).

:func:`check_inputs` opens both catalogs' metadata and checks every column the request names, and that the
object catalog's margin cache covers the match radius, before any data is read. :func:`make_training_set`
runs the lsdb cross-match (the spec-z catalog on the left, so every spec-z finds its ``n_neighbors`` nearest
objects within ``radius_arcsec``), resolves objects claimed by several spec-z, cleans the photometry as stage I
does (fluxes to AB magnitudes, non-detections to RAIL's sentinel, optional SFD dereddening), adds the
train/test split and writes the training set with its report: matched fraction and separation distribution.

Layout of the output folder::

    OUTPUT/NAME.parquet | NAME.csv | NAME/     the training set (HATS: catalog + margin cache)
    OUTPUT/NAME.report.json                   the run's report; a rerun with the same request keeps both

Training set columns: the object's id, ra, dec and selected columns; ``mag_{band}_lsst`` and
``mag_err_{band}_lsst`` with a column map; ``redshift``, ``redshift_err``, ``redshift_flag``, ``specz_id``,
``specz_ra``, ``specz_dec`` from the spec-z roles and ``specz_<name>`` for its other columns;
``separation_arcsec``; ``is_training_set``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pzlib.catalog import CatalogError
from pzlib.crossmatch.config import TsmConfig, local_path
from pzlib.crossmatch.outputs import (
    HATS_INTERNAL_COLUMNS,
    dask_threads,
    finish_report,
    input_identity,
    kept_report,
    separation_lines,
    write_output,
)
from pzlib.crossmatch.specz import catalog_columns, check_specz_columns, check_specz_values, open_specz
from pzlib.preprocess import (
    SFD_EXTINCTION_COEFFICIENTS,
    PreprocessConfig,
    clean_batch,
    output_error_column,
    output_mag_column,
)

log = logging.getLogger(__name__)

SPECZ_OUTPUT_NAMES = {"z": "redshift", "z_err": "redshift_err", "z_flag": "redshift_flag", "id": "specz_id",
                      "ra": "specz_ra", "dec": "specz_dec"}
"""Training set column of each spec-z role: ``redshift`` is what RAIL's informers train on."""
SEPARATION_COLUMN = "separation_arcsec"
SPLIT_COLUMN = "is_training_set"
_SPECZ_SUFFIX = "_specz"
_ROW_KEY = "_specz_row"


@dataclass
class ObjectCatalog:
    """What the HATS metadata of an object catalog says."""

    path: str
    columns: list[str]
    ra_column: str
    dec_column: str
    rows: int
    partitions: int
    margin_arcsec: float | None


def open_object_catalog(path_or_uri: str) -> ObjectCatalog:
    """The object catalog's metadata (main catalog and default margin cache), without reading its rows.

    Raises
    ------
    ValueError
        Naming ``object_catalog`` when the folder is missing or not a HATS catalog.
    """
    import hats

    path = local_path(path_or_uri)
    if not path.is_dir():
        raise ValueError(f"object_catalog: {path} is not a folder (a HATS catalog is expected)")
    try:
        catalog = hats.read_hats(path)
    except Exception as error:  # hats raises several types for "not a catalog"; all mean the same to a user
        raise ValueError(f"object_catalog: {path} is not a HATS catalog: {error}") from None
    margin_arcsec = None
    if isinstance(catalog, hats.catalog.CatalogCollection):
        thresholds = catalog.get_margin_thresholds()
        margin_arcsec = thresholds.get(catalog.default_margin) if catalog.default_margin else None
        catalog = catalog.main_catalog
    info = catalog.catalog_info
    if not info.ra_column or not info.dec_column:
        raise ValueError(f"object_catalog: {path} has no sky position columns in its HATS properties")
    return ObjectCatalog(str(path), catalog_columns(list(catalog.schema.names)), info.ra_column, info.dec_column,
                         int(info.total_rows or 0), len(catalog.get_healpix_pixels()), margin_arcsec)


@dataclass
class TrainingSetPlan:
    """The columns a request reads and writes, worked out (and checked) from both catalogs' metadata."""

    specz_path: str
    specz_format: str
    specz_rows: int
    specz_extra_columns: list[str]
    """Spec-z columns besides the roles, written as ``specz_<name>``."""
    objects: ObjectCatalog
    object_read_columns: list[str]
    """Object catalog columns the cross-match loads."""
    object_output_columns: list[str]
    """Object catalog columns written as they are."""
    magnitude_columns: list[str]
    """RAIL magnitude columns made from the photometry (empty without a column map)."""

    def to_dict(self) -> dict:
        return asdict(self)


def check_inputs(config: TsmConfig) -> TrainingSetPlan:
    """Check a request against its catalogs' metadata before any work; return what it will read and write.

    Raises
    ------
    ValueError
        Starting with the field at fault: a catalog missing or unreadable (``specz_catalog``,
        ``object_catalog``), a column not in its catalog (``specz_columns.z``, ``object_id_column``,
        ``selected_columns``, ``column_map``), a margin cache narrower than ``radius_arcsec``.
    """
    specz = open_specz(config.specz_catalog, "specz_catalog")
    check_specz_columns(specz, config.specz_columns, "specz_columns")
    if specz.format == "hats":
        _check_hats_positions(specz.path, config)
    roles = config.specz_columns.roles()
    role_outputs = {SPECZ_OUTPUT_NAMES[role] for role in roles}
    specz_extra = [name for name in catalog_columns(specz.column_names)
                   if name not in roles.values() and f"specz_{name}" not in role_outputs]

    objects = open_object_catalog(config.object_catalog)
    available = set(objects.columns)

    def require(field_name: str, names: list[str]) -> None:
        for name in names:
            if name not in available:
                raise ValueError(f"{field_name}: column {name!r} is not in the object catalog {objects.path} "
                                 f"(has: {', '.join(objects.columns)})")

    require("object_id_column", [config.id_column])
    if config.selected_columns is not None:
        require("selected_columns", config.selected_columns)
    photometry = config.photometry_map()
    photometry_inputs: list[str] = []
    magnitude_columns: list[str] = []
    raw_photometry: list[str] = []
    if photometry is not None:
        require("column_map", photometry.photometry_columns())
        if config.dereddening:
            require("column_map", [photometry.ebv_column])
        photometry_inputs = photometry.photometry_columns() + ([photometry.ebv_column] if config.dereddening else [])
        if photometry.kind == "mag" or config.convert_flux_to_mag:
            magnitude_columns = [c for band in photometry.bands
                                 for c in (output_mag_column(band), output_error_column(band))]
        else:
            raw_photometry = photometry.photometry_columns()

    positions = [config.id_column, objects.ra_column, objects.dec_column]
    explicit = config.selected_columns is not None
    selected = config.selected_columns if explicit else objects.columns
    output_columns = list(dict.fromkeys([*positions, *selected, *raw_photometry]))
    output_columns = [name for name in output_columns if name not in magnitude_columns]
    specz_names = {*_specz_output_names(config.specz_columns.roles(), specz_extra), SEPARATION_COLUMN, SPLIT_COLUMN}
    clashes = [name for name in output_columns if name in specz_names]
    if clashes and (explicit or set(clashes) & set(positions)):
        field_name = "selected_columns" if explicit and clashes[0] in config.selected_columns else "object_catalog"
        raise ValueError(f"{field_name}: object column {clashes[0]!r} has the name of a training set column "
                         "taken by the spec-z side; leave it out")
    # Selecting every column (the default) leaves out those the spec-z side names.
    output_columns = [name for name in output_columns if name not in specz_names]

    margin = objects.margin_arcsec
    if objects.partitions > 1 and margin is None:
        raise ValueError(f"object_catalog: {objects.path} has no margin cache, so matches across its "
                         f"{objects.partitions} partitions' borders would be lost; give the HATS collection "
                         "folder that holds the catalog and its margin cache")
    if objects.partitions > 1 and config.radius_arcsec > margin:
        raise ValueError(f"radius_arcsec: {config.radius_arcsec:g} exceeds the object catalog's margin cache "
                         f"({margin:g} arcsec), so matches across partition borders would be lost; use at most "
                         f"{margin:g} or rebuild the margin cache wider")
    read_columns = list(dict.fromkeys([*output_columns, *photometry_inputs, *positions]))
    return TrainingSetPlan(str(specz.path), specz.format, specz.num_rows, specz_extra, objects, read_columns,
                           output_columns, magnitude_columns)


def _check_hats_positions(path: Path, config: TsmConfig) -> None:
    import hats

    catalog = hats.read_hats(path)
    if isinstance(catalog, hats.catalog.CatalogCollection):
        catalog = catalog.main_catalog
    info = catalog.catalog_info
    for role, hats_column in (("ra", info.ra_column), ("dec", info.dec_column)):
        if getattr(config.specz_columns, role) != hats_column:
            raise ValueError(f"specz_columns.{role}: the HATS catalog {path} is partitioned on {hats_column!r}, "
                             f"not {getattr(config.specz_columns, role)!r}")


def _specz_output_names(roles: dict[str, str], extra: list[str]) -> list[str]:
    return [SPECZ_OUTPUT_NAMES[role] for role in roles] + [f"specz_{name}" for name in extra]


def make_training_set(config: TsmConfig) -> dict:
    """Cross-match the spec-z catalog with the object catalog and write the training set and its report.

    Returns
    -------
    dict
        The report (also written to ``config.report_path``): ``output`` (path, format, rows, columns),
        ``columns_association``, ``n_specz``, ``n_specz_matched``, ``matched_fraction``, ``n_pairs``,
        ``n_training``, ``n_test``, ``separation_arcsec`` (percentiles, mean, max, histogram), ``kept``
        (True when a finished identical run was found and nothing was redone).

    Raises
    ------
    ValueError
        A bad request (see :func:`check_inputs`); :class:`pzlib.catalog.CatalogError` for bad catalog values.

    Examples
    --------
    >>> config = TsmConfig(specz_catalog="specz.parquet", object_catalog="dr1/objects",  # doctest: +SKIP
    ...                    output_dir="out", column_map="dm_gaap")
    >>> report = make_training_set(config)  # doctest: +SKIP
    >>> report["matched_fraction"], report["separation_arcsec"]["percentiles"]["p50"]  # doctest: +SKIP
    (0.97, 0.21)
    """
    plan = check_inputs(config)
    inputs = {"specz_catalog": input_identity(plan.specz_path), "object_catalog": input_identity(plan.objects.path)}
    fingerprint = config.fingerprint()
    kept = kept_report(config.report_path, fingerprint, inputs)
    if kept is not None:
        log.info("kept the training set %s: same request and inputs, output verified", kept["output"]["path"])
        return {**kept, "kept": True}
    started = time.perf_counter()
    pairs = crossmatch(config, plan)
    table, counts = training_table(pairs, config, plan)
    write_output(table, config.output_path, config.output_format, plan.objects.ra_column, plan.objects.dec_column)
    columns_association = {"id": config.id_column, "ra": plan.objects.ra_column, "dec": plan.objects.dec_column,
                           **{role: SPECZ_OUTPUT_NAMES[role] for role in ("z", "z_err", "z_flag")
                              if getattr(config.specz_columns, role)}}
    details = {"n_specz": plan.specz_rows, **counts,
               "matched_fraction": round(counts["n_specz_matched"] / plan.specz_rows, 6), "plan": plan.to_dict()}
    return finish_report("training_set_maker", config, table, columns_association, details,
                         table.column(SEPARATION_COLUMN).to_numpy(), started, fingerprint, inputs, report_lines, log)


def crossmatch(config: TsmConfig, plan: TrainingSetPlan) -> pa.Table:
    """The lsdb cross-match of the request: every (spec-z, object) pair within the radius, one row each.

    Spec-z columns carry the suffix ``_specz``; ``_specz_row_specz`` numbers the spec-z rows (unique, so the
    matched ones can be counted) and ``_dist_arcsec`` is the separation.
    """
    import lsdb

    with dask_threads(config.workers):
        if plan.specz_format == "hats":
            specz = lsdb.open_catalog(plan.specz_path)
        else:
            frame = open_specz(config.specz_catalog, "specz_catalog").read().to_pandas()
            frame = frame.drop(columns=[c for c in HATS_INTERNAL_COLUMNS if c in frame.columns])
            check_specz_values(frame, config.specz_columns, plan.specz_path)
            specz = lsdb.from_dataframe(frame, ra_column=config.specz_columns.ra, dec_column=config.specz_columns.dec,
                                        margin_threshold=None, catalog_name="specz")
        specz = specz.map_partitions(_number_rows, include_pixel=True)
        objects = lsdb.open_catalog(plan.objects.path, columns=plan.object_read_columns)
        try:
            matched = specz.crossmatch(objects, n_neighbors=config.n_neighbors, radius_arcsec=config.radius_arcsec,
                                       suffixes=(_SPECZ_SUFFIX, ""), suffix_method="all_columns", log_changes=False)
        except RuntimeError as error:
            if "do not overlap" not in str(error):
                raise
            raise ValueError(f"specz_catalog: {plan.specz_path} does not overlap the object catalog "
                             f"{plan.objects.path} on the sky; no spec-z can be matched") from None
        pairs = matched.compute(progress_bar=False)
    # lsdb's columns are Arrow-backed: the table shares their buffers.
    return pa.Table.from_pandas(pairs, preserve_index=False)


def _number_rows(partition: pd.DataFrame, pixel) -> pd.DataFrame:
    """Number a partition's rows from its pixel's first order-29 index: unique across the whole catalog."""
    first = int(pixel.pixel) << (2 * (29 - int(pixel.order)))
    return partition.assign(**{_ROW_KEY: np.arange(first, first + len(partition), dtype=np.int64)})


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values begins in a sorted array."""
    return np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))


def training_table(pairs: pa.Table, config: TsmConfig, plan: TrainingSetPlan) -> tuple[pa.Table, dict]:
    """The training set from the cross-match pairs, and its counts (spec-z matched, pairs, train/test)."""
    row_key = _numbers(pairs, f"{_ROW_KEY}{_SPECZ_SUFFIX}")
    separation = _numbers(pairs, "_dist_arcsec")
    n_pairs = pairs.num_rows
    # Output order: by spec-z row, nearest object first. lsdb gives pairs nearly in that order already, and
    # sorts here are on integers where they can be: this runs once per request on up to millions of pairs.
    order = np.argsort(row_key, kind="stable")
    n_matched = len(_run_starts(row_key[order])) if n_pairs else 0
    if n_matched < n_pairs:  # spec-z with several objects
        order = np.lexsort((separation, row_key))
    keep = np.ones(n_pairs, dtype=bool)
    object_codes, objects = pd.factorize(pairs.column(config.id_column).to_pandas())
    if config.duplicate_criteria == "closest" and len(objects) < n_pairs:
        # An object matched by several spec-z keeps its nearest (ties: the earlier spec-z row).
        shared = np.flatnonzero(np.bincount(object_codes)[object_codes] > 1)
        ranked = shared[np.lexsort((row_key[shared], separation[shared], object_codes[shared]))]
        keep[shared] = False
        keep[ranked[_run_starts(object_codes[ranked])]] = True
    rows = order[keep[order]]
    if len(rows) < n_pairs or np.any(rows != np.arange(n_pairs)):
        pairs = pairs.take(rows)
    z_column = f"{config.specz_columns.z}{_SPECZ_SUFFIX}"
    if plan.specz_format == "hats":  # a file's rows were checked on reading; a HATS catalog's only here
        missing = int((~np.isfinite(_numbers(pairs, z_column).astype(float))).sum())  # nulls come as NaN
        if missing:
            raise CatalogError(plan.specz_path, f"{missing:,} matched row(s) have no redshift", config.specz_columns.z)

    columns: dict[str, pa.ChunkedArray | np.ndarray] = {name: pairs.column(name) for name in plan.object_output_columns}
    photometry = config.photometry_map()
    if plan.magnitude_columns:
        magnitudes = _magnitudes(pairs, config, photometry)
        columns.update({name: magnitudes.column(name) for name in plan.magnitude_columns})
    elif photometry is not None and config.dereddening:
        columns.update(_dereddened_fluxes(pairs, photometry))
    for role, name in config.specz_columns.roles().items():
        columns[SPECZ_OUTPUT_NAMES[role]] = pairs.column(f"{name}{_SPECZ_SUFFIX}")
    for name in plan.specz_extra_columns:
        columns[f"specz_{name}"] = pairs.column(f"{name}{_SPECZ_SUFFIX}")
    columns[SEPARATION_COLUMN] = pairs.column("_dist_arcsec")
    counts = {"n_specz_matched": n_matched, "n_pairs": n_pairs, "n_rows": pairs.num_rows,
              "n_pairs_dropped": n_pairs - pairs.num_rows}
    if config.train_fraction is not None:
        training = split_flags(pairs.column(config.id_column).to_pandas(), config.train_fraction, config.split_seed)
        columns[SPLIT_COLUMN] = training
        counts.update(n_training=int(training.sum()), n_test=int(len(training) - training.sum()))
    return pa.table(columns), counts


def _magnitudes(pairs: pa.Table, config: TsmConfig, photometry) -> pa.Table:
    """RAIL's magnitude columns, cleaned exactly as stage I cleans a partition."""
    cleaning_map = dataclasses.replace(photometry, id_column=config.id_column, ra_column=None, dec_column=None)
    cleaning = PreprocessConfig(columns=cleaning_map, deredden=config.dereddening == "sfd")
    names = [config.id_column, *cleaning_map.photometry_columns()]
    if config.dereddening:
        names.append(cleaning_map.ebv_column)
    return clean_batch(pairs.select(names), cleaning, source=config.object_catalog)


def _dereddened_fluxes(pairs: pa.Table, photometry) -> dict[str, np.ndarray]:
    """Fluxes and errors corrected for extinction: f · 10^(0.4 · k_band · E(B−V))."""
    ebv = _numbers(pairs, photometry.ebv_column).astype(float)
    corrected = {}
    for band in photometry.bands:
        factor = 10.0 ** (0.4 * SFD_EXTINCTION_COEFFICIENTS[band] * ebv)
        for name in (photometry.value_column(band), photometry.error_column(band)):
            corrected[name] = _numbers(pairs, name).astype(float) * factor
    return corrected


def split_flags(object_ids: pd.Series, train_fraction: float, seed: int) -> np.ndarray:
    """True for the training side: a keyed hash of each object id below ``train_fraction``.

    A row's side depends only on its object id and the seed, not on the row order or the partitioning, so
    the same object is on the same side in every training set made with that seed.

    Examples
    --------
    >>> flags = split_flags(pd.Series(np.arange(10_000)), 0.7, seed=0)
    >>> round(float(flags.mean()), 2)
    0.7
    """
    # pandas hashes numbers without its hash key: mix the seed in by hashing the ids' hashes xor a seed hash.
    seed_hash = pd.util.hash_array(np.array([seed], dtype=np.uint64))[0]
    id_hashes = pd.util.hash_pandas_object(object_ids.reset_index(drop=True), index=False).to_numpy()
    hashes = pd.util.hash_array(id_hashes ^ seed_hash)
    return (hashes / 2.0**64) < train_fraction


def report_lines(report: dict) -> list[str]:
    """The run's outcome as text lines for a task log: matched fraction, output, separation distribution."""
    lines = [
        f'matched {report["n_specz_matched"]:,} of {report["n_specz"]:,} spec-z '
        f'({100 * report["matched_fraction"]:.1f}%) within {report["radius_arcsec"]:g}"',
        f'training set: {report["output"]["rows"]:,} rows → {report["output"]["path"]}',
    ]
    if "n_training" in report:
        lines.append(f'split: {report["n_training"]:,} training / {report["n_test"]:,} test')
    return lines + separation_lines(report["separation_arcsec"])
