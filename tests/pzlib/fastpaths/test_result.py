"""pzlib.fastpaths.result: qp's stored PDF values and RAIL's resolved stage configuration."""

from __future__ import annotations

import numpy as np
import qp

from pzlib.estimate import EstimateConfig
from pzlib.fastpaths import interp_normalize, stage_config


def test_interp_normalize_gives_what_a_qp_ensemble_stores():
    grid = np.linspace(0.0, 3.0, 301)
    values = np.random.default_rng(1).random((40, 301)) ** 6
    ensemble = qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": values.copy()})
    np.testing.assert_array_equal(interp_normalize(grid, values), ensemble.objdata["yvals"])


def test_stage_config_fills_rail_defaults_and_keeps_overrides():
    from rail.estimation.algos.bpz_lite import BPZliteEstimator

    config = stage_config(BPZliteEstimator, {**EstimateConfig("bpz").stage_options(), "p_min": 0.01})
    assert config["p_min"] == 0.01 and config.p_min == 0.01
    assert config["nzbins"] == 301 and config["zp_errors"] == [0.1] * 6
    assert config["mag_limits"]["mag_i_lsst"] == 28.62
