"""The params of a pz_compute run (:class:`RunSpec`), checked before any stage starts, and where its outputs go."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from pzlib.cluster import DEFAULT_CLUSTER
from pzlib.cluster.resources import check_resources
from pzlib.compute.params import DESTINATION_PATTERN, RELEASE_PATTERN, RUN_PARAMS_SCHEMA
from pzlib.config import check_backend
from pzlib.estimate import EstimateConfig
from pzlib.preprocess import PreprocessConfig
from pzlib.registry import InvalidInput
from pzlib.registry.checks import username

_RELEASE_PATTERN = re.compile(RELEASE_PATTERN)


@dataclass
class RunSpec:
    """A release run of stages I–IV."""

    release: str
    """Release name (letters, digits, '.', '_', '-')."""
    input: str
    """Input catalog: Parquet file or dataset, HATS folder, HDF5, CSV or FITS; or ``s3://bucket/key.parquet``,
    ``s3://bucket/prefix/`` (Parquet dataset or HATS) or an ``https://`` HATS catalog URL."""
    train: str
    """Training catalog with true redshifts (same column map as the input), a path or a URL like ``input``."""
    output: str
    """Run folder; created if missing."""
    estimators: list[str] = field(default_factory=lambda: ["fzboost", "bpz"])
    """Estimators to run: 'fzboost', 'bpz', or installed RAIL estimator class names."""
    column_map: str | dict = "lsst_mag"
    """Column map preset ('lsst_mag', 'dm_cmodel', 'dm_gaap') or a dict of ColumnMap fields."""
    backend: str = "local"
    """Where stage III runs: 'local' (processes of this machine) or 'slurm' (the DAG's default: ``PZ_BACKEND``)."""
    partition_rows: int = 150_000
    """Rows per stage I partition (one stage III job each)."""
    truth_column: str | None = "redshift"
    """True-redshift column of the input, for metrics; an input without it (a release's object catalog) simply
    runs without metrics; None never looks for one."""
    training_truth_column: str = "redshift"
    """True-redshift column of the training catalog."""
    rail_options: dict = field(default_factory=dict)
    """Extra RAIL config per estimator, e.g. {"fzboost": {"nbump": 5}}."""
    publish: bool = True
    """Stage IV of the ``pz_compute`` DAG publishes each validation report as a ``validation_results`` product
    of the PZ Server (the registry ``pzlib.config.load_settings()`` names); ``pz run`` never does."""
    owner: str | None = None
    """PZ Server user owning the published products (an existing user); None: the platform user ``pz-compute``."""
    destination: str | None = None
    """``s3://bucket/prefix`` where stage IV delivers each estimator's HATS catalog (at ``PREFIX/ESTIMATOR``),
    verified against its manifest; None: the catalogs stay in the run folder. Endpoint and keys come from the
    Airflow connection ``pz_s3`` or the ``PZ_S3_*`` settings, never from the params."""
    # --- cluster resources (pzlib.cluster) ---
    resources: dict = field(default_factory=dict)
    """Job array resources, e.g. {"partition": "cpu", "bpz": {"mem": "3G"}}; see pzlib.cluster.resources. They
    override the cluster's own defaults (its connection's extra)."""
    cluster: str | dict | None = None
    """Backend 'slurm': the Airflow SSH connection of the cluster (None: ``pz_slurm``), or one per estimator, e.g.
    {"bpz": "apollo", "fzboost": "sdumont"}: each estimator's arrays run there (see pzlib.cluster.airflow)."""
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
        twice = sorted({name for name in self.estimators if self.estimators.count(name) > 1})
        if twice:
            raise ValueError(f"estimators: {', '.join(twice)} listed more than once")
        for estimator in self.estimators:
            try:
                EstimateConfig(estimator)
            except ValueError as error:
                raise ValueError(f"estimators: {error}") from None
        check_backend(self.backend)
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
        if self.destination is not None and (not isinstance(self.destination, str)
                                             or not re.match(DESTINATION_PATTERN, self.destination)):
            raise ValueError(f"destination: {self.destination!r} is not an s3://bucket/prefix URL")
        if self.owner is not None:
            try:
                username(self.owner)
            except InvalidInput as error:
                raise ValueError(f"owner: {error}") from None
        # --- cluster resources (pzlib.cluster) ---
        try:
            check_resources(self.resources, self.estimators)
        except ValueError as error:
            raise ValueError(f"resources: {error}") from None
        if isinstance(self.cluster, dict):
            unknown = sorted(set(self.cluster) - set(self.estimators))
            problems = [f"estimator {name} is not in estimators" for name in unknown]
            problems += [f"no connection for {name}" for name in self.estimators if name not in self.cluster]
            if problems:
                raise ValueError(f"cluster: {'; '.join(problems)} (name one connection per estimator of the run, or "
                                 "one connection for all)")
        elif self.cluster is not None and not isinstance(self.cluster, str):
            raise ValueError(f"cluster: {self.cluster!r} is not a connection id or an object of one per estimator")
        if not all(isinstance(conn_id, str) and conn_id for conn_id in self.clusters().values()):
            raise ValueError("cluster: a connection id must be a non-empty string")
        # --- end cluster resources ---

    def clusters(self) -> dict[str, str]:
        """{estimator: Airflow connection of its cluster} (backend 'slurm')."""
        if isinstance(self.cluster, dict):
            return {estimator: self.cluster[estimator] for estimator in self.estimators}
        return dict.fromkeys(self.estimators, self.cluster or DEFAULT_CLUSTER)

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
        """JSON schema of the params (for Airflow's DAG params): :data:`pzlib.compute.params.RUN_PARAMS_SCHEMA`."""
        return RUN_PARAMS_SCHEMA

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

    def manifest_path(self, estimator: str) -> Path:
        """The manifest of the assembled catalog: every file's key, size and SHA-256 (stage IV)."""
        return self.output_path / estimator / "manifest.json"

    def felis_path(self, estimator: str) -> Path:
        """The Felis schema of the assembled catalog (stage IV)."""
        return self.output_path / estimator / "felis.yaml"

    def delivery_path(self, estimator: str) -> Path:
        """What stage IV's delivery did: destination URL, what was copied, when it verified."""
        return self.output_path / estimator / "delivery.json"

    def destination_of(self, estimator: str) -> tuple[str, str] | None:
        """(bucket, key prefix) where the estimator's catalog is delivered, or None."""
        if self.destination is None:
            return None
        bucket, _, prefix = self.destination.removeprefix("s3://").partition("/")
        return bucket, "/".join(part for part in (prefix.strip("/"), estimator) if part)

    def delivery_label(self, estimator: str) -> str:
        """What a delivered catalog's manifest and objects are labelled with: a destination holding another label
        (another release's catalog) is refused."""
        return f"{self.release}/{estimator}"

    def catalog_display_name(self, estimator: str) -> str:
        """Name of the estimator's published photo-z catalog product: what identifies it on a rerun."""
        return f"{self.release} {estimator} photo-z"

    def report_display_name(self, estimator: str) -> str:
        """Name of the estimator's published validation report: what identifies it on a rerun."""
        return f"{self.release} {estimator} validation"

    @property
    def comparison_path(self) -> Path:
        """The side-by-side comparison of the run's estimators (stage IV, two or more estimators)."""
        return self.output_path / "comparison"

    @property
    def comparison_display_name(self) -> str:
        """Name of the run's published estimator comparison: what identifies it on a rerun."""
        return f"{self.release} estimator comparison"
