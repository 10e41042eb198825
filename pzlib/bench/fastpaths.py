"""Stock RAIL estimator stages vs pzlib.fastpaths, side by side on the same batch, in one run.

The fast paths are only worth having if they are much faster than the stock stages while giving the same
answers, and on a shared machine timings only mean something next to each other. So this script trains
(once, cached) the RAIL models on the DC2 training set, builds the stock stage exactly as
``PartitionEstimator`` does and the fast estimator from the same model and stage options, and times both on
the same in-memory batch of the DC2 validation set, alternating stock and fast runs and keeping each side's
best. It prints objects/s for each side, their ratio, and how many zmodes agree and the largest PDF
difference, as a sanity check (the equality tests under tests/pzlib/fastpaths are the real check).

Times are wall clock, one process each, from input columns to output arrays (the stock side to its qp
ensemble); model loading and stage construction are outside the clock on both sides. Stock FlexZBoost
predicts through scikit-learn's MultiOutputRegressor, which runs joblib worker processes: that is how the
stock stage runs, so it is timed that way.

FlexZBoost's fast path is also timed with xgboost's own predictor for its trees (``tree_engine="xgboost"``)
instead of the compiled trees, in the same loop, so the gain of the compiled trees shows on its own.

Usage: .venv/bin/python scripts/bench_fastpaths.py [--estimators bpz fzboost] [--rows N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np


def _rail_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return options


def _validation_columns(config, rows: int | None) -> dict[str, np.ndarray]:
    """The DC2 validation set's stage I columns (float32 magnitudes, 99 for non-detections)."""
    import tables_io

    from pzlib.samples import dc2_sample_paths

    table = tables_io.read(str(dc2_sample_paths()[1]))["photometry"]
    return {name: np.asarray(table[name][:rows]) for name in ("id", *config.input_columns())}


def _stock_outputs(stage, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(PDF values, zmode) of the stock stage's ensemble for one batch."""
    ensemble = stage.estimate(columns).data
    ancil = ensemble.ancil
    zmode = np.asarray(ancil["zmode" if "zmode" in ancil else "mode"]).reshape(-1)
    return np.asarray(ensemble.objdata["yvals"]), zmode


def bench_estimator(estimator: str, rows: int | None, repeats: int, workdir: Path, rail_options: dict) -> dict:
    """Best-of-``repeats`` objects/s of the stock stage and the fast path on the same batch."""
    from pzlib.estimate import EstimateConfig, PartitionEstimator, train
    from pzlib.fastpaths import FastFlexZBoost, make_fast_estimator
    from pzlib.samples import dc2_sample_paths

    config = EstimateConfig(estimator, rail_options=rail_options)
    model_path = train(dc2_sample_paths()[0], workdir / f"{estimator}.pkl", config)
    columns = _validation_columns(config, rows)
    n_objects = len(columns["id"])
    stock_stage = PartitionEstimator(model_path, config).stage
    started = time.perf_counter()
    with open(model_path, "rb") as handle:
        model = pickle.load(handle)
    fast = make_fast_estimator(estimator, model, config.stage_options())
    fast_setup = time.perf_counter() - started
    # FlexZBoost: also its fast path with xgboost's own predictor for the trees, for comparison
    reference = (FastFlexZBoost(model, config.stage_options(), tree_engine="xgboost")
                 if estimator == "fzboost" else None)
    warm_up = {name: values[:64] for name, values in columns.items()}
    _stock_outputs(stock_stage, {name: values.copy() for name, values in warm_up.items()})
    for estimate in (fast, reference):
        if estimate is not None:
            estimate.estimate(warm_up)
    stock_seconds, fast_seconds, reference_seconds = [], [], []
    for _ in range(repeats):
        batch = {name: values.copy() for name, values in columns.items()}  # the stock stage edits its input
        started = time.perf_counter()
        stock_pdfs, stock_zmode = _stock_outputs(stock_stage, batch)
        stock_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = fast.estimate(columns)
        fast_seconds.append(time.perf_counter() - started)
        if reference is not None:
            started = time.perf_counter()
            reference.estimate(columns)
            reference_seconds.append(time.perf_counter() - started)
    stock_rate, fast_rate = n_objects / min(stock_seconds), n_objects / min(fast_seconds)
    return {"estimator": estimator, "rows": n_objects, "stock_objects_per_second": stock_rate,
            "fast_objects_per_second": fast_rate, "ratio": fast_rate / stock_rate,
            "fast_setup_seconds": fast_setup,
            "xgboost_trees_objects_per_second": n_objects / min(reference_seconds) if reference_seconds else None,
            "zmode_identical": int(np.sum(stock_zmode == result.zmode)),
            "max_pdf_difference": float(np.max(np.abs(stock_pdfs - result.pdfs)))}


def format_results(results: list[dict], repeats: int) -> str:
    lines = [f"bench_fastpaths: DC2 validation, best of {repeats}, one process each, wall clock",
             f"  {'estimator':9s} {'objects':>8s} {'stock obj/s':>12s} {'fast obj/s':>11s} {'ratio':>7s} "
             f"{'zmode identical':>16s} {'max |Δpdf|':>11s} {'fast setup':>10s}"]
    for result in results:
        lines.append(f"  {result['estimator']:9s} {result['rows']:8,d} {result['stock_objects_per_second']:12,.0f} "
                     f"{result['fast_objects_per_second']:11,.0f} {result['ratio']:6.1f}x "
                     f"{result['zmode_identical']:>7,d}/{result['rows']:<8,d} "
                     f"{result['max_pdf_difference']:11.1e} {result['fast_setup_seconds']:9.1f}s")
        if result.get("xgboost_trees_objects_per_second"):
            rate = result["xgboost_trees_objects_per_second"]
            lines.append(f"  {'':9s} {'':8s} {'':12s} {rate:11,.0f} {rate / result['stock_objects_per_second']:6.1f}x "
                         f"with xgboost's predictor for the trees (compiled trees: "
                         f"{result['fast_objects_per_second'] / rate:.2f}x that)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimators", nargs="+", default=["bpz", "fzboost"], choices=["bpz", "fzboost"])
    parser.add_argument("--rows", type=int, default=None, help="first N validation rows (default: all 20,449)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side; the best counts")
    parser.add_argument("--workdir", type=Path, default=Path("var/bench_fastpaths"),
                        help="where the trained models are cached")
    parser.add_argument("--rail-option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra RAIL stage option for training and both stages (JSON value), "
                             "e.g. nbump=3 for a quicker FlexZBoost training")
    args = parser.parse_args(argv)
    if args.repeats <= 0 or (args.rows is not None and args.rows <= 0):
        parser.error("--rows and --repeats must be positive")

    from pzlib.estimate import configure_rail_logging

    configure_rail_logging("WARNING")
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = [bench_estimator(estimator, args.rows, args.repeats, args.workdir, _rail_options(args.rail_option))
               for estimator in args.estimators]
    print(format_results(results, args.repeats))


if __name__ == "__main__":
    main()
