"""``pz bench``: stock RAIL and our streaming path on the same input and model, side by side in one run.

Stock RAIL runs the estimator's own stage file → file (HDF5 in, qp HDF5 out), the way LIneA's rail-estimate
does; ours streams the same file through stage I cleaning and the estimator into a photo-z Parquet table.
Each side runs in its own fresh process so its peak RSS is its own. The report gives objects/s for each and
their ratio, peak RSS, bytes per object on disk, the largest zmode difference, and σ_NMAD / outlier rate /
bias against the true redshifts.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pzlib.validate.metrics import point_metrics


def tiled_input(rows: int | None, workdir: Path) -> Path:
    """The DC2 validation set, or ``rows`` rows of it tiled with fresh ids (RAIL's HDF5 layout)."""
    import tables_io

    from pzlib.pipeline import dc2_sample_paths

    source = dc2_sample_paths()[1]
    if rows is None:
        return source
    target = workdir / f"dc2_validation_x{rows}.hdf5"
    if not target.exists():
        columns = tables_io.read(str(source))["photometry"]
        n_source = len(columns["id"])
        take = np.arange(rows) % n_source
        tiled = {name: values[take] for name, values in columns.items()}
        tiled["id"] = np.arange(rows, dtype=np.int64)
        staging = target.with_name(f".tmp-{target.name}")  # tables_io picks the format from the suffix
        tables_io.write({"photometry": tiled}, str(staging))
        staging.replace(target)
    return target


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_stock(estimator: str, model_path: Path, input_path: Path, output_path: Path) -> dict:
    """Stock RAIL, file → file, in this process."""
    from pzlib.estimate import EstimateConfig, _unique_stage_name

    config = EstimateConfig(estimator)
    options = {**config.stage_options(), "hdf5_groupname": "photometry"}
    if estimator == "fzboost":
        options["calculated_point_estimates"] = ["mode"]
    output_path.unlink(missing_ok=True)
    started = time.perf_counter()
    stage = config.classes.estimator.make_stage(name=_unique_stage_name(f"stock_{estimator}"),
                                                model=str(model_path), input=str(input_path),
                                                output=str(output_path), **options)
    stage.run()
    stage.finalize()
    seconds = time.perf_counter() - started
    import qp

    ensemble = qp.read(str(output_path))
    zmode = np.asarray(ensemble.ancil["zmode" if "zmode" in ensemble.ancil else "mode"]).reshape(-1)
    return {"seconds": seconds, "rows": int(zmode.size), "peak_rss": _peak_rss_bytes(),
            "bytes": output_path.stat().st_size, "zmode": zmode.tolist()}


def run_ours(estimator: str, model_path: Path, input_path: Path, output_path: Path, batch_rows: int) -> dict:
    """Our path: stream the same file through stage I cleaning and the estimator, in this process."""
    import pyarrow.parquet as pq

    from pzlib.estimate import EstimateConfig, PartitionEstimator, estimate_partition
    from pzlib.preprocess import PreprocessConfig

    output_path.unlink(missing_ok=True)
    config = EstimateConfig(estimator, batch_rows=batch_rows)
    started = time.perf_counter()
    loaded = PartitionEstimator(model_path, config)
    estimate_partition(input_path, output_path, loaded, cleaning=PreprocessConfig())
    seconds = time.perf_counter() - started
    zmode = pq.read_table(output_path, columns=["zmode"]).column("zmode").to_numpy()
    return {"seconds": seconds, "rows": int(zmode.size), "peak_rss": _peak_rss_bytes(),
            "bytes": output_path.stat().st_size, "zmode": zmode.tolist()}


def _run_side(side: str, estimator: str, model_path: Path, input_path: Path, output_path: Path,
              batch_rows: int) -> dict:
    """One side in a fresh interpreter, so peak RSS and import state are its own."""
    command = [sys.executable, "-m", "pzlib.bench", side, estimator, str(model_path), str(input_path),
               str(output_path), str(batch_rows)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{side} side of the benchmark failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_benchmark(estimator: str, rows: int | None = None, workdir: Path = Path("var/bench"),
                  batch_rows: int = 50_000) -> dict:
    """Train (once), then run stock RAIL and ours on the same input; returns the figures."""
    import tables_io

    from pzlib.estimate import EstimateConfig, train
    from pzlib.pipeline import dc2_sample_paths

    workdir.mkdir(parents=True, exist_ok=True)
    training_path, _ = dc2_sample_paths()
    model_path = train(training_path, workdir / f"{estimator}.pkl", EstimateConfig(estimator))
    input_path = tiled_input(rows, workdir)
    truth = np.asarray(tables_io.read(str(input_path))["photometry"]["redshift"])
    stock = _run_side("stock", estimator, model_path, input_path, workdir / f"stock_{estimator}.hdf5", batch_rows)
    ours = _run_side("ours", estimator, model_path, input_path, workdir / f"ours_{estimator}.parquet", batch_rows)
    report = {"estimator": estimator, "rows": ours["rows"], "input": str(input_path)}
    for name, side in (("stock", stock), ("ours", ours)):
        zmode = np.asarray(side.pop("zmode"))
        report[name] = {
            "objects_per_second": side["rows"] / side["seconds"],
            "seconds": side["seconds"],
            "peak_rss_mib": side["peak_rss"] / 2**20,
            "bytes_per_object": side["bytes"] / side["rows"],
            "metrics": point_metrics(zmode, truth).as_dict(),
        }
        report[name]["_zmode"] = zmode
    report["speedup"] = report["ours"]["objects_per_second"] / report["stock"]["objects_per_second"]
    report["max_zmode_difference"] = float(np.max(np.abs(report["ours"].pop("_zmode")
                                                         - report["stock"].pop("_zmode"))))
    report["cdf_error"] = _cdf_fidelity(workdir / f"stock_{estimator}.hdf5", workdir / f"ours_{estimator}.parquet")
    return report


def _cdf_fidelity(stock_path: Path, ours_path: Path) -> dict:
    """Per-object max |CDF ours − CDF stock| on the grid: what our stored PDFs lose against RAIL's."""
    import pyarrow.parquet as pq
    import qp

    from pzlib import pdf

    ours = pq.read_table(ours_path)
    grid = pdf.grid_from_schema(ours.schema)
    errors = np.max(np.abs(pdf.cdf_on_grid(ours) - qp.read(str(stock_path)).cdf(grid)), axis=1)
    return {"p99": float(np.quantile(errors, 0.99)), "max": float(errors.max()),
            "representation": pdf.storage_metadata(ours.schema)["representation"]}


def format_report(report: dict) -> str:
    """The benchmark as a small text table."""
    lines = [f"pz bench: {report['estimator']} on {report['rows']:,} objects ({Path(report['input']).name}), "
             "one process each"]
    lines.append(f"  {'':6s} {'objects/s':>11s} {'peak RSS':>10s} {'bytes/obj':>10s} {'σ_NMAD':>8s} "
                 f"{'outliers':>9s} {'bias':>8s}")
    for name in ("stock", "ours"):
        side = report[name]
        metrics = side["metrics"]
        lines.append(f"  {name:6s} {side['objects_per_second']:11,.0f} {side['peak_rss_mib']:8.0f} MiB "
                     f"{side['bytes_per_object']:10,.0f} {metrics['sigma_nmad']:8.4f} "
                     f"{100 * metrics['outlier_rate']:8.2f}% {metrics['bias']:+8.4f}")
    lines.append(f"  speed ratio ours/stock: {report['speedup']:.2f}x   "
                 f"max |zmode ours − stock|: {report['max_zmode_difference']:.2e}")
    fidelity = report["cdf_error"]
    lines.append(f"  PDF storage ({fidelity['representation']}): max |CDF ours − stock| per object: "
                 f"99th percentile {fidelity['p99']:.4f}, worst {fidelity['max']:.4f}")
    return "\n".join(lines)


def _main(argv: list[str]) -> None:
    side, estimator, model_path, input_path, output_path, batch_rows = argv
    import pandas  # noqa: F401  both sides use pandas underneath; import it before the clock starts

    from pzlib.estimate import configure_rail_logging

    configure_rail_logging("WARNING")
    runner = run_stock if side == "stock" else run_ours
    arguments = [estimator, Path(model_path), Path(input_path), Path(output_path)]
    if side == "ours":
        arguments.append(int(batch_rows))
    print(json.dumps(runner(*arguments)))


if __name__ == "__main__":
    _main(sys.argv[1:])
