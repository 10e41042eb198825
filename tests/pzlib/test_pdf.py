"""pzlib.pdf: grid summaries, and both storage representations read back as qp ensembles."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from pzlib import pdf

GRID = np.linspace(0.0, 3.0, 301)


@pytest.fixture(scope="module")
def gaussian_pdfs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PDFs of known shape: narrow, broad and bimodal Gaussians on the grid (centres, widths random)."""
    rng = np.random.default_rng(7)
    centres, widths = rng.uniform(0.3, 2.5, 500), rng.uniform(0.01, 0.3, 500)
    pdfs = stats.norm.pdf(GRID[None, :], centres[:, None], widths[:, None])
    pdfs[::5] += stats.norm.pdf(GRID[None, :], 2.7, 0.05)  # every fifth has a second peak
    return pdf.normalize(pdfs, GRID), centres, widths


def _table(pdfs: np.ndarray, representation: str) -> pa.Table:
    table = pa.table({"id": np.arange(len(pdfs)), "pdf": pdf.encode(pdfs, GRID, representation)})
    return table.replace_schema_metadata(pdf.qp_metadata(GRID, representation))


def test_summaries_of_gaussians(gaussian_pdfs):
    pdfs, centres, widths = gaussian_pdfs
    single = np.arange(len(pdfs)) % 5 != 0
    np.testing.assert_allclose(pdf.mode(pdfs, GRID)[single], centres[single], atol=0.006)
    median, p16, p84 = pdf.quantiles(pdfs, GRID, [0.5, 0.16, 0.84]).T
    assert np.all(p16 <= median) and np.all(median <= p84)
    inside = single & (centres - 4 * widths > GRID[0]) & (centres + 4 * widths < GRID[-1])  # not truncated
    np.testing.assert_allclose(pdf.mean(pdfs, GRID)[inside], centres[inside], atol=1e-3)
    np.testing.assert_allclose(median[inside], centres[inside], atol=2e-3)
    np.testing.assert_allclose((p84 - p16)[inside] / 2, widths[inside], rtol=0.02, atol=2e-3)


@pytest.mark.parametrize("representation", pdf.REPRESENTATIONS)
def test_representations_keep_the_cdf_and_rebuild_a_qp_ensemble(gaussian_pdfs, representation):
    pdfs, _, _ = gaussian_pdfs
    table = _table(pdfs, representation)
    exact = pdf.cdf(pdfs, GRID)
    stored = pdf.cdf_on_grid(table)
    tolerance = 0.5 / pdf.CDF_LEVELS + 1e-12 if representation == "cdf8" else 1e-6
    assert np.max(np.abs(stored - exact)) <= tolerance
    ensemble = pdf.table_to_ensemble(table)
    assert ensemble.npdf == len(pdfs)
    np.testing.assert_allclose(ensemble.cdf(GRID[1:-1]), exact[:, 1:-1], atol=tolerance + 1e-9)
    np.testing.assert_array_equal(ensemble.ancil["id"], np.arange(len(pdfs)))


def test_cdf8_is_small_on_disk(gaussian_pdfs, tmp_path):
    import pyarrow.parquet as pq

    pdfs, _, _ = gaussian_pdfs
    pq.write_table(_table(pdfs, "cdf8").select(["pdf"]), tmp_path / "cdf8.parquet", compression="zstd")
    pq.write_table(_table(pdfs, "interp32").select(["pdf"]), tmp_path / "interp32.parquet", compression="zstd")
    cdf8, interp32 = ((tmp_path / f"{name}.parquet").stat().st_size for name in ("cdf8", "interp32"))
    assert cdf8 < interp32 / 4


def test_unknown_representation_and_missing_metadata():
    with pytest.raises(ValueError, match="unknown PDF representation 'float8'"):
        pdf.encode(np.ones((1, GRID.size)), GRID, "float8")
    with pytest.raises(ValueError, match="no qp PDF metadata"):
        pdf.grid_from_schema(pa.schema([("pdf", pa.float32())]))
