"""KNN (rail sklearn's KNearNeigh) from a RAIL-trained model, its Gaussian mixtures evaluated once, with
RAIL's answers.

Stock ``KNearNeighEstimator`` (pz-rail-sklearn) finds each object's neighbours in a few milliseconds per
thousand objects; the rest of the stage — 95% — is qp evaluating the Gaussian mixtures on the 301-point grid
through scipy's frozen-distribution machinery (argument broadcasting, ``ravel``, ``place`` over (components ×
objects × grid) arrays): once in the stage for its mode, and once more where :class:`~pzlib.estimate.
PartitionEstimator` stores the PDF on the grid. :class:`FastKNearNeigh` runs RAIL's own code up to the mixture
(colours, the tree query, ``_makepdf``'s qp ensemble with its normalized weights) and evaluates the mixture
once, one component at a time with ``scipy.stats.norm.pdf``.

The answers are RAIL's bit for bit: each component's density is the same scipy function of the same grid,
mean and width (qp's mixmod calls ``scipy.stats.norm(loc, scale).pdf``), weighted and added in component
order as qp's sum over its component axis adds them; the mode is the grid argmax of those values, as qp's
``mode`` takes it. ``pdfs`` are the mixture on the grid — what the stock engine stores for this estimator.
"""

from __future__ import annotations

import numpy as np

from pzlib.fastpaths.result import FastResult, stage_config


class FastKNearNeigh:
    """RAIL's KNN estimate for batches of objects, from the model ``KNearNeighInformer`` trained.

    Parameters
    ----------
    model : dict
        The unpickled RAIL model (``kdtree``, ``truezs``, ``bestsig``, ``nneigh``, ``only_colors``).
    options : dict
        The RAIL stage options the stock ``KNearNeighEstimator`` is made with (e.g.
        ``EstimateConfig('knn').stage_options()``); RAIL's defaults fill the rest.

    Examples
    --------
    >>> fast = FastKNearNeigh(pickle.load(open("knn.pkl", "rb")),  # doctest: +SKIP
    ...                       EstimateConfig("knn").stage_options())
    >>> result = fast.estimate(columns)  # doctest: +SKIP
    """

    def __init__(self, model: dict, options: dict):
        from rail.estimation.algos.k_nearneigh import KNearNeighEstimator

        self.config = stage_config(KNearNeighEstimator, options)
        if self.config["ref_band"] not in self.config["bands"]:
            raise ValueError(f"ref_band {self.config['ref_band']!r} is not one of the bands {self.config['bands']}")
        self._tree, self._redshifts = model["kdtree"], model["truezs"]
        self._width, self._neighbours = model["bestsig"], model["nneigh"]
        self._only_colors = model.get("only_colors", True)
        self.grid = np.linspace(self.config["zmin"], self.config["zmax"], self.config["nzbins"])

    def estimate(self, columns: dict[str, np.ndarray]) -> FastResult:
        """KNN PDFs on the grid and mode of one batch (``columns``: the stage's bands). Returns a
        :class:`FastResult` whose ``pdfs`` are the stock mixture on the grid and ``zmode`` the stock stage's
        ``zmode``; ``zmean`` is None."""
        from rail.estimation.algos.k_nearneigh import TEENY, _makepdf

        distances, indices = self._tree.query(self._features(columns), k=self._neighbours)
        distances += TEENY
        ensemble = _makepdf(distances, indices, self._redshifts, self._width)
        means, widths, weights = (np.asarray(ensemble.objdata[name]) for name in ("means", "stds", "weights"))
        pdfs = self._mixture(means, widths, weights)
        return FastResult(grid=self.grid, pdfs=pdfs, zmode=self.grid[np.argmax(pdfs, axis=1)])

    def _features(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """RAIL's tree input: non-detections at the band's limit, the reference magnitude and colours, through
        the same pandas operations as the stock stage (float32 stays float32)."""
        import pandas as pd
        from rail.estimation.algos.k_nearneigh import _computecolordata

        config = self.config
        frame = pd.DataFrame({band: np.array(columns[band]) for band in config["bands"]}, columns=config["bands"])
        for band in config["bands"]:
            if np.isnan(config["nondetect_val"]):
                undetected = np.isnan(frame[band])
            else:
                undetected = np.isclose(frame[band], config["nondetect_val"])
            frame.loc[undetected, band] = np.float32(config["mag_limits"][band])
        return _computecolordata(frame, config["ref_band"], config["bands"], self._only_colors)

    def _mixture(self, means: np.ndarray, widths: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Σ_k weight_k · N(grid; mean_k, width_k) per object, added in component order."""
        from scipy.stats import norm

        def term(component: int) -> np.ndarray:
            column = slice(component, component + 1)
            return weights[:, column] * norm.pdf(self.grid, loc=means[:, column], scale=widths[:, column])

        total = term(0)
        for component in range(1, means.shape[1]):
            total += term(component)
        return total
