"""pzlib.fastpaths.knn: the Gaussian mixtures evaluated once, one component at a time, give stock RAIL's KNN
answers, object for object, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pzlib.estimate import EstimateConfig, PartitionEstimator, train
from pzlib.fastpaths import FastKNearNeigh, make_fast_estimator, stage_config

pytestmark = pytest.mark.slow

SLICE_ROWS = 2_000
"""Validation rows compared (the stock stage takes ~0.5 s per thousand objects here)."""
KNN_TRAINING = {"ngrid_sigma": 3}
"""A short search for the Gaussian width: equality with stock RAIL does not depend on the model's quality."""


@pytest.fixture(scope="session")
def knn_config() -> EstimateConfig:
    return EstimateConfig("knn", rail_options=KNN_TRAINING)


@pytest.fixture(scope="session")
def knn_model(dc2_paths, knn_config, tmp_path_factory) -> Path:
    """KNN model trained by RAIL (3–7 neighbours, a 3-point width search)."""
    return train(dc2_paths[0], tmp_path_factory.mktemp("fastpaths") / "knn.pkl", knn_config)


def assert_same_as_stock(result, ensemble, config: EstimateConfig):
    """The grid, zmode and the mixture on the grid (what the stock engine stores) identical to stock RAIL's."""
    from rail.estimation.algos.k_nearneigh import KNearNeighEstimator

    rail = stage_config(KNearNeighEstimator, config.stage_options())
    grid = np.linspace(rail["zmin"], rail["zmax"], rail["nzbins"])
    np.testing.assert_array_equal(result.grid, grid)
    np.testing.assert_array_equal(result.zmode, np.asarray(ensemble.ancil["zmode"]).reshape(-1))
    np.testing.assert_array_equal(result.pdfs, ensemble.pdf(grid))
    assert result.zmean is None


def test_validation_slice_equals_stock_rail(knn_model, knn_config, validation_columns, run_stock, load_model):
    batch = {name: values[:SLICE_ROWS] for name, values in validation_columns.items()}
    before = {name: values.copy() for name, values in batch.items()}
    model = load_model(knn_model)
    assert model["nneigh"] > 1  # a mixture of several Gaussians is compared
    result = make_fast_estimator("knn", model, knn_config.stage_options()).estimate(batch)
    assert result.pdfs.shape == (SLICE_ROWS, 301)
    assert all(np.array_equal(batch[name], before[name]) for name in batch)  # the caller's columns are untouched
    assert_same_as_stock(result, run_stock(knn_model, knn_config, batch), knn_config)


def test_non_detections_equal_stock_rail(knn_model, knn_config, validation_columns, run_stock, load_model):
    batch = {name: values[SLICE_ROWS:SLICE_ROWS + 1_000].copy() for name, values in validation_columns.items()}
    rng = np.random.default_rng(7)
    for band in "ugrizy":
        batch[f"mag_{band}_lsst"][rng.random(1_000) < 0.15] = 99.0
    result = FastKNearNeigh(load_model(knn_model), knn_config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(knn_model, knn_config, batch), knn_config)


def test_photoz_tables_of_both_engines_are_equal(knn_model, knn_config, validation_columns):
    """The fast engine is the default for knn, and its stored photo-z table is the stock engine's."""
    batch = pa.table({name: values[:1_000] for name, values in validation_columns.items()})
    engines = {engine: PartitionEstimator(knn_model, EstimateConfig("knn", rail_options=KNN_TRAINING, engine=engine))
               for engine in ("fast", "rail")}
    assert engines["fast"].fast is not None and engines["rail"].fast is None
    tables = {engine: estimator.estimate_batch(batch) for engine, estimator in engines.items()}
    assert tables["fast"].equals(tables["rail"])


def test_ref_band_outside_the_bands_is_refused(knn_model, load_model):
    options = {**EstimateConfig("knn").stage_options(), "ref_band": "mag_q_lsst"}
    with pytest.raises(ValueError, match="ref_band 'mag_q_lsst' is not one of the bands"):
        FastKNearNeigh(load_model(knn_model), options)
