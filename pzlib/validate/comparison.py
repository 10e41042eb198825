"""The estimators of one release side by side: a table and overlaid plots, from each one's validation report.

Each estimator's report (``metrics.json`` of :func:`pzlib.validate.report.build_report`) already holds its science
metrics; the run adds what only it knows — stage III's objects per second per core and the catalog's bytes per
object. :func:`build_comparison` writes a folder the PZ Server publishes as a ``validation_results`` product:

==========================  ===============================================================================
``metrics.json``            ``title`` and ``comparison``: one row per estimator (σ_NMAD, outlier rates, bias,
                            PIT KS, CDE loss, objects/s/core, bytes/object)
``comparison_table.png``    the same table as a figure, for the report page
``compare_nz.png``          the stacked N(z) of every estimator over the true N(z)
``compare_pit.png``         the PIT histograms, overlaid
``compare_vs_magnitude.png`` σ_NMAD and outlier rate per magnitude bin, one line per estimator
``compare_vs_redshift.png`` σ_NMAD and outlier rate per true-redshift bin, one line per estimator
==========================  ===============================================================================
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from pzlib.catalog import check_writable

COMPARISON_COLUMNS = {
    "sigma_nmad": "σ_NMAD",
    "outlier_rate": "outliers |Δz|>0.15",
    "outlier_rate_rail": "outliers (RAIL)",
    "bias": "bias",
    "pit_ks": "PIT KS",
    "pit_outlier_rate": "PIT outliers",
    "cde_loss": "CDE loss",
    "objects_per_second_per_core": "objects/s/core",
    "bytes_per_object": "bytes/object",
}
"""Columns of the comparison table (besides the estimator and its object count), with their headings."""


@dataclass(frozen=True)
class EstimatorResult:
    """What the comparison shows of one estimator."""

    estimator: str
    report_metrics: dict
    """``metrics`` of its validation report's ``metrics.json`` (``ScienceMetrics.as_dict()``)."""
    objects_per_second_per_core: float | None
    """Stage III throughput of one core (objects over the summed seconds of its partitions); None if unknown."""
    bytes_per_object: float
    """Bytes of its photo-z catalog per object."""

    def row(self) -> dict:
        """The estimator's row of the table (primary point estimate's metrics)."""
        metrics = self.report_metrics
        point = metrics["point"][metrics["primary"]]
        pit = metrics.get("pit") or {}
        return {"estimator": self.estimator, "n_objects": metrics["n_objects"],
                "sigma_nmad": point["sigma_nmad"], "outlier_rate": point["outlier_rate"],
                "outlier_rate_rail": point.get("outlier_rate_rail"), "bias": point["bias"],
                "pit_ks": pit.get("ks"), "pit_outlier_rate": pit.get("outlier_rate"),
                "cde_loss": metrics.get("cde_loss"),
                "objects_per_second_per_core": self.objects_per_second_per_core,
                "bytes_per_object": self.bytes_per_object}


def build_comparison(results: list[EstimatorResult], output_dir: str | os.PathLike, title: str = "",
                     dpi: int = 110) -> list[Path]:
    """Write the comparison of ``results`` (two or more estimators) into ``output_dir``, replacing it; its files.

    Raises
    ------
    ValueError
        Fewer than two estimators, or one named twice.
    pzlib.catalog.CatalogError
        ``output_dir`` cannot be written.

    Examples
    --------
    >>> build_comparison([fzboost_result, bpz_result], "runs/dc2/comparison", "dc2")  # doctest: +SKIP
    [PosixPath('runs/dc2/comparison/metrics.json'), ...]
    """
    names = [result.estimator for result in results]
    if len(names) < 2:
        raise ValueError(f"a comparison needs two or more estimators, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"estimators named more than once: {names}")
    output_dir = Path(output_dir)
    check_writable(output_dir)
    staging = output_dir.with_name(f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        rows = [result.row() for result in results]
        summary = {"title": title, "comparison": [_json_row(row) for row in rows]}
        (staging / "metrics.json").write_text(json.dumps(summary, indent=1, allow_nan=False))
        written = ["metrics.json"]
        for name, draw in (("comparison_table.png", _plot_table), ("compare_nz.png", _plot_nz),
                           ("compare_pit.png", _plot_pit), ("compare_vs_magnitude.png", _plot_by("by_magnitude")),
                           ("compare_vs_redshift.png", _plot_by("by_redshift"))):
            figure = draw(results, rows)
            if figure is None:
                continue
            if title:
                figure.suptitle(title)
            figure.savefig(staging / name, dpi=dpi)
            written.append(name)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [output_dir / name for name in written]


def _json_row(row: dict) -> dict:
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in row.items()}


def _format(key: str, value) -> str:
    if value is None:
        return "–"
    if key in ("outlier_rate", "outlier_rate_rail", "pit_outlier_rate"):
        return f"{100 * value:.1f}%"
    if key in ("objects_per_second_per_core", "bytes_per_object", "n_objects"):
        return f"{value:,.0f}"
    if key == "cde_loss":
        return f"{value:.2f}"
    return f"{value:+.4f}" if key == "bias" else f"{value:.4f}"


def _figure(width: float, height: float, **subplot_options):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(**subplot_options)


def _plot_table(results: list[EstimatorResult], rows: list[dict]):
    figure, axes = _figure(12.0, 0.8 + 0.35 * len(rows))
    axes.axis("off")
    headings = ["estimator", "objects", *COMPARISON_COLUMNS.values()]
    cells = [[row["estimator"], _format("n_objects", row["n_objects"]),
              *(_format(key, row[key]) for key in COMPARISON_COLUMNS)] for row in rows]
    table = axes.table(cellText=cells, colLabels=headings, loc="center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    return figure


def _plot_nz(results: list[EstimatorResult], rows: list[dict]):
    figure, axes = _figure(7.0, 4.5)
    truth_drawn = False
    for result in results:
        nz = result.report_metrics.get("nz")
        if not nz:
            continue
        if not truth_drawn:
            axes.fill_between(nz["grid"], nz["true"], step="mid", color="0.85", label="true")
            truth_drawn = True
        axes.plot(nz["grid"], nz["stacked"], label=result.estimator)
    axes.set(xlabel="z", ylabel="N(z)")
    axes.legend()
    return figure


def _plot_pit(results: list[EstimatorResult], rows: list[dict]):
    figure, axes = _figure(7.0, 4.5)
    for result in results:
        pit = result.report_metrics.get("pit")
        if not pit or not pit.get("histogram"):
            continue
        edges, counts = pit["bin_edges"], pit["histogram"]
        width = edges[1] - edges[0]
        density = [count / (pit["n_objects"] * width) for count in counts]
        axes.stairs(density, edges, label=f"{result.estimator} (KS {pit['ks']:.3f})")
    axes.axhline(1.0, color="0.5", linestyle=":")
    axes.set(xlabel="PIT", ylabel="density")
    axes.legend()
    return figure


def _plot_by(key: str):
    """σ_NMAD and outlier rate per bin of ``key`` ('by_magnitude' or 'by_redshift'), one line per estimator."""

    def draw(results: list[EstimatorResult], rows: list[dict]):
        if not any(result.report_metrics.get(key) for result in results):
            return None
        figure, (top, bottom) = _figure(7.0, 6.0, nrows=2, sharex=True)
        for result in results:
            bins = [b for b in result.report_metrics.get(key) or [] if b.get("sigma_nmad") is not None]
            centers = [b["center"] for b in bins]
            top.plot(centers, [b["sigma_nmad"] for b in bins], marker="o", label=result.estimator)
            bottom.plot(centers, [b["outlier_rate"] for b in bins], marker="o", label=result.estimator)
        magnitude = result.report_metrics.get("magnitude_column") or "magnitude"
        top.set(ylabel="σ_NMAD")
        bottom.set(ylabel="outlier rate", xlabel=magnitude if key == "by_magnitude" else "true z")
        top.legend()
        return figure

    return draw
