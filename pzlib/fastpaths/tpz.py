"""TPZ from a RAIL-trained forest, one tree prediction per tree for a whole batch, with RAIL's answers.

Stock ``TPZliteEstimator`` (pz-rail-tpz 2.1.2) loops over trees and, inside, over objects: each of the 40
scikit-learn trees (5 trees × 8 realizations) is asked for one object at a time, and scikit-learn's input
validation around every call (``check_array``, narwhals' dataframe detection, estimator tags) costs ~100 µs
where the tree walk itself costs well under 1 µs — 95% of the stage. Per object it then also computes error
and confidence figures (``compute_error3``, ``compute_zConf2``) that the stage throws away. :class:`FastTPZlite`
asks each tree once for the whole batch, histograms the predictions as RAIL does, and smooths each object's
histogram into its PDF with RAIL's own NumPy calls.

The answers are RAIL's bit for bit: a tree's prediction of a row does not depend on the other rows it is
asked with; counts of whole objects add exactly in any order; the PDF steps are the same NumPy calls on the
same arrays (``np.interp``, ``np.convolve`` per object; the maxima, thresholds and sums per row), the sum
RAIL takes with Python's ``sum`` is the same sequential sum (``np.cumsum``'s last value); and the qp
ensemble, which normalizes the PDFs and gives the mode on RAIL's redshift grid, is built exactly as the stock
stage builds it.
"""

from __future__ import annotations

import numpy as np

from pzlib.fastpaths.result import FastResult, stage_config

GAP = -1.0
"""The prediction of a tree TPZ skips (its 'no value')."""


class FastTPZlite:
    """RAIL's TPZ-lite estimate for batches of objects, from the model ``TPZliteInformer`` trained.

    Parameters
    ----------
    model : dict
        The unpickled RAIL model (``treedict`` of scikit-learn ``DecisionTreeRegressor``, grid and attributes).
    options : dict
        The RAIL stage options the stock ``TPZliteEstimator`` is made with (e.g.
        ``EstimateConfig('tpz').stage_options()``); RAIL's defaults fill the rest.

    Raises
    ------
    ValueError
        A model of TPZ's own trees (``tree_strategy`` 'native'), which only the stock stage walks.

    Examples
    --------
    >>> fast = FastTPZlite(pickle.load(open("tpz.pkl", "rb")), EstimateConfig("tpz").stage_options())  # doctest: +SKIP
    >>> result = fast.estimate(columns)  # doctest: +SKIP
    """

    def __init__(self, model: dict, options: dict):
        from rail.estimation.algos.mlz_utils import analysis
        from rail.estimation.algos.tpz_lite import TPZliteEstimator, objfromdict

        if model.get("tree_strategy") != "sklearn":
            raise ValueError(f"the fast TPZ path walks scikit-learn trees (tree_strategy 'sklearn'), not "
                             f"{model.get('tree_strategy')!r}; use the stock RAIL engine for this model")
        self.config = stage_config(TPZliteEstimator, options)
        self._pars = objfromdict(model)
        ntot = int(self._pars.n_random * self._pars.n_trees)
        self._trees = [model["treedict"][f"tree_{k}"] for k in range(ntot)]
        # What RAIL's GetPz_short holds: the histogram bins and the smoothing kernel.
        shaper = analysis.GetPz_short(self._pars)
        self._bins, self._bin_width = shaper.Nbins, shaper.resz
        self._bin_centres, self._fine_grid, self._inside = shaper.zbins, shaper.zfine2, shaper.wzin
        self._kernel = shaper.gaus2
        self.grid = self._fine_grid[self._inside]
        self._mode_grid = np.linspace(self._pars.zmin, self._pars.zmax, self._pars.nzbins)

    def estimate(self, columns: dict[str, np.ndarray]) -> FastResult:
        """TPZ PDFs and mode of one batch (``columns``: ``id``, the stage's bands and err_bands, in the order
        the stock stage is given them). Returns a :class:`FastResult` whose ``pdfs`` are the stock ensemble's
        ``yvals`` and ``zmode`` its ``zmode``; ``zmean`` is None."""
        import qp

        histograms = self._histograms(self._features(columns))
        pdfs = np.stack([self._pdf(histogram) for histogram in histograms]) if len(histograms) else (
            np.zeros((0, self.grid.size)))
        ensemble = qp.Ensemble(qp.interp, data={"xvals": self.grid, "yvals": pdfs})
        zmode = np.asarray(ensemble.mode(grid=self._mode_grid)).reshape(-1)
        return FastResult(grid=self.grid, pdfs=np.asarray(ensemble.objdata["yvals"]), zmode=zmode)

    def _features(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """RAIL's tree input: non-detections at the band's limit (error 1), the attribute columns of the
        all-column array the stock stage builds (same dtype promotion)."""
        from rail.estimation.algos.mlz_utils import data
        from rail.estimation.algos.tpz_lite import make_index_dict

        config, pars = self.config, self._pars
        columns = {name: np.array(values) for name, values in columns.items()}
        errors = {pars.redshift_col: None, **dict(zip(config["bands"], config["err_bands"], strict=True))}
        for band, error in errors.items():
            if band == pars.redshift_col:
                continue
            if np.isnan(config["nondetect_val"]):
                undetected = np.isnan(columns[band]) | np.isnan(columns[error])
            else:
                undetected = (np.isclose(columns[band], config["nondetect_val"])
                              | np.isclose(columns[error], config["nondetect_val"]))
            columns[band][undetected] = config["mag_limits"][band]
            columns[error][undetected] = 1.0
        names = list(columns)
        catalog = data.catalog(pars, np.array(list(columns.values())).T, names, pars.use_atts,
                               make_index_dict(errors, names))
        catalog.get_XY()
        return catalog.X

    def _histograms(self, features: np.ndarray) -> np.ndarray:
        """Per object, how many trees predict a redshift in each bin (RAIL's ``get_hist``: a bin above the last
        is dropped, a gap prediction skipped)."""
        histograms = np.zeros((features.shape[0], self._bins))
        for tree in self._trees:
            predictions = tree.predict(features)
            bins = np.floor(predictions / self._bin_width).astype(np.int64)
            kept = (predictions != GAP) & (bins <= self._bins - 1)
            np.add.at(histograms, (np.nonzero(kept)[0], bins[kept]), 1.0)
        return histograms

    def _pdf(self, histogram: np.ndarray) -> np.ndarray:
        """RAIL's ``GetPz_short.get_pdf`` PDF of one histogram, without the error figures it also computes."""
        pdf = np.interp(self._fine_grid, self._bin_centres, histogram)
        pdf = np.where(np.greater(pdf, np.max(pdf) * 0.20), pdf, 0.0)
        pdf = np.convolve(pdf, self._kernel, 1)
        pdf = np.where(np.greater(pdf, np.max(pdf) * 0.005), pdf, 0.0)
        if np.sum(pdf) > 0.0:
            pdf /= np.sum(pdf)
        pdf = pdf[self._inside]
        total = np.cumsum(pdf)[-1]  # Python's sum(pdf) in RAIL: the same left-to-right additions
        if total > 0.0:
            pdf /= total
        return pdf
