"""The validation report of a photo-z table: science metrics, GX results and plots in one folder.

:func:`build_report` checks a photo-z table with its Great Expectations suite, matches it by id with a truth
table (e.g. the stage I partitions, which keep the true redshift and the magnitudes), computes the science
metrics and draws the plots a scientist looks at first. The folder it writes is what a ``validation_results``
product holds::

    metrics.json                 science metrics (pzlib.validate.metrics.ScienceMetrics) and provenance
    gx_results.json              the GX validation reports (ours and GX's own result per suite)
    zphot_vs_zspec.png           density of the primary point estimate against the true redshift
    nz.png                       stacked N(z) against the true N(z)
    pit.png                      PIT histogram with its KS / CvM / AD statistics
    metrics_vs_magnitude.png     σ_NMAD, σ_IQR, bias and outlier rates per magnitude bin (truth magnitudes)
    metrics_vs_redshift.png      the same per true-redshift bin

The folder is written under a temporary name and renamed when complete; the same inputs give the same files.
Plots use matplotlib's object API on the Agg canvas (no pyplot state, safe in any worker).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from pzlib.catalog import check_writable
from pzlib.estimate import PROVENANCE_KEY
from pzlib.validate.expectations import ValidationReport, validate_table
from pzlib.validate.metrics import (
    OUTLIER_CUT,
    MatchedSample,
    MetricsConfig,
    ScienceMetrics,
    match_truth,
    sample_metrics,
)


@dataclass
class ReportConfig:
    """What goes into a validation report."""

    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """Truth columns, point estimates and bins of the science metrics."""
    suite: str = "photoz_table"
    """Great Expectations suite the photo-z table is checked with."""
    suite_context: dict = field(default_factory=dict)
    """Context of that suite (e.g. ``{"expected_rows": 150000}``)."""
    title: str = ""
    """Shown on every plot, e.g. ``"dc2 · fzboost"``."""
    dpi: int = 110
    """Resolution of the PNG plots."""

    def __post_init__(self):
        if isinstance(self.metrics, dict):
            self.metrics = MetricsConfig(**self.metrics)
        if not 30 <= self.dpi <= 600:
            raise ValueError(f"dpi must be between 30 and 600, got {self.dpi}")


def build_report(photoz: pa.Table, truth: pa.Table, output_dir: str | os.PathLike,
                 config: ReportConfig | None = None,
                 validations: Sequence[ValidationReport] = ()) -> list[Path]:
    """Write the validation report of ``photoz`` against ``truth`` into ``output_dir``; its files.

    Parameters
    ----------
    photoz : pyarrow.Table
        Photo-z table with its qp metadata (a partition, or the assembled catalog).
    truth : pyarrow.Table
        ``id``, the true redshift and optionally a magnitude column (see :class:`MetricsConfig`).
    output_dir : path-like
        Report folder; replaced as a whole when it exists.
    config : ReportConfig, optional
    validations : sequence of ValidationReport
        Other checks to keep with the report (e.g. of the stage I partitions), written to gx_results.json
        after the photo-z table's own.

    Returns
    -------
    list of Path
        The files written, in the order of the module's table.

    Raises
    ------
    ValueError
        The tables cannot be matched (see :func:`pzlib.validate.metrics.match_truth`).
    pzlib.catalog.CatalogError
        ``output_dir`` cannot be written.

    Examples
    --------
    >>> photoz, truth = pq.read_table("photoz.parquet"), pq.read_table("stage1.parquet")  # doctest: +SKIP
    >>> files = build_report(photoz, truth, "reports/dc2-fzboost",  # doctest: +SKIP
    ...                      ReportConfig(title="dc2 · fzboost"))
    >>> [f.name for f in files][:2]  # doctest: +SKIP
    ['metrics.json', 'gx_results.json']
    """
    config = config or ReportConfig()
    output_dir = Path(output_dir)
    check_writable(output_dir)
    validation = validate_table(photoz, config.suite, config.suite_context, source="photo-z table")
    sample = match_truth(photoz, truth, config.metrics)
    metrics = sample_metrics(sample, config.metrics, n_photoz=photoz.num_rows)
    staging = output_dir.with_name(f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        names = _write_files(staging, photoz, sample, metrics, [validation, *validations], config)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [output_dir / name for name in names]


def _write_files(folder: Path, photoz: pa.Table, sample: MatchedSample, metrics: ScienceMetrics,
                 validations: list[ValidationReport], config: ReportConfig) -> list[str]:
    provenance = (photoz.schema.metadata or {}).get(PROVENANCE_KEY)
    summary = {
        "title": config.title,
        "metrics": metrics.as_dict(),
        "validation": [{"suite": report.suite, "source": report.source, "success": report.success,
                        "failures": len(report.failures)} for report in validations],
        "provenance": json.loads(provenance) if provenance else None,
    }
    (folder / "metrics.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
    checks = [report.to_dict() for report in validations]
    (folder / "gx_results.json").write_text(json.dumps(checks, indent=1))
    names = ["metrics.json", "gx_results.json"]
    plots = [("zphot_vs_zspec.png", _plot_zphot_vs_zspec, True), ("nz.png", _plot_nz, True),
             ("pit.png", _plot_pit, True),
             ("metrics_vs_magnitude.png", _plot_binned_magnitude, bool(metrics.by_magnitude)),
             ("metrics_vs_redshift.png", _plot_binned_redshift, bool(metrics.by_redshift))]
    for name, draw, wanted in plots:
        if not wanted:
            continue
        figure = draw(sample, metrics, config)
        if config.title:
            figure.suptitle(config.title)
        figure.savefig(folder / name, dpi=config.dpi)
        names.append(name)
    return names


# --- plots ------------------------------------------------------------------------------------------------


def _figure(width: float = 6.0, height: float = 5.0, **subplot_options):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(**subplot_options)


def _plot_zphot_vs_zspec(sample: MatchedSample, metrics: ScienceMetrics, config: ReportConfig):
    from matplotlib.colors import LogNorm

    grid = np.asarray(metrics.nz.grid)
    z_true, z_phot = sample.z_true, sample.point_estimate(metrics.primary)
    figure, axes = _figure()
    limits = (float(grid[0]), float(grid[-1]))
    counts, _, _, image = axes.hist2d(z_true, z_phot, bins=120, range=[limits, limits], norm=LogNorm(),
                                      cmap="viridis", cmin=1)
    figure.colorbar(image, ax=axes, label="objects")
    line = np.array(limits)
    axes.plot(line, line, color="black", lw=0.8)
    for sign in (-1, 1):
        axes.plot(line, line + sign * OUTLIER_CUT * (1 + line), color="black", lw=0.6, ls="--")
    point = metrics.point[metrics.primary]
    axes.text(0.03, 0.97, f"n = {point.n_objects:,}\nσ_NMAD = {point.sigma_nmad:.4f}\n"
                          f"outliers = {100 * point.outlier_rate:.1f}%\nbias = {point.bias:+.4f}",
              transform=axes.transAxes, va="top", ha="left", fontsize=9,
              bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    axes.set(xlim=limits, ylim=limits, xlabel="z true (spec-z)", ylabel=f"z phot ({metrics.primary})")
    return figure


def _plot_nz(sample: MatchedSample, metrics: ScienceMetrics, config: ReportConfig):
    nz = metrics.nz
    figure, axes = _figure(6.5, 4.5)
    axes.step(nz.grid, nz.true, where="mid", color="gray", label="true N(z)")
    axes.plot(nz.grid, nz.stacked, color="C0", label="stacked PDFs")
    axes.text(0.97, 0.97, f"⟨z⟩ stacked {nz.mean_z_stacked:.3f}\n⟨z⟩ true {nz.mean_z_true:.3f}\n"
                          f"KS distance {nz.ks_distance:.3f}",
              transform=axes.transAxes, va="top", ha="right", fontsize=9)
    axes.set(xlabel="z", ylabel="N(z) (normalized)", xlim=(nz.grid[0], nz.grid[-1]))
    axes.legend(loc="upper left")
    return figure


def _plot_pit(sample: MatchedSample, metrics: ScienceMetrics, config: ReportConfig):
    pit = metrics.pit
    edges = np.asarray(pit.bin_edges)
    density = np.asarray(pit.histogram) / max(pit.n_objects, 1) / np.diff(edges)
    figure, axes = _figure(6.5, 4.5)
    axes.stairs(density, edges, fill=True, alpha=0.6, color="C0")
    axes.axhline(1.0, color="black", lw=0.8, ls="--")
    axes.text(0.97, 0.97, f"KS {pit.ks:.3f}\nCvM {pit.cvm:.2f}\nAD {pit.ad:.2f}\n"
                          f"PIT outliers {100 * pit.outlier_rate:.2f}%\nCDE loss {metrics.cde_loss:.3f}",
              transform=axes.transAxes, va="top", ha="right", fontsize=9)
    axes.set(xlabel="PIT", ylabel="density", xlim=(0, 1))
    return figure


def _plot_binned(bins: list[dict], xlabel: str):
    figure, (scatter_axes, bias_axes, outlier_axes) = _figure(6.5, 7.5, nrows=3, sharex=True)
    centers = np.array([row["center"] for row in bins])

    def values(key):
        return np.array([np.nan if row[key] is None else row[key] for row in bins], dtype=np.float64)

    scatter_axes.plot(centers, values("sigma_nmad"), "o-", label="σ_NMAD")
    scatter_axes.plot(centers, values("sigma_iqr"), "s--", label="σ_IQR")
    scatter_axes.set_ylabel("scatter")
    scatter_axes.legend(loc="upper left")
    counts_axes = scatter_axes.twinx()
    counts_axes.bar(centers, [row["n_objects"] for row in bins],
                    width=[row["high"] - row["low"] for row in bins], color="gray", alpha=0.2)
    counts_axes.set_ylabel("objects")
    bias_axes.plot(centers, values("bias"), "o-")
    bias_axes.axhline(0.0, color="black", lw=0.6)
    bias_axes.set_ylabel("bias (median Δz)")
    outlier_axes.plot(centers, 100 * values("outlier_rate"), "o-", label=f"|Δz| > {OUTLIER_CUT}")
    outlier_axes.plot(centers, 100 * values("outlier_rate_rail"), "s--", label="|Δz| > max(0.06, 3σ_IQR)")
    outlier_axes.set(ylabel="outliers (%)", xlabel=xlabel)
    outlier_axes.legend(loc="upper left")
    return figure


def _plot_binned_magnitude(sample: MatchedSample, metrics: ScienceMetrics, config: ReportConfig):
    return _plot_binned(metrics.by_magnitude, metrics.magnitude_column or "magnitude")


def _plot_binned_redshift(sample: MatchedSample, metrics: ScienceMetrics, config: ReportConfig):
    return _plot_binned(metrics.by_redshift, "z true")
