"""Photo-z science metrics against true (spec-z) redshifts: point estimates, PDFs, N(z), binned.

Definitions follow the photo-z literature and RAIL's evaluation: Δz = (z_phot − z_true) / (1 + z_true);
σ_NMAD = 1.4826 · median(|Δz − median(Δz)|); σ_IQR = IQR(Δz) / 1.349; bias is median(Δz); the outlier rate is
the fraction with |Δz| > 0.15, and RAIL's (LSST Science Book) outlier rate the fraction with
|Δz| > max(0.06, 3 σ_IQR). The PDF metrics are RAIL's own code: the PIT and its KS / CvM / Anderson–Darling
statistics from ``qp.metrics.pit.PIT`` (the PIT outlier rate is counted on its PIT values), the CDE loss
from ``rail.evaluation.metrics.cdeloss.CDELoss``. The stacked N(z) is the mean of the normalized PDFs,
compared with the histogram of the true redshifts on the same grid. :func:`science_metrics` computes them
all for a photo-z table and a truth table matched by id, overall and in bins of magnitude and true redshift.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from pzlib import pdf

OUTLIER_CUT = 0.15
"""Catastrophic-outlier threshold on |Δz|/(1+z)."""

RAIL_OUTLIER_FLOOR = 0.06
"""RAIL's outlier threshold is max(this, 3 σ_IQR) on |Δz|/(1+z)."""

PIT_OUTLIER_LIMITS = (0.0001, 0.9999)
"""A PIT outside these is an outlier (RAIL's ``evaluate_PIT_outlier_rate`` defaults)."""

_BINNED_METRICS = ("sigma_nmad", "outlier_rate", "bias", "sigma_iqr", "outlier_rate_rail")

NMAD_SCALE = 1.4826
IQR_SCALE = 1.349


@dataclass(frozen=True)
class PointMetrics:
    """Summary of a point estimate against the truth."""

    n_objects: int
    sigma_nmad: float
    outlier_rate: float
    """Fraction with |Δz| > 0.15."""
    bias: float
    sigma_iqr: float = math.nan
    outlier_rate_rail: float = math.nan
    """Fraction with |Δz| > max(0.06, 3 σ_IQR) (RAIL's PointOutlierRate)."""

    def as_dict(self) -> dict:
        return _json_safe(asdict(self))

    def summary(self) -> str:
        return (
            f"σ_NMAD {self.sigma_nmad:.4f}  outliers {100 * self.outlier_rate:.1f}%  "
            f"bias {self.bias:+.4f}  (n={self.n_objects:,})"
        )


def point_metrics(z_phot: np.ndarray, z_true: np.ndarray) -> PointMetrics:
    """σ_NMAD, outlier rates, bias and σ_IQR of ``z_phot`` against ``z_true``.

    Examples
    --------
    >>> point_metrics(np.array([0.5, 1.0]), np.array([0.5, 1.0])).sigma_nmad
    0.0
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_true = np.asarray(z_true, dtype=np.float64)
    if z_phot.shape != z_true.shape:
        raise ValueError(f"z_phot has {z_phot.shape} values but z_true has {z_true.shape}")
    if z_phot.size == 0:
        raise ValueError("cannot compute metrics of an empty sample")
    dz = (z_phot - z_true) / (1.0 + z_true)
    median_dz = float(np.median(dz))
    q75, q25 = np.percentile(dz, [75.0, 25.0])
    sigma_iqr = float((q75 - q25) / IQR_SCALE)
    return PointMetrics(
        n_objects=int(dz.size),
        sigma_nmad=float(NMAD_SCALE * np.median(np.abs(dz - median_dz))),
        outlier_rate=float(np.mean(np.abs(dz) > OUTLIER_CUT)),
        bias=median_dz,
        sigma_iqr=sigma_iqr,
        outlier_rate_rail=float(np.mean(np.abs(dz) > max(RAIL_OUTLIER_FLOOR, 3.0 * sigma_iqr))),
    )


@dataclass(frozen=True)
class PitMetrics:
    """The probability integral transform (CDF of each PDF at the true redshift) against uniformity."""

    n_objects: int
    ks: float
    """Kolmogorov–Smirnov statistic against U(0, 1)."""
    ks_pvalue: float
    cvm: float
    """Cramér–von Mises statistic."""
    cvm_pvalue: float
    ad: float
    """Anderson–Darling k-sample statistic (RAIL's comparison with a uniform sample)."""
    ad_pvalue: float
    """Its p-value as scipy gives it (capped to [0.001, 0.25])."""
    outlier_rate: float
    """Fraction of objects with PIT below 0.0001 or above 0.9999 (RAIL's thresholds, counted on the PIT
    values: qp's estimate from a quantile fit of the PIT distribution goes wrong, even negative, when many
    PITs are exactly 0 or 1, as for overconfident PDFs)."""
    histogram: list[int]
    """PIT counts in ``bin_edges``."""
    bin_edges: list[float]

    def as_dict(self) -> dict:
        return _json_safe(asdict(self))


def pit_metrics(ensemble, z_true: np.ndarray, n_bins: int = 50) -> PitMetrics:
    """PIT histogram and statistics of a qp ensemble at ``z_true`` (qp's ``PIT``, as RAIL evaluates it)."""
    from qp.metrics.pit import PIT

    z_true = np.asarray(z_true, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's p-value capping and anderson_ksamp's API notices
        pit = PIT(ensemble, z_true)
        ks = pit.evaluate_PIT_KS()
        cvm = pit.evaluate_PIT_CvM()
        ad = pit.evaluate_PIT_anderson_ksamp()
    values = pit.pit_samps
    outlier_rate = np.mean((values < PIT_OUTLIER_LIMITS[0]) | (values > PIT_OUTLIER_LIMITS[1]))
    counts, edges = np.histogram(values, bins=n_bins, range=(0.0, 1.0))
    return PitMetrics(
        n_objects=int(z_true.size),
        ks=float(ks.statistic), ks_pvalue=float(ks.pvalue),
        cvm=float(cvm.statistic), cvm_pvalue=float(cvm.pvalue),
        ad=float(ad.statistic),
        ad_pvalue=float(ad.pvalue if hasattr(ad, "pvalue") else ad.significance_level),
        outlier_rate=float(outlier_rate),
        histogram=counts.tolist(), bin_edges=edges.tolist(),
    )


def cde_loss(ensemble, grid: np.ndarray, z_true: np.ndarray) -> float:
    """Conditional density estimation loss (Izbicki & Lee 2017) with RAIL's ``CDELoss``; lower is better."""
    from rail.evaluation.metrics.cdeloss import CDELoss

    loss = CDELoss(ensemble, np.asarray(grid), np.asarray(z_true, dtype=np.float64))
    return float(loss.evaluate().statistic)


@dataclass(frozen=True)
class NzComparison:
    """Stacked N(z) (mean of the normalized PDFs) and the true N(z) (histogram of z_true), on one grid."""

    grid: list[float]
    stacked: list[float]
    """Stacked N(z), a density on ``grid`` (integrates to 1)."""
    true: list[float]
    """Histogram of the true redshifts in bins centred on ``grid``, as a density."""
    mean_z_stacked: float
    mean_z_true: float
    delta_mean_z: float
    """⟨z⟩ of the stacked N(z) minus ⟨z⟩ of the truth."""
    ks_distance: float
    """Largest difference between the two cumulative distributions."""

    def as_dict(self) -> dict:
        return _json_safe(asdict(self))


def nz_comparison(pdfs: np.ndarray, grid: np.ndarray, z_true: np.ndarray) -> NzComparison:
    """Stacked N(z) of ``pdfs`` on ``grid`` against the true redshifts' histogram on the same grid."""
    grid = np.asarray(grid, dtype=np.float64)
    stacked = np.zeros(grid.size)
    for start in range(0, len(pdfs), 50_000):  # bounded temporaries for large samples
        stacked += pdf.normalize(pdfs[start:start + 50_000], grid).sum(axis=0)
    stacked /= max(len(pdfs), 1)
    midpoints = 0.5 * (grid[1:] + grid[:-1])
    edges = np.concatenate([[grid[0] - (midpoints[0] - grid[0])], midpoints,
                            [grid[-1] + (grid[-1] - midpoints[-1])]])
    counts, _ = np.histogram(z_true, bins=edges)
    true = counts / max(counts.sum(), 1) / np.diff(edges)
    stacked_cdf = pdf.cdf(stacked[None, :], grid)[0]
    true_cdf = np.cumsum(counts) / max(counts.sum(), 1)
    mean_stacked = float(np.trapezoid(stacked * grid, grid))
    mean_true = float(np.mean(z_true))
    return NzComparison(grid=grid.tolist(), stacked=stacked.tolist(), true=true.tolist(),
                        mean_z_stacked=mean_stacked, mean_z_true=mean_true,
                        delta_mean_z=mean_stacked - mean_true,
                        ks_distance=float(np.max(np.abs(stacked_cdf - true_cdf))))


def binned_point_metrics(z_phot: np.ndarray, z_true: np.ndarray, values: np.ndarray, edges: np.ndarray,
                         min_objects: int = 10) -> list[dict]:
    """Point metrics of the objects in each bin of ``values`` (e.g. magnitude or true redshift).

    Each bin is ``{"low", "high", "center", "n_objects", ...PointMetrics}``; metrics are None in a bin with
    fewer than ``min_objects`` objects.
    """
    edges = np.asarray(edges, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    index = np.digitize(values, edges) - 1
    bins = []
    for position in range(edges.size - 1):
        selected = index == position
        low, high = float(edges[position]), float(edges[position + 1])
        row = {"low": low, "high": high, "center": 0.5 * (low + high), "n_objects": int(selected.sum())}
        if row["n_objects"] >= min_objects:
            row.update({k: v for k, v in point_metrics(z_phot[selected], z_true[selected]).as_dict().items()
                        if k != "n_objects"})
        else:
            row.update(dict.fromkeys(_BINNED_METRICS))
        bins.append(row)
    return bins


@dataclass
class MetricsConfig:
    """What :func:`science_metrics` compares and how it bins."""

    truth_column: str = "redshift"
    """True (spec-z) redshift column of the truth table."""
    magnitude_column: str | None = "mag_i_lsst"
    """Magnitude column of the truth table for the magnitude bins (None: no magnitude bins)."""
    point_columns: tuple[str, ...] = ("zmode", "zmean", "zmedian")
    """Point estimates evaluated; the first is the primary one (binned metrics, plots)."""
    magnitude_edges: tuple[float, ...] = tuple(np.round(np.arange(18.0, 26.01, 0.5), 2).tolist())
    """Magnitude bin edges."""
    redshift_edges: tuple[float, ...] = tuple(np.round(np.arange(0.0, 3.01, 0.2), 2).tolist())
    """True-redshift bin edges."""
    pit_bins: int = 50
    """Bins of the PIT histogram."""
    min_bin_objects: int = 10
    """Fewest objects for metrics in a bin."""
    sentinel: float = 99.0
    """Non-detection magnitude, left out of the magnitude bins."""

    def __post_init__(self):
        self.point_columns = tuple(self.point_columns)
        self.magnitude_edges = tuple(self.magnitude_edges)
        self.redshift_edges = tuple(self.redshift_edges)
        if not self.point_columns:
            raise ValueError("point_columns: at least one point-estimate column is required")
        for name in ("magnitude_edges", "redshift_edges"):
            edges = np.asarray(getattr(self, name), dtype=np.float64)
            if edges.size < 2 or np.any(np.diff(edges) <= 0):
                raise ValueError(f"{name} must be at least two increasing values, got {getattr(self, name)}")
        if self.pit_bins <= 0:
            raise ValueError(f"pit_bins must be positive, got {self.pit_bins}")
        if self.min_bin_objects <= 0:
            raise ValueError(f"min_bin_objects must be positive, got {self.min_bin_objects}")


@dataclass
class ScienceMetrics:
    """Every metric of a photo-z table against its truth."""

    n_photoz: int
    """Rows of the photo-z table."""
    n_objects: int
    """Objects with a finite true redshift, the sample of every metric."""
    point: dict[str, PointMetrics]
    """Point metrics per point-estimate column."""
    pit: PitMetrics
    cde_loss: float
    nz: NzComparison
    by_magnitude: list[dict] = field(default_factory=list)
    """Point metrics of the primary point estimate per magnitude bin."""
    by_redshift: list[dict] = field(default_factory=list)
    """Point metrics of the primary point estimate per true-redshift bin."""
    primary: str = "zmode"
    """The point-estimate column of the binned metrics."""
    magnitude_column: str | None = None

    def as_dict(self) -> dict:
        """JSON-ready (NaN becomes null)."""
        return _json_safe({
            "n_photoz": self.n_photoz, "n_objects": self.n_objects, "primary": self.primary,
            "point": {name: metrics.as_dict() for name, metrics in self.point.items()},
            "pit": self.pit.as_dict(), "cde_loss": self.cde_loss, "nz": self.nz.as_dict(),
            "magnitude_column": self.magnitude_column,
            "by_magnitude": self.by_magnitude, "by_redshift": self.by_redshift,
        })


@dataclass(frozen=True)
class MatchedSample:
    """Photo-z rows that have a truth, with the truth (and magnitude) aligned to them."""

    photoz: pa.Table
    """The matched photo-z rows (schema metadata kept)."""
    z_true: np.ndarray
    magnitude: np.ndarray | None
    """Magnitude of each row for the magnitude bins, when the truth has one."""

    def point_estimate(self, column: str) -> np.ndarray:
        return self.photoz.column(column).to_numpy(zero_copy_only=False).astype(np.float64)


def match_truth(photoz: pa.Table, truth: pa.Table, config: MetricsConfig | None = None) -> MatchedSample:
    """Rows of ``photoz`` whose id is in ``truth`` with a finite true redshift, aligned with the truth.

    Raises
    ------
    ValueError
        A table lacks a column, the truth repeats ids, or no photo-z row has a truth.
    """
    config = config or MetricsConfig()
    for table, name, columns in ((photoz, "photo-z table", ["id", pdf.PDF_COLUMN, *config.point_columns]),
                                 (truth, "truth table", ["id", config.truth_column]
                                  + ([config.magnitude_column] if config.magnitude_column else []))):
        missing = [column for column in columns if column not in table.column_names]
        if missing:
            raise ValueError(f"{name}: column '{missing[0]}' missing (has: {', '.join(table.column_names)})")
    photoz_ids = photoz.column("id").to_numpy()
    truth_ids = truth.column("id").to_numpy()
    if photoz_ids.size == truth_ids.size and np.array_equal(photoz_ids, truth_ids):
        rows, truth_rows = np.arange(photoz_ids.size), np.arange(truth_ids.size)
    else:
        order = np.argsort(truth_ids, kind="stable")
        sorted_ids = truth_ids[order]
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if repeated.size:
            raise ValueError(f"truth table: {repeated.size} repeated id(s), e.g. {repeated[0]}")
        slots = np.clip(np.searchsorted(sorted_ids, photoz_ids), 0, max(sorted_ids.size - 1, 0))
        found = sorted_ids[slots] == photoz_ids if sorted_ids.size else np.zeros(photoz_ids.size, bool)
        rows, truth_rows = np.flatnonzero(found), order[slots[found]]
    z_true = truth.column(config.truth_column).to_numpy(zero_copy_only=False).astype(np.float64)[truth_rows]
    finite = np.isfinite(z_true)
    rows, truth_rows, z_true = rows[finite], truth_rows[finite], z_true[finite]
    if rows.size == 0:
        raise ValueError(f"no photo-z row has a finite '{config.truth_column}' in the truth table "
                         "(ids matched by column 'id')")
    magnitude = None
    if config.magnitude_column:
        magnitude = truth.column(config.magnitude_column).to_numpy(zero_copy_only=False).astype(np.float64)
        magnitude = magnitude[truth_rows]
    if rows.size != photoz.num_rows or not np.array_equal(rows, np.arange(rows.size)):
        photoz = photoz.take(pa.array(rows)).replace_schema_metadata(photoz.schema.metadata)
    return MatchedSample(photoz, z_true, magnitude)


def science_metrics(photoz: pa.Table, truth: pa.Table, config: MetricsConfig | None = None) -> ScienceMetrics:
    """All science metrics of a photo-z table against a truth table (matched by ``id``).

    Parameters
    ----------
    photoz : pyarrow.Table
        A photo-z table (point estimates, ``pdf`` column, qp metadata in the schema).
    truth : pyarrow.Table
        ``id``, the true redshift and, for magnitude bins, a magnitude (e.g. a stage I partition).
    config : MetricsConfig, optional

    Raises
    ------
    ValueError
        See :func:`match_truth`; or the photo-z table has no qp metadata.

    Examples
    --------
    >>> metrics = science_metrics(pq.read_table("photoz.parquet"), pq.read_table("stage1.parquet"))
    ... # doctest: +SKIP
    >>> metrics.point["zmode"].sigma_nmad  # doctest: +SKIP
    0.0197
    """
    config = config or MetricsConfig()
    return sample_metrics(match_truth(photoz, truth, config), config, n_photoz=photoz.num_rows)


def sample_metrics(sample: MatchedSample, config: MetricsConfig | None = None,
                   n_photoz: int | None = None) -> ScienceMetrics:
    """All science metrics of a sample already matched to its truth (see :func:`match_truth`)."""
    config = config or MetricsConfig()
    grid = pdf.grid_from_schema(sample.photoz.schema)
    ensemble = pdf.table_to_ensemble(sample.photoz.select(["id", pdf.PDF_COLUMN]))
    z_true = sample.z_true
    point = {}
    for name in config.point_columns:
        values = sample.point_estimate(name)
        finite = np.isfinite(values)
        point[name] = point_metrics(values[finite], z_true[finite])
    primary = config.point_columns[0]
    z_phot = sample.point_estimate(primary)
    by_magnitude = []
    if sample.magnitude is not None:
        detected = np.isfinite(sample.magnitude) & (sample.magnitude != config.sentinel)
        by_magnitude = binned_point_metrics(z_phot[detected], z_true[detected], sample.magnitude[detected],
                                            np.asarray(config.magnitude_edges), config.min_bin_objects)
    by_redshift = binned_point_metrics(z_phot, z_true, z_true, np.asarray(config.redshift_edges),
                                       config.min_bin_objects)
    return ScienceMetrics(
        n_photoz=sample.photoz.num_rows if n_photoz is None else n_photoz, n_objects=int(z_true.size),
        point=point, pit=pit_metrics(ensemble, z_true, config.pit_bins),
        cde_loss=cde_loss(ensemble, grid, z_true),
        nz=nz_comparison(ensemble.pdf(grid), grid, z_true),
        by_magnitude=by_magnitude, by_redshift=by_redshift, primary=primary,
        magnitude_column=config.magnitude_column if sample.magnitude is not None else None,
    )


def _json_safe(value):
    """``value`` with NaN/inf floats as None and numpy scalars as Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
