"""A release run, stage by stage: the functions the ``pz`` command and the ``pz_compute`` DAG call.

A run is fully described by a :class:`RunSpec` (JSON-serializable params); the same params reproduce the same
outputs, and every stage skips what already exists and verifies by content: a file is kept only when its bytes
still have the SHA-256 recorded when it was written; any other is made again, and the log says why. Layout of a
run folder::

    OUTPUT/stage1/part-NNNNN.parquet           cleaned, column-mapped partitions (stage I)
    OUTPUT/stage1/_stage1.json                 their input, config, rows and SHA-256s (stage I)
    OUTPUT/models/ESTIMATOR.pkl[.json]          trained RAIL models, with what they were trained on and their
                                                SHA-256 (stage II)
    OUTPUT/ESTIMATOR/partitions/part-NNNNN.parquet   photo-z per partition (stage III)
    OUTPUT/ESTIMATOR/checksums/part-NNNNN.parquet.sha256   the SHA-256 of each, recorded as it was written
                                                (``sha256sum -c`` reads it from the partitions folder)
    OUTPUT/ESTIMATOR/photoz/                   the assembled photo-z catalog: HATS when the input has sky
                                                positions, a Parquet dataset otherwise (stage IV)
    OUTPUT/ESTIMATOR/metrics.json               summary: catalog, rows, metrics against the true redshifts
    OUTPUT/ESTIMATOR/validation/                 validation report (science metrics, GX results, plots), when
                                                the input has true redshifts

Stage IV of the ``pz_compute`` DAG then publishes each validation report in the PZ Server (``publish_validation``):
a ``validation_results`` product named ``RELEASE ESTIMATOR validation``, owned by the ``owner`` param's user or
by the platform's own user ``pz-compute``; publishing again (a cleared task, a rerun of the release) replaces the
files of that product instead of adding one. ``run`` (the ``pz run`` command) publishes nothing.

Great Expectations suites (``include/expectations/``) check every stage I partition, the training set, every
stage III output (before it gets its final name, so a failed check leaves nothing to be skipped on rerun)
and the assembled catalog; a failed expectation raises ``ValidationError`` listing each failure.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pzlib import pdf
from pzlib.catalog import CatalogError, check_writable, checksum_problem, open_catalog, write_hats
from pzlib.config import load_settings
from pzlib.estimate import EstimateConfig, PartitionEstimator, train
from pzlib.estimate import estimate_partition as _estimate_partition
from pzlib.preprocess import PreprocessConfig, output_mag_column, preprocess
from pzlib.registry import AlreadyExists, InvalidInput, NotFound, ProductFilter, ProductStatus, Registry, Terms, User
from pzlib.registry.checks import USERNAME_PATTERN, username
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import REPORT_PRODUCT_TYPE, publish_report, replace_report
from pzlib.validate.expectations import check_table
from pzlib.validate.metrics import point_metrics

_RELEASE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

PLATFORM_USER = "pz-compute"
"""PZ Server user owning what a run publishes when its ``owner`` param names nobody; created on first use."""

PIPELINE_NAME = "pz_compute"
"""``provenance["pipeline"]`` of the products a run publishes: what marks a product as a run's own."""


def dc2_sample_paths() -> tuple[Path, Path]:
    """(training, validation) DC2 catalogs shipped in pz-rail-base: 10,225 and 20,449 galaxies."""
    from rail.core.utils import RAILDIR

    testdata = Path(RAILDIR) / "rail" / "examples_data" / "testdata"
    return testdata / "test_dc2_training_9816.hdf5", testdata / "test_dc2_validation_9816.hdf5"


@dataclass
class RunSpec:
    """A release run of stages I–IV."""

    release: str
    """Release name (letters, digits, '.', '_', '-')."""
    input: str
    """Input catalog: Parquet file or dataset, HATS folder, HDF5, CSV or FITS."""
    train: str
    """Training catalog with true redshifts (same column map as the input)."""
    output: str
    """Run folder; created if missing."""
    estimators: list[str] = field(default_factory=lambda: ["fzboost", "bpz"])
    """Estimators to run: 'fzboost', 'bpz', or installed RAIL estimator class names."""
    column_map: str | dict = "lsst_mag"
    """Column map preset ('lsst_mag', 'dm_cmodel', 'dm_gaap') or a dict of ColumnMap fields."""
    backend: str = "local"
    """Where stage III runs: 'local' (processes here) or 'slurm'."""
    partition_rows: int = 150_000
    """Rows per stage I partition (one stage III job each)."""
    truth_column: str | None = "redshift"
    """True-redshift column of the input, for metrics; None when the input has none."""
    training_truth_column: str = "redshift"
    """True-redshift column of the training catalog."""
    rail_options: dict = field(default_factory=dict)
    """Extra RAIL config per estimator, e.g. {"fzboost": {"nbump": 5}}."""
    publish: bool = True
    """Stage IV of the ``pz_compute`` DAG publishes each validation report as a ``validation_results`` product
    of the PZ Server (the registry ``pzlib.config.load_settings()`` names); ``pz run`` never does."""
    owner: str | None = None
    """PZ Server user owning the published products (an existing user); None: the platform user ``pz-compute``."""
    # --- cluster resources (pzlib.cluster) ---
    resources: dict = field(default_factory=dict)
    """Job array resources, e.g. {"partition": "cpu", "bpz": {"mem": "3G"}}; see pzlib.cluster.resources."""
    # --- end cluster resources ---

    def __post_init__(self):
        if not isinstance(self.release, str) or not _RELEASE_PATTERN.match(self.release):
            raise ValueError(f"release: {self.release!r} is not a valid name (letters, digits, '.', '_', '-')")
        for name in ("input", "train", "output"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: a path is required")
        if isinstance(self.estimators, str):
            self.estimators = [self.estimators]
        if not self.estimators:
            raise ValueError("estimators: at least one estimator is required")
        for estimator in self.estimators:
            try:
                EstimateConfig(estimator)
            except ValueError as error:
                raise ValueError(f"estimators: {error}") from None
        if self.backend not in ("local", "slurm"):
            raise ValueError(f"backend: must be 'local' or 'slurm', got {self.backend!r}")
        if not isinstance(self.partition_rows, int) or self.partition_rows <= 0:
            raise ValueError(f"partition_rows: must be a positive integer, got {self.partition_rows!r}")
        try:
            self.preprocess_config()
        except ValueError as error:
            raise ValueError(f"column_map: {error}") from None
        unknown = set(self.rail_options) - set(self.estimators)
        if unknown:
            raise ValueError(f"rail_options: estimator(s) {', '.join(sorted(unknown))} are not in estimators")
        if not isinstance(self.publish, bool):
            raise ValueError(f"publish: must be true or false, got {self.publish!r}")
        if self.owner is not None:
            try:
                username(self.owner)
            except InvalidInput as error:
                raise ValueError(f"owner: {error}") from None
        # --- cluster resources (pzlib.cluster) ---
        from pzlib.cluster.resources import check_resources

        try:
            check_resources(self.resources, self.estimators)
        except ValueError as error:
            raise ValueError(f"resources: {error}") from None
        # --- end cluster resources ---

    @classmethod
    def from_params(cls, params: dict) -> RunSpec:
        """A spec from DAG params / CLI options; raises ValueError naming the bad field."""
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown parameter (known: {', '.join(sorted(known))})")
        missing = [name for name in ("release", "input", "train", "output") if params.get(name) in (None, "")]
        if missing:
            raise ValueError(f"{missing[0]}: required")
        return cls(**params)

    @classmethod
    def params_schema(cls) -> dict:
        """JSON schema of the params (for Airflow's DAG params)."""
        return {
            "type": "object",
            "required": ["release", "input", "train", "output"],
            "additionalProperties": False,
            "properties": {
                "release": {"type": "string", "pattern": _RELEASE_PATTERN.pattern},
                "input": {"type": "string", "minLength": 1},
                "train": {"type": "string", "minLength": 1},
                "output": {"type": "string", "minLength": 1},
                "estimators": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "column_map": {"type": ["string", "object"]},
                "backend": {"type": "string", "enum": ["local", "slurm"]},
                "partition_rows": {"type": "integer", "minimum": 1},
                "truth_column": {"type": ["string", "null"]},
                "training_truth_column": {"type": "string"},
                "rail_options": {"type": "object"},
                "publish": {"type": "boolean"},
                "owner": {"type": ["string", "null"], "pattern": USERNAME_PATTERN},
                "resources": {"type": "object"},  # cluster resources (pzlib.cluster)
            },
        }

    def to_params(self) -> dict:
        return asdict(self)

    @property
    def output_path(self) -> Path:
        return Path(self.output)

    def preprocess_config(self, keep_truth: bool = True) -> PreprocessConfig:
        keep = [self.truth_column] if keep_truth and self.truth_column else []
        return PreprocessConfig(columns=self.column_map, partition_rows=self.partition_rows, keep_columns=keep)

    def estimate_config(self, estimator: str) -> EstimateConfig:
        column_map = self.preprocess_config().columns
        return EstimateConfig(estimator, bands=column_map.bands, truth_column=self.training_truth_column,
                              rail_options=dict(self.rail_options.get(estimator, {})))

    def model_path(self, estimator: str) -> Path:
        return self.output_path / "models" / f"{estimator}.pkl"

    def partition_output(self, estimator: str, partition_path: str | os.PathLike) -> Path:
        return self.output_path / estimator / "partitions" / Path(partition_path).name

    def partition_checksum(self, estimator: str, partition_path: str | os.PathLike) -> Path:
        """Where the SHA-256 of the partition's photo-z table is recorded: outside the partitions folder, which
        stays a plain Parquet dataset."""
        return self.output_path / estimator / "checksums" / f"{Path(partition_path).name}.sha256"

    def catalog_path(self, estimator: str) -> Path:
        return self.output_path / estimator / "photoz"

    def report_path(self, estimator: str) -> Path:
        return self.output_path / estimator / "validation"

    def report_display_name(self, estimator: str) -> str:
        """Name of the estimator's published validation report: what identifies it on a rerun."""
        return f"{self.release} {estimator} validation"


def acquire(spec: RunSpec, progress: Callable[[int], None] | None = None) -> list[str]:
    """Stage I: clean and partition the input catalog, each partition checked by the ``stage1_partition``
    expectations before it is kept; returns the partition paths."""
    bands = list(spec.preprocess_config().columns.bands)

    def check(table: pa.Table, partition: Path) -> None:
        check_table(table, "stage1_partition", {"bands": bands}, source=str(partition))

    partitions = preprocess(spec.input, spec.output_path / "stage1", spec.preprocess_config(), progress, check)
    return [str(path) for path in partitions]


def train_model(spec: RunSpec, estimator: str) -> str:
    """Stage II: check the training set (``training_set`` expectations), then train ``estimator`` on it
    (reused when already trained); returns the model path."""
    config = spec.estimate_config(estimator)
    context = {"bands": list(config.bands), "columns": {"redshift": config.truth_column}}

    def check(table: pa.Table) -> None:
        check_table(table, "training_set", context, source=spec.train)

    training_cleaning = PreprocessConfig(columns=spec.column_map)
    return str(train(spec.train, spec.model_path(estimator), config, training_cleaning, check))


_worker_estimators: dict[tuple[str, str], PartitionEstimator] = {}


def _estimator_for(spec: RunSpec, estimator: str, model_path: str) -> PartitionEstimator:
    """The process's estimator for this model, built on first use: later partitions reuse the loaded model."""
    key = (estimator, str(Path(model_path).resolve()))
    if key not in _worker_estimators:
        _worker_estimators[key] = PartitionEstimator(model_path, spec.estimate_config(estimator))
    return _worker_estimators[key]


def estimate_partition(spec: RunSpec, estimator: str, model_path: str, partition_path: str,
                       progress: Callable[[int], None] | None = None) -> str:
    """Stage III for one partition. Its input is checked as ``pz`` checks a catalog (columns, numeric and
    finite photometry) before the estimator sees a row; its output by the ``photoz_table`` expectations (row
    count preserved) before it is kept, and its SHA-256 recorded; an output that exists and still has those
    bytes is kept. Returns the output path.

    Raises
    ------
    CatalogError
        Naming the partition file (or the output file: a full disk), the column and the problem.
    """
    output = spec.partition_output(estimator, partition_path)
    output.parent.mkdir(parents=True, exist_ok=True)
    expected_rows = open_catalog(partition_path).num_rows

    def check(table: pa.Table, final: Path) -> None:
        check_table(table, "photoz_table", {"expected_rows": expected_rows}, source=str(final))

    estimator_for_model = _estimator_for(spec, estimator, model_path)
    return str(_estimate_partition(partition_path, output, estimator_for_model, progress, check=check,
                                   checksum_path=spec.partition_checksum(estimator, partition_path)))


def _estimate_in_worker(params: dict, estimator: str, model_path: str, partition_path: str) -> str:
    return estimate_partition(RunSpec(**params), estimator, model_path, partition_path)


def estimate_all(spec: RunSpec, estimator: str, model_path: str, partitions: list[str], workers: int = 1,
                 on_partition: Callable[[str], None] | None = None) -> list[str]:
    """Stage III on the local backend: long-lived worker processes, each loading the model once."""
    if workers <= 1 or len(partitions) <= 1:
        outputs = []
        for partition in partitions:
            outputs.append(estimate_partition(spec, estimator, model_path, partition))
            if on_partition:
                on_partition(partition)
        return outputs
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=min(workers, len(partitions)), mp_context=context) as pool:
        futures = [pool.submit(_estimate_in_worker, spec.to_params(), estimator, model_path, partition)
                   for partition in partitions]
        outputs = []
        for partition, future in zip(partitions, futures, strict=True):
            outputs.append(future.result())
            if on_partition:
                on_partition(partition)
    return outputs


def assemble(spec: RunSpec, estimator: str, outputs: list[str]) -> dict:
    """Stage IV: the photo-z catalog of all partitions, and its metrics against the true redshifts. Every
    partition output must still have the bytes stage III recorded, before anything reads it.

    Returns ``{"catalog": path, "format": "hats"|"parquet", "n_rows": int, "metrics": {...} | None}``.

    Raises
    ------
    CatalogError
        A partition output that fails its checksum (stage III, run again, recomputes it).
    """
    catalog_path = spec.catalog_path(estimator)
    check_writable(catalog_path)
    for output in outputs:
        problem = checksum_problem(output, spec.partition_checksum(estimator, output))
        if problem is not None:
            raise CatalogError(output, f"{problem}; run stage III again, which recomputes it")
    schema = pq.read_schema(outputs[0])
    n_rows = sum(pq.read_metadata(path).num_rows for path in outputs)
    if "ra" in schema.names and "dec" in schema.names:
        table = pa.concat_tables(pq.read_table(path) for path in outputs)
        write_hats(table, catalog_path, catalog_name=f"{spec.release}_{estimator}")
        catalog_format = "hats"
    else:
        staging = catalog_path.with_name(f".{catalog_path.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in outputs:
            # Copies, not hard links: a link shares the inode, so a partition output changed in place later (a
            # bit flipped on disk, a `cp` over it, any in-place editor) would change the published catalog with
            # it, unverified. Our own writers never write in place (a rewrite is a new inode, renamed), but the
            # catalog must not depend on that. Nor reflinks: they share the blocks that storage damage hits.
            # Only position-less inputs come this way (HATS catalogs are written anew), and the outputs were
            # just verified, so a plain copy costs one read and one write of what stage III made.
            shutil.copyfile(path, staging / Path(path).name)
        shutil.rmtree(catalog_path, ignore_errors=True)
        os.replace(staging, catalog_path)
        catalog_format = "parquet"
    _check_catalog(outputs, n_rows, str(catalog_path))
    metrics = _truth_metrics(spec, outputs)
    summary = {"catalog": str(catalog_path), "format": catalog_format, "n_rows": n_rows,
               "metrics": metrics, "estimator": estimator, "release": spec.release,
               "report": _validation_report(spec, estimator, outputs) if metrics else None}
    (spec.output_path / estimator / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


REPORT_MAX_ROWS = 200_000
"""Rows of a release's photo-z table the validation report's science metrics and plots use (whole
partitions, in order, until this many): enough for every bin, bounded in memory for any release."""


def _check_catalog(outputs: list[str], expected_rows: int, source: str) -> None:
    """The assembled table as a whole (``photoz_catalog`` expectations): every partition's rows are there and ids
    are unique across them. Each partition's PDFs were checked in stage III, so the PDF column is not read."""
    columns = [c for c in pq.read_schema(outputs[0]).names if c != pdf.PDF_COLUMN]
    table = pa.concat_tables(pq.read_table(path, columns=columns) for path in outputs)
    check_table(table, "photoz_catalog", {"expected_rows": expected_rows}, source=source)


def _validation_report(spec: RunSpec, estimator: str, outputs: list[str]) -> str:
    """The validation report (metrics JSON, GX results, plots) of the run against its true redshifts."""
    from pzlib.validate.metrics import MetricsConfig
    from pzlib.validate.report import ReportConfig, build_report

    photoz_parts, truth_parts, rows = [], [], 0
    for output in outputs:
        partition = spec.output_path / "stage1" / Path(output).name
        truth_columns = ["id", spec.truth_column]
        reference_band = output_mag_column(spec.estimate_config(estimator).ref_band)
        if reference_band in pq.read_schema(partition).names:
            truth_columns.append(reference_band)
        photoz_parts.append(pq.read_table(output))
        truth_parts.append(pq.read_table(partition, columns=truth_columns))
        rows += photoz_parts[-1].num_rows
        if rows >= REPORT_MAX_ROWS:
            break
    photoz = pa.concat_tables(photoz_parts).replace_schema_metadata(photoz_parts[0].schema.metadata)
    truth = pa.concat_tables(truth_parts)
    config = ReportConfig(
        metrics=MetricsConfig(truth_column=spec.truth_column,
                              magnitude_column=reference_band if reference_band in truth.column_names else None),
        suite_context={"expected_rows": photoz.num_rows}, title=f"{spec.release} · {estimator}",
    )
    report_dir = spec.report_path(estimator)
    build_report(photoz, truth, report_dir, config)
    return str(report_dir)


def _truth_metrics(spec: RunSpec, outputs: list[str]) -> dict | None:
    """Point metrics of zmode against the input's true redshifts (kept through stage I), if it has them."""
    if not spec.truth_column:
        return None
    zmode, truth = [], []
    for output in outputs:
        partition = spec.output_path / "stage1" / Path(output).name
        partition_columns = pq.read_schema(partition).names
        if spec.truth_column not in partition_columns:
            return None
        photoz = pq.read_table(output, columns=["id", "zmode"])
        reference = pq.read_table(partition, columns=["id", spec.truth_column])
        if not photoz.column("id").equals(reference.column("id")):
            raise CatalogError(output, "object ids differ from its stage I partition", "id")
        zmode.append(photoz.column("zmode").to_numpy())
        truth.append(reference.column(spec.truth_column).to_numpy())
    return point_metrics(np.concatenate(zmode), np.concatenate(truth)).as_dict()


def report_owner(spec: RunSpec, registry: Registry) -> User:
    """The PZ Server user owning what the run publishes: the ``owner`` param's (which must exist), or the
    platform user ``pz-compute``, created on first use.

    Raises
    ------
    ValueError
        ``owner`` names no user of the registry.
    """
    if spec.owner:
        try:
            return registry.get_user(spec.owner)
        except NotFound:
            raise ValueError(
                f"owner: the PZ Server has no user {spec.owner!r}; that user logs in to the PZ Server once (or an "
                f"admin runs 'pz token create {spec.owner}'), or leave owner empty to publish as {PLATFORM_USER!r}"
            ) from None
    try:
        return registry.get_user(PLATFORM_USER)
    except NotFound:
        pass
    try:
        return registry.create_user(PLATFORM_USER, first_name="pz_compute", last_name="pipeline")
    except AlreadyExists:  # another estimator's task created it first
        return registry.get_user(PLATFORM_USER)


def check_publishing(spec: RunSpec, files: ProductFiles | None = None) -> str | None:
    """Before any work: the username that will own what the run publishes (None when ``publish`` is off), so
    that an unknown ``owner`` or an unreachable registry fails the run at its start, not after stage III.

    Raises
    ------
    ValueError
        As ``report_owner``.
    """
    if not spec.publish:
        return None
    files = files or ProductFiles.from_settings(load_settings())
    return report_owner(spec, files.registry).username


def publish_validation(spec: RunSpec, estimator: str, files: ProductFiles | None = None, *,
                       triggered_by: str | None = None, run_id: str | None = None) -> dict | None:
    """Stage IV: publish the estimator's validation report (written by ``assemble``) in the PZ Server.

    The product is a ``validation_results`` product named by ``RunSpec.report_display_name``, owned by
    ``report_owner``, with the run's params as provenance. When the owner already has the run's product (same
    release and estimator, published by this pipeline), its files are replaced and it keeps its id: clearing the
    task or rerunning the release never makes a second product.

    Parameters
    ----------
    spec : RunSpec
        The run; nothing is published when ``spec.publish`` is false.
    estimator : str
        One of ``spec.estimators``, assembled already.
    files : ProductFiles, optional
        Registry and store to publish into; default: the PZ Server's, from ``pzlib.config.load_settings()``.
    triggered_by, run_id : str, optional
        Who triggered the run and its id (the Airflow DAG run's), recorded in the provenance.

    Returns
    -------
    dict or None
        ``{"product_id", "internal_name", "display_name", "owner", "replaced"}``; None when there is nothing to
        publish (``publish`` is off, or the input has no true redshifts, hence no report).

    Raises
    ------
    ValueError
        ``owner`` names no user; stage IV has not run for the estimator.
    AlreadyExists
        The owner has a product of the report's name that this pipeline did not publish.
    """
    if not spec.publish:
        return None
    summary_path = spec.output_path / estimator / "metrics.json"
    if not summary_path.is_file():
        raise ValueError(f"{summary_path} is missing: assemble the {estimator} catalog (stage IV) before publishing")
    summary = json.loads(summary_path.read_text())
    if not summary.get("report"):
        return None
    files = files or ProductFiles.from_settings(load_settings())
    owner = report_owner(spec, files.registry)
    display_name = spec.report_display_name(estimator)
    description = (f"Validation of the {estimator} photo-z catalog of release {spec.release} ({summary['n_rows']:,} "
                   "objects): science metrics against the true redshifts, Great Expectations results and plots.")
    provenance = {"pipeline": PIPELINE_NAME, "release": spec.release, "estimator": estimator,
                  "catalog": summary["catalog"], "n_rows": summary["n_rows"], "dag_run_id": run_id,
                  "triggered_by": triggered_by, "params": spec.to_params()}
    existing = _published_report(files.registry, owner, display_name)
    if existing is None:
        product = publish_report(files, owner, summary["report"], display_name=display_name,
                                 description=description, pz_code=estimator, provenance=provenance)
    else:
        made_by = existing.provenance or {}
        if (existing.product_type_name != REPORT_PRODUCT_TYPE or made_by.get("pipeline") != PIPELINE_NAME
                or made_by.get("release") != spec.release or made_by.get("estimator") != estimator):
            raise AlreadyExists(
                f"cannot publish the {estimator} validation report of release {spec.release}: {owner.username} "
                f"already has a product named {existing.display_name!r} ({existing.internal_name}) that this "
                "pipeline did not publish; rename or delete that product, or set the run's owner to another user"
            )
        product = replace_report(files, owner, existing.id, summary["report"], description=description,
                                 pz_code=estimator, provenance=provenance)
    return {"product_id": product.id, "internal_name": product.internal_name, "display_name": product.display_name,
            "owner": owner.username, "replaced": existing is not None}


def _published_report(registry: Registry, owner: User, display_name: str):
    """The owner's live product named ``display_name`` (names are unique per owner, whatever their case)."""
    filters = ProductFilter(owner=(owner.id,), product_name=Terms((display_name,)))
    for product in registry.list_products(owner, filters, page_size=100).results:
        if product.display_name.lower() == display_name.lower() and product.status is not ProductStatus.DELETED:
            return product
    return None


def run(spec: RunSpec, workers: int | None = None, report: Callable[[str], None] | None = None) -> dict:
    """All four stages on the local backend; returns ``{estimator: assemble summary}``."""
    report = report or (lambda message: None)
    workers = workers or os.cpu_count() or 1
    open_catalog(spec.train)  # fail on a bad training catalog before stage I does any work
    partitions = acquire(spec)
    report(f"stage I: {len(partitions)} partition(s) in {spec.output_path / 'stage1'}")
    results = {}
    for estimator in spec.estimators:
        model_path = train_model(spec, estimator)
        report(f"stage II: {estimator} model {model_path}")
        outputs = estimate_all(spec, estimator, model_path, partitions, workers)
        report(f"stage III: {estimator} estimated {len(outputs)} partition(s)")
        results[estimator] = assemble(spec, estimator, outputs)
    return results
