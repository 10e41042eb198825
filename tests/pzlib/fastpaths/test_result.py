"""pzlib.fastpaths.result: qp's stored PDF values and RAIL's resolved stage configuration."""

from __future__ import annotations

import numpy as np
import pytest
import qp

from pzlib.estimate import EstimateConfig
from pzlib.fastpaths import interp_normalize, stage_config


def test_interp_normalize_gives_what_a_qp_ensemble_stores():
    grid = np.linspace(0.0, 3.0, 301)
    values = np.random.default_rng(1).random((40, 301)) ** 6
    ensemble = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": values.copy()})
    np.testing.assert_array_equal(interp_normalize(grid, values), ensemble.objdata["yvals"])


@pytest.mark.parametrize("n_rows", [1, 7, 8, 19])
def test_interp_normalize_is_qps_numpy_normalization_for_any_row_count(n_rows):
    """The kernel goes eight rows at a time; each row must still get qp's NumPy operations (interp's
    ``_compute_ycumul`` and ``normalize``, twice), whole groups of eight or not, zero and NaN rows included."""
    grid = np.linspace(0.0, 3.0, 301)
    values = np.random.default_rng(n_rows).random((n_rows, grid.size)) ** 6
    values[n_rows // 2, 100:] = 0.0
    values[-1, ::2] = 0.0
    if n_rows > 2:
        values[1] = 0.0
        values[2, 7] = np.nan
    expected = values.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(2):
            integral = np.cumsum((grid[1:] - grid[:-1]) * 0.5 * np.add(expected[:, 1:], expected[:, :-1]), axis=1)
            expected = (expected.T / integral[:, -1]).T
    np.testing.assert_array_equal(interp_normalize(grid, values), expected)


def test_stage_config_fills_rail_defaults_and_keeps_overrides():
    from rail.estimation.algos.bpz_lite import BPZliteEstimator

    config = stage_config(BPZliteEstimator, {**EstimateConfig("bpz").stage_options(), "p_min": 0.01})
    assert config["p_min"] == 0.01 and config.p_min == 0.01
    assert config["nzbins"] == 301 and config["zp_errors"] == [0.1] * 6
    assert config["mag_limits"]["mag_i_lsst"] == 28.62
