"""Runtime model of stage III: time per partition as ``a + b·rows`` per estimator, measured, fitted, and used to
forecast a release's wall time and storage.

``measure_scaling`` runs our default (fast) engine end to end — input batch → stage I cleaning → estimator →
stored photo-z Parquet, through :func:`pzlib.bench.compare.run_ours`, the ``estimate_partition`` path stage III uses —
on the DC2 validation set tiled to each size (:func:`pzlib.bench.inputs.tiled_input`), each size in a fresh
single-threaded process, and fits ``seconds = a + b·rows`` by least squares. ``a`` is what one partition costs
whatever its size (model load, file open and close); ``b`` is the cost of one object on one core. Each run
also records its setup (model load and warm-up), which a long-lived worker pays once, not per partition.
``save_scaling`` / ``load_scaling`` keep the figures in a JSON file (``var/bench/scaling.json``) and
``forecast`` turns them into core-hours, wall time and bytes for N objects on C cores, adding the orchestration
overheads (per partition, per array, settlement) measured from real runs (:data:`MEASURED_OVERHEADS`; checked
against a real run by :mod:`pzlib.bench.forecast_check`) or given by the user.

Examples
--------
>>> scaling = load_scaling("var/bench/scaling.json")  # doctest: +SKIP
>>> result = forecast(scaling, ForecastConfig(objects=20_000_000_000, cores=2032))  # doctest: +SKIP
>>> result.total_wall_seconds / 3600  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SCALING_FILE = Path("var/bench/scaling.json")
"""Where ``pz bench scaling`` writes its figures and ``pz forecast`` reads them by default."""
DEFAULT_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
"""Rows per measured run of an estimator with a fast path: two decades, two points per decade."""
STAGE_SIZES = (2_000, 5_000, 20_000, 50_000)
"""Rows per measured run of an estimator that runs RAIL's own stage (hundreds of objects/s: 1e6 rows would
take an hour)."""
SCALING_ESTIMATORS = ("bpz", "fzboost")
"""What ``pz bench scaling`` measures by default: the estimators with a fast path, a release's usual ones."""
DEFAULT_PARTITION_ROWS = 150_000
"""Stage I's partition size (:class:`pzlib.preprocess.PreprocessConfig`)."""
FORMAT_VERSION = 1


def check_count(name: str, value: float, minimum: int = 1) -> int:
    """``value`` as an int, if it is a whole number ≥ ``minimum`` (accepts 20e9 and 1e4 as floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:,}, got {value:,}")
    return int(value)


def parse_count(text: str, name: str = "count") -> int:
    """A whole number written as ``20000000000``, ``20e9`` or ``2_000``; ``ValueError`` otherwise."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a number like 20e9 or 150000, got {text!r}") from None
    return check_count(name, value)


def parse_sizes(text: str) -> tuple[int, ...]:
    """Comma-separated row counts (``"1e4,1e5,1e6"``) → sorted distinct ints; at least two."""
    sizes = tuple(sorted({parse_count(part.strip(), "sizes") for part in text.split(",") if part.strip()}))
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two different row counts to fit a + b·rows, got {text!r}")
    return sizes


# ---------------------------------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class LinearFit:
    """``seconds = intercept_s + seconds_per_row · rows``, fitted by least squares."""

    intercept_s: float
    """a: seconds one partition costs whatever its size (model load, file open/close, first-use costs)."""
    seconds_per_row: float
    """b: seconds per object on one core."""
    r_squared: float
    """Coefficient of determination of the fit (1 for exactly linear data)."""

    @property
    def objects_per_second(self) -> float:
        """Per-core throughput at large sizes, 1/b."""
        return 1.0 / self.seconds_per_row

    def seconds(self, rows: float) -> float:
        """Predicted seconds for one partition of ``rows`` rows."""
        return self.intercept_s + self.seconds_per_row * rows


def fit_linear(rows: list[float] | np.ndarray, seconds: list[float] | np.ndarray) -> LinearFit:
    """Least-squares fit of ``seconds = a + b·rows``.

    Raises
    ------
    ValueError
        When the lengths differ, a value is not finite or not positive, or fewer than two distinct row counts
        are given.

    Examples
    --------
    >>> fit = fit_linear([1_000, 2_000, 4_000], [1.5, 2.5, 4.5])
    >>> round(fit.intercept_s, 6), round(fit.seconds_per_row, 6), round(fit.r_squared, 6)
    (0.5, 0.001, 1.0)
    """
    x = np.asarray(rows, dtype=float)
    y = np.asarray(seconds, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"rows and seconds must be two lists of the same length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("rows and seconds must all be positive finite numbers")
    if np.unique(x).size < 2:
        raise ValueError(f"a + b·rows needs runs at two or more different sizes, got rows {x.tolist()}")
    design = np.column_stack([np.ones_like(x), x])
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    if slope <= 0:
        raise ValueError(f"the fitted time per row is {slope:.3g} s, not positive: the runs do not grow with size "
                         "(rerun on a less loaded machine, or over a wider range of sizes)")
    residual = float(np.sum((y - (intercept + slope * x)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - residual / total if total > 0 else 1.0
    return LinearFit(float(intercept), float(slope), r_squared)


# ------------------------------------------------------------------------------------------ measured figures


@dataclass(frozen=True)
class ScalingRun:
    """One measured run: ``rows`` objects through our engine, input file to stored photo-z table."""

    rows: int
    seconds: float
    """Wall time inside the process, model load to the output's final rename (what stage III pays per partition)."""
    process_seconds: float
    """Wall time of the whole fresh process (adds interpreter start-up and imports)."""
    output_bytes: int
    """Size on disk of the stored photo-z table."""
    peak_rss_mib: float
    load_average: float
    """The machine's 1-minute load average when the run started (the measurements share the machine)."""
    setup_seconds: float | None = None
    """Part of ``seconds`` spent before the first row: model load and one warm-up batch (numba's cache, BPZ's
    templates). A long-lived worker pays it once, not per partition; None in files written before it was kept."""


@dataclass
class EstimatorScaling:
    """An estimator's measured runs and the fit through them."""

    estimator: str
    runs: list[ScalingRun]
    measured_at: str
    """UTC time of the measurement (ISO 8601)."""
    machine: dict
    """Host name, CPU model, CPU count, Python: where the figures hold."""
    settings: dict = field(default_factory=dict)
    """Engine, PDF storage, batch rows, threads per process of the measured runs."""

    def __post_init__(self):
        if not self.runs:
            raise ValueError(f"{self.estimator}: no measured runs")
        self.runs = sorted(self.runs, key=lambda run: run.rows)

    @property
    def fit(self) -> LinearFit:
        return fit_linear([run.rows for run in self.runs], [run.seconds for run in self.runs])

    @property
    def bytes_per_object(self) -> float:
        """Stored bytes per object of the largest run (the file footer weighs least there)."""
        largest = self.runs[-1]
        return largest.output_bytes / largest.rows

    @property
    def stream_fit(self) -> LinearFit | None:
        """``seconds − setup = a′ + b·rows``: a partition's cost in a worker that has its model loaded (fitted
        apart from the setup, whose noise would otherwise swamp b at small sizes); None without recorded setups."""
        if self.setup_s is None:
            return None
        return fit_linear([run.rows for run in self.runs], [run.seconds - run.setup_seconds for run in self.runs])

    @property
    def setup_s(self) -> float | None:
        """Median seconds of model load and warm-up (the part of ``a`` a long-lived worker pays once); None
        when the runs did not record it."""
        setups = [run.setup_seconds for run in self.runs]
        return None if None in setups else float(np.median(setups))

    @property
    def process_startup_s(self) -> float:
        """Median seconds a fresh process spends outside the measured work (interpreter start, imports)."""
        return float(np.median([run.process_seconds - run.seconds for run in self.runs]))


@dataclass
class ScalingResult:
    """What ``pz bench scaling`` measured, per estimator; saved as JSON for ``pz forecast``."""

    estimators: dict[str, EstimatorScaling]

    def merged_into(self, earlier: ScalingResult) -> ScalingResult:
        """``earlier``'s estimators, with this result's estimators replacing theirs."""
        return ScalingResult({**earlier.estimators, **self.estimators})

    def as_dict(self) -> dict:
        estimators = {}
        for name, scaling in self.estimators.items():
            fit = scaling.fit
            estimators[name] = {**asdict(scaling), "fit": asdict(fit), "objects_per_second": fit.objects_per_second,
                                "bytes_per_object": scaling.bytes_per_object,
                                "process_startup_s": scaling.process_startup_s, "setup_s": scaling.setup_s}
        return {"format": FORMAT_VERSION, "estimators": estimators}


def save_scaling(result: ScalingResult, path: str | os.PathLike = SCALING_FILE) -> Path:
    """Write ``result`` as JSON at ``path`` atomically (the fit is stored too, for readers without pzlib)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    staging.replace(path)
    return path


def load_scaling(path: str | os.PathLike = SCALING_FILE) -> ScalingResult:
    """The figures ``pz bench scaling`` saved at ``path``.

    Raises
    ------
    ValueError
        When the file is missing (with a hint to run ``pz bench scaling``), is not JSON, or lacks a field.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no scaling measurements here; run `pz bench scaling` first "
                         "(or pass --scaling-file with the JSON file it wrote)")
    try:
        document = json.loads(path.read_text())
        if document.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {document.get('format')!r}, expected {FORMAT_VERSION}")
        estimators = {}
        for name, entry in document["estimators"].items():
            runs = [ScalingRun(**run) for run in entry["runs"]]
            estimators[name] = EstimatorScaling(name, runs, entry["measured_at"], entry["machine"],
                                                entry.get("settings", {}))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a scaling file written by `pz bench scaling` ({error}); "
                         "run `pz bench scaling` again") from error
    if not estimators:
        raise ValueError(f"{path}: holds no estimator; run `pz bench scaling`")
    return ScalingResult(estimators)


# -------------------------------------------------------------------------------------------------- measuring


@dataclass
class ScalingConfig:
    """What ``pz bench scaling`` runs."""

    estimators: tuple[str, ...] = SCALING_ESTIMATORS
    """Estimators to measure: short names of :data:`pzlib.estimate.BUILTIN_ESTIMATORS`."""
    sizes: tuple[int, ...] | None = None
    """Rows per run (the DC2 validation set, 20,449 rows, tiled with fresh ids to each size); None: each
    estimator's own (:func:`default_sizes`)."""
    workdir: Path = Path("var/bench")
    """Where the models, the tiled inputs (kept for the next run) and the temporary outputs go."""
    batch_rows: int | None = None
    """Rows per record batch, as in stage III; None: each estimator's own (as stage III)."""

    def __post_init__(self):
        from pzlib.estimate import BUILTIN_ESTIMATORS

        self.estimators = tuple(self.estimators)
        self.workdir = Path(self.workdir)
        unknown = [name for name in self.estimators if name not in BUILTIN_ESTIMATORS]
        if unknown or not self.estimators:
            raise ValueError(f"estimators must be among {', '.join(BUILTIN_ESTIMATORS)}, got {list(self.estimators)}")
        if self.sizes is not None:
            self.sizes = tuple(sorted({check_count("sizes", size) for size in self.sizes}))
            if len(self.sizes) < 2:
                raise ValueError(f"sizes needs at least two different row counts to fit a + b·rows, got {self.sizes}")
        if self.batch_rows is not None:
            check_count("batch_rows", self.batch_rows)

    def sizes_for(self, estimator: str) -> tuple[int, ...]:
        return self.sizes or default_sizes(estimator)


def default_sizes(estimator: str) -> tuple[int, ...]:
    """Rows per run for ``estimator``: :data:`DEFAULT_SIZES` with a fast path, :data:`STAGE_SIZES` without."""
    from pzlib.fastpaths import FAST_ESTIMATORS

    return DEFAULT_SIZES if estimator in FAST_ESTIMATORS else STAGE_SIZES


def _machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"hostname": platform.node(), "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version()}


def _measure_in_fresh_process(estimator: str, model_path: Path, input_path: Path, output_path: Path,
                              batch_rows: int) -> ScalingRun:
    """One run in a new interpreter limited to one thread, as a stage III task starts: nothing imported or loaded."""
    from pzlib.cluster.local import thread_environment

    command = [sys.executable, "-m", "pzlib.bench.runtime_model", estimator, str(model_path), str(input_path),
               str(output_path), str(batch_rows)]
    load_average = os.getloadavg()[0]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **thread_environment(1)})
    process_seconds = time.perf_counter() - started
    output_path.unlink(missing_ok=True)
    if completed.returncode != 0:
        raise RuntimeError(f"scaling run of {estimator} on {input_path} failed:\n{completed.stderr[-3000:]}")
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return ScalingRun(rows=figures["rows"], seconds=figures["seconds"], process_seconds=process_seconds,
                      output_bytes=figures["bytes"], peak_rss_mib=figures["peak_rss"] / 2**20,
                      load_average=load_average, setup_seconds=figures["setup_seconds"])


def measure_scaling(config: ScalingConfig, on_run: Callable[[str, ScalingRun], None] | None = None) -> ScalingResult:
    """Train each estimator once (reused from ``config.workdir`` when already trained), then run every size,
    after one unmeasured warm-up run at the smallest size.

    ``on_run(estimator, run)`` is called after each run (progress).
    """
    from pzlib.bench.inputs import tiled_input
    from pzlib.estimate import EstimateConfig, train
    from pzlib.fastpaths import FAST_ESTIMATORS
    from pzlib.pdf import DEFAULT_REPRESENTATION
    from pzlib.samples import dc2_sample_paths

    config.workdir.mkdir(parents=True, exist_ok=True)
    training_path, _ = dc2_sample_paths()
    result = {}
    for estimator in config.estimators:
        estimate_config = EstimateConfig(estimator, batch_rows=config.batch_rows)
        settings = {"engine": "fast" if estimator in FAST_ESTIMATORS else "rail",
                    "pdf_storage": DEFAULT_REPRESENTATION, "batch_rows": estimate_config.batch_rows,
                    "threads_per_process": 1, "input": "DC2 validation set tiled (pzlib.bench.inputs.tiled_input)"}
        inputs = {rows: tiled_input(rows, config.workdir) for rows in config.sizes_for(estimator)}
        model_path = train(training_path, config.workdir / f"{estimator}.pkl", estimate_config)
        # One unmeasured run first: numba's on-disk cache, the OS page cache and BPZ's data copy are then as
        # warm as on a worker that has run before, for every measured size alike.
        smallest = min(inputs)
        _measure_in_fresh_process(estimator, model_path, inputs[smallest],
                                  config.workdir / f"scaling_{estimator}_warmup.parquet", estimate_config.batch_rows)
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        runs = []
        for rows, input_path in inputs.items():
            output_path = config.workdir / f"scaling_{estimator}_{rows}.parquet"
            run = _measure_in_fresh_process(estimator, model_path, input_path, output_path,
                                            estimate_config.batch_rows)
            runs.append(run)
            if on_run:
                on_run(estimator, run)
        result[estimator] = EstimatorScaling(estimator, runs, measured_at, _machine(), settings)
    return ScalingResult(result)


# ------------------------------------------------------------------------------------------------ forecasting


@dataclass(frozen=True)
class PartitionOverhead:
    """Orchestration seconds on top of the compute, and where the figures come from."""

    seconds: float
    """Per partition: what stage III does around the engine's work (input row count, output validation,
    SHA-256, progress markers)."""
    source: str
    array_seconds: float = 0.0
    """Once per job array, outside its workers' partition loops: submission, scheduling, worker process start
    and imports, process exit, noticing the end (polling)."""
    settle_seconds: float = 0.0
    """Per partition, after the array has ended: the driver verifies each output (provenance, SHA-256) one
    after the other. Grows with the partition's bytes."""


MEASURED_OVERHEADS = {
    "slurm": PartitionOverhead(
        0.087,
        "scripts/bench_forecast.py on the single-node Slurm test cluster (2 CPUs, load average ~1.2), "
        "2026-12-07: a calibration array of 2 long-lived workers × 8 partitions of 2,000 DC2 rows (BPZ): per "
        "partition 0.152 s in a worker less the engine's 0.065 s (input row count, output validation, SHA-256, "
        "markers); per array 4.7 s (submission, scheduling, worker start-up with the first output validation's "
        "set-up, noticing the end at 2 s polls); settlement 3.2 ms a partition (grows with its bytes); with these "
        "figures the 120-partition run was forecast at 14.7 s and took 15.2 s",
        array_seconds=4.68,
        settle_seconds=0.0032,
    ),
    "local": PartitionOverhead(
        11.98,
        "scripts/bench_airflow_tasks.py on this 2-core VM under load (load average ~3), 2026-11-25: pz_compute on a "
        "throwaway Airflow (LocalExecutor, 2 tasks at once), 12 partitions of 5,000 DC2 rows (BPZ), (stage III "
        "span × 2 − Σ(a + b·rows)) / 12 = 9.7, 13.1 and 12.0 s in three runs, median; each mapped task is a fresh "
        "process (task runner, DAG parse, pzlib and RAIL imports, model load, output validation, XCom)",
    ),
}
"""Per-partition orchestration overhead measured from real runs, per backend; a saved measurement in
:data:`OVERHEAD_FILE` replaces its backend's entry."""
OVERHEAD_FILE = Path("var/bench/overhead.json")
"""Later measurements (e.g. scripts/bench_airflow_tasks.py for the local Airflow backend), per backend."""


def save_overhead(backend: str, overhead: PartitionOverhead, path: str | os.PathLike = OVERHEAD_FILE) -> Path:
    """Record a measured per-partition overhead for ``backend`` in ``path`` (other backends' entries are kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(path.read_text()) if path.is_file() else {}
    recorded[backend] = asdict(overhead)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(recorded, indent=1) + "\n")
    staging.replace(path)
    return path


def load_overheads(path: str | os.PathLike = OVERHEAD_FILE) -> dict[str, PartitionOverhead]:
    """:data:`MEASURED_OVERHEADS`, updated with the measurements saved in ``path`` (if it exists)."""
    path = Path(path)
    overheads = dict(MEASURED_OVERHEADS)
    if path.is_file():
        try:
            overheads.update({backend: PartitionOverhead(**entry)
                              for backend, entry in json.loads(path.read_text()).items()})
        except (json.JSONDecodeError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not an overhead file written by save_overhead ({error})") from error
    return overheads


@dataclass
class ForecastConfig:
    """What to forecast: N objects on C cores, cut into partitions, each paying an orchestration overhead."""

    objects: int
    """Objects in the release (e.g. 20_000_000_000)."""
    cores: int
    """Cores running stage III at once, one single-threaded partition per core."""
    partition_rows: int = DEFAULT_PARTITION_ROWS
    """Rows per partition (stage I's ``partition_rows``)."""
    backend: str = "slurm"
    """Whose measured overhead applies: 'slurm' or 'local' (see :func:`load_overheads`)."""
    overhead_s_per_partition: float | None = None
    """Orchestration seconds per partition; None takes the backend's measured figure."""
    estimators: tuple[str, ...] | None = None
    """Estimators to forecast (each runs over all objects); None: every one in the scaling file."""
    long_lived_workers: bool | None = None
    """Whether each core runs one worker process through its share of partitions, paying model load once (a
    Slurm job array) rather than a fresh process per partition (the local backend's mapped tasks); None:
    True for backend 'slurm'."""

    def __post_init__(self):
        self.objects = check_count("objects", self.objects)
        self.cores = check_count("cores", self.cores)
        self.partition_rows = check_count("partition_rows", self.partition_rows)
        overhead = self.overhead_s_per_partition
        if overhead is not None and not (math.isfinite(overhead) and overhead >= 0):
            raise ValueError(f"overhead_s_per_partition must be zero or more seconds, got {overhead!r}")
        if self.estimators is not None:
            self.estimators = tuple(self.estimators)
        if self.long_lived_workers is None:
            self.long_lived_workers = self.backend == "slurm"

    def overhead(self, measured: dict[str, PartitionOverhead]) -> PartitionOverhead:
        """The user's figure if given, else the backend's entry of ``measured``."""
        if self.overhead_s_per_partition is not None:
            return PartitionOverhead(self.overhead_s_per_partition, "given by the user")
        if self.backend not in measured:
            raise ValueError(f"no measured overhead for backend {self.backend!r} (measured: "
                             f"{', '.join(measured) or 'none'}); pass overhead_s_per_partition "
                             "(--overhead-s-per-partition)")
        return measured[self.backend]


@dataclass(frozen=True)
class EstimatorForecast:
    """One estimator over the whole release."""

    estimator: str
    objects_per_second_per_core: float
    partitions: int
    partition_seconds: float
    """One full partition: a + b·partition_rows + overhead in a fresh process, a′ + b·partition_rows + overhead
    in a long-lived worker that has its model loaded."""
    core_hours: float
    """Σ over partitions of their seconds, plus each worker's setup, in hours of one core."""
    waves: int
    """Rounds of partitions: ceil(partitions / cores); each core works through at most this many."""
    wall_seconds: float
    """array_seconds + worker_setup_seconds + waves × partition_seconds + settle_seconds."""
    workers: int
    """Long-lived worker processes, one per core in use (0: a fresh process per partition)."""
    worker_setup_seconds: float
    """Model load and warm-up, once per long-lived worker (inside ``partition_seconds`` otherwise)."""
    array_seconds: float
    """The backend's overhead once per run (see :class:`PartitionOverhead`)."""
    settle_seconds: float
    """Verifying every output once the array has ended, one after the other (see :class:`PartitionOverhead`)."""
    bytes_per_object: float
    storage_bytes: float


@dataclass(frozen=True)
class Forecast:
    """The forecast of every estimator, and what it rests on."""

    config: ForecastConfig
    estimators: list[EstimatorForecast]
    overhead: PartitionOverhead
    sources: dict[str, str]
    """Per estimator: where its a, b and bytes/object come from."""

    @property
    def total_wall_seconds(self) -> float:
        """All estimators one after the other on the same cores."""
        return sum(item.wall_seconds for item in self.estimators)

    @property
    def total_core_hours(self) -> float:
        return sum(item.core_hours for item in self.estimators)

    @property
    def total_storage_bytes(self) -> float:
        return sum(item.storage_bytes for item in self.estimators)

    def as_dict(self) -> dict:
        return {"config": asdict(self.config), "overhead": asdict(self.overhead), "sources": self.sources,
                "estimators": [asdict(item) for item in self.estimators],
                "total_wall_seconds": self.total_wall_seconds, "total_core_hours": self.total_core_hours,
                "total_storage_bytes": self.total_storage_bytes}


def forecast(scaling: ScalingResult, config: ForecastConfig,
             overheads: dict[str, PartitionOverhead] | None = None) -> Forecast:
    """Wall time, core-hours and storage of stage III for ``config.objects`` objects on ``config.cores`` cores.

    Each estimator runs over every object. Partitions hold ``partition_rows`` rows (the last one the rest) and
    the cores work through them in ``waves = ceil(partitions / cores)`` rounds. With a fresh process per
    partition, one costs ``a + b·rows + overhead`` on one core and the wall time is ``waves`` of them. With
    long-lived workers (a Slurm job array: one worker per core through its share), the model load and warm-up
    ``s`` is paid once per worker, so a partition costs ``a′ + b·rows + overhead`` (``a′ + b·rows`` fitted to
    the measured seconds less ``s``: :attr:`EstimatorScaling.stream_fit`) and the wall time is
    ``array overhead + s + waves × that``, plus the settlement of every partition by the driver once the array
    has ended (``partitions × settle``). Throughput per core is assumed to hold on every core
    (the measured runs are single-threaded). ``overheads`` are the measured overheads per backend (default:
    :func:`load_overheads`).

    Raises
    ------
    ValueError
        When an asked-for estimator was not measured, the backend has no measured overhead and none was given,
        or the fit predicts a partition takes no time.
    """
    names = config.estimators or tuple(scaling.estimators)
    missing = [name for name in names if name not in scaling.estimators]
    if missing:
        raise ValueError(f"no scaling measurements for {', '.join(missing)} (measured: "
                         f"{', '.join(scaling.estimators)}); run `pz bench scaling --estimator {missing[0]}`")
    overhead = config.overhead(load_overheads() if overheads is None else overheads)
    partitions = -(-config.objects // config.partition_rows)
    waves = -(-partitions // config.cores)
    items, sources = [], {}
    workers = min(partitions, config.cores) if config.long_lived_workers else 0
    array_seconds = overhead.array_seconds
    settle_seconds = partitions * overhead.settle_seconds
    for name in names:
        measured = scaling.estimators[name]
        # A long-lived worker loads the model once (files written before the setup was recorded: the whole of a
        # per partition, as a fresh process pays it).
        setup = (measured.setup_s or 0.0) if workers else 0.0
        fit = measured.stream_fit if workers and measured.setup_s is not None else measured.fit
        partition_seconds = fit.seconds(config.partition_rows) + overhead.seconds
        if partition_seconds <= 0:
            raise ValueError(f"{name}: the fit predicts {partition_seconds:.3g} s per {config.partition_rows:,}-row "
                             "partition; measure again over a wider range of sizes")
        core_seconds = (partitions * (fit.intercept_s + overhead.seconds)
                        + fit.seconds_per_row * config.objects + workers * setup)
        items.append(EstimatorForecast(
            estimator=name, objects_per_second_per_core=fit.objects_per_second, partitions=partitions,
            partition_seconds=partition_seconds, core_hours=core_seconds / 3600, waves=waves,
            wall_seconds=array_seconds + setup + waves * partition_seconds + settle_seconds,
            bytes_per_object=measured.bytes_per_object, storage_bytes=measured.bytes_per_object * config.objects,
            workers=workers, worker_setup_seconds=setup, array_seconds=array_seconds, settle_seconds=settle_seconds,
        ))
        sizes = ", ".join(f"{run.rows:,}" for run in measured.runs)
        sources[name] = (f"a, b fitted to runs of {sizes} rows ({measured.settings.get('engine', '?')} engine, "
                         f"one thread) on {measured.machine.get('hostname', '?')} ({measured.machine.get('cpu', '?')}) "
                         f"at {measured.measured_at}; bytes/object from the {measured.runs[-1].rows:,}-row output "
                         f"({measured.settings.get('pdf_storage', '?')})")
    return Forecast(config, items, overhead, sources)


# ------------------------------------------------------------------------------------------------ reporting


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _size(size_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:,.2f} {unit}"
    return f"{size_bytes:,.0f} B"


def scaling_tables(result: ScalingResult) -> tuple:
    """(the measured runs, the fit per estimator) as two rich Tables."""
    from rich.table import Table

    runs = Table(title="pz bench scaling: fast engine, one thread, input file → stored photo-z table")
    for header in ("estimator", "rows", "seconds", "objects/s", "bytes/obj", "peak RSS", "load avg"):
        runs.add_column(header, justify="left" if header == "estimator" else "right")
    fits = Table(title="seconds = a + b·rows, least squares")
    for header in ("estimator", "a (s)", "b (µs/object)", "R²", "objects/s/core (1/b)", "bytes/obj",
                   "process start (s)"):
        fits.add_column(header, justify="left" if header == "estimator" else "right")
    for name, measured in result.estimators.items():
        for run in measured.runs:
            runs.add_row(name, f"{run.rows:,}", f"{run.seconds:.2f}", f"{run.rows / run.seconds:,.0f}",
                         f"{run.output_bytes / run.rows:.1f}", f"{run.peak_rss_mib:,.0f} MiB",
                         f"{run.load_average:.1f}")
        fit = measured.fit
        fits.add_row(name, f"{fit.intercept_s:.3f}", f"{fit.seconds_per_row * 1e6:.3f}", f"{fit.r_squared:.5f}",
                     f"{fit.objects_per_second:,.0f}", f"{measured.bytes_per_object:.1f}",
                     f"{measured.process_startup_s:.2f}")
    return runs, fits


def forecast_table(result: Forecast):
    """The forecast per estimator and in total, as a rich Table."""
    from rich.table import Table

    config = result.config
    table = Table(title=f"pz forecast: {config.objects:,} objects on {config.cores:,} cores, "
                        f"partitions of {config.partition_rows:,} rows")
    for header in ("estimator", "objects/s/core", "partitions", "s/partition", "core-hours", "wall time",
                   "bytes/obj", "storage"):
        table.add_column(header, justify="left" if header == "estimator" else "right")
    for item in result.estimators:
        table.add_row(item.estimator, f"{item.objects_per_second_per_core:,.0f}", f"{item.partitions:,}",
                      f"{item.partition_seconds:.2f}", f"{item.core_hours:,.0f}", _duration(item.wall_seconds),
                      f"{item.bytes_per_object:.1f}", _size(item.storage_bytes))
    if len(result.estimators) > 1:
        table.add_row("total", "", "", "", f"{result.total_core_hours:,.0f}",
                      _duration(result.total_wall_seconds), "", _size(result.total_storage_bytes),
                      style="bold")
    return table


def forecast_notes(result: Forecast) -> list[str]:
    """Where each figure of the forecast comes from, one line each."""
    first = result.estimators[0]
    rounds = f"ceil({first.partitions:,} partitions / {result.config.cores:,} cores) = {first.waves:,} rounds"
    if first.workers:
        lines = [f"wall time = array overhead + worker setup s + {rounds} × s/partition + settlement: "
                 f"{first.workers:,} long-lived workers load the model once each; s/partition = a′ + "
                 "b·partition_rows + overhead (a′ + b·rows fitted to the runs' seconds less s); settlement = "
                 "partitions × the driver's verification of one output"]
    else:
        lines = [f"wall time = {rounds} × s/partition, a fresh process per partition; "
                 "s/partition = a + b·partition_rows + overhead"]
    if len(result.estimators) > 1:
        lines[0] += "; total: the estimators one after the other on the same cores"
    lines += [f"{name}: {source}" for name, source in result.sources.items()]
    lines += [f"{item.estimator}: worker setup s = {item.worker_setup_seconds:.2f} s (model load and warm-up, "
              "median of the measured runs)" for item in result.estimators if item.workers]
    overhead = result.overhead
    lines.append(f"overhead {overhead.seconds:.3f} s/partition"
                 + (f" + {overhead.array_seconds:.1f} s per array" if overhead.array_seconds else "")
                 + (f" + {overhead.settle_seconds:.4f} s settlement/partition" if overhead.settle_seconds else "")
                 + f": {overhead.source}")
    return lines


def _main(argv: list[str]) -> None:
    """One measured run in this process (see ``_measure_in_fresh_process``); prints its figures as JSON."""
    estimator, model_path, input_path, output_path, batch_rows = argv
    import pandas  # noqa: F401  imported by the run anyway; not a cost of the partition

    from pzlib.bench.compare import run_ours
    from pzlib.estimate import configure_rail_logging

    configure_rail_logging("WARNING")
    figures = run_ours(estimator, Path(model_path), Path(input_path), Path(output_path), int(batch_rows))
    figures.pop("zmode")
    print(json.dumps(figures))


if __name__ == "__main__":
    _main(sys.argv[1:])
