"""NumPy's summation order, compiled: the building block that lets the fast kernels match RAIL bit for bit.

Floating-point sums depend on the order of their terms. ``np.sum`` of a contiguous 1-D run (and any
reduction over a contiguous last axis) uses NumPy's pairwise summation: runs shorter than 8 are added
left to right from 0, runs of up to 128 use eight interleaved accumulators combined as a tree, longer
runs are split in two at a multiple of 8 and recursed. A reduction over a leading axis (``a.sum(axis=0)``
of a C-ordered array) is instead a plain left-to-right sum. The stock estimators sum with NumPy, so the
compiled kernels must sum in exactly these orders; this module holds the one copy of that rule.

Every exact-order function here says ``fastmath=False``: numba compiles a callee with its caller's fastmath
flags unless the callee sets its own, and a reassociating caller would otherwise turn these sums into
others, in that process and in numba's on-disk cache. Where the order does not matter, :func:`lane_sum`
sums in vector lanes.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

_BLOCK = 128
"""NumPy's PW_BLOCKSIZE: runs up to this length are summed with eight accumulators, longer ones split."""
_MAX_SPLITS = 64
"""More than enough halvings for any int64 length."""


@numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")
def pairwise_sum(values: np.ndarray, start: int, count: int) -> float:
    """``np.sum(values[start:start + count])`` for a contiguous 1-D float64 array, in NumPy's order."""
    if count <= _BLOCK:
        return _block_sum(values, start, count, 0.0, False)
    return _split_sum(values, start, count, 0.0, False)


@numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")
def pairwise_excess_sum(values: np.ndarray, start: int, count: int, shift: float) -> float:
    """``np.sum(np.maximum(values[start:start + count] - shift, 0.0))`` in NumPy's order, without the
    temporary array (NaN propagates, as in ``np.maximum``)."""
    if count <= _BLOCK:
        return _block_sum(values, start, count, shift, True)
    return _split_sum(values, start, count, shift, True)


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _split_sum(values: np.ndarray, start: int, count: int, shift: float, excess: bool) -> float:
    """NumPy's sum of a run longer than 128: sum(first part) + sum(rest), cut at half the length rounded
    down to a multiple of 8, recursively. Numba cannot cache recursive functions, so two levels of cuts
    (runs up to ~520, e.g. 301-point PDFs) are spelled out and deeper trees walk an explicit stack."""
    half = _cut(count)
    return (_cut_sum(values, start, half, shift, excess)
            + _cut_sum(values, start + half, count - half, shift, excess))


@numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")
def _cut(count: int) -> int:
    half = count // 2
    return half - half % 8


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _cut_sum(values: np.ndarray, start: int, count: int, shift: float, excess: bool) -> float:
    if count <= _BLOCK:
        return _block_sum(values, start, count, shift, excess)
    half = _cut(count)
    if count - half <= _BLOCK:
        return (_block_sum(values, start, half, shift, excess)
                + _block_sum(values, start + half, count - half, shift, excess))
    return _stack_sum(values, start, count, shift, excess)


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _stack_sum(values: np.ndarray, start: int, count: int, shift: float, excess: bool) -> float:
    """The pairwise tree of a long run with explicit stacks: a task is (start, count) to sum, or count -1:
    add the last two partial sums."""
    tasks = np.empty((2 * _MAX_SPLITS + 1, 2), dtype=np.int64)
    partial = np.empty(_MAX_SPLITS + 1)
    tasks[0, 0], tasks[0, 1] = start, count
    n_tasks, n_partial = 1, 0
    while n_tasks:
        n_tasks -= 1
        first, length = tasks[n_tasks, 0], tasks[n_tasks, 1]
        if length < 0:
            n_partial -= 1
            partial[n_partial - 1] = partial[n_partial - 1] + partial[n_partial]
        elif length <= _BLOCK:
            partial[n_partial] = _block_sum(values, first, length, shift, excess)
            n_partial += 1
        else:
            half = _cut(length)
            tasks[n_tasks, 0], tasks[n_tasks, 1] = 0, -1
            tasks[n_tasks + 1, 0], tasks[n_tasks + 1, 1] = first + half, length - half
            tasks[n_tasks + 2, 0], tasks[n_tasks + 2, 1] = first, half
            n_tasks += 3
    return partial[0]


@numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")
def _term(value: float, shift: float, excess: bool) -> float:
    """A summed term: the value, or its excess over ``shift`` (np.maximum(value - shift, 0.0))."""
    if not excess:
        return value
    difference = value - shift
    return difference if (difference >= 0.0 or difference != difference) else 0.0


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def _block_sum(values: np.ndarray, start: int, count: int, shift: float, excess: bool) -> float:
    """NumPy's sum of a run of at most 128: left to right below 8, else eight interleaved accumulators."""
    if count < 8:
        total = 0.0
        for index in range(start, start + count):
            total += _term(values[index], shift, excess)
        return total
    r0, r1 = _term(values[start], shift, excess), _term(values[start + 1], shift, excess)
    r2, r3 = _term(values[start + 2], shift, excess), _term(values[start + 3], shift, excess)
    r4, r5 = _term(values[start + 4], shift, excess), _term(values[start + 5], shift, excess)
    r6, r7 = _term(values[start + 6], shift, excess), _term(values[start + 7], shift, excess)
    index = start + 8
    stop = start + count - count % 8
    while index < stop:
        r0 += _term(values[index], shift, excess)
        r1 += _term(values[index + 1], shift, excess)
        r2 += _term(values[index + 2], shift, excess)
        r3 += _term(values[index + 3], shift, excess)
        r4 += _term(values[index + 4], shift, excess)
        r5 += _term(values[index + 5], shift, excess)
        r6 += _term(values[index + 6], shift, excess)
        r7 += _term(values[index + 7], shift, excess)
        index += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while index < start + count:
        total += _term(values[index], shift, excess)
        index += 1
    return total


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def lane_sum(values: np.ndarray) -> float:
    """The sum of a contiguous 1-D float64 array in vector lanes, where the order need not be NumPy's: several
    times faster than a left-to-right or pairwise sum, within a few ulps of either."""
    total = 0.0
    for index in range(values.size):  # an index loop: numba's array iterator does not vectorize
        total += values[index]
    return total


SIDE_BY_SIDE = 8
"""Rows whose running sums :func:`running_sums` advances together."""


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def running_sums(terms: np.ndarray, out: np.ndarray | None) -> tuple:
    """``out[lane] = np.cumsum(terms[lane])`` (left to right) for the eight rows of ``terms``; returns the eight
    totals, and only them when ``out`` is None (compiled without the stores). A running sum is a chain of
    dependent additions, bound by the adder's latency: the eight chains advance side by side, each in a
    register, so that the CPU overlaps them."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for index in range(terms.shape[1]):
        if index == 0:  # the first term itself, as np.cumsum (0.0 + -0.0 would be +0.0)
            a0, a1, a2, a3 = terms[0, 0], terms[1, 0], terms[2, 0], terms[3, 0]
            a4, a5, a6, a7 = terms[4, 0], terms[5, 0], terms[6, 0], terms[7, 0]
        else:
            a0, a1, a2, a3 = a0 + terms[0, index], a1 + terms[1, index], a2 + terms[2, index], a3 + terms[3, index]
            a4, a5, a6, a7 = a4 + terms[4, index], a5 + terms[5, index], a6 + terms[6, index], a7 + terms[7, index]
        if out is not None:
            out[0, index], out[1, index], out[2, index], out[3, index] = a0, a1, a2, a3
            out[4, index], out[5, index], out[6, index], out[7, index] = a4, a5, a6, a7
    return a0, a1, a2, a3, a4, a5, a6, a7


@intrinsic
def _float_bits(typingctx, value):
    """The IEEE-754 bits of a float64 as an int64 (a bitcast, which vectorizes)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, value):
    """The float64 whose IEEE-754 bits are an int64 (inverse of :func:`_float_bits`)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


_MAGNITUDE_BITS = 0x7FFFFFFFFFFFFFFF
"""All bits but the sign: flipping them on negative floats makes the int64 order of the bits the float order."""

@numba.njit(cache=True, fastmath=False, inline="always")
def _order_key(value: float) -> int:
    """An int64 that orders as the float64 ``value`` does (−0.0 just below +0.0; NaNs outside ±inf). A
    floating-point minimum written as a loop does not vectorize (the compiler must keep its NaN and
    signed-zero semantics); a minimum of these keys does."""
    bits = _float_bits(value)
    return bits ^ ((bits >> 63) & _MAGNITUDE_BITS)


@numba.njit(cache=True, fastmath=False, inline="always")
def _key_value(key: int) -> float:
    """The float64 whose :func:`_order_key` is ``key``."""
    return _bits_float(key ^ ((key >> 63) & _MAGNITUDE_BITS))


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def nan_min(values: np.ndarray) -> float:
    """``np.min(values)`` of a contiguous 1-D float64 array: NaN if there is one, else the minimum, from the
    vectorized minimum of :func:`_order_key` (of −0.0 and +0.0 it returns −0.0; NumPy may return either)."""
    lowest = np.int64(_MAGNITUDE_BITS)  # above every float's key
    nans = 0
    for index in range(values.size):
        value = values[index]
        key = _order_key(value)
        lowest = key if key < lowest else lowest
        nans += value != value
    return np.nan if nans or values.size == 0 else _key_value(lowest)


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def first_argmax(values: np.ndarray, start: int, count: int) -> int:
    """``np.argmax(values[start:start + count])``: the first maximum, or the first NaN if there is one."""
    best = 0
    best_value = values[start]
    if best_value != best_value:
        return 0
    for offset in range(1, count):
        value = values[start + offset]
        if value != value:
            return offset
        if value > best_value:
            best, best_value = offset, value
    return best


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def first_argmin(values: np.ndarray, start: int, count: int) -> int:
    """``np.argmin(values[start:start + count])``: the first minimum, or the first NaN if there is one."""
    best = 0
    best_value = values[start]
    if best_value != best_value:
        return 0
    for offset in range(1, count):
        value = values[start + offset]
        if value != value:
            return offset
        if value < best_value:
            best, best_value = offset, value
    return best


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def pairwise_column_sums(values: np.ndarray, n_rows: int, n_cols: int, scratch: np.ndarray,
                         out: np.ndarray) -> None:
    """``out[c] = np.sum(column c)`` of a row-major (n_rows, n_cols) block ``values`` (1-D, contiguous), each
    column summed in NumPy's pairwise order as if it were contiguous; vectorized across columns.

    ``scratch`` is (8, n_cols) for the eight accumulators (and a column copy when n_rows > 128).
    """
    if n_rows < 8:
        out[:n_cols] = 0.0
        for row in range(n_rows):
            for col in range(n_cols):
                out[col] += values[row * n_cols + col]
    elif n_rows < 16:  # one group of eight, then the rest left to right (BPZ's eight templates)
        for col in range(n_cols):
            out[col] = (((values[col] + values[n_cols + col]) + (values[2 * n_cols + col] + values[3 * n_cols + col]))
                        + ((values[4 * n_cols + col] + values[5 * n_cols + col])
                           + (values[6 * n_cols + col] + values[7 * n_cols + col])))
        for row in range(8, n_rows):
            for col in range(n_cols):
                out[col] += values[row * n_cols + col]
    elif n_rows <= _BLOCK:
        for lane in range(8):
            for col in range(n_cols):
                scratch[lane, col] = values[lane * n_cols + col]
        row = 8
        stop = n_rows - n_rows % 8
        while row < stop:
            for lane in range(8):
                for col in range(n_cols):
                    scratch[lane, col] += values[(row + lane) * n_cols + col]
            row += 8
        for col in range(n_cols):
            out[col] = (((scratch[0, col] + scratch[1, col]) + (scratch[2, col] + scratch[3, col]))
                        + ((scratch[4, col] + scratch[5, col]) + (scratch[6, col] + scratch[7, col])))
        while row < n_rows:
            for col in range(n_cols):
                out[col] += values[row * n_cols + col]
            row += 1
    else:
        column = np.empty(n_rows)
        for col in range(n_cols):
            for row in range(n_rows):
                column[row] = values[row * n_cols + col]
            out[col] = pairwise_sum(column, 0, n_rows)

