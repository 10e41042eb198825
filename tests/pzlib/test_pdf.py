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


def _numpy_summaries(pdfs: np.ndarray, levels: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """quantiles, mean and cdf8 increments by their NumPy definitions, for the compiled pass to equal."""
    cumulative = pdf.cdf(pdf.normalize(pdfs, GRID), GRID)
    rows = np.arange(len(pdfs))
    quantile_values = np.empty((len(pdfs), len(levels)))
    for column, level in enumerate(levels):
        upper = np.clip(np.argmax(cumulative >= level, axis=1), 1, GRID.size - 1)
        low, high = cumulative[rows, upper - 1], cumulative[rows, upper]
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = np.where(high > low, (level - low) / (high - low), 0.0)
        quantile_values[:, column] = GRID[upper - 1] + np.clip(fraction, 0.0, 1.0) * (GRID[upper] - GRID[upper - 1])
    mean = np.trapezoid(pdf.normalize(pdfs, GRID) * GRID, GRID, axis=1)
    increments = np.diff(np.rint(cumulative * pdf.CDF_LEVELS).astype(np.int16), axis=1, prepend=0).astype(np.uint8)
    return quantile_values, mean, increments


def _edge_and_delta_pdfs() -> np.ndarray:
    """Degenerate PDFs: weight piled at z = 0 (as FlexZBoost gives some DC2 objects), deltas on the first, an
    inner and the last grid point, two spikes, a flat one, an all-zero and a NaN row."""
    pdfs = np.zeros((9, GRID.size))
    pdfs[0, :7] = [26.83, 25.83, 22.93, 18.42, 12.75, 6.47, 0.19]
    pdfs[1, 0] = pdfs[2, 150] = pdfs[3, -1] = 1.0
    pdfs[4, [40, 41]], pdfs[4, 250] = 5.0, 1e-3
    pdfs[5] = 1.0
    pdfs[7, 3] = np.nan
    pdfs[8, 10:12] = 1e-300
    return pdfs


@pytest.mark.parametrize("count", [1, 3, 8, 17, 560])
def test_summarize_is_the_numpy_definitions_bit_for_bit(gaussian_pdfs, count):
    """The last ``count`` rows: whole groups of eight and not (the kernel goes eight rows at a time), and the
    degenerate rows, among them one whose CDF goes down (where the quantile search scans)."""
    wavy = np.sin(7.0 * GRID)[None, :]
    pdfs = np.concatenate([gaussian_pdfs[0], np.random.default_rng(3).random((50, GRID.size)), wavy,
                           _edge_and_delta_pdfs()])[-count:]
    levels = [0.5, 0.16, 0.84]
    summaries = pdf.summarize(pdfs, GRID, levels)
    quantile_values, mean, increments = _numpy_summaries(pdfs, levels)
    np.testing.assert_array_equal(summaries.quantiles, quantile_values)
    np.testing.assert_array_equal(summaries.mean, mean)
    np.testing.assert_array_equal(pdf.stored_values(pa.table({"pdf": summaries.column})), increments)
    np.testing.assert_array_equal(pdf.quantiles(pdfs, GRID, levels), quantile_values)
    np.testing.assert_array_equal(pdf.mean(pdfs, GRID), mean)
    assert pdf.summarize(pdfs, GRID, levels, with_mean=False, representation=None).column is None


def test_cdf8_keeps_edge_piled_and_delta_pdfs_within_half_a_level():
    """The worst CDF error once seen against stock FlexZBoost (0.134, one object piled at z = 0) is qp's
    interp CDF at the grid's first point, not the encoding: against the CDF of the same PDF, cdf8 holds."""
    import qp

    pdfs = _edge_and_delta_pdfs()[:7]
    table = _table(pdfs, "cdf8")
    errors = pdf.cdf_errors(table, pdfs)
    assert np.all(errors <= 0.5 / pdf.CDF_LEVELS + 1e-12)
    np.testing.assert_allclose(pdf.cdf_on_grid(table)[:, -1], [1, 1, 1, 1, 1, 1, 0])  # the all-zero row stays 0
    rebuilt = pdf.table_to_ensemble(table.slice(0, 6))
    np.testing.assert_allclose(rebuilt.cdf(GRID), pdf.cdf_on_grid(table)[:6], atol=1e-12)
    qp_cdf = qp.Ensemble(qp.interp, data={"xvals": GRID, "yvals": pdfs[:2]}).cdf(GRID)
    first_step = 0.5 * pdfs[0, 0] * (GRID[1] - GRID[0]) / np.trapezoid(pdfs[0], GRID)
    assert qp_cdf[0, 0] == pytest.approx(first_step) and first_step > 0.13
    np.testing.assert_allclose(qp_cdf[:, 1:], pdf.cdf(pdf.normalize(pdfs[:2], GRID), GRID)[:, 1:], atol=1e-12)
