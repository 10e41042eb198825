"""FlexZBoost from a RAIL-trained flexcode model, with compiled post-processing and RAIL's answers.

Stock ``FlexZBoostEstimator`` (pz-rail-flexzboost 2.0.3, flexcode 0.2.3) spends most of its time outside the
model: flexcode normalizes every PDF with a bisection run through ``np.apply_along_axis``, removes bumps in a
pure-Python loop over the 301 bins and sharpens; the 35 xgboost regressors are called through scikit-learn's
``MultiOutputRegressor``, whose joblib workers receive the pickled models on every call; and a qp ensemble
is built per chunk. :class:`FastFlexZBoost` calls each regressor's booster in process (``inplace_predict``,
one thread unless told otherwise), evaluates the basis once per process, and runs flexcode's
post-processing per row in compiled code.

The answers are flexcode's bit for bit: the compiled normalize / remove_bumps are flexcode's algorithms with
the same operations in the same order (NumPy's pairwise order for ``np.mean``), while the steps whose last
bits depend on NumPy's kernels (the basis, the matrix product, the sharpening power) are NumPy calls on the
same arrays as flexcode's. The mode is the grid argmax of the PDF, as RAIL computes it.
"""

from __future__ import annotations

import numba
import numpy as np

from pzlib.fastpaths.reductions import pairwise_excess_sum
from pzlib.fastpaths.result import FastResult, interp_normalize, stage_config

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
        Threads for the xgboost prediction (one per process by default).

    Raises
    ------
    ValueError
        A ``qp_representation`` other than 'interp', a ref_band outside bands, regressors that are not
        xgboost tree boosters, a bad thread count.

    Examples
    --------
    >>> fast = FastFlexZBoost(pickle.load(open("fzboost.pkl", "rb")),  # doctest: +SKIP
    ...                       EstimateConfig("fzboost").stage_options())
    >>> result = fast.estimate(columns)  # doctest: +SKIP
    """

    def __init__(self, model, options: dict, threads: int = 1):
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
        self.config = config
        self._boosters = [_in_process_booster(regressor, threads) for regressor in _regressors(model)]
        self._best_basis = model.best_basis
        self._bump_threshold = model.bump_threshold
        self._sharpen_alpha = model.sharpen_alpha
        self._width = model.z_max - model.z_min
        self.grid = np.array(make_grid(config["nzbins"], model.z_min, model.z_max)).flatten()
        # flexcode's predict: the basis on the unit grid, restricted to the selected functions.
        basis = evaluate_basis(make_grid(config["nzbins"], 0.0, 1.0), max(model.best_basis) + 1,
                               model.basis_system)
        self._basis = basis[:, model.best_basis]

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
        """flexcode's ``FlexCodeModel.predict`` densities (before qp), with in-process xgboost."""
        coefficients = np.empty((features.shape[0], len(self._boosters)), dtype=np.float32)
        for column, (booster, iteration_range, missing) in enumerate(self._boosters):
            coefficients[:, column] = booster.inplace_predict(features, iteration_range=iteration_range,
                                                              missing=missing, validate_features=False)
        # NumPy's BLAS with its configured threads, as in flexcode: OpenBLAS's last bits depend on them.
        cdes = np.matmul(coefficients[:, self._best_basis], self._basis.T)
        remove_bumps = self._bump_threshold is not None
        _normalize_rows(cdes, remove_bumps, self._bump_threshold if remove_bumps else 0.0)
        if self._sharpen_alpha is not None:
            cdes **= self._sharpen_alpha
            _normalize_rows(cdes, False, 0.0)
        cdes /= self._width
        return cdes


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


@numba.njit(cache=True, error_model="numpy")
def _normalize_rows(cdes, remove_bumps, bump_threshold):
    """flexcode's ``normalize`` on every row, then (when asked) its ``remove_bumps``, in place."""
    for row in range(cdes.shape[0]):
        density = cdes[row]
        _normalize(density, NORMALIZE_ITERATIONS)
        if remove_bumps:
            _remove_bumps(density, bump_threshold)


@numba.njit(cache=True, error_model="numpy")
def _normalize(density, max_iter):
    """flexcode's ``_normalize``: non-negative with unit mean on the grid, by bisection on a shift
    (``np.mean(np.maximum(density - shift, 0.0))`` is the pairwise excess sum over the bin count)."""
    n_bins = density.size
    high = density[0]
    for value in density:  # np.max: NaN propagates
        if value > high or value != value:
            high = value
    low = 0.0
    area = pairwise_excess_sum(density, 0, n_bins, 0.0) / n_bins
    if area == 0.0:  # all non-positive: flexcode makes it uniform, then still bisects
        density[:] = 1.0
    elif area < 1:
        for index in range(n_bins):
            density[index] /= area
            if density[index] < 0.0:
                density[index] = 0.0
        return
    middle = 0.0
    for _ in range(max_iter):
        middle = (high + low) / 2
        area = pairwise_excess_sum(density, 0, n_bins, middle) / n_bins
        if abs(1.0 - area) <= NORMALIZE_TOL:
            break
        if area < 1.0:
            high = middle
        else:
            low = middle
    for index in range(n_bins):
        density[index] -= middle
        if density[index] < 0.0:
            density[index] = 0.0


@numba.njit(cache=True, error_model="numpy")
def _remove_bumps(density, delta):
    """flexcode's ``_remove_bumps``: zero every positive run whose area is below ``delta``, renormalize."""
    n_bins = density.size
    bin_size = 1.0 / n_bins
    area = 0.0
    left = 0
    for right in range(n_bins):
        value = density[right]
        if value <= 0.0:
            if area < delta:
                density[left:right + 1] = 0.0
            left = right + 1
            area = 0.0
        else:
            area += value * bin_size
    if area < delta:
        density[left:] = 0.0
    _normalize(density, BUMP_NORMALIZE_ITERATIONS)
