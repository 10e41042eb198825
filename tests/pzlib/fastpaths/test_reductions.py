"""pzlib.fastpaths.reductions: compiled sums and argmax in exactly NumPy's order and NaN rules."""

from __future__ import annotations

import numpy as np
import pytest

from pzlib.fastpaths.reductions import (
    first_argmax,
    first_argmin,
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
