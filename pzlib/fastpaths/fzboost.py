"""FlexZBoost from a RAIL-trained flexcode model, with compiled post-processing and RAIL's answers.

Stock ``FlexZBoostEstimator`` (pz-rail-flexzboost 2.0.3, flexcode 0.2.3) spends most of its time outside the
model: flexcode normalizes every PDF with a bisection run through ``np.apply_along_axis``, removes bumps in a
pure-Python loop over the 301 bins and sharpens; the 35 xgboost regressors are called through scikit-learn's
``MultiOutputRegressor``, whose joblib workers receive the pickled models on every call; and a qp ensemble
is built per chunk. :class:`FastFlexZBoost` evaluates the 35 regressors' trees in process — by default with
:class:`~pzlib.fastpaths.trees.CompiledForest` (compiled code on xgboost's own JSON model, xgboost's float32
sums: the same coefficients bit for bit, about 2.5× faster than xgboost's predictor, whose time is the tree
walk itself, not its per-call overhead), or with xgboost's ``inplace_predict`` — evaluates the basis once
per process, and runs flexcode's post-processing in compiled code, 32 rows side by side so that the
compiler vectorizes across them.

The answers are flexcode's bit for bit: the compiled normalize / remove_bumps are flexcode's algorithms with
the same operations in the same order for each row (NumPy's pairwise order for ``np.mean``), while the steps
whose last bits depend on NumPy's kernels (the basis, the matrix product, the sharpening power) are NumPy
calls on the same values as flexcode's. The mode is the grid argmax of the PDF, as RAIL computes it.
"""

from __future__ import annotations

import numba
import numpy as np

from pzlib.config import load_settings
from pzlib.fastpaths.result import FastResult, interp_normalize, stage_config
from pzlib.fastpaths.trees import CompiledForest, UnsupportedModel

TREE_ENGINES = ("auto", "compiled", "xgboost")
"""How the regressors' trees are evaluated: 'compiled' (:class:`~pzlib.fastpaths.trees.CompiledForest`),
'xgboost' (its ``inplace_predict``, for comparison), 'auto' (compiled when the model is one it lays out —
RAIL's always is — else xgboost). All give xgboost's coefficients bit for bit."""

NORMALIZE_TOL = 1e-6
"""flexcode's tolerance on |area − 1| in its bisection normalize."""
NORMALIZE_ITERATIONS = 200
"""Bisection steps of flexcode's ``normalize`` (the batch call)."""
BUMP_NORMALIZE_ITERATIONS = 500
"""Bisection steps of the ``_normalize`` flexcode's ``remove_bumps`` ends with (its default)."""


class FastFlexZBoost:
    """RAIL's FlexZBoost estimate for batches of objects, from the flexcode model ``FlexZBoostInformer``
    trained.

    Parameters
    ----------
    model : flexcode.FlexCodeModel
        The unpickled RAIL model (xgboost regressors). Its boosters are set to predict with ``threads``
        threads; nothing else in it changes.
    options : dict
        The RAIL stage options the stock ``FlexZBoostEstimator`` is made with (e.g.
        ``EstimateConfig('fzboost').stage_options()``); RAIL's defaults fill the rest.
    threads : int
        Threads for the xgboost prediction (one per process by default; the compiled engine runs one).
    tree_engine : str
        One of :data:`TREE_ENGINES` ('auto' by default). The compiled engine keeps its tree layout under the
        settings' cache folder (``trees/``), for the next process with the same model.

    Raises
    ------
    ValueError
        A ``qp_representation`` other than 'interp', a ref_band outside bands, regressors that are not
        xgboost tree boosters, a bad thread count, an unknown tree engine, 'compiled' for a model it cannot
        lay out.

    Examples
    --------
    >>> fast = FastFlexZBoost(pickle.load(open("fzboost.pkl", "rb")),  # doctest: +SKIP
    ...                       EstimateConfig("fzboost").stage_options())
    >>> result = fast.estimate(columns)  # doctest: +SKIP
    """

    def __init__(self, model, options: dict, threads: int = 1, tree_engine: str = "auto"):
        from flexcode.basis_functions import evaluate_basis
        from flexcode.helpers import make_grid
        from rail.estimation.algos.flexzboost import FlexZBoostEstimator

        config = stage_config(FlexZBoostEstimator, options)
        if config["qp_representation"] != "interp":
            raise ValueError(f"the fast FlexZBoost path stores PDFs on a grid (qp_representation 'interp'), "
                             f"not {config['qp_representation']!r}; use the stock RAIL engine for it")
        if config["ref_band"] not in config["bands"]:
            raise ValueError(f"ref_band {config['ref_band']!r} is not one of the bands {config['bands']}")
        if threads <= 0:
            raise ValueError(f"threads must be positive, got {threads}")
        if tree_engine not in TREE_ENGINES:
            raise ValueError(f"unknown tree engine {tree_engine!r} (tree engines: {', '.join(TREE_ENGINES)})")
        self.config = config
        self._boosters = [_in_process_booster(regressor, threads) for regressor in _regressors(model)]
        self._forest = None
        if tree_engine != "xgboost":
            try:
                self._forest = CompiledForest(self._boosters, cache_dir=load_settings().cache_dir / "trees")
            except UnsupportedModel:
                if tree_engine == "compiled":
                    raise
        self.tree_engine = "xgboost" if self._forest is None else "compiled"
        """The tree engine in use: 'compiled' or 'xgboost'."""
        self._best_basis = model.best_basis
        self._bump_threshold = model.bump_threshold
        self._sharpen_alpha = model.sharpen_alpha
        self._width = model.z_max - model.z_min
        self.grid = np.array(make_grid(config["nzbins"], model.z_min, model.z_max)).flatten()
        # flexcode's predict: the basis on the unit grid, restricted to the selected functions.
        basis = evaluate_basis(make_grid(config["nzbins"], 0.0, 1.0), max(model.best_basis) + 1,
                               model.basis_system)
        self._basis = basis[:, model.best_basis]
        self._plan = _pairwise_plan(config["nzbins"])

    def estimate(self, columns: dict[str, np.ndarray]) -> FastResult:
        """FlexZBoost PDFs and mode of one batch (``columns``: the stage's bands and err_bands).

        Returns a :class:`FastResult` whose ``pdfs`` are the stock ensemble's ``yvals`` and ``zmode`` the
        stock stage's ``mode``; ``zmean`` is None (the stock stage does not provide one).
        """
        cdes = self._densities(self._features(columns))
        zmode = self.grid[np.argmax(cdes, axis=1)]
        return FastResult(grid=self.grid, pdfs=interp_normalize(self.grid, cdes), zmode=zmode)

    def _features(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """RAIL's regressor input: non-detections replaced by the band's limit, then magnitude and colors."""
        from rail.estimation.algos.flexzboost import make_color_data

        config = self.config
        data = {name: np.array(columns[name]) for name in (*config["bands"], *config["err_bands"])}
        for band, error in zip(config["bands"], config["err_bands"], strict=True):
            if np.isnan(config["nondetect_val"]):
                undetected = np.isnan(data[band])
            else:
                undetected = np.isclose(data[band], config["nondetect_val"], atol=0.01)
            data[band][undetected] = config["mag_limits"][band]
            data[error][undetected] = 1.0
        return make_color_data(data, config["bands"], config["err_bands"], config["ref_band"],
                               include_mag_err=config["include_mag_err"])

    def _densities(self, features: np.ndarray) -> np.ndarray:
        """flexcode's ``FlexCodeModel.predict`` densities (before qp), from in-process tree predictions."""
        coefficients = self.coefficients(features)
        # NumPy's BLAS with its configured threads, as in flexcode: OpenBLAS's last bits depend on them.
        # flexcode's float32 @ float64 product casts to float64 and calls the same BLAS; cast first, as that
        # is 3x quicker than NumPy's casting loop and gives the same bits.
        cdes = np.matmul(coefficients[:, self._best_basis].astype(np.float64), self._basis.T)
        remove_bumps = self._bump_threshold is not None
        _normalize_rows(cdes, remove_bumps, self._bump_threshold if remove_bumps else 0.0, self._plan)
        if self._sharpen_alpha is not None:
            _sharpen(cdes, self._sharpen_alpha)
            _normalize_rows(cdes, False, 0.0, self._plan)
        cdes /= self._width
        return cdes


    def coefficients(self, features: np.ndarray) -> np.ndarray:
        """(n_objects, n_regressors) float32: each regressor's prediction, ``XGBRegressor.predict``'s bit for
        bit, by the tree engine in use."""
        if self._forest is not None:
            return self._forest.predict(features)
        coefficients = np.empty((features.shape[0], len(self._boosters)), dtype=np.float32)
        for column, (booster, iteration_range, missing) in enumerate(self._boosters):
            coefficients[:, column] = booster.inplace_predict(features, iteration_range=iteration_range,
                                                              missing=missing, validate_features=False)
        return coefficients


def _sharpen(cdes: np.ndarray, alpha: float) -> None:
    """flexcode's ``cdes **= alpha``, in place, with NumPy's own power (its last bits are NumPy's SIMD
    kernel's): for alpha > 0 on the positive values only — most of a normalized density is 0, which stays 0
    (a -0.0 stays -0.0 where NumPy would make it +0.0: the same value)."""
    if alpha > 0:
        positive = cdes > 0.0
        values = cdes[positive]
        np.power(values, alpha, out=values)
        cdes[positive] = values
    else:
        cdes **= alpha


def _regressors(model) -> list:
    """The fitted per-basis-function regressors of a flexcode model, checked to be xgboost's."""
    from xgboost import XGBRegressor

    regressors = getattr(getattr(getattr(model, "model", None), "models", None), "estimators_", None)
    if not regressors or not all(isinstance(regressor, XGBRegressor) for regressor in regressors):
        raise ValueError("the fast FlexZBoost path needs a flexcode model fitted with xgboost regressors "
                         "(RAIL's FlexZBoostInformer); use the stock RAIL engine for other models")
    return regressors


def _in_process_booster(regressor, threads: int) -> tuple:
    """(booster set to ``threads``, iteration range, missing value) as ``XGBRegressor.predict`` uses them."""
    if regressor.booster == "gblinear":
        raise ValueError("the fast FlexZBoost path needs tree boosters, not gblinear")
    booster = regressor.get_booster()  # set in place: a copy of 35 boosters costs seconds per process
    booster.set_param({"nthread": threads})
    try:  # XGBRegressor.predict uses the early-stopping best iteration when there is one
        iteration_range = (0, regressor.best_iteration + 1)
    except AttributeError:
        iteration_range = (0, 0)
    return booster, iteration_range, regressor.missing


LANES = 32
"""Rows post-processed together, side by side: the compiler vectorizes across them, while each row still
gets exactly flexcode's operations in flexcode's order."""


def _pairwise_plan(n_bins: int) -> np.ndarray:
    """NumPy's pairwise-summation tree of ``n_bins`` terms (see :mod:`pzlib.fastpaths.reductions`) as a
    postfix program: rows (start, count) sum a run of at most 128 terms onto a stack, (-1, -1) adds the top
    two."""
    if n_bins <= 128:
        return np.array([[0, n_bins]], dtype=np.int64)
    half = n_bins // 2
    half -= half % 8
    rest = _pairwise_plan(n_bins - half)
    rest[rest[:, 0] >= 0, 0] += half
    return np.concatenate([_pairwise_plan(half), rest, [[-1, -1]]])


@numba.njit(cache=True, error_model="numpy")
def _normalize_rows(cdes, remove_bumps, bump_threshold, plan):
    """flexcode's ``normalize`` on every row, then (when asked) its ``remove_bumps``, in place; rows go
    through in groups of :data:`LANES`, transposed so that each bin's values of the group sit side by side."""
    n_rows, n_bins = cdes.shape
    lanes = np.empty((n_bins, LANES))
    work = np.empty((5 + 8 + plan.shape[0], LANES))
    for first in range(0, n_rows, LANES):
        count = min(LANES, n_rows - first)
        for lane in range(LANES):  # a short last group repeats its last row in the spare lanes
            row = first + min(lane, count - 1)
            for index in range(n_bins):
                lanes[index, lane] = cdes[row, index]
        _normalize_lanes(lanes, NORMALIZE_ITERATIONS, plan, work)
        if remove_bumps:
            for lane in range(LANES):
                _remove_bumps(lanes, lane, bump_threshold)
            _normalize_lanes(lanes, BUMP_NORMALIZE_ITERATIONS, plan, work)
        for lane in range(count):
            for index in range(n_bins):
                cdes[first + lane, index] = lanes[index, lane]


@numba.njit(cache=True, error_model="numpy")
def _normalize_lanes(lanes, max_iter, plan, work):
    """flexcode's ``_normalize`` on each column of ``lanes``: non-negative with unit mean on the grid, by
    bisection on a shift (``np.mean(np.maximum(density - shift, 0.0))`` is the pairwise excess sum over the
    bin count). The columns bisect together; a column that is done keeps its shift."""
    n_bins = lanes.shape[0]
    high, low, middle, area, state = work[0], work[1], work[2], work[3], work[4]
    high[:] = lanes[0]
    for index in range(n_bins):  # np.max: NaN propagates
        values = lanes[index]
        for lane in range(LANES):
            if values[lane] > high[lane] or values[lane] != values[lane]:
                high[lane] = values[lane]
    low[:] = 0.0
    middle[:] = 0.0
    _excess_sums(lanes, middle, plan, work[5:], area)
    bisecting = 0
    for lane in range(LANES):
        area[lane] /= n_bins
        state[lane] = 1.0  # bisecting
        if area[lane] == 0.0:  # all non-positive: flexcode makes it uniform, then still bisects
            lanes[:, lane] = 1.0
        elif area[lane] < 1:
            state[lane] = 0.0  # scaled, no shift
            for index in range(n_bins):
                lanes[index, lane] /= area[lane]
                if lanes[index, lane] < 0.0:
                    lanes[index, lane] = 0.0
        bisecting += state[lane] == 1.0
    shifted = state != 0.0
    for _ in range(max_iter):
        if bisecting == 0:
            break
        for lane in range(LANES):
            if state[lane] == 1.0:
                middle[lane] = (high[lane] + low[lane]) / 2
        _excess_sums(lanes, middle, plan, work[5:], area)
        for lane in range(LANES):
            if state[lane] == 1.0:
                mean = area[lane] / n_bins
                if abs(1.0 - mean) <= NORMALIZE_TOL:
                    state[lane] = 2.0  # converged
                    bisecting -= 1
                elif mean < 1.0:
                    high[lane] = middle[lane]
                else:
                    low[lane] = middle[lane]
    for lane in range(LANES):  # a column that was only scaled keeps a shift of 0, which changes nothing
        if not shifted[lane]:
            middle[lane] = 0.0
    for index in range(n_bins):
        values = lanes[index]
        for lane in range(LANES):
            value = values[lane] - middle[lane]
            values[lane] = 0.0 if value < 0.0 else value


@numba.njit(cache=True, error_model="numpy")
def _excess_sums(lanes, shift, plan, work, out):
    """``np.sum(np.maximum(lanes[:, lane] - shift[lane], 0.0))`` for every lane, in NumPy's pairwise order
    (``plan``: :func:`_pairwise_plan`); ``work`` rows 0-7 hold the eight accumulators, the rest the stack."""
    accumulators, stack = work[:8], work[8:]
    depth = 0
    for step in range(plan.shape[0]):
        start, count = plan[step, 0], plan[step, 1]
        if start < 0:
            below, top = stack[depth - 2], stack[depth - 1]
            for lane in range(LANES):
                below[lane] = below[lane] + top[lane]
            depth -= 1
            continue
        total = stack[depth]
        if count < 8:
            total[:] = 0.0
            for index in range(start, start + count):
                values = lanes[index]
                for lane in range(LANES):
                    total[lane] += _excess(values[lane], shift[lane])
        else:
            for accumulator in range(8):
                values, sums = lanes[start + accumulator], accumulators[accumulator]
                for lane in range(LANES):
                    sums[lane] = _excess(values[lane], shift[lane])
            index = start + 8
            stop = start + count - count % 8
            while index < stop:
                for accumulator in range(8):
                    values, sums = lanes[index + accumulator], accumulators[accumulator]
                    for lane in range(LANES):
                        sums[lane] += _excess(values[lane], shift[lane])
                index += 8
            for lane in range(LANES):
                total[lane] = (((accumulators[0, lane] + accumulators[1, lane])
                                + (accumulators[2, lane] + accumulators[3, lane]))
                               + ((accumulators[4, lane] + accumulators[5, lane])
                                  + (accumulators[6, lane] + accumulators[7, lane])))
            while index < start + count:
                values = lanes[index]
                for lane in range(LANES):
                    total[lane] += _excess(values[lane], shift[lane])
                index += 1
        depth += 1
    out[:] = stack[0]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _excess(value, shift):
    """``np.maximum(value - shift, 0.0)`` (NaN propagates)."""
    difference = value - shift
    return difference if (difference >= 0.0 or difference != difference) else 0.0


@numba.njit(cache=True, error_model="numpy")
def _remove_bumps(lanes, lane, delta):
    """flexcode's ``_remove_bumps`` on one column, before its closing renormalization: zero every positive
    run whose area is below ``delta``."""
    n_bins = lanes.shape[0]
    bin_size = 1.0 / n_bins
    area = 0.0
    left = 0
    for right in range(n_bins):
        value = lanes[right, lane]
        if value <= 0.0:
            if area < delta:
                lanes[left:right + 1, lane] = 0.0
            left = right + 1
            area = 0.0
        else:
            area += value * bin_size
    if area < delta:
        lanes[left:, lane] = 0.0
