"""pzlib.bench.stage1: the flux catalog holds the benchmark's rows, and every stage I step runs over all of them."""

from __future__ import annotations

import numpy as np

from pzlib.bench.inputs import tiled_input
from pzlib.bench.stage1 import FLUX_COLUMN_MAP, STAGE1_STEPS, flux_catalog, format_stage1, measure_stage1
from pzlib.catalog import open_catalog
from pzlib.preprocess import NONDETECT_SENTINEL, PreprocessConfig, clean_batch


def test_flux_catalog_cleans_back_to_the_magnitudes(tmp_path):
    input_path = tiled_input(500, tmp_path)
    magnitudes = clean_batch(open_catalog(input_path).read(), PreprocessConfig())
    from_fluxes = clean_batch(open_catalog(flux_catalog(input_path, tmp_path)).read(),
                              PreprocessConfig(columns=FLUX_COLUMN_MAP))
    assert from_fluxes.column("id").equals(magnitudes.column("id"))
    for name in ("mag_u_lsst", "mag_err_u_lsst", "mag_i_lsst", "mag_err_y_lsst"):
        expected, got = magnitudes.column(name).to_numpy(), from_fluxes.column(name).to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.any(from_fluxes.column("mag_u_lsst").to_numpy() == NONDETECT_SENTINEL)


def test_stage1_figures_cover_every_row_and_step(tmp_path):
    figures = measure_stage1(tiled_input(700, tmp_path), tmp_path, repeats=1)
    assert list(figures["steps"]) == list(STAGE1_STEPS)
    for step in figures["steps"].values():
        assert step["rows"] == 700 and step["rows_per_second"] > 0 and step["rows_per_cpu_second"] > 0
    assert figures["peak_rss_mib"] > 0
    assert not list(tmp_path.glob(".stage1-*"))  # partitions written for timing are removed
    assert "partitioning" in format_stage1(figures)
