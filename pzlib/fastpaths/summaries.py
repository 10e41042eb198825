"""The photo-z table's summaries of each PDF — quantiles, mean, ``cdf8`` increments — in one compiled pass.

:func:`pzlib.pdf.summarize` is the entry point. Every step here is the operation of the NumPy definition
(:func:`pzlib.pdf.normalize`, :func:`pzlib.pdf.cdf`, ``np.trapezoid``, ``np.rint``) in NumPy's order —
``np.trapezoid`` sums pairwise (:func:`pzlib.fastpaths.reductions.pairwise_sum`), ``np.cumsum`` left to
right — so the values are the NumPy ones bit for bit, at a tenth of the cost and without the temporaries.
"""

from __future__ import annotations

import numba
import numpy as np

from pzlib.fastpaths.reductions import SIDE_BY_SIDE, pairwise_sum, running_sums


@numba.njit(cache=True, error_model="numpy")
def summarize_rows(pdfs, grid, levels, with_mean, with_cdf8, cdf_levels, quantiles_out, means_out, increments_out):
    """:func:`pzlib.pdf.summarize`'s row loop, filling ``quantiles_out`` (n, n_levels), ``means_out`` (n, when
    ``with_mean``) and ``increments_out`` (n, len(grid) uint8, when ``with_cdf8``).

    Rows go eight at a time. A CDF's cumulative sum is a chain of ~300 dependent additions: the eight rows'
    chains advance side by side (:func:`running_sums`). The divisions, which then bound the speed, share
    their loops with other work: a row's normalization with its CDF steps, its CDF's with the trapezoids of
    the row its lane takes next."""
    n_rows, n_z = pdfs.shape
    widths = np.empty(n_z - 1)
    for index in range(n_z - 1):
        widths[index] = grid[index + 1] - grid[index]
    steps = np.zeros((SIDE_BY_SIDE, n_z - 1))  # each row's trapezoids, then its mean's
    cdf_steps = np.zeros((SIDE_BY_SIDE, n_z - 1))
    cumulative = np.zeros((SIDE_BY_SIDE, n_z))  # column 0 stays 0.0
    normalized = np.empty(n_z)
    spare = np.zeros(n_z)  # stands for the rows past the last one
    for lane in range(min(SIDE_BY_SIDE, n_rows)):
        for index in range(n_z - 1):
            steps[lane, index] = _trapezoid(widths, pdfs[lane], index)
    for first in range(0, n_rows, SIDE_BY_SIDE):
        count = min(SIDE_BY_SIDE, n_rows - first)
        for lane in range(count):
            values, row_steps = pdfs[first + lane], steps[lane]
            area = pairwise_sum(row_steps, 0, n_z - 1)
            previous = normalized[0] = values[0] / area if area > 0 else 0.0
            for index in range(n_z - 1):
                current = normalized[index + 1] = values[index + 1] / area if area > 0 else 0.0
                cdf_steps[lane, index] = 0.5 * (current + previous) * widths[index]
                previous = current
            if with_mean:
                for index in range(n_z - 1):
                    row_steps[index] = widths[index] * (normalized[index + 1] * grid[index + 1]
                                                        + normalized[index] * grid[index]) / 2.0
                means_out[first + lane] = pairwise_sum(row_steps, 0, n_z - 1)
        running_sums(cdf_steps, cumulative[:, 1:])
        for lane in range(count):
            following = first + SIDE_BY_SIDE + lane
            _finish_row(cumulative[lane], grid, levels, with_cdf8, cdf_levels, quantiles_out, increments_out,
                        first + lane, widths, pdfs[following] if following < n_rows else spare, steps[lane])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _trapezoid(widths, values, index):
    """``np.trapezoid``'s term ``index`` of ``values``."""
    return widths[index] * (values[index + 1] + values[index]) / 2.0


@numba.njit(cache=True, error_model="numpy", inline="always")
def _finish_row(cumulative, grid, levels, with_cdf8, cdf_levels, quantiles_out, increments_out, row, widths,
                following, following_steps):
    """Row ``row``'s quantiles and ``cdf8`` increments from its cumulative sums, turned into its CDF in place;
    the divisions' loop also puts the trapezoids of ``following`` into ``following_steps``."""
    n_z = grid.size
    total = cumulative[n_z - 1]
    for index in range(n_z - 1):
        cumulative[index] = cumulative[index] / total if total > 0 else 0.0
        following_steps[index] = _trapezoid(widths, following, index)
    cumulative[n_z - 1] = cumulative[n_z - 1] / total if total > 0 else 0.0
    if with_cdf8:
        previous = 0
        for index in range(n_z):
            quantized = np.int16(np.rint(cumulative[index] * cdf_levels))
            increments_out[row, index] = np.uint8(quantized - previous)
            previous = quantized
    ordered = True  # the CDF of a PDF without negative values never decreases
    for index in range(n_z - 1):
        ordered &= cumulative[index + 1] >= cumulative[index]
    for column in range(levels.size):
        level = levels[column]
        upper = min(max(_first_reaching(cumulative, level, ordered), 1), n_z - 1)
        low, high = cumulative[upper - 1], cumulative[upper]
        fraction = (level - low) / (high - low) if high > low else 0.0
        fraction = min(max(fraction, 0.0), 1.0)
        quantiles_out[row, column] = grid[upper - 1] + fraction * (grid[upper] - grid[upper - 1])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _first_reaching(cdf, level, ordered):
    """``np.argmax(cdf >= level)``: the first index whose value reaches ``level``, else 0. By
    ``np.searchsorted`` when ``cdf`` is ``ordered`` (never decreases, no NaN), else by a scan."""
    if ordered:
        index = np.searchsorted(cdf, level)  # side "left": the first value >= level
        return index if index < cdf.size else 0
    for index in range(cdf.size):
        if cdf[index] >= level:
            return index
    return 0
