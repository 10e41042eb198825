"""pzlib.fastpaths.reductions: compiled sums and argmax in exactly NumPy's order and NaN rules."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pzlib.fastpaths.reductions import (
    first_argmax,
    first_argmin,
    lane_sum,
    nan_min,
    pairwise_column_sums,
    pairwise_excess_sum,
    pairwise_sum,
    running_sums,
)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 16, 127, 128, 129, 136, 257, 301, 1_000, 40_001])
def test_pairwise_sum_is_numpys_sum_bit_for_bit(length):
    rng = np.random.default_rng(length)
    values = rng.standard_normal(length + 3) * 10.0 ** rng.uniform(-12, 12, length + 3)
    assert pairwise_sum(values, 3, length) == np.sum(values[3:])
    shift = float(np.median(values)) if length else 0.0
    assert pairwise_excess_sum(values, 3, length, shift) == np.sum(np.maximum(values[3:] - shift, 0.0))


@pytest.mark.parametrize("n_rows", [1, 7, 8, 13, 15, 16, 128, 131, 300])
def test_column_sums_are_numpys_sums_of_each_column(n_rows):
    values = np.random.default_rng(n_rows).standard_normal((n_rows, 301)) * 1e3
    out = np.empty(301)
    pairwise_column_sums(values.ravel(), n_rows, 301, np.empty((8, 301)), out)
    np.testing.assert_array_equal(out, np.ascontiguousarray(values.T).sum(axis=1))


@pytest.mark.parametrize("values", [[1.0, 3.0, 3.0, 2.0], [np.nan, 1.0], [1.0, np.nan, 5.0, np.nan], [-2.0]])
def test_first_argmax_and_argmin_are_numpys(values):
    values = np.asarray(values)
    assert first_argmax(values, 0, values.size) == np.argmax(values)
    assert first_argmin(values, 0, values.size) == np.argmin(values)
    assert first_argmin(-values, 0, values.size) == np.argmin(-values)


@pytest.mark.parametrize("length", [0, 1, 2, 301])
def test_running_sums_are_numpys_cumsum_of_each_row(length):
    rng = np.random.default_rng(length)
    terms = rng.standard_normal((8, length)) * 10.0 ** rng.uniform(-12, 12, (8, length))
    terms[3, :2] = -0.0  # np.cumsum keeps a leading -0.0 (0.0 + -0.0 would not)
    out = np.empty_like(terms)
    totals = running_sums(terms, out)
    expected = np.cumsum(terms, axis=1)
    np.testing.assert_array_equal(out.view(np.int64), expected.view(np.int64))
    assert totals == running_sums(terms, None) == (tuple(expected[:, -1]) if length else (0.0,) * 8)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 301, 2_408])
def test_lane_sum_is_numpys_sum_within_ulps(length):
    values = np.random.default_rng(length).standard_normal(length) * 1e3
    assert lane_sum(values) == pytest.approx(np.sum(values), rel=1e-13, abs=1e-9)


@pytest.mark.parametrize("values", [[3.0, -1.5, 2.0], [-1.0, -7.0, -0.5], [np.inf, 5.0], [-np.inf, 2.0],
                                    [0.0, -0.0, 1.0], [1.0, np.nan, -5.0], [np.nan], [2.5] * 9])
def test_nan_min_is_numpys_min(values):
    values = np.asarray(values)
    expected = np.min(values)
    assert nan_min(values) == expected or (np.isnan(expected) and np.isnan(nan_min(values)))


def test_exact_sums_keep_numpys_order_after_a_reassociating_caller_compiled_them(tmp_path):
    """numba compiles a callee with its caller's fastmath flags unless the callee sets its own: a BPZ kernel
    allowed to reassociate once turned every later pairwise_sum of the process (and of numba's on-disk
    cache) into another sum. In a fresh process and cache, the reassociating caller compiles first."""
    script = """
import numba, numpy as np
from pzlib.fastpaths.reductions import pairwise_column_sums, pairwise_sum

@numba.njit(fastmath={"reassoc"})
def reassociating(values, scratch, out):
    pairwise_column_sums(values, 8, 301, scratch, out)
    return pairwise_sum(values, 0, values.size)

rng = np.random.default_rng(0)
rows = [rng.standard_normal(2_408) * 10.0 ** rng.uniform(-8, 8, 2_408) for _ in range(50)]
reassociating(rows[0], np.empty((8, 301)), np.empty(301))
out = np.empty(301)
wrong = 0
for row in rows:
    pairwise_column_sums(row, 8, 301, np.empty((8, 301)), out)
    wrong += pairwise_sum(row, 0, row.size) != np.sum(row)
    wrong += not np.array_equal(out, np.ascontiguousarray(row.reshape(8, 301).T).sum(axis=1))
print(wrong)
"""
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                               env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert completed.stdout.split()[-1] == "0"
