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
    """Turn ``values`` (n_objects, len(grid)), in place, into the ``yvals`` of
    ``qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": values})``, bit for bit; returns ``values``.

    qp divides each row by its trapezoid integral (a cumulative sum of trapezoids, in qp's operation order).
    An ensemble does that twice, because scipy's freeze builds the interp generator a second time from the
    already normalized values; so does this function. A row whose integral is 0 becomes NaN, as in qp.
    """
    _interp_normalize_rows(np.ascontiguousarray(grid, dtype=np.float64), values)
    return values


@numba.njit(cache=True, error_model="numpy")
def _interp_normalize_rows(grid, values):
    for row in range(values.shape[0]):
        for _ in range(2):
            integral = 0.0
            for index in range(grid.size - 1):
                integral += (grid[index + 1] - grid[index]) * 0.5 * (values[row, index + 1] + values[row, index])
            for index in range(grid.size):
                values[row, index] = values[row, index] / integral


def stage_config(stage_class: type, options: dict):
    """The configuration ``stage_class.make_stage(**options)`` would run with: RAIL's defaults and shared
    parameters, overridden by ``options`` (a ceci ``StageConfig``; items and attributes both work)."""
    from ceci.config import StageConfig

    config = StageConfig(**stage_class.config_options)
    config.set_config({}, options)
    return config
