"""Fast estimate paths: RAIL's BPZ-lite, FlexZBoost, TPZ and KNN answers from RAIL-trained models, at a
fraction of the cost.

RAIL stays the trainer and the reference. A fast estimator is built once per process from the unpickled
RAIL model and the same stage options dict the stock RAIL stage is made with, and maps a batch of stage I
columns (``id``, ``mag_{band}_lsst``, ``mag_err_{band}_lsst``; 99.0 for a non-detection) to a
:class:`FastResult` with the values the stock stage would have stored — no qp ensemble is built. The
equality tests under ``tests/pzlib/fastpaths`` hold these paths to the stock stages on the DC2 validation
set. :mod:`pzlib.fastpaths.summaries` compiles what the photo-z table keeps of each PDF (quantiles, mean,
stored CDF), behind :func:`pzlib.pdf.summarize`.

Examples
--------
>>> fast = make_fast_estimator("bpz", model, EstimateConfig("bpz").stage_options())  # doctest: +SKIP
>>> result = fast.estimate(columns)  # doctest: +SKIP
>>> result.grid.shape, result.pdfs.shape, result.zmode.shape  # doctest: +SKIP
((301,), (20449, 301), (20449,))
"""

from __future__ import annotations

from pzlib.fastpaths.bpz import FastBPZlite
from pzlib.fastpaths.fzboost import FastFlexZBoost
from pzlib.fastpaths.knn import FastKNearNeigh
from pzlib.fastpaths.result import FastResult, interp_normalize, stage_config
from pzlib.fastpaths.tpz import FastTPZlite

FAST_ESTIMATORS = {"bpz": FastBPZlite, "fzboost": FastFlexZBoost, "tpz": FastTPZlite, "knn": FastKNearNeigh}
"""Estimators with a fast path, by their pzlib short names."""

__all__ = ["FAST_ESTIMATORS", "FastBPZlite", "FastFlexZBoost", "FastKNearNeigh", "FastResult", "FastTPZlite",
           "interp_normalize", "make_fast_estimator", "stage_config"]


def make_fast_estimator(estimator: str, model,
                        options: dict) -> FastBPZlite | FastFlexZBoost | FastTPZlite | FastKNearNeigh:
    """The fast path of ``estimator`` (a key of :data:`FAST_ESTIMATORS`) for an unpickled RAIL model and stage
    options.

    Raises
    ------
    ValueError
        When ``estimator`` has no fast path, or the options ask for something the fast path does not do.
    """
    if estimator not in FAST_ESTIMATORS:
        raise ValueError(f"no fast path for estimator {estimator!r} (fast paths: "
                         f"{', '.join(FAST_ESTIMATORS)}); use the stock RAIL engine")
    return FAST_ESTIMATORS[estimator](model, options)
