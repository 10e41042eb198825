"""``pz study``: LIneA's optimization study, automated — what the number of rows, rounding the input, the
training-set size and the PDF resolution do to runtime and to the photo-z, for our engine and stock RAIL.

The study starts from one *unchanged* setting — ``sample_rows`` rows of the input (tiled with fresh ids when it
has fewer), magnitudes and errors as they are, the model trained on the whole training set, the estimator's own
PDF grid — and turns one knob at a time:

- ``rows``: rows estimated (runtime against rows);
- ``decimals``: magnitudes and errors rounded to N decimals by stage I's cleaning (``PreprocessConfig``);
- ``training_size``: the model trained on N rows drawn at random (seeded) from the training set;
- ``grid_points``: the PDF grid (RAIL's ``nzbins``).

Each setting runs on each engine — ``ours`` (:mod:`pzlib.fastpaths` where the estimator has one) and ``rail``
(RAIL's estimator stage) — through the same :class:`~pzlib.estimate.PartitionEstimator`, in this process, from
the input rows in memory through cleaning and the estimator to the photo-z table (PDFs stored as stage III
stores them); the estimator's setup (model, templates, compiled kernels: warmed on a few rows) is outside the
clock. Each run is repeated and keeps its best; objects per CPU-second count this process and its children
(stock FlexZBoost predicts in joblib worker processes), so they are per-core figures.

Quality is measured against the unchanged run of the same engine, on the rows both hold (the tiled rows share
their first ids): with Δz = (zmode − zmode_unchanged) / (1 + zmode_unchanged), the fraction of objects whose
zmode changed, σ_NMAD and the median of Δz, the fraction beyond 3σ (σ the standard deviation of Δz; none when
nothing changed) and the largest distance between the stacked N(z) CDFs (runs of the same rows only); and,
when the input has true redshifts, σ_NMAD and the |Δz| > 0.15 outlier rate against them. The report folder::

    study.csv, study.md        one row per axis value and engine (the unchanged setting in every axis)
    runtime_vs_rows.png        objects per CPU-second and seconds against rows
    decimals.png               runtime, input bytes/object and quality against the rounding
    training_size.png          training time, runtime and quality against the training-set size
    grid_points.png            runtime and quality against the PDF grid points
    nz_<axis>.png              stacked N(z) of each value over the unchanged one, one panel per engine
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from pzlib import pdf
from pzlib.bench.compare import WARM_UP_ROWS, cpu_seconds
from pzlib.bench.runtime_model import parse_count
from pzlib.catalog import CatalogError, check_writable, open_catalog, write_parquet
from pzlib.estimate import EstimateConfig, PartitionEstimator, train
from pzlib.fastpaths import FAST_ESTIMATORS, stage_config
from pzlib.preprocess import PreprocessConfig, clean_batch
from pzlib.samples import dc2_sample_paths
from pzlib.validate.metrics import point_metrics

ENGINES = {"ours": "fast", "rail": "rail"}
"""The study's engine names → :attr:`EstimateConfig.engine`."""

AXES = {"rows": "rows", "decimals": "input rounding (decimals)", "training_size": "training-set size (rows)",
        "grid_points": "PDF grid points (nzbins)"}
"""The knobs the study turns, one at a time, with their axis labels."""


@dataclass(frozen=True)
class Setting:
    """One configuration the study runs: the unchanged one with (at most) one knob turned."""

    rows: int
    decimals: int | None
    """None: unrounded."""
    training_size: int | None
    """None: the whole training set."""
    grid_points: int | None
    """None: the estimator has no grid option."""

    def changed(self, attribute: str, value) -> Setting:
        return Setting(**{**self.__dict__, attribute: value})


@dataclass
class StudyConfig:
    """What ``pz study`` measures, checked before any work."""

    estimator: str = "fzboost"
    """A short name of :data:`pzlib.estimate.BUILTIN_ESTIMATORS` or an installed RAIL estimator class name."""
    engines: tuple[str, ...] = ("ours", "rail")
    """Engines run side by side (:data:`ENGINES`)."""
    rows: tuple[int, ...] = (2_000, 20_000)
    """Rows axis, besides ``sample_rows``."""
    decimals: tuple[int, ...] = (3, 2, 1)
    """Rounding axis: decimals kept of magnitudes and errors, besides unrounded."""
    training_sizes: tuple[int, ...] = (1_000, 3_000)
    """Training-set axis: rows drawn from the training set, besides all of it."""
    grid_points: tuple[int, ...] = (101, 201, 601)
    """PDF resolution axis: grid points, besides the estimator's own."""
    sample_rows: int = 5_000
    """Rows of the unchanged setting, and of every run of the other axes."""
    repeats: int = 2
    """Timed runs of each setting and engine; the fastest counts."""
    workdir: Path = Path("var/study")
    """Trained models and training subsets."""
    output: Path | None = None
    """Report folder (replaced as a whole); default ``workdir/<estimator>``."""
    train: Path | None = None
    """Training catalog with true redshifts; default RAIL's DC2 training sample."""
    input: Path | None = None
    """Catalog to estimate (``lsst_mag`` columns); default RAIL's DC2 validation sample."""
    batch_rows: int | None = None
    """Rows per record batch; default the estimator's own."""
    seed: int = 0
    """Seed of the training subsets."""
    unchanged_grid_points: int | None = field(init=False, default=None)
    """The estimator's own grid points (RAIL's ``nzbins`` default), None when it has no such option."""

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.output = Path(self.output) if self.output is not None else self.workdir / self.estimator
        self.train = Path(self.train) if self.train is not None else dc2_sample_paths()[0]
        self.input = Path(self.input) if self.input is not None else dc2_sample_paths()[1]
        estimate_config = EstimateConfig(self.estimator, batch_rows=self.batch_rows)  # names an unknown estimator
        self.batch_rows = estimate_config.batch_rows
        self.engines = tuple(dict.fromkeys(self.engines))
        unknown = [engine for engine in self.engines if engine not in ENGINES]
        if unknown or not self.engines:
            raise ValueError(f"engines must be some of {', '.join(ENGINES)}, got {', '.join(self.engines) or 'none'}")
        if "ours" in self.engines and self.estimator not in FAST_ESTIMATORS:
            raise ValueError(f"estimator {self.estimator!r} has no fast path of ours (those with one: "
                             f"{', '.join(FAST_ESTIMATORS)}); study it with engines rail only")
        for name in ("rows", "training_sizes", "grid_points"):
            values = tuple(sorted(set(getattr(self, name))))
            if any(not isinstance(value, int) or value <= 0 for value in values):
                raise ValueError(f"{name} must be positive whole numbers, got {list(values)}")
            setattr(self, name, values)
        self.decimals = tuple(sorted(set(self.decimals), reverse=True))
        for value in self.decimals:
            PreprocessConfig(round_decimals=value)  # stage I's own limits
        if any(value < 2 for value in self.grid_points):
            raise ValueError(f"grid_points must be at least 2, got {list(self.grid_points)}")
        for name in ("sample_rows", "repeats"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        stage = stage_config(estimate_config.classes.estimator, estimate_config.stage_options())
        self.unchanged_grid_points = int(stage["nzbins"]) if "nzbins" in stage else None
        if self.grid_points and self.unchanged_grid_points is None:
            raise ValueError(f"estimator {self.estimator!r} has no PDF grid option (nzbins): leave grid_points "
                             "empty")
        check_writable(self.output)

    @property
    def unchanged(self) -> Setting:
        return Setting(self.sample_rows, None, None, self.unchanged_grid_points)

    def axes(self) -> dict[str, list[tuple[int | None, Setting]]]:
        """Per axis, its values (the unchanged one included, in order) and the setting of each."""
        unchanged = self.unchanged
        knobs = {"rows": self.rows, "decimals": self.decimals, "training_size": self.training_sizes,
                 "grid_points": self.grid_points}
        axes = {}
        for axis, values in knobs.items():
            if not values:
                continue
            own = getattr(unchanged, axis)
            if axis == "decimals":  # unrounded first, then fewer and fewer decimals
                ordered = [own, *values]
            else:  # ascending, the whole training set (None) last
                ordered = sorted({own, *values}, key=lambda value: math.inf if value is None else value)
            axes[axis] = [(value, unchanged.changed(axis, value)) for value in ordered]
        return axes

    def settings(self) -> list[Setting]:
        """Every distinct setting the study runs."""
        return list(dict.fromkeys([self.unchanged,
                                   *(setting for values in self.axes().values() for _, setting in values)]))

    def steps(self) -> int:
        """Trainings and (setting, engine) runs, for a progress bar."""
        return len(self.training_sizes) + 1 + len(self.settings()) * len(self.engines)


@dataclass
class Run:
    """One setting on one engine: its best time and what its photo-z tables hold."""

    seconds: float
    cpu_seconds: float
    zmode: np.ndarray
    """zmode as stored (float32), one per input row in order."""
    grid: np.ndarray
    stacked_cdf: np.ndarray
    """Mean of the stored per-object CDFs on ``grid``: the CDF of the stacked N(z)."""


@dataclass(frozen=True)
class Difference:
    """A run's photo-z against the unchanged run's, on the rows both hold."""

    n_objects: int
    changed_fraction: float
    """Fraction of objects whose zmode differs."""
    sigma_nmad: float
    """σ_NMAD of Δz = (zmode − zmode_unchanged) / (1 + zmode_unchanged)."""
    bias: float
    """Median Δz."""
    outlier_fraction: float
    """Fraction with |Δz| beyond 3 standard deviations of Δz (0 when nothing changed)."""
    nz_ks: float | None
    """Largest |CDF − CDF_unchanged| of the stacked N(z) (on both grids); None when the rows differ."""


def difference(run: Run, unchanged: Run) -> Difference:
    """``run``'s photo-z against ``unchanged``'s, on their common first rows (the study's ids are 0, 1, …).

    Examples
    --------
    >>> difference(run, run).outlier_fraction  # doctest: +SKIP
    0.0
    """
    n_objects = min(run.zmode.size, unchanged.zmode.size)
    zmode = run.zmode[:n_objects].astype(np.float64)
    reference = unchanged.zmode[:n_objects].astype(np.float64)
    dz = (zmode - reference) / (1.0 + reference)
    beyond = np.abs(dz) > 3.0 * float(np.std(dz))
    metrics = point_metrics(zmode, reference)
    nz_ks = None
    if run.zmode.size == unchanged.zmode.size:
        both = np.union1d(run.grid, unchanged.grid)
        nz_ks = float(np.max(np.abs(np.interp(both, run.grid, run.stacked_cdf)
                                    - np.interp(both, unchanged.grid, unchanged.stacked_cdf))))
    return Difference(n_objects=n_objects, changed_fraction=float(np.mean(zmode != reference)),
                      sigma_nmad=metrics.sigma_nmad, bias=metrics.bias, outlier_fraction=float(np.mean(beyond)),
                      nz_ks=nz_ks)


def parse_counts(text: str, name: str) -> tuple[int, ...]:
    """Comma-separated whole numbers (``"2e3,5000"``); an empty text leaves the axis out."""
    return tuple(parse_count(part.strip(), name) for part in text.split(",") if part.strip())


def parse_decimals(text: str) -> tuple[int, ...]:
    """Comma-separated decimals (``"3,2,1"``); an empty text leaves the axis out."""
    values = []
    for part in (part.strip() for part in text.split(",")):
        if part:
            if not part.isdigit():
                raise ValueError(f"decimals must be whole numbers, got {part!r}")
            values.append(int(part))
    return tuple(values)


class _Study:
    """One study's inputs and runs in memory."""

    def __init__(self, config: StudyConfig, on_step: Callable[[str], None]):
        self.config, self.on_step = config, on_step
        cleaning = PreprocessConfig()
        reader = open_catalog(config.input)
        columns = cleaning.input_columns(reader.column_names)
        truth_column = EstimateConfig(config.estimator).truth_column
        has_truth = truth_column in reader.column_names
        reader.require_columns(columns)
        table = reader.read(columns + ([truth_column] if has_truth else []))
        if table.num_rows == 0:
            raise CatalogError(config.input, "no rows to estimate")
        # Shuffled (seeded), so that any first rows are a fair sample: a catalog may be sorted (DC2's is, by z).
        self.input = table.take(pa.array(np.random.default_rng(config.seed).permutation(table.num_rows)))
        self.truth_column = truth_column if has_truth else None
        self.training_rows = open_catalog(config.train).num_rows
        too_many = [size for size in config.training_sizes if size > self.training_rows]
        if too_many:
            raise CatalogError(config.train, f"training_sizes {too_many} exceed its {self.training_rows:,} rows")
        self.models: dict[int | None, Path] = {}
        self.training_seconds: dict[int | None, tuple[float, float]] = {}  # (wall, CPU) by training size
        self.runs: dict[tuple[Setting, str], Run] = {}

    def rows(self, count: int) -> pa.Table:
        """``count`` input rows, tiled with fresh ids 0 … count−1."""
        table = self.input.take(pa.array(np.arange(count) % self.input.num_rows))
        return table.set_column(table.column_names.index("id"), "id", pa.array(np.arange(count, dtype=np.int64)))

    def train_models(self) -> None:
        """Train every model the study needs, timed (never reused: the training time is a result)."""
        config = self.config
        models = config.workdir / "models"
        models.mkdir(parents=True, exist_ok=True)
        for size in (None, *config.training_sizes):
            training_path = config.train if size is None else self._training_subset(size)
            model_path = models / f"{config.estimator}_train{'all' if size is None else size}.pkl"
            model_path.unlink(missing_ok=True)
            cpu_started, started = cpu_seconds(), time.perf_counter()
            self.models[size] = train(training_path, model_path, EstimateConfig(config.estimator))
            self.training_seconds[size] = (time.perf_counter() - started, cpu_seconds() - cpu_started)
            self.on_step(f"trained {config.estimator} on {'all' if size is None else f'{size:,}'} rows")

    def _training_subset(self, size: int) -> Path:
        path = self.config.workdir / f"train_{self.config.train.stem}_{size}_seed{self.config.seed}.parquet"
        if not path.exists():
            table = open_catalog(self.config.train).read()
            picked = np.sort(np.random.default_rng(self.config.seed).choice(table.num_rows, size, replace=False))
            write_parquet(table.take(pa.array(picked)), path)
        return path

    def measure(self, setting: Setting, engine: str) -> Run:
        """``setting`` on ``engine``: best of ``repeats`` timed runs from input rows to photo-z tables."""
        config = self.config
        options = {} if setting.grid_points is None else {"nzbins": setting.grid_points}
        estimate_config = EstimateConfig(config.estimator, batch_rows=config.batch_rows, engine=ENGINES[engine],
                                         rail_options=options)
        estimator = PartitionEstimator(self.models[setting.training_size], estimate_config)
        cleaning = PreprocessConfig(round_decimals=setting.decimals)
        rows = self.rows(setting.rows)
        estimator.estimate_batch(clean_batch(rows.slice(0, WARM_UP_ROWS), cleaning))
        best = None
        for _ in range(config.repeats):
            cpu_started, started = cpu_seconds(), time.perf_counter()
            tables = [estimator.estimate_batch(clean_batch(batch, cleaning))
                      for batch in rows.to_batches(estimate_config.batch_rows)]
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
            if best is None or seconds < best[0]:
                best = (seconds, cpu, tables)
        seconds, cpu, tables = best
        metadata = pdf.qp_metadata(estimator.grid, estimate_config.pdf_storage)
        photoz = pa.concat_tables(tables).replace_schema_metadata(metadata)
        stacked = np.zeros(estimator.grid.size)
        for batch in photoz.to_batches(50_000):  # bounded temporaries for large runs
            stacked += pdf.cdf_on_grid(pa.Table.from_batches([batch]).replace_schema_metadata(metadata)).sum(axis=0)
        self.on_step(f"{engine}: {setting}")
        return Run(seconds=seconds, cpu_seconds=cpu, zmode=photoz.column("zmode").to_numpy(),
                   grid=np.asarray(estimator.grid, dtype=np.float64), stacked_cdf=stacked / photoz.num_rows)

    def input_bytes_per_object(self, decimals: int | None) -> float:
        """Bytes per object of the unchanged rows cleaned (and rounded) as stage I writes them."""
        table = clean_batch(self.rows(self.config.sample_rows), PreprocessConfig(round_decimals=decimals))
        path = self.config.workdir / f".input-{uuid.uuid4().hex[:8]}.parquet"
        try:
            return write_parquet(table, path).stat().st_size / table.num_rows
        finally:
            path.unlink(missing_ok=True)

    def shown_value(self, axis: str, value: int | None) -> int | str:
        """An axis value as the report shows it: None is the unchanged setting's (unrounded, all training rows)."""
        if value is not None:
            return value
        return "unrounded" if axis == "decimals" else self.training_rows

    def truth_metrics(self, run: Run) -> dict:
        if self.truth_column is None:
            return {"sigma_nmad_truth": None, "outlier_rate_truth": None}
        z_true = self.input.column(self.truth_column).to_numpy(zero_copy_only=False).astype(np.float64)
        z_true = z_true[np.arange(run.zmode.size) % z_true.size]
        metrics = point_metrics(run.zmode, z_true)
        return {"sigma_nmad_truth": metrics.sigma_nmad, "outlier_rate_truth": metrics.outlier_rate}


TABLE_COLUMNS = {
    "axis": "axis", "value": "value", "engine": "engine", "rows": "rows", "seconds": "seconds",
    "cpu_seconds": "CPU-s",
    "objects_per_second": "objects/s", "objects_per_cpu_second": "objects/CPU-s",
    "speedup_per_cpu_second": "ours/rail per CPU-s", "training_seconds": "training s",
    "training_cpu_seconds": "training CPU-s",
    "input_bytes_per_object": "input bytes/object", "changed_fraction": "zmode changed",
    "sigma_nmad_difference": "σ_NMAD Δz", "bias_difference": "median Δz", "outliers_3sigma": "outliers >3σ",
    "nz_ks": "N(z) KS", "sigma_nmad_truth": "σ_NMAD vs true z", "outlier_rate_truth": "outliers vs true z",
}
"""Columns of study.csv (keys) and study.md (headings); Δz is against the unchanged run of the same engine."""


def run_study(config: StudyConfig, on_step: Callable[[str], None] | None = None) -> list[Path]:
    """Run the study of ``config`` and write its report folder; returns the files written.

    Raises
    ------
    pzlib.catalog.CatalogError
        An input or training catalog that cannot be read, lacks a column, or has fewer rows than a training size;
        an output that cannot be written.

    Examples
    --------
    >>> run_study(StudyConfig("bpz", rows=(1_000,), decimals=(2,), training_sizes=(), grid_points=()))
    ... # doctest: +SKIP
    [PosixPath('var/study/bpz/study.csv'), PosixPath('var/study/bpz/study.md'), ...]
    """
    study = _Study(config, on_step or (lambda _: None))
    study.train_models()
    for setting in config.settings():
        for engine in config.engines:
            study.runs[setting, engine] = study.measure(setting, engine)
    rows = _table_rows(study)
    return _write_report(study, rows)


def _table_rows(study: _Study) -> list[dict]:
    config = study.config
    unchanged = config.unchanged
    bytes_per_object = {value: study.input_bytes_per_object(value)
                        for value, _ in config.axes().get("decimals", [])}
    rows = []
    for axis, values in config.axes().items():
        for value, setting in values:
            for engine in config.engines:
                run = study.runs[setting, engine]
                change = difference(run, study.runs[unchanged, engine])
                row = {"axis": axis, "value": study.shown_value(axis, value),
                       "engine": engine, "rows": setting.rows, "seconds": run.seconds,
                       "cpu_seconds": run.cpu_seconds,
                       "objects_per_second": setting.rows / run.seconds,
                       "objects_per_cpu_second": setting.rows / run.cpu_seconds if run.cpu_seconds > 0 else None,
                       "speedup_per_cpu_second": None,
                       "training_seconds": study.training_seconds[setting.training_size][0],
                       "training_cpu_seconds": study.training_seconds[setting.training_size][1],
                       "input_bytes_per_object": bytes_per_object.get(setting.decimals) if axis == "decimals" else None,
                       "changed_fraction": change.changed_fraction, "sigma_nmad_difference": change.sigma_nmad,
                       "bias_difference": change.bias, "outliers_3sigma": change.outlier_fraction,
                       "nz_ks": change.nz_ks, **study.truth_metrics(run)}
                rows.append(row)
            by_engine = {row["engine"]: row for row in rows[-len(config.engines):]}
            if set(by_engine) == set(ENGINES) and all(row["objects_per_cpu_second"] for row in by_engine.values()):
                by_engine["ours"]["speedup_per_cpu_second"] = (by_engine["ours"]["objects_per_cpu_second"]
                                                               / by_engine["rail"]["objects_per_cpu_second"])
    return rows


def _format(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if key in ("changed_fraction", "outliers_3sigma", "outlier_rate_truth"):
        return f"{100 * value:.2f}%"
    if key in ("objects_per_second", "objects_per_cpu_second", "rows", "value"):
        return f"{value:,.0f}"
    if key in ("seconds", "cpu_seconds", "training_seconds", "training_cpu_seconds", "input_bytes_per_object"):
        return f"{value:.2f}"
    if key == "speedup_per_cpu_second":
        return f"{value:.1f}×"
    return f"{value:+.4f}" if key == "bias_difference" else f"{value:.4f}"


def _write_report(study: _Study, rows: list[dict]) -> list[Path]:
    config = study.config
    staging = config.output.with_name(f".{config.output.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        with open(staging / "study.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(TABLE_COLUMNS))
            writer.writeheader()
            writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
        (staging / "study.md").write_text(_markdown(study, rows))
        written = ["study.csv", "study.md"]
        for axis in config.axes():
            figures = {f"{axis}.png" if axis != "rows" else "runtime_vs_rows.png": _plot_axis(study, rows, axis)}
            if axis != "rows":
                figures[f"nz_{axis}.png"] = _plot_nz(study, axis)
            for name, figure in figures.items():
                figure.suptitle(f"{config.estimator} · {AXES[axis]} · {config.sample_rows:,} rows unchanged")
                figure.savefig(staging / name, dpi=110)
                written.append(name)
        if config.output.exists():
            shutil.rmtree(config.output)
        os.replace(staging, config.output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [config.output / name for name in written]


def _markdown(study: _Study, rows: list[dict]) -> str:
    config = study.config
    unchanged = config.unchanged
    lines = [f"# pz study: {config.estimator}", "",
             f"Unchanged setting: {unchanged.rows:,} rows of {config.input.name}, unrounded, trained on all of "
             f"{config.train.name}, {unchanged.grid_points} grid points; best of {config.repeats} runs, one process, "
             f"in memory from input rows to photo-z tables. Δz = (zmode − zmode unchanged) / (1 + zmode unchanged), "
             "against the same engine's unchanged run; outliers beyond 3σ of Δz; N(z) KS: largest distance between "
             "the stacked N(z) CDFs.", "",
             "| " + " | ".join(TABLE_COLUMNS.values()) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_format(key, row[key]) for key in TABLE_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


# --- plots (matplotlib's object API on the Agg canvas, as pzlib.validate.report) ------------------------------


def _figure(width: float, height: float, **subplot_options):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(**subplot_options)


def _plot_axis(study: _Study, rows: list[dict], axis: str):
    """Runtime and quality against one axis's values, one line per engine, three panels a row."""
    panels = [("objects_per_cpu_second", "objects per CPU-second")]
    if axis == "rows":
        panels.append(("cpu_seconds", "CPU-seconds"))
    else:
        if axis == "training_size":
            panels.append(("training_cpu_seconds", "training CPU-seconds"))
        if axis == "decimals":
            panels.append(("input_bytes_per_object", "stage I bytes/object (zstd Parquet)"))
        panels += [("changed_fraction", "zmode changed (%)"), ("sigma_nmad_difference", "σ_NMAD of Δz"),
                   ("outliers_3sigma", "outliers beyond 3σ of Δz (%)")]
        if study.truth_column:
            panels.append(("sigma_nmad_truth", "σ_NMAD vs true z"))
    columns = min(len(panels), 3)
    rows_of_panels = math.ceil(len(panels) / columns)
    figure, axes = _figure(3.6 * columns, 3.2 * rows_of_panels, nrows=rows_of_panels, ncols=columns, squeeze=False)
    for panel in axes.flat[len(panels):]:
        panel.set_visible(False)
    styles = {"ours": {"marker": "o", "ls": "-", "ms": 7}, "rail": {"marker": "s", "ls": "--", "ms": 4}}
    for panel, (key, label) in zip(axes.flat, panels, strict=False):
        for engine in study.config.engines:
            engine_rows = [row for row in rows if row["axis"] == axis and row["engine"] == engine]
            labels = [f"{row['value']:,}" if isinstance(row["value"], int) else row["value"] for row in engine_rows]
            x = list(range(len(labels))) if axis == "decimals" else [row["value"] for row in engine_rows]
            scale = 100 if key in ("changed_fraction", "outliers_3sigma") else 1
            y = [np.nan if row[key] is None else scale * row[key] for row in engine_rows]
            panel.plot(x, y, label=engine, **styles[engine])
        if axis in ("rows", "training_size"):
            panel.set_xscale("log")
        if key in ("objects_per_cpu_second", "cpu_seconds"):  # both engines' changes visible, ~10× apart
            panel.set_yscale("log")
        panel.set_xticks(x, labels, minor=False)
        panel.set_xticks([], minor=True)
        panel.set(xlabel=AXES[axis], ylabel=label)
        panel.grid(alpha=0.3)
    axes[0][0].legend()
    return figure


def _plot_nz(study: _Study, axis: str):
    """Stacked N(z) of each value of ``axis`` over the unchanged one, one panel per engine."""
    from matplotlib import colormaps

    config = study.config
    values = config.axes()[axis]
    figure, axes = _figure(5.5 * len(config.engines), 4.2, ncols=len(config.engines), squeeze=False, sharey=True)
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(values) - 1, 1)))
    for panel, engine in zip(axes[0], config.engines, strict=True):
        if study.truth_column:
            grid = study.runs[config.unchanged, engine].grid
            z_true = study.rows(config.sample_rows).column(study.truth_column).to_numpy(zero_copy_only=False)
            panel.hist(z_true, bins=np.linspace(grid[0], grid[-1], 61), density=True, color="0.85", label="true z")
        others = iter(colours)
        for value, setting in values:
            run = study.runs[setting, engine]
            density = np.diff(run.stacked_cdf) / np.diff(run.grid)
            if setting == config.unchanged:
                label = f"{study.shown_value(axis, value)} (unchanged)"
                panel.stairs(density, run.grid, color="black", lw=2.4, label=label, zorder=2)
            else:
                panel.stairs(density, run.grid, color=next(others), lw=1.0, label=str(value), zorder=3)
        panel.set(title=engine, xlabel="z", xlim=(run.grid[0], run.grid[-1]))
        panel.legend(title=AXES[axis], fontsize=8)
    axes[0][0].set_ylabel("stacked N(z)")
    return figure
