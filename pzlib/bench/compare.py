"""``pz bench``: stock RAIL and our streaming path on the same input and model, side by side in one run.

Stock RAIL runs the estimator's own stage file → file (HDF5 in, qp HDF5 out, RAIL's default chunks), the way
LIneA's rail-estimate does; for FlexZBoost it is asked for its mode, the point estimate our tables carry.
Ours streams the same file through stage I cleaning and the estimator into a photo-z Parquet table.

What is timed, on both sides alike: each run is a fresh process, so peak RSS (up to the end of the stream,
before the benchmark reads the output back) and import state are its own.
*Setup* is what a process does once before its first object — the stage or fast estimator built, the model
and BPZ's templates loaded, compiled kernels loaded (ours warms them on 64 rows) — and is reported apart.
*Stream* is the rest, from the first input batch to the stored output closed: reading, cleaning, estimating,
summarizing, encoding, writing. Objects/s are over the stream; objects per CPU-second count every thread
and child process (stock FlexZBoost predicts in joblib worker processes on all cores), so they are the
per-core figures. The sides run interleaved ``repeats`` times and each keeps its best stream, so a busy
moment on a shared machine does not land on one side only.

The report also gives bytes per object on disk, how many zmodes are identical (as stored: float32), the
PDF fidelity (per object max |stored CDF − CDF of the stock PDF| over the grid; see :func:`pzlib.pdf.cdf_errors`
for why not qp's own ``cdf``), σ_NMAD / outlier rate / bias against the true redshifts, and our path on the
same rows split into ``cores`` partitions: one worker process doing all of them, then ``cores`` worker
processes at once (their streams start together), with their ratio and each process's peak RSS; and stage I's
throughput on the same rows, in a process of its own with its peak RSS (:mod:`pzlib.bench.stage1`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pzlib.bench.inputs import split_input, tiled_input
from pzlib.validate.metrics import point_metrics

WARM_UP_ROWS = 64
"""Rows our side estimates during setup, so that compiled kernels are loaded before the stream starts."""


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started its program. Not ``ru_maxrss``: Linux carries
    into it the parent's resident size at the fork/exec that started us (the benchmark's parent is large)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """CPU time of this process and its children so far (live ones too: joblib keeps its workers)."""
    import psutil

    process = psutil.Process()
    times = process.cpu_times()
    # This process's own time from its nanosecond clock: cpu_times() counts 10 ms ticks, too coarse for short runs.
    total = time.process_time() + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # gone between the listing and the reading
            continue
        total += child_times.user + child_times.system
    return total


class _Clock:
    """A side's timing: setup from construction to :meth:`start_stream`, the stream from there to
    :meth:`stop_stream`, with the CPU time of the stream, its wall-clock window (to line up processes) and
    the peak RSS up to its end."""

    def __init__(self):
        self.started = time.perf_counter()
        self.setup_finished = None

    def finish_setup(self) -> None:
        """Setup is over (the stream may still wait for other processes, see :func:`_wait_for_workers`)."""
        self.setup_finished = time.perf_counter()

    def start_stream(self) -> None:
        self.stream_cpu, self.stream_started, self.stream_epoch = cpu_seconds(), time.perf_counter(), time.time()
        if self.setup_finished is None:
            self.setup_finished = self.stream_started

    def stop_stream(self) -> None:
        self.stream_cpu = cpu_seconds() - self.stream_cpu
        self.stream_finished, self.stream_end_epoch = time.perf_counter(), time.time()
        self.peak_rss = peak_rss_bytes()  # before the benchmark reads the output back

    def figures(self, rows: int, output_bytes: int) -> dict:
        return {"setup_seconds": self.setup_finished - self.started,
                "stream_seconds": self.stream_finished - self.stream_started,
                "seconds": self.stream_finished - self.started, "cpu_seconds": self.stream_cpu,
                "stream_window": [self.stream_epoch, self.stream_end_epoch], "rows": rows,
                "peak_rss": self.peak_rss, "bytes": output_bytes}


def run_stock(estimator: str, model_path: Path, input_path: Path, output_path: Path) -> dict:
    """Stock RAIL, file → file, in this process; the figures of this module's timing, the object ids and the
    estimator's own point estimates (zmode, and zmean where it has its own; see
    :func:`pzlib.estimate.own_point_estimates`)."""
    import qp

    from pzlib.estimate import EstimateConfig, own_point_estimates, unique_stage_name

    config = EstimateConfig(estimator)
    options = {**config.stage_options(), "hdf5_groupname": "photometry"}
    if estimator == "fzboost":
        options["calculated_point_estimates"] = ["mode"]
    output_path.unlink(missing_ok=True)
    clock = _Clock()
    stage = config.classes.estimator.make_stage(name=unique_stage_name(f"stock_{estimator}"),
                                                model=str(model_path), input=str(input_path),
                                                output=str(output_path), **options)
    # RAIL's run() loads the model, opens the input, then _initialize_run() (BPZ: the templates), then
    # streams chunks; the stream clock starts when that setup returns.
    initialize_run = stage._initialize_run

    def initialize_then_start_clock():
        initialize_run()
        clock.start_stream()

    stage._initialize_run = initialize_then_start_clock
    stage.run()
    stage.finalize()
    clock.stop_stream()
    ensemble = qp.read(str(output_path))
    points = {}
    for column, candidates in own_point_estimates(estimator).items():
        found = next((name for name in candidates if name in ensemble.ancil), None)
        if found is not None:
            points[column] = np.asarray(ensemble.ancil[found]).reshape(-1).tolist()
    return {**clock.figures(int(ensemble.npdf), output_path.stat().st_size), **points,
            "id": np.asarray(ensemble.ancil["id"]).reshape(-1).tolist()}


def run_ours(estimator: str, model_path: Path, input_path: Path | list[Path], output_path: Path | list[Path],
             batch_rows: int) -> dict:
    """Our path in this process: one estimator set up once, then each input (a partition) streamed through
    stage I cleaning and the estimator into its output; the figures of this module's timing, and zmode."""
    import pyarrow.parquet as pq

    from pzlib.catalog import open_catalog
    from pzlib.estimate import EstimateConfig, PartitionEstimator, estimate_partition
    from pzlib.preprocess import PreprocessConfig, clean_batch

    input_paths = [input_path] if isinstance(input_path, Path) else input_path
    output_paths = [output_path] if isinstance(output_path, Path) else output_path
    for path in output_paths:
        path.unlink(missing_ok=True)
    cleaning = PreprocessConfig()
    config = EstimateConfig(estimator, batch_rows=batch_rows)
    clock = _Clock()
    loaded = PartitionEstimator(model_path, config)
    reader = open_catalog(input_paths[0])
    first_rows = next(reader.iter_batches(cleaning.input_columns(reader.column_names), WARM_UP_ROWS))
    loaded.estimate_batch(clean_batch(first_rows, cleaning))
    clock.finish_setup()
    _wait_for_workers()
    clock.start_stream()
    for source, target in zip(input_paths, output_paths, strict=True):
        estimate_partition(source, target, loaded, cleaning=cleaning)
    clock.stop_stream()
    zmode = np.concatenate([pq.read_table(path, columns=["zmode"]).column("zmode").to_numpy()
                            for path in output_paths])
    output_bytes = sum(path.stat().st_size for path in output_paths)
    return {**clock.figures(int(zmode.size), output_bytes), "zmode": zmode.tolist()}


BARRIER_VARIABLE = "PZ_BENCH_BARRIER"
"""``folder:count``: worker processes of :func:`run_workers` start streaming together, once all ``count``
have finished their setup (each leaves a file in ``folder``), so the job's stream window is their
concurrent work, not the stagger of their imports and model loads."""


def _wait_for_workers(timeout: float = 120.0) -> None:
    barrier = os.environ.get(BARRIER_VARIABLE)
    if not barrier:
        return
    folder, count = barrier.rsplit(":", 1)
    Path(folder, f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while len(list(Path(folder).iterdir())) < int(count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{folder}: the other benchmark workers did not get ready within {timeout:.0f} s")
        time.sleep(0.001)


def _side_command(side: str, estimator: str, model_path: Path, input_paths: list[Path], output_paths: list[Path],
                  batch_rows: int) -> list[str]:
    return [sys.executable, "-m", "pzlib.bench.compare", side, estimator, str(model_path),
            ",".join(map(str, input_paths)), ",".join(map(str, output_paths)), str(batch_rows)]


def _result(completed_stdout: str, side: str, returncode: int, stderr: str) -> dict:
    if returncode != 0:
        raise RuntimeError(f"{side} side of the benchmark failed:\n{stderr[-3000:]}")
    return json.loads(completed_stdout.strip().splitlines()[-1])


def _run_side(side: str, estimator: str, model_path: Path, input_path: Path, output_path: Path,
              batch_rows: int) -> dict:
    """One side in a fresh interpreter, so peak RSS and import state are its own. Each side runs as it runs in
    production: stock RAIL with its own threads and joblib workers, ours single-threaded as a stage III worker (a
    second OpenBLAS thread would add CPU-seconds to its matrix product and no speed)."""
    from pzlib.cluster.local import thread_environment

    environment = {**os.environ, **thread_environment(1)} if side == "ours" else None
    completed = subprocess.run(_side_command(side, estimator, model_path, [input_path], [output_path], batch_rows),
                               capture_output=True, text=True, env=environment)
    return _result(completed.stdout, side, completed.returncode, completed.stderr)


def run_workers(estimator: str, model_path: Path, partitions: list[Path], workdir: Path, batch_rows: int,
                workers: int) -> dict:
    """Our path over ``partitions`` in ``workers`` processes at once (partitions dealt out in turn), as
    stage III's local backend runs them, starting their streams together once all are set up: the job's
    stream time (first stream start to last stream end),
    objects/s, objects per CPU-second (if it holds up with more workers, what they lack is free cores, not
    efficiency), and each process's peak RSS. Each worker is given one core, as the cluster backends give a
    task its CPUs: its numeric libraries run one thread (OpenBLAS would otherwise spread one worker's matrix
    products over every core, and the 1-worker run would not be one core's)."""
    from pzlib.cluster.local import thread_environment

    processes = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix=".barrier-") as barrier:
        environment = {**os.environ, **thread_environment(1), BARRIER_VARIABLE: f"{barrier}:{workers}"}
        for worker in range(workers):
            inputs = partitions[worker::workers]
            outputs = [workdir / f"workers{workers}_{estimator}_{path.stem}.parquet" for path in inputs]
            command = _side_command("ours", estimator, model_path, inputs, outputs, batch_rows)
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                              env=environment))
        results = []
        try:
            for process in processes:
                stdout, stderr = process.communicate()
                results.append(_result(stdout, f"{workers}-worker", process.returncode, stderr))
        finally:  # a failed worker leaves the others waiting at the barrier
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
    windows = np.array([result["stream_window"] for result in results])
    stream_seconds = float(windows[:, 1].max() - windows[:, 0].min())
    rows = sum(result["rows"] for result in results)
    return {"workers": workers, "rows": rows, "stream_seconds": stream_seconds,
            "objects_per_second": rows / stream_seconds,
            "objects_per_cpu_second": rows / sum(result["cpu_seconds"] for result in results),
            "peak_rss_mib": [result["peak_rss"] / 2**20 for result in results]}


def run_benchmark(estimator: str, rows: int | None = None, workdir: Path = Path("var/bench"),
                  batch_rows: int | None = None, repeats: int = 2, cores: int = 2) -> dict:
    """Train (once), then run stock RAIL and ours on the same input, interleaved ``repeats`` times (each
    side keeps its best stream), and ours in 1 and ``cores`` worker processes (``cores`` ≤ 1: skipped);
    returns the figures. ``batch_rows`` None: the estimator's own, as in stage III."""
    import pyarrow.parquet as pq
    import qp
    import tables_io

    from pzlib import pdf
    from pzlib.bench.stage1 import measure_stage1
    from pzlib.estimate import EstimateConfig, train
    from pzlib.samples import dc2_sample_paths

    if repeats <= 0:
        raise ValueError(f"repeats must be positive, got {repeats}")
    workdir.mkdir(parents=True, exist_ok=True)
    training_path, _ = dc2_sample_paths()
    config = EstimateConfig(estimator, batch_rows=batch_rows)
    batch_rows = config.batch_rows
    model_path = train(training_path, workdir / f"{estimator}.pkl", config)
    input_path = tiled_input(rows, workdir)
    truth = np.asarray(tables_io.read(str(input_path))["photometry"]["redshift"])
    outputs = {"stock": workdir / f"stock_{estimator}.hdf5", "ours": workdir / f"ours_{estimator}.parquet"}
    load_before = os.getloadavg()[0]
    runs = {"stock": [], "ours": []}
    for _ in range(repeats):
        for side in ("stock", "ours"):
            runs[side].append(_run_side(side, estimator, model_path, input_path, outputs[side], batch_rows))
    report = {"estimator": estimator, "rows": runs["ours"][0]["rows"], "input": str(input_path),
              "batch_rows": batch_rows, "repeats": repeats, "load_average": [load_before]}
    zmodes = {}
    for side, side_runs in runs.items():
        best = min(side_runs, key=lambda run: run["stream_seconds"])
        zmodes[side] = np.asarray(best["zmode"])
        report[side] = {
            "objects_per_second": best["rows"] / best["stream_seconds"],
            "objects_per_cpu_second": best["rows"] / best["cpu_seconds"],
            "objects_per_second_with_setup": best["rows"] / best["seconds"],
            "stream_seconds": best["stream_seconds"],
            "stream_seconds_all": [run["stream_seconds"] for run in side_runs],
            "setup_seconds": best["setup_seconds"],
            "peak_rss_mib": max(run["peak_rss"] for run in side_runs) / 2**20,
            "bytes_per_object": best["bytes"] / best["rows"],
            "metrics": point_metrics(zmodes[side], truth).as_dict(),
        }
    report["speedup"] = report["ours"]["objects_per_second"] / report["stock"]["objects_per_second"]
    report["speedup_per_cpu_second"] = (report["ours"]["objects_per_cpu_second"]
                                        / report["stock"]["objects_per_cpu_second"])
    report["speedup_with_setup"] = (report["ours"]["objects_per_second_with_setup"]
                                    / report["stock"]["objects_per_second_with_setup"])
    report["zmode_identical"] = int(np.sum(zmodes["ours"] == zmodes["stock"].astype(np.float32)))
    report["max_zmode_difference"] = float(np.max(np.abs(zmodes["ours"] - zmodes["stock"])))
    ours_table = pq.read_table(outputs["ours"])
    stock_ensemble = qp.read(str(outputs["stock"]))
    grid = pdf.grid_from_schema(ours_table.schema)
    # An interp ensemble's own values on its grid (BPZ, FlexZBoost, TPZ...); other kinds (CMNN's and GPz's
    # Gaussians) evaluated on the table's grid, as stage III stores them.
    stock_pdfs = (np.asarray(stock_ensemble.objdata["yvals"]) if "yvals" in stock_ensemble.objdata
                  else np.asarray(stock_ensemble.pdf(grid)))
    errors = pdf.cdf_errors(ours_table, stock_pdfs)
    qp_errors = np.max(np.abs(pdf.cdf_on_grid(ours_table) - stock_ensemble.cdf(grid)), axis=1)
    report["cdf_error"] = {"p99": float(np.quantile(errors, 0.99)), "max": float(errors.max()),
                           "qp_cdf_max": float(qp_errors.max()),
                           "representation": pdf.storage_metadata(ours_table.schema)["representation"]}
    report["stage1"] = measure_stage1(input_path, workdir, repeats)
    if cores > 1:
        partitions = split_input(input_path, cores, workdir)
        one, many = (run_workers(estimator, model_path, partitions, workdir, batch_rows, workers)
                     for workers in (1, cores))
        report["cores"] = {"partitions": cores, "one_worker": one, "workers": many,
                           "ratio": many["objects_per_second"] / one["objects_per_second"]}
    report["load_average"].append(os.getloadavg()[0])
    return report


def format_report(report: dict) -> str:
    """The benchmark as a small text table."""
    from pzlib.bench.stage1 import format_stage1

    lines = [f"pz bench: {report['estimator']} on {report['rows']:,} objects ({Path(report['input']).name}), "
             f"one process each (ours single-threaded), best stream of {report['repeats']} interleaved runs "
             f"(load average {report['load_average'][0]:.1f} → {report['load_average'][-1]:.1f})"]
    lines.append(f"  {'':6s} {'objects/s':>10s} {'obj/CPU-s':>10s} {'setup':>7s} {'peak RSS':>10s} {'bytes/obj':>10s} "
                 f"{'σ_NMAD':>8s} {'outliers':>9s} {'bias':>8s}")
    for name in ("stock", "ours"):
        side = report[name]
        metrics = side["metrics"]
        lines.append(f"  {name:6s} {side['objects_per_second']:10,.0f} {side['objects_per_cpu_second']:10,.0f} "
                     f"{side['setup_seconds']:6.2f}s {side['peak_rss_mib']:6.0f} MiB {side['bytes_per_object']:10,.1f} "
                     f"{metrics['sigma_nmad']:8.4f} {100 * metrics['outlier_rate']:8.2f}% {metrics['bias']:+8.4f}")
    lines.append(f"  speed ratio ours/stock: {report['speedup']:.2f}x per process (stream), "
                 f"{report['speedup_per_cpu_second']:.2f}x per CPU-second, "
                 f"{report['speedup_with_setup']:.2f}x with setup")
    lines.append(f"  zmode identical (as stored, float32): {report['zmode_identical']:,}/{report['rows']:,}; "
                 f"max |zmode ours − stock float64|: {report['max_zmode_difference']:.2e}")
    fidelity = report["cdf_error"]
    lines.append(f"  PDF storage ({fidelity['representation']}): max |stored CDF − stock PDF's CDF| per object: "
                 f"99th percentile {fidelity['p99']:.4f}, worst {fidelity['max']:.4f} "
                 f"(vs qp.interp's cdf, which is off at the grid's first point: worst {fidelity['qp_cdf_max']:.4f})")
    lines.append(format_stage1(report["stage1"]))
    if "cores" in report:
        cores = report["cores"]
        one, many = cores["one_worker"], cores["workers"]
        rss = ", ".join(f"{value:.0f}" for value in many["peak_rss_mib"])
        lines.append(f"  ours on {cores['partitions']} partitions: "
                     f"1 worker {one['objects_per_second']:,.0f} objects/s, "
                     f"{many['workers']} workers {many['objects_per_second']:,.0f} objects/s: {cores['ratio']:.2f}x "
                     f"(objects/CPU-s {one['objects_per_cpu_second']:,.0f} → {many['objects_per_cpu_second']:,.0f}); "
                     f"peak RSS per process {one['peak_rss_mib'][0]:.0f} MiB (1 worker), {rss} MiB")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    side, estimator, model_path, input_paths, output_paths, batch_rows = argv
    import pandas  # noqa: F401  both sides use pandas underneath; import it before the clock starts

    from pzlib.estimate import configure_rail_logging

    configure_rail_logging("WARNING")
    inputs = [Path(path) for path in input_paths.split(",")]
    outputs = [Path(path) for path in output_paths.split(",")]
    if side == "stock":
        figures = run_stock(estimator, Path(model_path), inputs[0], outputs[0])
    else:
        figures = run_ours(estimator, Path(model_path), inputs, outputs, int(batch_rows))
    print(json.dumps(figures))


if __name__ == "__main__":
    _main(sys.argv[1:])
