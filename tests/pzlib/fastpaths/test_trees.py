"""pzlib.fastpaths.trees: the compiled tree engine predicts what xgboost predicts, bit for bit, and names
what it cannot evaluate."""

from __future__ import annotations

import numpy as np
import pytest
from xgboost import XGBRegressor

from pzlib.fastpaths.trees import MAX_DEPTH, CompiledForest, UnsupportedModel

ROWS = 3_000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    features = rng.normal(size=(ROWS, 5)).astype(np.float32)
    target = np.sin(features[:, 0]) + features[:, 1] * features[:, 2] + 0.1 * rng.normal(size=ROWS)
    return features, target


def _fitted(data, **params) -> XGBRegressor:
    features, target = data
    return XGBRegressor(n_estimators=30, nthread=1, **params).fit(features, target)


def _boosters(*regressors, iteration_ranges=None) -> list[tuple]:
    ranges = iteration_ranges or [(0, 0)] * len(regressors)
    return [(regressor.get_booster(), iteration_range, regressor.missing)
            for regressor, iteration_range in zip(regressors, ranges, strict=True)]


def _forest(*regressors, iteration_ranges=None) -> CompiledForest:
    return CompiledForest(_boosters(*regressors, iteration_ranges=iteration_ranges))


def test_predictions_are_xgboosts_bit_for_bit(data):
    # Depths from stumps to uneven deep trees (min_child_weight leaves many leaves above the bottom), a
    # non-default base score, trees that are a single leaf (a constant target, as flexcode's first basis
    # function has).
    features = data[0]
    constant = XGBRegressor(n_estimators=5, nthread=1).fit(features, np.ones(ROWS))
    regressors = [_fitted(data, max_depth=1), _fitted(data, max_depth=6, min_child_weight=40),
                  _fitted(data, max_depth=9, base_score=2.5), constant]
    forest = _forest(*regressors)
    expected = np.column_stack([regressor.predict(features) for regressor in regressors])
    assert expected.dtype == np.float32
    np.testing.assert_array_equal(forest.predict(features), expected)
    # float64 input is cast to float32 as xgboost casts it; a batch that is not a multiple of 8 rows
    odd = features[:1_003].astype(np.float64) + 1e-9
    np.testing.assert_array_equal(forest.predict(odd),
                                  np.column_stack([regressor.predict(odd) for regressor in regressors]))


def test_missing_values_take_the_default_direction(data):
    features, target = data
    with_gaps = features.copy()
    with_gaps[np.random.default_rng(2).random(with_gaps.shape) < 0.2] = np.nan
    regressor = XGBRegressor(n_estimators=30, max_depth=5, nthread=1).fit(with_gaps, target)
    predicted = _forest(regressor).predict(with_gaps)[:, 0]
    np.testing.assert_array_equal(predicted, regressor.predict(with_gaps))


def test_iteration_range_keeps_the_first_trees(data):
    regressor = _fitted(data, max_depth=4)
    predicted = _forest(regressor, iteration_ranges=[(0, 10)]).predict(data[0])[:, 0]
    np.testing.assert_array_equal(predicted, regressor.predict(data[0], iteration_range=(0, 10)))


@pytest.mark.parametrize(("params", "missing", "problem"), [
    ({"booster": "dart"}, np.nan, "'dart' booster"),
    ({"objective": "reg:logistic"}, np.nan, "objective 'reg:logistic'"),
    ({}, 99.0, "missing=99.0"),
    ({"max_depth": MAX_DEPTH + 2, "min_child_weight": 0, "n_estimators": 3}, np.nan, "deeper than"),
])
def test_models_it_cannot_lay_out_are_named(data, params, missing, problem):
    features, target = data
    if params.get("objective") == "reg:logistic":
        target = (target > 0).astype(float)
    regressor = XGBRegressor(**{"n_estimators": 5, "nthread": 1, **params}).fit(features, target)
    with pytest.raises(UnsupportedModel, match=f"cannot evaluate this model: .*{problem}"):
        CompiledForest([(regressor.get_booster(), (0, 0), missing)])


def test_categorical_splits_are_named():
    import pandas as pd

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"kind": pd.Categorical(rng.choice(list("abcd"), 500)), "x": rng.normal(size=500)})
    target = (frame["kind"] == "b") * 2.0 + frame["x"]
    regressor = XGBRegressor(n_estimators=5, enable_categorical=True, tree_method="hist", nthread=1)
    regressor.fit(frame, target)
    with pytest.raises(UnsupportedModel, match="cannot evaluate this model: categorical splits"):
        CompiledForest([(regressor.get_booster(), (0, 0), np.nan)])


def test_features_of_the_wrong_shape_are_refused(data):
    forest = _forest(_fitted(data, max_depth=2))
    with pytest.raises(ValueError, match=r"features must be \(rows, 5\), got shape \(10, 4\)"):
        forest.predict(data[0][:10, :4])


def test_layout_is_cached_per_model(data, tmp_path):
    first, second = _fitted(data, max_depth=3), _fitted(data, max_depth=4)
    built = CompiledForest(_boosters(first), cache_dir=tmp_path)
    [cached] = tmp_path.glob("*.npz")
    loaded = CompiledForest(_boosters(first), cache_dir=tmp_path)
    np.testing.assert_array_equal(loaded.predict(data[0]), built.predict(data[0]))
    np.testing.assert_array_equal(loaded.leaves, built.leaves)
    CompiledForest(_boosters(second), cache_dir=tmp_path)  # another model: another file
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not list(tmp_path.glob(".*"))  # no staging file left behind
    cached.write_bytes(b"not a layout")  # a damaged file is built again and replaced
    np.testing.assert_array_equal(CompiledForest(_boosters(first), cache_dir=tmp_path).predict(data[0]),
                                  built.predict(data[0]))
    with np.load(cached) as replaced:
        np.testing.assert_array_equal(replaced["leaves"], built.leaves)


def test_an_unwritable_cache_only_costs_the_build(data, tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    regressor = _fitted(data, max_depth=3)
    forest = CompiledForest(_boosters(regressor), cache_dir=blocker / "trees")
    np.testing.assert_array_equal(forest.predict(data[0])[:, 0], regressor.predict(data[0]))
    assert "could not keep the tree layout" in caplog.text
