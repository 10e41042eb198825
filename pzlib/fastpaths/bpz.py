"""BPZ-lite from a RAIL-trained model, vectorized across objects, with RAIL's answers.

Stock ``BPZliteEstimator`` (pz-rail-bpz 2.2.0) runs a Python loop over objects: per object it builds
(redshift × template × band) temporaries for a likelihood, also computes a Bayesian likelihood it never uses,
recomputes the prior (which depends only on the reference magnitude), and wraps everything in a qp ensemble;
it also rereads the 48 template files on every ``estimate`` call. :class:`FastBPZlite` loads the templates
once, computes what the prior takes from each magnitude once per batch, tabulates the prior once per distinct
reference magnitude of a block and per broad type, computes likelihood and posterior for a whole block of
objects in compiled loops (one NumPy ``exp`` per block for both), and reuses its PDF buffer batch after batch.

The answers are RAIL's: every quantity is computed with the same operations, in the same order and the same
precision as RAIL and desc_bpz do them, with two exceptions — the χ² sums multiply by 1/σ² where desc_bpz
divides by σ² in every (redshift, template) cell, which makes the likelihood 1.3× faster, and the prior's two
normalizations multiply by the inverse of the sum where desc_bpz divides every value by it (an ulp at most);
PDFs move by at most ~5e-12 (the issue allows 1e-10), zmode and tb equal the stock stage's for every DC2
object, todds and zmean are within 1e-10. What that takes:

- the magnitude → flux conversion is RAIL's own function (already vectorized), so its float32 arithmetic on
  float32 input is kept: flux errors are squared in float32 and ``foo`` = Σ(f/σ)² is summed in float32;
- sums follow NumPy's order (pairwise over a contiguous axis, left to right over a leading one, see
  :mod:`pzlib.fastpaths.reductions`);
- ``exp`` and ``**`` are evaluated by NumPy on contiguous arrays, like the stock code, so that NumPy's SIMD
  implementations give the same last bits;
- the prior's magnitude offset keeps NumPy's scalar promotion: float32 m − m0 is a float32 difference.

Configuration is RAIL's: the same stage options dict, resolved with RAIL's defaults (nondetect_val,
unobserved_val, mag_limits, zp_errors, zp_offsets and override_file_offsets, mag_err_min, p_min, no_prior,
gauss_kernel, madau_flag, spectra_file, filter_list, zmin/zmax/nzbins). With ``gauss_kernel > 0`` the
smoothing runs through ``np.convolve`` per object, as in RAIL (slow, but never on by default).
"""

from __future__ import annotations

import fcntl
import glob
import os
from types import SimpleNamespace

import numba
import numpy as np

from pzlib.fastpaths.reductions import first_argmax, pairwise_column_sums, pairwise_sum
from pzlib.fastpaths.result import FastResult, interp_normalize, stage_config

PRIOR_TAIL_CLIP = 700.0
"""desc_bpz's prior clips (z/zm)^a at 700 before exponentiating."""


class FastBPZlite:
    """RAIL's BPZ-lite estimate for batches of objects, from the model ``BPZliteInformer`` trained.

    Parameters
    ----------
    model : dict
        The unpickled RAIL model: ``{'priormodel': {...}, 'zp_offsets': {'offsets': ...}}``.
    options : dict
        The RAIL stage options the stock ``BPZliteEstimator`` is made with (e.g.
        ``EstimateConfig('bpz').stage_options()``); RAIL's defaults fill the rest.
    block_rows : int
        Objects per vectorized block; memory is about 27 kB per object of a block (8 templates × 301
        redshifts, and the prior), so that the 32 objects of a default block stay in a core's L2 cache
        from one pass to the next (128 took ~10% longer).

    Raises
    ------
    ValueError
        Inconsistent bands / err_bands / filter_list, a ref_band outside bands, a bad block size.
    FileNotFoundError
        When the BPZ data folder (``bpz_ref_data_path``) does not exist.

    Examples
    --------
    >>> fast = FastBPZlite(pickle.load(open("bpz.pkl", "rb")), EstimateConfig("bpz").stage_options())  # doctest: +SKIP
    >>> result = fast.estimate(columns)  # doctest: +SKIP
    >>> result.zmode, result.extra["tb"]  # doctest: +SKIP
    """

    def __init__(self, model: dict, options: dict, block_rows: int = 32):
        from rail.estimation.algos.bpz_lite import BPZliteEstimator

        config = stage_config(BPZliteEstimator, options)
        bands, err_bands, filters = list(config["bands"]), list(config["err_bands"]), list(config["filter_list"])
        if not len(bands) == len(err_bands) == len(filters):
            raise ValueError(f"bands ({len(bands)}), err_bands ({len(err_bands)}) and filter_list "
                             f"({len(filters)}) must have the same length")
        if config["ref_band"] not in bands:
            raise ValueError(f"ref_band {config['ref_band']!r} is not one of the bands {bands}")
        if block_rows <= 0:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        self.config = config
        self.block_rows = block_rows
        self.grid = np.linspace(config["zmin"], config["zmax"], config["nzbins"])
        self._file_offsets = model["zp_offsets"]["offsets"]
        templates = _flux_templates(config, self.grid)  # (redshift, template, band), as RAIL loads them
        self._n_templates = templates.shape[1]
        # Band-major, template-then-redshift cells: the compiled loops run along contiguous redshifts.
        self._templates = np.ascontiguousarray(templates.transpose(2, 1, 0).reshape(templates.shape[2], -1))
        self._prior = _Prior(model["priormodel"], self.grid, no_prior=config["no_prior"])
        if self._prior.template_type.size != self._n_templates:
            raise ValueError(f"the prior's nt_array {model['priormodel']['nt_array']} does not add up to the "
                             f"{self._n_templates} templates of {config['spectra_file']}")
        self._pdfs = None  # the PDF buffer, reused batch after batch
        self._kernel = None
        if config["gauss_kernel"] > 0:
            width, step = config["gauss_kernel"], config["dz"]
            offsets = np.arange(-3.0 * width, 3.0 * width + step / 10.0, step)
            self._kernel = np.exp(-((offsets / width) ** 2))

    def estimate(self, columns: dict[str, np.ndarray]) -> FastResult:
        """BPZ-lite PDFs and point estimates of one batch (``columns``: the stage's bands and err_bands).

        Returns a :class:`FastResult` whose ``pdfs`` are the stock ensemble's ``yvals``, ``zmode`` and
        ``zmean`` BPZ's own, and ``extra`` holds ``tb`` (best template at the mode, float64 like RAIL's)
        and ``todds``. ``pdfs`` is a view of a buffer the next call overwrites (copy it to keep it): a
        worker streams batch after batch, and a fresh 120 MB array for each 50,000-row batch cost a tenth
        of the time in page faults.
        """
        from desc_bpz.bpz_tools_py3 import eeps, eps

        fluxes = _rail_fluxes(self.config, self._file_offsets, columns)
        flux, flux_err, ref_mag = fluxes["flux"], fluxes["flux_err"], fluxes["mag0"]
        n_objects, n_z = flux.shape[0], self.grid.size
        # desc_bpz compares f/σ with 1e-4 (and sums (f/σ)²) in the precision of f/σ, float32 for float32 input
        faint_ratio = np.result_type(flux, flux_err).type(1e-4)
        if self._pdfs is None or self._pdfs.shape[0] < n_objects or self._pdfs.shape[1] != n_z:
            self._pdfs = np.empty((n_objects, n_z))
        pdfs = self._pdfs[:n_objects]
        zmode, zmean = np.empty(n_objects), np.empty(n_objects)
        best_template, template_odds = np.empty(n_objects), np.empty(n_objects)
        block_rows = min(self.block_rows, n_objects)
        n_cells, n_types = self._templates.shape[1], self._prior.z_to_a.shape[0]
        # One buffer for a block's exponents, likelihood cells then prior tables, so that NumPy's exp runs once.
        exponents = np.empty(block_rows * (n_cells + n_types * n_z))
        marginal = np.empty((block_rows, self._n_templates))
        prior = self._prior.parameters(ref_mag)
        p_min = self.config["p_min"]
        for start in range(0, n_objects, self.block_rows):
            block = slice(start, min(start + self.block_rows, n_objects))
            size = block.stop - block.start
            likelihood = exponents[: size * n_cells].reshape(size, n_cells)
            _chi2_exponents(flux[block], flux_err[block], self._templates, faint_ratio, eps, -2 * eeps,
                            likelihood)
            prior_by_type, type_fraction, prior_index = self._prior.tables(prior, block, exponents[size * n_cells:])
            used = size * n_cells + (0 if self._prior.no_prior else prior_by_type.size)
            np.exp(exponents[:used], out=exponents[:used])
            if not self._prior.no_prior:
                _prior_finish(self._prior.z_to_a, self._prior.tail_floor, prior_by_type)
            post_z = pdfs[block]
            _posterior(likelihood, prior_by_type, type_fraction, prior_index, self._prior.template_type,
                       post_z, marginal[:size])
            if self._kernel is not None:
                for row in range(size):
                    post_z[row] = np.convolve(post_z[row], self._kernel, 1)
            _summarize(post_z, likelihood, marginal[:size], self.grid, p_min, zmode[block], zmean[block],
                       best_template[block], template_odds[block])
            interp_normalize(self.grid, post_z)
        return FastResult(grid=self.grid, pdfs=pdfs, zmode=zmode, zmean=zmean,
                          extra={"tb": best_template, "todds": template_odds})


class _Prior:
    """desc_bpz's ``prior_function`` (the BPZ prior read from the model dict), tabulated per block.

    The prior depends on an object only through its reference magnitude, and the templates of one broad
    type share their parameters, so it is computed once per distinct magnitude offset of a block and per
    broad type, with desc_bpz's operations; the per-template type fractions multiply it in the kernels. What
    depends on the magnitude alone (zm^a per type, the type fractions) is computed for a whole batch at once.
    """

    def __init__(self, priormodel: dict, grid: np.ndarray, no_prior: bool):
        per_type = list(priormodel["nt_array"])
        self.no_prior = no_prior
        self.m0 = priormodel["mo"]
        self.template_type = np.repeat(np.arange(len(per_type)), per_type).astype(np.int64)
        self.n_z = grid.size
        self.tail_floor = 1e-2 / float(grid.size)
        self.zo, self.km, self.alpha = (np.asarray(priormodel[key], dtype=np.float64)
                                        for key in ("zo_arr", "km_arr", "a_arr"))
        # z**a exactly as desc_bpz computes it (np.power.outer on the per-template exponents), one row per type.
        z_to_a = np.power.outer(grid, np.repeat(priormodel["a_arr"], per_type))
        first = np.searchsorted(self.template_type, np.arange(len(per_type)))
        self.z_to_a = np.ascontiguousarray(z_to_a[:, first].T)
        # Type fractions: f·exp(-k·dm) for all but the last broad type, which takes the rest.
        self.last_type_size = None if len(per_type) == 1 else float(per_type[-1])
        head = per_type if len(per_type) == 1 else per_type[:-1]
        self.fraction_scale = np.repeat(priormodel["fo_arr"] / np.asarray(head), head)
        self.fraction_rate = -np.repeat(priormodel["kt_arr"], head)

    def parameters(self, ref_mag: np.ndarray) -> SimpleNamespace | None:
        """What the prior takes from each object of a batch: its magnitude offset m − m0 (float64), zm^a per
        broad type (n_objects, n_types) and its type fraction per template (n_objects, n_templates).
        None without a prior."""
        if self.no_prior:
            return None
        m0 = self.m0
        # prior_function clips m to [m0, 32] in Python; an unclipped float32 m gives a float32 m - m0.
        offset = np.asarray(ref_mag - m0).astype(np.float64)
        offset[ref_mag < m0] = m0 - m0
        offset[ref_mag > 32.0] = (m0 if 32.0 < m0 else 32.0) - m0
        offsets = offset[:, None]
        zm_to_a = np.clip(self.zo + self.km * offsets, 0.01, 15.0) ** self.alpha
        fraction = np.empty((offset.size, self.template_type.size))
        n_head = self.fraction_scale.size
        fraction[:, :n_head] = self.fraction_scale * np.exp(self.fraction_rate * offsets)
        if self.last_type_size is not None:
            fraction[:, n_head:] = ((1.0 - np.add.reduce(fraction[:, :n_head], axis=1))
                                    / self.last_type_size)[:, None]
        return SimpleNamespace(offset=offset, zm_to_a=zm_to_a, fraction=fraction)

    def tables(self, parameters: SimpleNamespace | None, block: slice,
               buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prior per broad type before the type fractions, (n_distinct, n_types, n_z); type fraction per
        template, (n_distinct, n_templates); index of each object's row) for a block of objects. The table
        holds the prior's exponents, in ``buffer``: after NumPy's exp, :func:`_prior_finish` makes it the prior."""
        n_types = self.z_to_a.shape[0]
        if parameters is None:  # RAIL multiplies the likelihood by ones
            size = block.stop - block.start
            return (np.ones((1, n_types, self.n_z)), np.ones((1, self.template_type.size)),
                    np.zeros(size, dtype=np.int64))
        _, first, prior_index = np.unique(parameters.offset[block], return_index=True, return_inverse=True)
        first += block.start
        table = buffer[: first.size * n_types * self.n_z].reshape(first.size, n_types, self.n_z)
        _prior_exponents(self.z_to_a, parameters.zm_to_a[first], PRIOR_TAIL_CLIP, table)
        return table, parameters.fraction[first], prior_index.reshape(-1).astype(np.int64)


def _rail_fluxes(config, file_offsets, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """RAIL's own magnitude → flux conversion (``BPZliteEstimator._preprocess_magnitudes``), on copies.

    RAIL's function is already vectorized; calling it (with a stand-in for the stage that carries the
    resolved config and the model's zero-point offsets) keeps its dtype semantics exactly.
    """
    from rail.estimation.algos.bpz_lite import BPZliteEstimator

    data = {name: np.array(columns[name]) for name in (*config["bands"], *config["err_bands"])}
    stand_in = SimpleNamespace(config=config, zp_off_from_file=file_offsets)
    return BPZliteEstimator._preprocess_magnitudes(stand_in, data)


def _flux_templates(config, grid: np.ndarray) -> np.ndarray:
    """Model fluxes (redshift, template, band) from the AB files, as ``BPZliteEstimator`` loads them;
    missing AB files are generated with desc_bpz, as RAIL does."""
    from desc_bpz.useful_py3 import get_data, get_str, match_resol
    from rail.utils.path_utils import RAILDIR

    data_path = config["bpz_ref_data_path"]
    if data_path in (None, "None"):
        data_path = os.path.join(RAILDIR, "rail/examples_data/estimation_data/data")
    if not os.path.exists(data_path):
        raise FileNotFoundError(f"BPZ data folder {data_path} does not exist: check bpz_ref_data_path")
    spectra = [name[:-4] for name in get_str(os.path.join(data_path, "SED", config["spectra_file"]))]
    filters = config["filter_list"]
    madau = "withmadau" if config["madau_flag"] == "yes" else "nomadau"
    ab_dir = os.path.join(data_path, "AB")
    os.makedirs(ab_dir, exist_ok=True)
    names = [[f"{spectrum}.{filter_name}.{madau}.AB" for filter_name in filters] for spectrum in spectra]
    # desc_bpz writes an AB file in place: processes starting together (stage III tasks on a fresh state
    # folder) must not read one another's half-written files, so listing and writing happen under a lock.
    with open(os.path.join(ab_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        available = {os.path.basename(path) for path in glob.glob(ab_dir + "/*.AB")}
        for i, spectrum in enumerate(spectra):
            for j, filter_name in enumerate(filters):
                if names[i][j] not in available:
                    from desc_bpz.bpz_tools_py3 import ABflux
                    from desc_bpz.paths import set_data_dir

                    set_data_dir(data_path)
                    ABflux(spectrum, filter_name, config["madau_flag"])
    templates = np.zeros((grid.size, len(spectra), len(filters)))
    for i in range(len(spectra)):
        for j in range(len(filters)):
            redshifts, fluxes = get_data(os.path.join(ab_dir, names[i][j]), (0, 1))
            templates[:, i, j] = match_resol(redshifts, fluxes, grid)
    return templates


FUSED_BANDS = 6
"""Observed bands up to which an object's χ² sums run in registers, in one pass over the cells (LSST's six)."""


@numba.njit(cache=True, error_model="numpy")
def _chi2_exponents(flux, flux_err, templates, faint_ratio, eps, chi2_clip, out):
    """-½ · clip(χ² − min χ², 0, chi2_clip) per (object, redshift·template cell), desc_bpz's ``p_c_z_t``.

    ``flux``/``flux_err`` keep the input precision: f/σ and σ² are computed in it (float32 in, float32
    out), the rest in float64. Non-observed bands (σ > 1) drop out of the sums, like desc_bpz's masks. The
    sums multiply by 1/σ² instead of dividing each cell by σ² (the division bounded the loop's speed); the
    results differ from desc_bpz's in the last bits only. An object with at most :data:`FUSED_BANDS` observed
    bands sums them for each cell in registers (:func:`_chi2_fused`), others through per-cell arrays; both add
    band by band from 0.0, so they give the same bits. A template flux is squared where it is used (T·T, the
    bits of NumPy's T**2): reading a table of squares besides the templates made the loop wait on memory.
    """
    n_objects, n_bands = flux.shape
    n_cells = templates.shape[1]
    cross = np.empty(n_cells)
    square = np.empty(n_cells)
    zeros = np.zeros(n_cells)
    observed = np.empty(max(n_bands, FUSED_BANDS), dtype=np.int64)
    scaled = np.zeros(max(n_bands, FUSED_BANDS))
    inverse = np.zeros(max(n_bands, FUSED_BANDS))
    for obj in range(n_objects):
        foo = faint_ratio - faint_ratio  # a zero of the flux dtype: desc_bpz sums foo in that precision
        for band in range(n_bands):
            ratio = flux[obj, band] / flux_err[obj, band]
            if not ratio < faint_ratio:
                foo += ratio * ratio
        foo64 = np.float64(foo)
        n_observed = 0
        for band in range(n_bands):
            err = flux_err[obj, band]
            if np.float64(err) > 1.0:
                continue
            inverse_variance = 1.0 / np.float64(err * err)
            observed[n_observed] = band
            inverse[n_observed] = inverse_variance
            scaled[n_observed] = np.float64(flux[obj, band]) * inverse_variance
            n_observed += 1
        scaled[n_observed:] = 0.0  # the padding of :func:`_chi2_fused`
        inverse[n_observed:] = 0.0
        row = out[obj]
        if n_observed <= FUSED_BANDS:
            _chi2_fused(templates, zeros, observed, scaled, inverse, n_observed, foo64, eps, row)
        else:
            cross[:] = 0.0
            square[:] = 0.0
            for index in range(n_observed):
                band, weight, inverse_variance = observed[index], scaled[index], inverse[index]
                for cell in range(n_cells):
                    cross[cell] += weight * templates[band, cell]
                    square[cell] += (templates[band, cell] * templates[band, cell]) * inverse_variance
            for cell in range(n_cells):
                if square[cell] == 0.0:
                    row[cell] = foo64
                else:
                    row[cell] = foo64 - (cross[cell] * cross[cell]) / (square[cell] + eps)
        lowest = _nan_min(row)
        for cell in range(n_cells):
            excess = row[cell] - lowest
            if excess < 0.0:
                excess = 0.0
            elif excess > chi2_clip:
                excess = chi2_clip
            row[cell] = -0.5 * excess


@numba.njit(cache=True, error_model="numpy")
def _chi2_fused(templates, zeros, observed, scaled, inverse, n_observed, foo64, eps, row):
    """χ² per cell into ``row`` for up to :data:`FUSED_BANDS` observed bands, each cell's sums kept in
    registers. Missing bands are padded with 0·0 terms after the observed ones: adding +0.0 leaves a sum's
    bits as they are (a −0.0 becomes +0.0, which only enters squared or compared with 0)."""
    t0, t1, t2, t3, t4, t5 = (_band_row(templates, observed, n_observed, zeros, 0),
                              _band_row(templates, observed, n_observed, zeros, 1),
                              _band_row(templates, observed, n_observed, zeros, 2),
                              _band_row(templates, observed, n_observed, zeros, 3),
                              _band_row(templates, observed, n_observed, zeros, 4),
                              _band_row(templates, observed, n_observed, zeros, 5))
    s0, s1, s2, s3, s4, s5 = scaled[0], scaled[1], scaled[2], scaled[3], scaled[4], scaled[5]
    i0, i1, i2, i3, i4, i5 = inverse[0], inverse[1], inverse[2], inverse[3], inverse[4], inverse[5]
    for cell in range(row.size):
        f0, f1, f2, f3, f4, f5 = t0[cell], t1[cell], t2[cell], t3[cell], t4[cell], t5[cell]
        # Left to right, band by band, as the per-cell arrays add them.
        cross = 0.0 + s0 * f0 + s1 * f1 + s2 * f2 + s3 * f3 + s4 * f4 + s5 * f5
        square = (0.0 + (f0 * f0) * i0 + (f1 * f1) * i1 + (f2 * f2) * i2 + (f3 * f3) * i3 + (f4 * f4) * i4
                  + (f5 * f5) * i5)
        row[cell] = foo64 if square == 0.0 else foo64 - (cross * cross) / (square + eps)


@numba.njit(cache=True)
def _band_row(rows, observed, n_observed, zeros, index):
    """Row of the ``index``-th observed band, or the zeros that pad past the last one."""
    return rows[observed[index]] if index < n_observed else zeros


@numba.njit(cache=True, error_model="numpy")
def _nan_min(values):
    """``values[np.argmin(values)]``: the minimum, NaN if there is one (four interleaved running minima;
    the order does not matter for a minimum)."""
    lows = np.full(4, np.inf)
    has_nan = False
    stop = values.size - values.size % 4
    for index in range(0, stop, 4):
        for lane in range(4):
            value = values[index + lane]
            has_nan |= value != value
            lows[lane] = value if value < lows[lane] else lows[lane]
    for index in range(stop, values.size):
        value = values[index]
        has_nan |= value != value
        lows[0] = value if value < lows[0] else lows[0]
    return np.nan if has_nan else min(min(lows[0], lows[1]), min(lows[2], lows[3]))


@numba.njit(cache=True, error_model="numpy")
def _prior_exponents(z_to_a, zm_to_a, tail_clip, out):
    """-clip((z/zm)^a, 0, 700) per (distinct magnitude, broad type, redshift); exp is applied by NumPy."""
    for row in range(out.shape[0]):
        for kind in range(out.shape[1]):
            scale = zm_to_a[row, kind]
            for z in range(out.shape[2]):
                ratio = z_to_a[kind, z] / scale
                if ratio < 0.0:
                    ratio = 0.0
                elif ratio > tail_clip:
                    ratio = tail_clip
                out[row, kind, z] = -1.0 * ratio


@numba.njit(cache=True, error_model="numpy")
def _prior_finish(z_to_a, tail_floor, table):
    """desc_bpz's prior per broad type from exp(exponents), in place: z^a·exp(...), normalized over z,
    values below ``tail_floor`` dropped, renormalized. Each sum runs left to right over z, as NumPy's
    axis-0 sum; the (magnitude, type) sums advance side by side. Where desc_bpz divides by a sum, this
    multiplies by its inverse (a division per value bounded the loop's speed): the prior moves by at most
    an ulp."""
    n_rows, n_kinds, n_z = table.shape
    flat = table.reshape(n_rows * n_kinds, n_z)
    norms = np.zeros(n_rows * n_kinds)
    for series in range(flat.shape[0]):
        kind = series % n_kinds
        for z in range(n_z):
            flat[series, z] = z_to_a[kind, z] * flat[series, z]
    for z in range(n_z):
        for series in range(flat.shape[0]):
            norms[series] += flat[series, z]
    for series in range(flat.shape[0]):
        inverse = 1.0 / norms[series]
        for z in range(n_z):
            value = flat[series, z] * inverse
            flat[series, z] = 0.0 if value < tail_floor else value
    norms[:] = 0.0
    for z in range(n_z):
        for series in range(flat.shape[0]):
            norms[series] += flat[series, z]
    for series in range(flat.shape[0]):
        inverse = 1.0 / norms[series]
        for z in range(n_z):
            flat[series, z] = flat[series, z] * inverse


@numba.njit(cache=True, error_model="numpy")
def _posterior(likelihood, prior_by_type, type_fraction, prior_index, template_type, post_z, marginal):
    """Turn the likelihood (object, template·redshift) into the posterior L·P in place, with desc_bpz's
    prior P = (p/norm)·f_t; sum it over templates (NumPy's pairwise order) into ``post_z`` and over
    redshifts (left to right) into ``marginal``."""
    n_objects, n_z = post_z.shape
    n_templates = template_type.size
    scratch = np.empty((8, n_z))
    zeros = np.zeros(n_z)
    for obj in range(n_objects):
        row = prior_index[obj]
        post = likelihood[obj]
        for template in range(n_templates):
            prior, fraction = prior_by_type[row, template_type[template]], type_fraction[row, template]
            cells = post[template * n_z:(template + 1) * n_z]
            for z in range(n_z):
                cells[z] = cells[z] * (prior[z] * fraction)
        for first in range(0, n_templates, 8):
            _redshift_sums(post, first, n_templates, n_z, zeros, marginal[obj])
        pairwise_column_sums(post, n_templates, n_z, scratch, post_z[obj])


@numba.njit(cache=True, error_model="numpy")
def _redshift_sums(post, first, n_templates, n_z, zeros, out):
    """``out[t]`` = the sum over redshift, left to right from 0.0, of template t of one object's posterior, for
    the eight templates from ``first`` side by side, each in a register (past the last template: zeros)."""
    p0, p1, p2, p3 = (_template_cells(post, first, n_templates, n_z, zeros),
                      _template_cells(post, first + 1, n_templates, n_z, zeros),
                      _template_cells(post, first + 2, n_templates, n_z, zeros),
                      _template_cells(post, first + 3, n_templates, n_z, zeros))
    p4, p5, p6, p7 = (_template_cells(post, first + 4, n_templates, n_z, zeros),
                      _template_cells(post, first + 5, n_templates, n_z, zeros),
                      _template_cells(post, first + 6, n_templates, n_z, zeros),
                      _template_cells(post, first + 7, n_templates, n_z, zeros))
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for z in range(n_z):
        a0 += p0[z]
        a1 += p1[z]
        a2 += p2[z]
        a3 += p3[z]
        a4 += p4[z]
        a5 += p5[z]
        a6 += p6[z]
        a7 += p7[z]
    sums = (a0, a1, a2, a3, a4, a5, a6, a7)
    for index in range(min(8, n_templates - first)):
        out[first + index] = sums[index]


@numba.njit(cache=True)
def _template_cells(post, template, n_templates, n_z, zeros):
    """Template ``template``'s redshift cells of one object's posterior, or zeros past the last template."""
    return post[template * n_z:(template + 1) * n_z] if template < n_templates else zeros


@numba.njit(cache=True, error_model="numpy")
def _summarize(post_z, posterior, marginal, grid, p_min, zmode, zmean, best_template, template_odds):
    """RAIL's per-object bookkeeping: mode, p_min cut and normalization of ``post_z`` (in place), mean,
    best template at the mode and its odds."""
    n_objects, n_z = post_z.shape
    n_templates = marginal.shape[1]
    weighted = np.empty(n_z)
    at_mode = np.empty(n_templates)
    for obj in range(n_objects):
        pdf = post_z[obj]
        peak = first_argmax(pdf, 0, n_z)
        zmode[obj] = grid[peak]
        p_max = pdf[peak]
        for z in range(n_z):  # np.max propagates NaN; first_argmax already points at the first NaN
            if pdf[z] < p_max * p_min:
                pdf[z] = 0.0
        total = pairwise_sum(pdf, 0, n_z)
        if not abs(total) <= 1e-8:  # RAIL normalizes unless np.isclose(total, 0.0)
            for z in range(n_z):
                pdf[z] /= total
        for template in range(n_templates):
            at_mode[template] = posterior[obj, template * n_z + peak]
        best = first_argmax(at_mode, 0, n_templates)
        best_template[obj] = best
        template_odds[obj] = marginal[obj, best] / pairwise_sum(marginal[obj], 0, n_templates)
        for z in range(n_z):
            weighted[z] = grid[z] * pdf[z]
        zmean[obj] = pairwise_sum(weighted, 0, n_z) / pairwise_sum(pdf, 0, n_z)
