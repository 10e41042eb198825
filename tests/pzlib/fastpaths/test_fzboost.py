"""pzlib.fastpaths.fzboost: compiled trees (or in-process xgboost) and compiled flexcode post-processing give
stock RAIL's FlexZBoost answers, object for object."""

from __future__ import annotations

import numpy as np
import pytest

from pzlib.estimate import EstimateConfig
from pzlib.fastpaths import FastFlexZBoost, make_fast_estimator

pytestmark = pytest.mark.slow

PDF_TOLERANCE = 1e-12
SLICE_ROWS = 5_000
"""Validation rows compared (the stock stage takes ~5 s per thousand objects here)."""


def assert_same_as_stock(result, ensemble):
    """zmode identical for every object, PDFs within 1e-12."""
    np.testing.assert_array_equal(result.grid, np.asarray(ensemble.metadata["xvals"]).reshape(-1))
    np.testing.assert_array_equal(result.zmode, np.asarray(ensemble.ancil["mode"]).reshape(-1))
    np.testing.assert_allclose(result.pdfs, ensemble.objdata["yvals"], rtol=0, atol=PDF_TOLERANCE)
    assert result.zmean is None


def test_validation_slice_equals_stock_rail(fzboost_model, fzboost_config, validation_columns, run_stock,
                                            load_model):
    batch = {name: values[:SLICE_ROWS] for name, values in validation_columns.items()}
    fast = make_fast_estimator("fzboost", load_model(fzboost_model), fzboost_config.stage_options())
    result = fast.estimate(batch)
    assert result.pdfs.shape == (SLICE_ROWS, 301)
    assert_same_as_stock(result, run_stock(fzboost_model, fzboost_config, batch))


def test_non_detections_and_tree_engines(fzboost_model, fzboost_config, validation_columns, run_stock,
                                         load_model):
    batch = {name: values[SLICE_ROWS:SLICE_ROWS + 1_000].copy() for name, values in validation_columns.items()}
    rng = np.random.default_rng(3)
    for band in "ugrizy":
        batch[f"mag_{band}_lsst"][rng.random(1_000) < 0.1] = 99.0
    model = load_model(fzboost_model)
    compiled = FastFlexZBoost(model, fzboost_config.stage_options()).estimate(batch)
    xgboost = FastFlexZBoost(model, fzboost_config.stage_options(), threads=2, tree_engine="xgboost").estimate(batch)
    np.testing.assert_array_equal(xgboost.pdfs, compiled.pdfs)
    np.testing.assert_array_equal(xgboost.zmode, compiled.zmode)
    assert_same_as_stock(compiled, run_stock(fzboost_model, fzboost_config, batch))


def test_compiled_trees_give_xgboosts_coefficients(fzboost_model, fzboost_config, validation_columns, load_model):
    """Every regressor's prediction for the whole DC2 validation set, as XGBRegressor.predict gives it."""
    model = load_model(fzboost_model)
    fast = FastFlexZBoost(model, fzboost_config.stage_options())
    assert fast.tree_engine == "compiled"  # 'auto' picks it for RAIL's models
    features = fast._features(validation_columns)
    expected = np.column_stack([regressor.predict(features) for regressor in model.model.models.estimators_])
    np.testing.assert_array_equal(fast.coefficients(features), expected)
    reference = FastFlexZBoost(model, fzboost_config.stage_options(), tree_engine="xgboost")
    assert reference.tree_engine == "xgboost"
    np.testing.assert_array_equal(reference.coefficients(features), expected)


def test_unknown_tree_engine_is_refused(fzboost_model, fzboost_config, load_model):
    with pytest.raises(ValueError, match=r"unknown tree engine 'treelite' \(tree engines: auto, compiled, xgboost\)"):
        FastFlexZBoost(load_model(fzboost_model), fzboost_config.stage_options(), tree_engine="treelite")


def test_coefficient_storage_is_refused(fzboost_model, load_model):
    options = {**EstimateConfig("fzboost").stage_options(), "qp_representation": "flexzboost"}
    with pytest.raises(ValueError, match="qp_representation 'interp'"):
        FastFlexZBoost(load_model(fzboost_model), options)
