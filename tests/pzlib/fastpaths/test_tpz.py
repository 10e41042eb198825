"""pzlib.fastpaths.tpz: one prediction per tree for a whole batch gives stock RAIL's TPZ answers, object for
object, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pzlib.estimate import EstimateConfig, PartitionEstimator, train
from pzlib.fastpaths import FastTPZlite, make_fast_estimator

pytestmark = pytest.mark.slow

SLICE_ROWS = 1_000
"""Validation rows compared (the stock stage takes ~4 s per thousand objects here)."""


@pytest.fixture(scope="session")
def tpz_model(dc2_paths, tmp_path_factory) -> Path:
    """TPZ model trained by RAIL with the platform's defaults (40 trees, ~3 s)."""
    return train(dc2_paths[0], tmp_path_factory.mktemp("fastpaths") / "tpz.pkl", EstimateConfig("tpz"))


def assert_same_as_stock(result, ensemble):
    """Grid, zmode and PDFs identical to the stock stage's ensemble."""
    np.testing.assert_array_equal(result.grid, np.asarray(ensemble.metadata["xvals"]).reshape(-1))
    np.testing.assert_array_equal(result.zmode, np.asarray(ensemble.ancil["zmode"]).reshape(-1))
    np.testing.assert_array_equal(result.pdfs, ensemble.objdata["yvals"])
    assert result.zmean is None


def test_validation_slice_equals_stock_rail(tpz_model, validation_columns, run_stock, load_model):
    batch = {name: values[:SLICE_ROWS] for name, values in validation_columns.items()}
    config = EstimateConfig("tpz")
    before = {name: values.copy() for name, values in batch.items()}
    result = make_fast_estimator("tpz", load_model(tpz_model), config.stage_options()).estimate(batch)
    assert result.pdfs.shape == (SLICE_ROWS, 301)
    assert all(np.array_equal(batch[name], before[name]) for name in batch)  # the caller's columns are untouched
    assert_same_as_stock(result, run_stock(tpz_model, config, batch))


def test_non_detections_equal_stock_rail(tpz_model, validation_columns, run_stock, load_model):
    batch = {name: values[SLICE_ROWS:SLICE_ROWS + 500].copy() for name, values in validation_columns.items()}
    rng = np.random.default_rng(5)
    for band in "ugrizy":
        batch[f"mag_{band}_lsst"][rng.random(500) < 0.15] = 99.0
        batch[f"mag_err_{band}_lsst"][rng.random(500) < 0.05] = 99.0  # an error alone marks it too
    config = EstimateConfig("tpz")
    result = FastTPZlite(load_model(tpz_model), config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(tpz_model, config, batch))


def test_photoz_tables_of_both_engines_are_equal(tpz_model, validation_columns):
    """The fast engine is the default for tpz, and its stored photo-z table is the stock engine's."""
    batch = pa.table({name: values[:300] for name, values in validation_columns.items()})
    tables = {engine: PartitionEstimator(tpz_model, EstimateConfig("tpz", engine=engine)).estimate_batch(batch)
              for engine in ("fast", "rail")}
    assert PartitionEstimator(tpz_model, EstimateConfig("tpz")).fast is not None
    assert tables["fast"].equals(tables["rail"])


def test_native_trees_are_refused(tpz_model, load_model):
    model = {**load_model(tpz_model), "tree_strategy": "native"}
    with pytest.raises(ValueError, match="tree_strategy 'sklearn'.*use the stock RAIL engine"):
        FastTPZlite(model, EstimateConfig("tpz").stage_options())
