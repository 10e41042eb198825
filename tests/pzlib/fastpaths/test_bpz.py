"""pzlib.fastpaths.bpz: the vectorized BPZ-lite gives stock RAIL's answers, object for object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pzlib.estimate import EstimateConfig
from pzlib.fastpaths import FastBPZlite, make_fast_estimator

pytestmark = pytest.mark.slow

PDF_TOLERANCE = 1e-10
POINT_TOLERANCE = 1e-10


def assert_same_as_stock(result, ensemble, pdf_tolerance=PDF_TOLERANCE):
    """zmode and tb identical for every object; PDFs, zmean and todds within the issue's tolerances."""
    ancil = ensemble.ancil
    np.testing.assert_array_equal(result.grid, np.asarray(ensemble.metadata["xvals"]).reshape(-1))
    np.testing.assert_array_equal(result.zmode, np.asarray(ancil["zmode"]).reshape(-1))
    np.testing.assert_array_equal(result.extra["tb"], np.asarray(ancil["tb"]).reshape(-1))
    np.testing.assert_allclose(result.pdfs, ensemble.objdata["yvals"], rtol=0, atol=pdf_tolerance)
    np.testing.assert_allclose(result.zmean, np.asarray(ancil["zmean"]).reshape(-1), rtol=0, atol=POINT_TOLERANCE)
    np.testing.assert_allclose(result.extra["todds"], np.asarray(ancil["todds"]).reshape(-1), rtol=0,
                               atol=POINT_TOLERANCE)


@pytest.fixture(scope="module")
def stock_validation(bpz_model, validation_columns, run_stock):
    """The stock stage's ensemble for the whole DC2 validation set (computed once: it takes a while)."""
    return run_stock(bpz_model, EstimateConfig("bpz"), validation_columns)


def test_whole_validation_set_equals_stock_rail(bpz_model, validation_columns, stock_validation, load_model):
    fast = make_fast_estimator("bpz", load_model(bpz_model), EstimateConfig("bpz").stage_options())
    result = fast.estimate(validation_columns)
    assert result.pdfs.shape == (20_449, 301)
    assert_same_as_stock(result, stock_validation)


def test_block_size_does_not_change_any_bit(bpz_model, validation_columns, load_model):
    options = EstimateConfig("bpz").stage_options()
    batch = {name: values[:1_500] for name, values in validation_columns.items()}
    reference = FastBPZlite(load_model(bpz_model), options).estimate(batch)
    small_blocks = FastBPZlite(load_model(bpz_model), options, block_rows=7).estimate(batch)
    for name in ("pdfs", "zmode", "zmean"):
        np.testing.assert_array_equal(getattr(small_blocks, name), getattr(reference, name))


def test_one_estimator_streams_batches_of_any_size_with_fresh_answers(bpz_model, validation_columns, load_model):
    """A worker's estimator keeps its templates, prior and PDF buffer from batch to batch (smaller, then
    larger batches): each batch gets, bit for bit, the answers of an estimator made for it alone."""
    model, options = load_model(bpz_model), EstimateConfig("bpz").stage_options()
    worker = FastBPZlite(model, options)
    for start, stop in ((0, 900), (900, 1_200), (1_200, 2_400)):
        batch = {name: values[start:stop] for name, values in validation_columns.items()}
        streamed = worker.estimate(batch)
        fresh = FastBPZlite(model, options).estimate(batch)
        assert streamed.pdfs.shape == (stop - start, 301)
        for name in ("pdfs", "zmode", "zmean"):
            np.testing.assert_array_equal(getattr(streamed, name), getattr(fresh, name))
        for name in ("tb", "todds"):
            np.testing.assert_array_equal(streamed.extra[name], fresh.extra[name])


def test_float64_input_keeps_stock_precision(bpz_model, validation_columns, run_stock, load_model):
    """Stock RAIL squares flux errors in the input precision; float64 input takes the other arithmetic path."""
    batch = {name: values[:800].astype(np.float64) if values.dtype == np.float32 else values[:800]
             for name, values in validation_columns.items()}
    config = EstimateConfig("bpz")
    result = make_fast_estimator("bpz", load_model(bpz_model), config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(bpz_model, config, batch))


def degraded_batch(validation_columns, rows: int) -> dict[str, np.ndarray]:
    """Validation rows with non-detections (99, also in the reference band) and non-observations (-99)."""
    batch = {name: values[:rows].copy() for name, values in validation_columns.items()}
    rng = np.random.default_rng(7)
    for band in "ugrizy":
        undetected = rng.random(rows) < 0.08
        batch[f"mag_{band}_lsst"][undetected] = 99.0
        batch[f"mag_err_{band}_lsst"][undetected] = 99.0
        unobserved = rng.random(rows) < 0.03
        batch[f"mag_{band}_lsst"][unobserved] = -99.0
    batch["mag_i_lsst"][:5] = [12.0, 33.5, 99.0, 20.0, 19.999]  # prior magnitude clipped at both ends
    return batch


@pytest.mark.parametrize("rail_options", [
    {"zp_offsets": [0.013, -0.021, 0.0, 0.007, 0.05, -0.3], "override_file_offsets": True,
     "zp_errors": [0.03, 0.02, 0.02, 0.02, 0.03, 0.05], "mag_err_min": 0.02, "p_min": 0.02},
    {"no_prior": True, "gauss_kernel": 0.03, "p_min": 0.0},
    {"mag_limits": {f"mag_{band}_lsst": 26.5 for band in "ugrizy"}, "zmax": 2.5, "nzbins": 251},
], ids=["offsets-errors-pmin", "no-prior-kernel", "limits-grid"])
def test_rail_options_mean_what_they_mean_in_rail(rail_options, bpz_model, validation_columns, run_stock,
                                                  load_model):
    config = EstimateConfig("bpz", rail_options=rail_options)
    batch = degraded_batch(validation_columns, 1_200)
    result = make_fast_estimator("bpz", load_model(bpz_model), config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(bpz_model, config, batch))


@pytest.fixture
def template_set(tmp_path, bpz_model, load_model):
    """``template_set(n)``: (RAIL options, model path) for the first ``n`` of CWWSB4's eight templates,
    cycled (9: the first one again, in the last broad type), in a data folder of their own that shares the
    SED files, filters and AB files of the platform's; the model's prior counts the templates per type."""
    import pickle

    source = Path(EstimateConfig("bpz").stage_options()["bpz_ref_data_path"])

    def make(n_templates: int) -> tuple[dict, Path]:
        data = tmp_path / f"bpz_data_{n_templates}"
        (data / "SED").mkdir(parents=True)
        for name in ("FILTER", "AB"):
            (data / name).symlink_to(source / name)
        for sed in (source / "SED").iterdir():
            (data / "SED" / sed.name).symlink_to(sed)
        seds = (source / "SED" / "CWWSB4.list").read_text().split()
        (data / "SED" / "custom.list").write_text("\n".join(seds[index % 8] for index in range(n_templates)))
        model = load_model(bpz_model)
        model["priormodel"]["nt_array"] = [1, 2, n_templates - 3]
        model_path = tmp_path / f"bpz_{n_templates}.pkl"
        model_path.write_bytes(pickle.dumps(model))
        return {"spectra_file": "custom.list", "bpz_ref_data_path": str(data)}, model_path

    return make


@pytest.mark.parametrize("n_templates", [7, 9])
def test_template_sets_other_than_eight_give_stock_answers(n_templates, template_set, validation_columns,
                                                           run_stock, load_model):
    """Eight templates (CWWSB4) take a fused posterior loop; any other count the per-template one."""
    rail_options, model_path = template_set(n_templates)
    config = EstimateConfig("bpz", rail_options=rail_options)
    batch = degraded_batch(validation_columns, 600)
    result = make_fast_estimator("bpz", load_model(model_path), config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(model_path, config, batch))


def test_more_than_six_bands_give_stock_answers(bpz_model, validation_columns, run_stock, load_model):
    """Up to six observed bands are summed in registers; a seventh (here u again) takes per-cell arrays. With
    seven bands χ² = Σ(f/σ)² − (Σ fT/σ²)²/Σ T²/σ² cancels more for bright objects, and multiplying by 1/σ²
    where desc_bpz divides by σ² moves their PDFs by up to ~5e-10 (it did before the fused multiply-adds
    too): 1e-9 here, 1e-10 on the six LSST bands."""
    config = EstimateConfig("bpz", bands=("u", "g", "r", "i", "z", "y", "u"),
                            rail_options={"filter_list": [f"DC2LSST_{band}" for band in "ugrizyu"],
                                          "zp_offsets": [0.0] * 7, "override_file_offsets": True,
                                          "zp_errors": [0.01] * 7})
    batch = degraded_batch(validation_columns, 600)
    result = make_fast_estimator("bpz", load_model(bpz_model), config.stage_options()).estimate(batch)
    assert_same_as_stock(result, run_stock(bpz_model, config, batch), pdf_tolerance=1e-9)


def test_inconsistent_bands_are_refused(bpz_model, load_model):
    options = {**EstimateConfig("bpz").stage_options(), "filter_list": ["DC2LSST_u", "DC2LSST_g"]}
    with pytest.raises(ValueError, match="must have the same length"):
        FastBPZlite(load_model(bpz_model), options)


def _templates_in_child(config: dict, grid: np.ndarray, start, results) -> None:
    """Build the templates with desc_bpz's AB writer slowed down: each file is rewritten in place in two
    halves, so a process that reads another's file too early reads half of it."""
    import time
    from pathlib import Path

    import desc_bpz.bpz_tools_py3 as bpz_tools

    from pzlib.fastpaths.bpz import _flux_templates

    write_ab = bpz_tools.ABflux

    def slow_write_ab(spectrum, filter_name, madau):
        write_ab(spectrum, filter_name, madau)
        madau_name = "withmadau" if madau == "yes" else "nomadau"
        path = Path(config["bpz_ref_data_path"]) / "AB" / f"{spectrum}.{filter_name}.{madau_name}.AB"
        content = path.read_bytes()
        with open(path, "wb") as writer:
            writer.write(content[: len(content) // 2])
            writer.flush()
            time.sleep(0.02)
            writer.write(content[len(content) // 2 :])

    bpz_tools.ABflux = slow_write_ab
    start.wait()
    try:
        results.put(_flux_templates(config, grid))
    except Exception as error:
        results.put(error)


def test_processes_starting_together_on_a_fresh_data_folder_read_whole_ab_files(tmp_path):
    """Stage III tasks on a fresh state folder each need the AB files desc_bpz writes on first use."""
    import multiprocessing
    import shutil

    from rail.estimation.algos.bpz_lite import BPZliteEstimator

    from pzlib.estimate import bpz_data_dir
    from pzlib.fastpaths.bpz import _flux_templates
    from pzlib.fastpaths.result import stage_config

    data_path = tmp_path / "bpz_data"
    shutil.copytree(bpz_data_dir(), data_path)
    for ab_file in (data_path / "AB").glob("*.AB"):
        ab_file.unlink()
    config = stage_config(BPZliteEstimator, {**EstimateConfig("bpz").stage_options(),
                                             "bpz_ref_data_path": str(data_path)})
    grid = np.linspace(config["zmin"], config["zmax"], config["nzbins"])
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    children = [context.Process(target=_templates_in_child, args=(config, grid, start, results)) for _ in range(3)]
    for child in children:
        child.start()
    start.set()
    built = [results.get(timeout=300) for _ in children]
    assert not [error for error in built if isinstance(error, Exception)]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    expected = _flux_templates(config, grid)
    assert all(np.array_equal(templates, expected) for templates in built)
