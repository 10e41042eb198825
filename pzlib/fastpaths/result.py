"""What a fast estimator returns, and the two pieces of RAIL behaviour every fast path shares.

A fast estimator hands back plain arrays instead of a qp ensemble, so that the caller can write them straight
to its storage representation. The arrays are the ones the stock RAIL stage would have put in its ensemble:
the PDF values qp's ``interp`` representation keeps (:func:`interp_normalize` reproduces qp's own
normalization), and the point estimates the RAIL stage attaches as ancillary data. :func:`stage_config`
resolves a RAIL stage's configuration the way the stage itself does, so a fast path reads exactly the
defaults and overrides the stock stage would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from pzlib.fastpaths.reductions import SIDE_BY_SIDE, running_sums


@dataclass
class FastResult:
    """PDFs and point estimates of one batch, as the stock RAIL stage would store them."""

    grid: np.ndarray
    """Redshift grid (1-D), the ``xvals`` of the stock stage's qp ``interp`` ensemble."""
    pdfs: np.ndarray
    """(n_objects, len(grid)) float64: the ``yvals`` the stock ensemble holds, i.e. the estimator's PDF
    divided by its trapezoid integral on ``grid`` (qp's normalization, see :func:`interp_normalize`; a row
    whose integral is 0 is NaN, as in qp)."""
    zmode: np.ndarray
    """(n_objects,) the stock stage's mode: the grid redshift of the estimator's own PDF maximum."""
    zmean: np.ndarray | None = None
    """(n_objects,) the estimator's own mean when its stock stage provides one (BPZ), else None."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Other ancillary columns of the stock stage, by their RAIL names (BPZ: ``tb``, ``todds``)."""


def interp_normalize(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Turn ``values`` (n_objects, len(grid) float64), in place, into the ``yvals`` of
    ``qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": values})``, bit for bit; returns ``values``.

    qp divides each row by its trapezoid integral (a cumulative sum of trapezoids, in qp's operation order).
    An ensemble does that twice, because scipy's freeze builds the interp generator a second time from the
    already normalized values; so does this function. A row whose integral is 0 becomes NaN, as in qp.
    """
    interp_normalize_rows(np.ascontiguousarray(grid, dtype=np.float64), values)
    return values


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def interp_normalize_rows(grid, values):
    """:func:`interp_normalize`'s two normalizations in place, for compiled callers (``grid`` contiguous
    float64), eight rows at a time, each row with qp's operations in qp's order. An integral is a chain of ~300
    dependent additions: the eight rows' chains advance side by side (:func:`running_sums`). The divisions,
    which then bound the speed, share their loops with the trapezoids of the next integrals: the row's second
    ones, then those of the row its lane takes next."""
    n_rows, n_z = values.shape
    half_widths = np.empty(n_z - 1)
    for index in range(n_z - 1):
        half_widths[index] = (grid[index + 1] - grid[index]) * 0.5
    trapezoids = np.zeros((SIDE_BY_SIDE, n_z))  # column 0 stays 0.0, where qp's sum starts
    spare = np.zeros(n_z)  # stands for the rows past the last one
    for lane in range(min(SIDE_BY_SIDE, n_rows)):
        for index in range(n_z - 1):
            trapezoids[lane, index + 1] = _trapezoid(half_widths, values[lane], index)
    for first in range(0, n_rows, SIDE_BY_SIDE):
        count = min(SIDE_BY_SIDE, n_rows - first)
        integrals = running_sums(trapezoids, None)
        for lane in range(count):
            row, integral = values[first + lane], integrals[lane]
            previous = row[0] = row[0] / integral
            for index in range(n_z - 1):
                quotient = row[index + 1] = row[index + 1] / integral
                trapezoids[lane, index + 1] = half_widths[index] * (quotient + previous)
                previous = quotient
        integrals = running_sums(trapezoids, None)
        for lane in range(count):
            row, integral = values[first + lane], integrals[lane]
            following = first + SIDE_BY_SIDE + lane
            following_row = values[following] if following < n_rows else spare
            for index in range(n_z - 1):
                row[index] = row[index] / integral
                trapezoids[lane, index + 1] = _trapezoid(half_widths, following_row, index)
            row[n_z - 1] = row[n_z - 1] / integral


@numba.njit(cache=True, error_model="numpy", fastmath=False, inline="always")
def _trapezoid(half_widths, row, index):
    """qp's trapezoid ``index`` of ``row``."""
    return half_widths[index] * (row[index + 1] + row[index])


def stage_config(stage_class: type, options: dict):
    """The configuration ``stage_class.make_stage(**options)`` would run with: RAIL's defaults and shared
    parameters, overridden by ``options`` (a ceci ``StageConfig``; items and attributes both work)."""
    from ceci.config import StageConfig

    config = StageConfig(**stage_class.config_options)
    config.set_config({}, options)
    return config
