"""Stages II and III: train RAIL estimators and stream catalogs through them.

RAIL is both the trainer and the estimator here: :func:`train` runs the estimator's RAIL informer and stores
the model atomically; :class:`PartitionEstimator` builds the RAIL estimator stage once per process, with the
model loaded once, and feeds it pyarrow record batches in memory (RAIL's own chunked file input is not used).
:func:`estimate_partition` checks each batch of its input before the estimator sees it (numeric, finite
photometry: a bad partition fails with its file and column named), writes one photo-z table per partition under
a temporary name, renames it when complete, and keeps an output that already exists only when it verifies by
content: the SHA-256 recorded when it was written, or else the CRC of every page.

Point estimates in the output, per estimator:

- ``fzboost`` (FlexZBoost): ``zmode`` is RAIL's mode (the grid argmax of the flexcode PDF); ``zmean``,
  ``zmedian``, ``z_p16``, ``z_p84`` are computed on the 301-point PDF grid.
- ``bpz`` (BPZ-lite): ``zmode`` and ``zmean`` are BPZ's own (posterior argmax and mean); ``zmedian``,
  ``z_p16``, ``z_p84`` are computed on the PDF grid.
- ``tpz``, ``gpz``, ``cmnn``, ``knn``: ``zmode`` is RAIL's own (TPZ: its PDF's mode; GPz and CMNN: the
  centre of their Gaussian; KNN: the mode of its Gaussian mixture on the grid); the rest on the PDF grid.
- ``dnf``: every point estimate on the PDF grid (DNF's own ``DNF_Z`` can fall outside the grid).
- any other RAIL estimator: ``zmode``/``zmean`` from its ancillary data when it provides them, otherwise
  from its PDF evaluated on the grid, like the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import pickle
import pkgutil
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pzlib import pdf
from pzlib.catalog import (
    AtomicParquetWriter,
    CatalogError,
    check_writable,
    checksum_problem,
    file_sha256,
    input_identity,
    open_catalog,
    read_json_record,
    verify_parquet_pages,
    write_text_atomically,
)
from pzlib.config import load_settings
from pzlib.preprocess import (
    NONDETECT_SENTINEL,
    PreprocessConfig,
    check_partition_photometry,
    clean_batch,
    output_error_column,
    output_mag_column,
)
from pzlib.storage.remote_catalogs import is_url
from pzlib.storage.s3_access import S3Access

DEFAULT_BATCH_ROWS = 50_000
"""Rows per record batch of an estimator that is not a builtin one."""
FAST_CHUNK_ROWS = 8_192
"""Rows a fast path estimates at a time within a batch: its PDF buffer (20 MB at 301 grid points) is reused
chunk after chunk, where a 50,000-row batch's PDFs took 120 MB (``pz bench``'s BPZ worker: peak RSS 449 →
414 MiB on 20,449 rows); the chunks also stay in the caches between the estimator and the summaries."""


@dataclass(frozen=True)
class BuiltinEstimator:
    """An estimator the platform installs, tests, sizes and validates: its RAIL classes and our defaults."""

    module: str
    """RAIL module defining both stages."""
    informer: str
    """Informer class (stage II)."""
    estimator: str
    """Estimator class (stage III)."""
    defaults: dict = field(default_factory=dict)
    """RAIL config our runs use where it differs from RAIL's own default; a run's ``rail_options`` override it."""
    min_training_rows: int = 1
    """Fewest training rows (after stage I cleaning) its informer can learn from."""
    batch_rows: int = DEFAULT_BATCH_ROWS
    """Rows per record batch in stage III: what bounds a worker's memory (see ``ESTIMATOR_DEFAULTS``)."""
    batch_dependent: bool = False
    """Whether its answers depend on how the rows are batched (then the batch size is part of an output's
    fingerprint, and a rerun with another batch size recomputes)."""



BUILTIN_ESTIMATORS = {
    "fzboost": BuiltinEstimator("rail.estimation.algos.flexzboost", "FlexZBoostInformer", "FlexZBoostEstimator",
                                min_training_rows=100),
    "bpz": BuiltinEstimator("rail.estimation.algos.bpz_lite", "BPZliteInformer", "BPZliteEstimator",
                            min_training_rows=10),
    # TPZ (Carrasco Kind & Brunner 2013): RAIL's defaults, 5 trees on 8 bootstrap realizations of the training set.
    "tpz": BuiltinEstimator("rail.estimation.algos.tpz_lite", "TPZliteInformer", "TPZliteEstimator",
                            min_training_rows=100),
    # GPz v1 (Almosallam et al. 2016): 30 basis functions instead of RAIL's 50 — on DC2 it trains in half the
    # time and scores better (σ_NMAD 0.069 against 0.074 at 200 iterations).
    "gpz": BuiltinEstimator("rail.estimation.algos.gpz", "GPzInformer", "GPzEstimator",
                            defaults={"n_basis": 30}, min_training_rows=200),
    # CMNN (Graham et al. 2018): RAIL's defaults (68% Mahalanobis threshold, at least 25 neighbours).
    "cmnn": BuiltinEstimator("rail.estimation.algos.cmnn", "CMNNInformer", "CMNNEstimator",
                             min_training_rows=100),
    # DNF (De Vicente et al. 2016): RAIL's defaults (ANF metric, 80 neighbours). Its own photo-z (DNF_Z, a fit over
    # the neighbours) is not kept: it can fall outside the redshift grid (below 0 on DC2), where a photo-z table's
    # point estimates may not be; its zmode is its PDF's, on the grid. RAIL's DNF cuts every object's neighbours to
    # the largest count of any object in its chunk, so its PDFs depend on how the rows are batched (batch_rows).
    # Batches of 10,000 rows: its neighbour arrays take ~340 kB per object at once (40,000 rows peaked at 13.9 GB).
    "dnf": BuiltinEstimator("rail.estimation.algos.dnf", "DNFInformer", "DNFEstimator", min_training_rows=100,
                            batch_rows=10_000, batch_dependent=True),
    # KNN (rail sklearn's KNearNeigh): RAIL's defaults (colours and the reference magnitude, 3–7 neighbours and
    # the Gaussian width chosen on a quarter of the training set held out). Batches of 10,000 rows: its Gaussian
    # mixtures evaluated on the grid take ~180 kB per object at once (a 40,000-row batch peaked at 7.7 GB).
    "knn": BuiltinEstimator("rail.estimation.algos.k_nearneigh", "KNearNeighInformer", "KNearNeighEstimator",
                            min_training_rows=100, batch_rows=10_000),
}
"""The estimators the platform is tuned for, by short name."""

log = logging.getLogger(__name__)

RAIL_LOG_LEVEL_VARIABLE = "PZ_RAIL_LOG_LEVEL"
"""Environment variable with the lowest level of RAIL's own (structlog) messages to show, e.g. WARNING.
An environment variable, so that worker processes started by a quiet parent are quiet too."""


def configure_rail_logging(level: str | None = None) -> None:
    """Show RAIL's per-chunk structlog messages only from ``level`` up (default: the environment's setting)."""
    level = level or os.environ.get(RAIL_LOG_LEVEL_VARIABLE)
    if not level:
        return
    import structlog

    os.environ[RAIL_LOG_LEVEL_VARIABLE] = level
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)))


configure_rail_logging()

PHOTOZ_DICTIONARY_COLUMNS = ["zmode"]
"""Columns of a photo-z table worth dictionary-encoding in Parquet: zmode takes grid values; the other point
estimates are byte-stream-split, ids and the cdf8 PDFs (one binary value per object) stored plain for zstd."""
PROVENANCE_KEY = b"pz.provenance"
PHOTOZ_ID_COLUMN = "id"
"""The object id: unique in a photo-z table, the key of the delivered catalog."""


@dataclass(frozen=True)
class ColumnDescription:
    """What one column of a delivered photo-z table holds, in the IVOA terms catalog descriptions use (Felis,
    VOTable, TAP). The table is made here, so this is the one place that describes its columns."""

    description: str
    """What the column holds, for a user of the catalog."""
    ucd: str
    """IVOA UCD (UCD1+ controlled vocabulary)."""
    unit: str | None = None
    """IVOA unit; None where none applies (identifiers, redshifts, encoded PDFs)."""
    principal: bool = True
    """Whether a TAP service shows it by default (TAP_SCHEMA ``principal``)."""


PHOTOZ_COLUMNS = {
    PHOTOZ_ID_COLUMN: ColumnDescription("Object identifier, copied from the input catalog; unique in the table.",
                                        "meta.id;meta.main"),
    "ra": ColumnDescription("Right ascension of the object, copied from the input catalog.",
                            "pos.eq.ra;meta.main", "deg"),
    "dec": ColumnDescription("Declination of the object, copied from the input catalog.",
                             "pos.eq.dec;meta.main", "deg"),
    "zmode": ColumnDescription("Photometric redshift at the maximum of the object's PDF: the estimator's own mode "
                               "(BPZ's posterior argmax, FlexZBoost's grid argmax, TPZ's and KNN's PDF mode, the "
                               "centre of GPz's and CMNN's Gaussian) or the PDF grid argmax.",
                               "src.redshift.phot"),
    "zmean": ColumnDescription("Mean photometric redshift of the object's PDF (BPZ: its own posterior mean).",
                               "src.redshift.phot;stat.mean"),
    "zmedian": ColumnDescription("Median photometric redshift: where the object's CDF on the PDF grid reaches 0.5.",
                                 "src.redshift.phot;stat.median"),
    "z_p16": ColumnDescription("16th percentile of the object's photometric redshift PDF (CDF on the grid at "
                               "0.16, linear between grid points).", "src.redshift.phot;stat.percentile"),
    "z_p84": ColumnDescription("84th percentile of the object's photometric redshift PDF (CDF on the grid at "
                               "0.84, linear between grid points).", "src.redshift.phot;stat.percentile"),
    pdf.PDF_COLUMN: ColumnDescription("Photometric redshift probability distribution of the object on the "
                                      "estimator's redshift grid.", "stat.probability;src.redshift.phot",
                                      principal=False),
    # HATS' spatial index (hats.pixel_math.spatial_index.SPATIAL_INDEX_COLUMN), added when the catalog is
    # assembled as HATS; spelled out because importing hats costs 1.5 s on every estimate worker.
    "_healpix_29": ColumnDescription("HEALPix pixel of the object at order 29, nested scheme (HATS spatial "
                                     "index), from ra and dec.", "pos.healpix", principal=False),
}
"""Every column a delivered photo-z table (Parquet or HATS) may have, with what it holds."""


def photoz_column_descriptions(schema: pa.Schema) -> dict[str, ColumnDescription]:
    """The description of every column of the photo-z table ``schema``, in its order; the ``pdf`` column's
    says how it is stored and on which grid, from the table's schema metadata.

    Raises
    ------
    ValueError
        A column that is not one of a photo-z table's, or a table without its PDF metadata.
    """
    unknown = [name for name in schema.names if name not in PHOTOZ_COLUMNS]
    if unknown:
        raise ValueError(f"column(s) {', '.join(unknown)} are not columns of a photo-z table "
                         f"(known: {', '.join(PHOTOZ_COLUMNS)})")
    descriptions = {name: PHOTOZ_COLUMNS[name] for name in schema.names}
    if pdf.PDF_COLUMN in descriptions:
        stored = descriptions[pdf.PDF_COLUMN]
        storage = pdf.describe_storage(pdf.storage_metadata(schema))
        descriptions[pdf.PDF_COLUMN] = replace(stored, description=f"{stored.description} {storage}")
    return descriptions


@dataclass(frozen=True)
class EstimatorClasses:
    """The RAIL informer and estimator stage classes of one estimator."""

    name: str
    informer: type
    estimator: type


def resolve_estimator(name: str) -> EstimatorClasses:
    """The RAIL classes of ``name``: a short name of :data:`BUILTIN_ESTIMATORS` ('fzboost', 'bpz', 'tpz', 'gpz',
    'cmnn', 'dnf', 'knn') or any installed RAIL estimator class name (e.g. 'TrainZEstimator' or just 'TrainZ').

    Raises
    ------
    ValueError
        When no installed RAIL package provides such an estimator.
    """
    if isinstance(name, str) and name in BUILTIN_ESTIMATORS:
        builtin = BUILTIN_ESTIMATORS[name]
        module = importlib.import_module(builtin.module)
        return EstimatorClasses(name, getattr(module, builtin.informer), getattr(module, builtin.estimator))
    if isinstance(name, str):
        estimator_name = name if name.endswith("Estimator") else f"{name}Estimator"
        for module in _rail_algorithm_modules():
            classes = _catalog_estimator_classes(module, estimator_name)
            if classes:
                return EstimatorClasses(name, *classes)
    raise ValueError(
        f"unknown estimator {name!r}: use {', '.join(BUILTIN_ESTIMATORS)} or the class name of an installed "
        f"RAIL estimator (installed: {', '.join(installed_estimators())})"
    )


@cache
def _rail_algorithm_modules() -> tuple:
    import rail.estimation.algos as algos

    modules = []
    for info in pkgutil.iter_modules(algos.__path__, "rail.estimation.algos."):
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:  # an optional RAIL plugin with a broken dependency is just not available
            continue
    return tuple(modules)


def installed_estimators() -> list[str]:
    """Names accepted by :func:`resolve_estimator`."""
    names = list(BUILTIN_ESTIMATORS)
    for module in _rail_algorithm_modules():
        names += [attribute for attribute in dir(module) if _catalog_estimator_classes(module, attribute)]
    return sorted(set(names), key=names.index)


def _catalog_estimator_classes(module, estimator_name: str) -> tuple[type, type] | None:
    """(informer, estimator) when ``module`` defines a catalog estimator ``estimator_name`` and its informer."""
    from rail.estimation.estimator import CatEstimator

    if not estimator_name.endswith("Estimator"):
        return None
    estimator_class = getattr(module, estimator_name, None)
    informer_class = getattr(module, estimator_name[: -len("Estimator")] + "Informer", None)
    if not (isinstance(estimator_class, type) and isinstance(informer_class, type)):
        return None
    if estimator_class.__module__ != module.__name__ or not issubclass(estimator_class, CatEstimator):
        return None
    return informer_class, estimator_class


def bpz_data_dir() -> Path:
    """A writable copy of RAIL's BPZ data folder (SEDs, filters, AB files), made once per state folder.

    BPZ-lite writes missing AB files under its data path; the installed copy may be read-only or shared.
    """
    from rail.core.utils import RAILDIR

    source = Path(RAILDIR) / "rail" / "examples_data" / "estimation_data" / "data"
    target = load_settings().cache_dir / "bpz_data"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".bpz_data-"))
        shutil.copytree(source, staging, dirs_exist_ok=True)
        try:
            os.replace(staging, target)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass
class EstimateConfig:
    """How stages II and III run one estimator."""

    estimator: str
    """A short name of :data:`BUILTIN_ESTIMATORS` or any installed RAIL estimator class name."""
    bands: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
    """Bands fed to the estimator (stage I output names ``mag_{band}_lsst``)."""
    ref_band: str = "i"
    """Reference band (BPZ prior magnitude; FlexZBoost's magnitude feature)."""
    truth_column: str = "redshift"
    """True (spec-z) redshift column of the training set."""
    batch_rows: int | None = None
    """Rows per record batch streamed through the estimator; None: the estimator's own
    (:attr:`BuiltinEstimator.batch_rows`, else 50,000)."""
    sentinel: float = NONDETECT_SENTINEL
    """Non-detection magnitude written by stage I (RAIL's ``nondetect_val``)."""
    rail_options: dict = field(default_factory=dict)
    """Extra RAIL stage config (e.g. ``{"nbump": 10}``), passed to the informer and the estimator."""
    pdf_storage: str = pdf.DEFAULT_REPRESENTATION
    """How the output stores PDFs: 'cdf8' (compact, CDF within 1/510) or 'interp32' (see :mod:`pzlib.pdf`)."""
    engine: str = "fast"
    """'fast': :mod:`pzlib.fastpaths` (RAIL's answers, vectorized/compiled) for bpz, fzboost, tpz, knn; the RAIL stage
    for others; 'rail': always the stock RAIL estimator stage (the reference, for comparison)."""

    def __post_init__(self):
        self.bands = tuple(self.bands)
        if self.engine not in ("fast", "rail"):
            raise ValueError(f"engine must be 'fast' or 'rail', got {self.engine!r}")
        if self.pdf_storage not in pdf.REPRESENTATIONS:
            raise ValueError(f"pdf_storage must be one of {', '.join(pdf.REPRESENTATIONS)}, got {self.pdf_storage!r}")
        resolve_estimator(self.estimator)
        if self.batch_rows is None:
            builtin = BUILTIN_ESTIMATORS.get(self.estimator)
            self.batch_rows = builtin.batch_rows if builtin else DEFAULT_BATCH_ROWS
        if self.batch_rows <= 0:
            raise ValueError(f"batch_rows must be positive, got {self.batch_rows}")
        if self.ref_band not in self.bands:
            raise ValueError(f"ref_band {self.ref_band!r} is not one of the bands {self.bands}")

    @property
    def classes(self) -> EstimatorClasses:
        return resolve_estimator(self.estimator)

    def input_columns(self) -> list[str]:
        return [c for band in self.bands for c in (output_mag_column(band), output_error_column(band))]

    def stage_options(self) -> dict:
        """RAIL config shared by the informer and the estimator stage."""
        options = {
            "hdf5_groupname": "",
            "id_col": "id",
            "redshift_col": self.truth_column,
            "nondetect_val": self.sentinel,
            "bands": [output_mag_column(b) for b in self.bands],
            "err_bands": [output_error_column(b) for b in self.bands],
            "ref_band": output_mag_column(self.ref_band),
        }
        if self.estimator in BUILTIN_ESTIMATORS:
            options.update(BUILTIN_ESTIMATORS[self.estimator].defaults)
        if self.estimator == "bpz":
            options["bpz_ref_data_path"] = str(bpz_data_dir())
            options["filter_list"] = [f"DC2LSST_{band}" for band in self.bands]
        options.update(self.rail_options)
        return options

    def fingerprint(self) -> str:
        """Hash of what determines the outputs (recorded in each output; a change recomputes it)."""
        values = asdict(self)
        builtin = BUILTIN_ESTIMATORS.get(self.estimator)
        if not (builtin and builtin.batch_dependent):
            values.pop("batch_rows")  # how the rows are batched does not change the answers
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def model_fingerprint(self) -> str:
        """Hash of what determines the trained model (not how estimates are computed or stored)."""
        values = asdict(self)
        for name in ("batch_rows", "engine", "pdf_storage"):
            values.pop(name)
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _numpy_columns(table: pa.Table | pa.RecordBatch) -> dict[str, np.ndarray]:
    """Writable numpy arrays per column (RAIL's stages edit their input in place)."""
    return {name: np.array(table.column(name).to_numpy(zero_copy_only=False)) for name in table.column_names}


def unique_stage_name(prefix: str) -> str:
    """A RAIL stage name of its own: RAIL keeps every stage by name, so two stages of one name would clash."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def check_trainable(table: pa.Table, config: EstimateConfig, source: str) -> None:
    """Raise :class:`CatalogError` naming ``source`` when ``config.estimator`` cannot learn from the cleaned
    training ``table``: fewer rows than its informer needs, or a band without a single detection.

    Examples
    --------
    >>> check_trainable(training_table.slice(0, 20), EstimateConfig("gpz"), "train.parquet")  # doctest: +SKIP
    CatalogError: train.parquet: 20 training rows after cleaning; gpz needs at least 200
    """
    builtin = BUILTIN_ESTIMATORS.get(config.estimator)
    needed = builtin.min_training_rows if builtin else 1
    if table.num_rows < needed:
        raise CatalogError(source, f"{table.num_rows} training rows after cleaning; {config.estimator} needs at "
                                   f"least {needed}")
    for band in config.bands:
        magnitudes = table.column(output_mag_column(band)).to_numpy(zero_copy_only=False)
        if not np.any(np.isfinite(magnitudes) & (magnitudes != config.sentinel)):
            raise CatalogError(source, f"no training row is detected in band {band}, so {config.estimator} "
                                       "cannot learn from it: give the band detections or leave it out of the "
                                       "column map's bands", column=output_mag_column(band))


@contextlib.contextmanager
def _seeded_generators(seed: int):
    """Informers that draw from generators nobody seeds draw from seeded ones in this block, so that a model
    is reproducible: GPz splits its training set with numpy's global generator, and TPZ (pz-rail-tpz 2.1.2) makes
    its random realizations and bootstrap samples with the ``default_rng()`` its ``mlz_utils.data.catalog``
    creates when given none (and picks attributes with Python's ``random``). That module is patched only when
    loaded (by TPZ's stage, built before training): other estimators neither import nor need it."""
    import random
    import sys

    mlz_data = sys.modules.get("rail.estimation.algos.mlz_utils.data")
    unseeded_catalog = mlz_data.catalog if mlz_data else None
    numpy_state, python_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    if mlz_data:
        class SeededCatalog(unseeded_catalog):
            def __init__(self, *args, rng=None, **kwargs):
                super().__init__(*args, rng=np.random.default_rng(seed) if rng is None else rng, **kwargs)

        mlz_data.catalog = SeededCatalog
    try:
        yield
    finally:
        if mlz_data:
            mlz_data.catalog = unseeded_catalog
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def train(training_path: str | os.PathLike, model_path: str | os.PathLike, config: EstimateConfig,
          preprocess_config: PreprocessConfig | None = None,
          check: Callable[[pa.Table], None] | None = None, s3: S3Access | None = None) -> Path:
    """Train ``config.estimator`` with its RAIL informer on a training catalog; store the model atomically.

    The training catalog (a local path or a URL :func:`~pzlib.catalog.open_catalog` reads; ``s3`` reaches an
    ``s3://`` one, by default as the settings say) goes through stage I cleaning first (same column map and
    sentinel as the data it will estimate), then ``check(table)`` if given (e.g. the training-set expectations). A
    model whose sidecar records the same training file (for a URL: every object's size and ETag) and config, and
    the SHA-256 of the model's bytes, is reused; one whose bytes changed is trained again (and the log says so).

    Raises
    ------
    CatalogError
        When the training catalog cannot be read or lacks a column (e.g. the truth column).
    """
    model_path = Path(model_path)
    preprocess_config = preprocess_config or PreprocessConfig()
    sidecar = model_path.with_suffix(model_path.suffix + ".json")
    if is_url(training_path):
        training = {"training": input_identity(training_path, s3)}
    else:
        training_path = Path(training_path)
        training = {"training": str(training_path.resolve()),
                    "training_size": training_path.stat().st_size if training_path.is_file() else None}
    identity = {
        **training,
        "estimate_config": config.model_fingerprint(),
        "preprocess_config": preprocess_config.fingerprint(),
    }
    recorded = read_json_record(sidecar) if model_path.exists() else None
    if recorded is not None and recorded.get("identity") == identity:
        if recorded.get("sha256") == file_sha256(model_path):
            log.info("reusing %s model %s (trained on %s with the same config)", config.estimator, model_path,
                     training_path)
            return model_path
        log.warning("model %s failed its checksum (%s records another SHA-256); training it again", model_path,
                    sidecar)
    check_writable(model_path)
    cleaning = PreprocessConfig(**{**asdict(preprocess_config), "filters": list(preprocess_config.filters),
                                   "keep_columns": [config.truth_column]})
    reader = open_catalog(training_path, s3=s3)
    input_columns = cleaning.input_columns(reader.column_names)
    reader.require_columns(input_columns)
    table = pa.concat_tables(
        clean_batch(batch, cleaning, str(training_path)) for batch in reader.iter_batches(input_columns)
    )
    if check is not None:
        check(table)
    check_trainable(table, config, str(training_path))
    with tempfile.TemporaryDirectory(dir=model_path.parent, prefix=".train-") as workdir:
        staged_model = Path(workdir) / "model.pkl"
        options = config.stage_options()
        informer = config.classes.informer.make_stage(
            name=unique_stage_name(f"inform_{config.estimator}"), model=str(staged_model), **options,
        )
        chatter = io.StringIO()
        try:
            with _seeded_generators(options.get("seed", 0)), contextlib.redirect_stdout(chatter):
                informer.inform(_numpy_columns(table))  # GPz prints every iteration
        except (ValueError, ArithmeticError, IndexError, np.linalg.LinAlgError) as error:
            raise CatalogError(training_path, f"{config.estimator} cannot be trained on it "
                                              f"({table.num_rows} rows): {error}") from None
        finally:
            log.debug("%s informer output:\n%s", config.estimator, chatter.getvalue())
        if not staged_model.exists():  # some informers keep the model in memory only
            with open(staged_model, "wb") as handle:
                pickle.dump(informer.model, handle)
        os.replace(staged_model, model_path)
    write_text_atomically(sidecar, json.dumps({"identity": identity, "sha256": file_sha256(model_path),
                                               "estimator": config.estimator, "rows": table.num_rows}, indent=1))
    return model_path


class PartitionEstimator:
    """An estimator built once per process, with its model loaded once, fed in-memory record batches: the
    fast path of :mod:`pzlib.fastpaths` (same answers as RAIL) or the RAIL estimator stage itself.

    Examples
    --------
    >>> estimator = PartitionEstimator("fzboost.pkl", EstimateConfig("fzboost"))  # doctest: +SKIP
    >>> photoz = estimator.estimate_batch(batch)  # doctest: +SKIP
    """

    def __init__(self, model_path: str | os.PathLike, config: EstimateConfig):
        self.model_path = Path(model_path)
        self.config = config
        if not self.model_path.exists():
            raise FileNotFoundError(f"{self.model_path}: no trained model (run `pz train` first)")
        self.model_sha256 = file_sha256(self.model_path)
        self._stage = None
        self._fast = None

    @property
    def fast(self):
        """The :mod:`pzlib.fastpaths` estimator (built on first use), or None when the RAIL stage runs."""
        from pzlib.fastpaths import FAST_ESTIMATORS, make_fast_estimator

        if self.config.engine != "fast" or self.config.estimator not in FAST_ESTIMATORS:
            return None
        if self._fast is None:
            with open(self.model_path, "rb") as handle:
                self._fast = make_fast_estimator(self.config.estimator, pickle.load(handle),
                                                 self.config.stage_options())
        return self._fast

    @property
    def stage(self):
        """The RAIL stage, built on first use: a rerun whose outputs all verify never loads the model."""
        if self._stage is None:
            with open(self.model_path, "rb") as handle:
                model = pickle.load(handle)
            options = {**self.config.stage_options(), "output_mode": "return", "chunk_size": 1 << 40}
            if self.config.estimator == "fzboost":
                options.setdefault("calculated_point_estimates", ["mode"])
            stage = self.config.classes.estimator.make_stage(
                name=unique_stage_name(f"estimate_{self.config.estimator}"), model=str(self.model_path), **options,
            )
            # One long-lived stage replaces its output on every batch; RAIL's per-stage store must allow it.
            object.__setattr__(stage.data_store, "allow_overwrite", True)
            stage.config["model"] = model
            self._stage = stage
        return self._stage

    def estimate_batch(self, batch: pa.RecordBatch | pa.Table) -> pa.Table:
        """Photo-z table of one batch of stage I output: id, [ra, dec], point estimates, PDF.

        A fast path takes the batch :data:`FAST_CHUNK_ROWS` rows at a time, each chunk summarized into the
        table's columns before the next: its PDFs never exist for the whole batch at once."""
        columns = _numpy_columns(batch.select(["id", *self.config.input_columns()]))
        if self.fast is not None:
            parts = []
            for start in range(0, max(batch.num_rows, 1), FAST_CHUNK_ROWS):  # an empty batch: one empty chunk
                result = self.fast.estimate({name: values[start:start + FAST_CHUNK_ROWS]
                                             for name, values in columns.items()})
                parts.append(self._photoz_columns(result.grid, result.pdfs, result.zmode, result.zmean))
        else:
            ensemble = self.stage.estimate(columns).data
            grid, pdfs = _gridded_pdfs(ensemble, self.stage.config)
            ancil = ensemble.ancil or {}
            own = own_point_estimates(self.config.estimator)
            parts = [self._photoz_columns(grid, pdfs, *(_ancil_column(ancil, own.get(name, ()))
                                                        for name in ("zmode", "zmean")))]
        out = {"id": batch.column("id")}
        for name in ("ra", "dec"):
            if name in batch.schema.names:
                out[name] = batch.column(name)
        for name in parts[0]:
            out[name] = pa.chunked_array([part[name] for part in parts])
        return pa.table(out)

    def _photoz_columns(self, grid: np.ndarray, pdfs: np.ndarray, zmode: np.ndarray | None,
                        zmean: np.ndarray | None) -> dict[str, pa.Array]:
        """Point estimates (float32) and the stored PDF column of some PDFs on ``grid``; the estimator's own
        zmode and zmean where it has them, else the PDF's."""
        summaries = pdf.summarize(pdfs, grid, [0.5, 0.16, 0.84], with_mean=zmean is None,
                                  representation=self.config.pdf_storage)
        levels = summaries.quantiles
        points = {"zmode": pdf.mode(pdfs, grid) if zmode is None else zmode,
                  "zmean": summaries.mean if zmean is None else zmean,
                  "zmedian": levels[:, 0], "z_p16": levels[:, 1], "z_p84": levels[:, 2]}
        self.grid = grid
        return {**{name: pa.array(np.asarray(values, dtype=np.float32)) for name, values in points.items()},
                pdf.PDF_COLUMN: summaries.column}

    def provenance(self, input_path: Path, input_rows: int) -> dict:
        return {"estimator": self.config.estimator, "estimate_config": self.config.fingerprint(),
                "model": str(self.model_path), "model_sha256": self.model_sha256,
                "input": str(input_path), "input_rows": input_rows}


def own_point_estimates(estimator: str) -> dict[str, tuple[str, ...]]:
    """Point-estimate column of a photo-z table → the ancillary columns of the RAIL estimator's output that may hold
    its own value (first found wins); what it does not provide is computed on the PDF grid. FlexZBoost's own mean is
    not taken: RAIL computes it from the PDF, as we do."""
    if estimator == "fzboost":
        return {"zmode": ("zmode", "mode")}
    return {"zmode": ("zmode", "mode"), "zmean": ("zmean", "mean")}


def _ancil_column(ancil: dict, names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        if name in ancil:
            return np.asarray(ancil[name]).reshape(-1)
    return None


def _gridded_pdfs(ensemble, stage_config) -> tuple[np.ndarray, np.ndarray]:
    """(grid, PDF values on it) of a qp ensemble: the interp grid itself, or the estimator's z grid."""
    if "xvals" in ensemble.metadata and "yvals" in ensemble.objdata:
        grid = np.asarray(ensemble.metadata["xvals"]).reshape(-1)
        return grid, np.asarray(ensemble.objdata["yvals"])
    grid = np.linspace(stage_config["zmin"], stage_config["zmax"], stage_config["nzbins"])
    return grid, np.asarray(ensemble.pdf(grid))


def _read_provenance(path: Path) -> dict | None:
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = metadata.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else None


def output_problem(output_path: Path, provenance: dict, checksum_path: str | os.PathLike | None = None) -> str | None:
    """Why ``output_path`` cannot be kept as the photo-z table of ``provenance`` (its input and model), or None
    when it can: it exists, its bytes verify — against the SHA-256 recorded in ``checksum_path`` when given,
    else by the CRC of every page — and it records the same provenance and holds every input row."""
    if not output_path.exists():
        return "does not exist"
    if not output_path.is_file():
        return "is not a file"
    if checksum_path is not None:
        problem = checksum_problem(output_path, checksum_path)
        if problem is not None:
            return problem
    else:
        try:
            verify_parquet_pages(output_path)
        except CatalogError as error:
            return f"failed its page checksums ({error})"
    if _read_provenance(output_path) != provenance:
        return "was made from another input, model or configuration"
    rows = pq.read_metadata(output_path).num_rows
    if rows != provenance["input_rows"]:
        return f"holds {rows} rows, its input {provenance['input_rows']}"
    return None


def estimate_partition(partition_path: str | os.PathLike, output_path: str | os.PathLike,
                       estimator: PartitionEstimator, progress=None,
                       cleaning: PreprocessConfig | None = None,
                       check: Callable[[pa.Table, Path], None] | None = None,
                       checksum_path: str | os.PathLike | None = None) -> Path:
    """Estimate one catalog into a photo-z Parquet table, streaming, atomically; keep it if already done.

    Parameters
    ----------
    partition_path : path-like
        A stage I partition, or any catalog when ``cleaning`` is given.
    output_path : path-like
        Final name of the photo-z table.
    estimator : PartitionEstimator
        The estimator with its model loaded (shared by all partitions a process handles).
    progress : callable, optional
        Called with the number of rows estimated after each batch.
    cleaning : PreprocessConfig, optional
        Stage I cleaning applied to each batch on the fly, for a raw survey catalog.
    check : callable, optional
        ``check(table, output_path)`` validates the finished table — every row written, kept in memory so
        that checking costs no read-back — before the file gets its final name; whatever it raises fails the
        partition and leaves nothing under ``output_path``.
    checksum_path : path-like, optional
        Where the SHA-256 of the output is recorded (``sha256sum``'s format). An existing output is kept only
        when it matches that record; without one, only when every page matches its CRC.

    Raises
    ------
    CatalogError
        Unreadable input, a missing, non-numeric or non-finite photometry column (a stage I partition holds
        the non-detection sentinel, never NaN), an unwritable output (a full disk included).
    """
    partition_path, output_path = Path(partition_path), Path(output_path)
    reader = open_catalog(partition_path)
    if cleaning is None:
        columns = ["id", *[c for c in ("ra", "dec") if c in reader.column_names], *estimator.config.input_columns()]
    else:
        columns = cleaning.input_columns(reader.column_names)
    reader.require_columns(columns)
    provenance = estimator.provenance(partition_path.resolve(), reader.num_rows)
    problem = output_problem(output_path, provenance, checksum_path)
    if problem is None:
        log.info("kept verified output %s (%d rows, same input and model, same bytes as written)", output_path,
                 reader.num_rows)
        if progress:
            progress(reader.num_rows)
        return output_path
    if output_path.exists():
        log.warning("output %s %s; recomputing", output_path, problem)
    if cleaning is None:  # a stage I partition: held to what stage I writes before the estimator sees a row
        check_partition_photometry(reader.iter_batches(estimator.config.input_columns()),
                                   estimator.config.input_columns(), str(partition_path))
    check_writable(output_path)
    writer = None
    try:
        for batch in reader.iter_batches(columns, estimator.config.batch_rows):
            if cleaning is not None:
                batch = clean_batch(batch, cleaning, str(partition_path))
            photoz = estimator.estimate_batch(batch)
            if writer is None:
                metadata = {**pdf.qp_metadata(estimator.grid, estimator.config.pdf_storage),
                            PROVENANCE_KEY: json.dumps(provenance).encode()}
                writer = AtomicParquetWriter(output_path, photoz.schema.with_metadata(metadata),
                                             dictionary_columns=PHOTOZ_DICTIONARY_COLUMNS, keep_rows=check is not None,
                                             checksum_path=checksum_path)
            writer.write(photoz.replace_schema_metadata(writer.schema.metadata))
            if progress:
                progress(batch.num_rows)
        if writer is None:
            raise CatalogError(partition_path, "no rows to estimate")
        if cleaning is None and writer.num_rows != reader.num_rows:
            raise CatalogError(partition_path, f"estimated {writer.num_rows} rows of {reader.num_rows}")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if check is None:
        writer.commit()
    else:
        writer.commit_checked(check)
    log.info("estimated %s: %d rows → %s", partition_path, writer.num_rows, output_path)
    return output_path
