"""pzlib.validate.metrics: the photo-z science metrics, checked against RAIL's own evaluation code."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import qp
from rail.evaluation.metrics import pointestimates
from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator
from scipy import stats

from pzlib import pdf
from pzlib.validate.metrics import (
    MetricsConfig,
    PointMetrics,
    binned_point_metrics,
    match_truth,
    nz_comparison,
    pit_metrics,
    point_metrics,
    science_metrics,
)


@pytest.fixture(scope="module")
def scattered() -> tuple[np.ndarray, np.ndarray]:
    """(z_phot, z_true) with Gaussian scatter 0.03(1+z), a small bias and 5% catastrophic outliers."""
    rng = np.random.default_rng(7)
    z_true = rng.uniform(0.05, 2.5, 20_000)
    z_phot = z_true + (1 + z_true) * rng.normal(0.004, 0.03, z_true.size)
    catastrophic = rng.random(z_true.size) < 0.05
    z_phot[catastrophic] = rng.uniform(0.0, 3.0, catastrophic.sum())
    return z_phot, z_true


def gaussian_table(centers: np.ndarray, width: float, grid: np.ndarray) -> pa.Table:
    """A photo-z table of Gaussian PDFs (σ = ``width``) centred on ``centers``, on ``grid``."""
    pdfs = stats.norm.pdf(grid[None, :], centers[:, None], width)
    pdfs = pdf.normalize(pdfs, grid)
    point = centers.astype(np.float32)
    table = pa.table({"id": np.arange(centers.size, dtype=np.int64), "zmode": point, "zmean": point,
                      "zmedian": point, "pdf": pdf.encode(pdfs, grid, "interp32")})
    return table.replace_schema_metadata(pdf.qp_metadata(grid, "interp32"))


def test_point_metrics_match_rails_point_estimate_classes(scattered):
    z_phot, z_true = scattered
    ours = point_metrics(z_phot, z_true)
    def rail(metric):
        return getattr(pointestimates, metric)(z_phot, z_true).evaluate()

    assert ours.sigma_nmad == pytest.approx(rail("PointSigmaMAD"), rel=1e-12)
    assert ours.sigma_iqr == pytest.approx(rail("PointSigmaIQR"), rel=1e-12)
    assert ours.bias == pytest.approx(rail("PointBias"), rel=1e-12)
    assert ours.outlier_rate_rail == pytest.approx(rail("PointOutlierRate"))
    # The Gaussian core has σ 0.03 and bias 0.004; 5% uniform outliers, most of them beyond 0.15.
    assert ours.sigma_nmad == pytest.approx(0.03, rel=0.1) and ours.bias == pytest.approx(0.004, abs=0.002)
    assert 0.03 < ours.outlier_rate < ours.outlier_rate_rail < 0.05  # 3σ_IQR ≈ 0.095 < 0.15


def test_point_metrics_keep_their_api():
    legacy = PointMetrics(n_objects=2, sigma_nmad=0.0, outlier_rate=0.0, bias=0.0)
    assert legacy.summary().startswith("σ_NMAD 0.0000")
    values = point_metrics(np.array([0.5, 1.0]), np.array([0.5, 1.0])).as_dict()
    assert list(values)[:4] == ["n_objects", "sigma_nmad", "outlier_rate", "bias"]
    with pytest.raises(ValueError, match="empty sample"):
        point_metrics(np.array([]), np.array([]))


def test_sigma_nmad_agrees_with_rails_point_to_point_evaluator(photoz_300, stage1_300, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RAIL's evaluator writes its outputs into the working folder
    ours = science_metrics(photoz_300, stage1_300).point["zmode"]
    evaluator = PointToPointEvaluator.make_stage(
        name="rail_point_to_point", metrics=["point_stats_sigma_mad", "point_bias", "point_stats_iqr"],
        point_estimate_key="zmode", reference_dictionary_key="redshift", hdf5_groupname="")
    truth = {"redshift": stage1_300.column("redshift").to_numpy()}
    rail = evaluator.evaluate(pdf.table_to_ensemble(photoz_300), truth)["summary"].data
    assert ours.sigma_nmad == pytest.approx(float(rail["point_stats_sigma_mad"][0]), rel=0.01)
    assert ours.sigma_iqr == pytest.approx(float(rail["point_stats_iqr"][0]), rel=0.01)
    assert ours.bias == pytest.approx(float(rail["point_bias"][0]), abs=1e-3)


def test_pit_is_flat_for_calibrated_pdfs_and_u_shaped_for_overconfident_ones():
    grid = np.linspace(0.0, 3.0, 301)
    rng = np.random.default_rng(3)
    centers = rng.uniform(0.6, 2.4, 4000)
    z_true = centers + rng.normal(0.0, 0.1, centers.size)  # the PDFs' own width: calibrated
    calibrated = pit_metrics(pdf.table_to_ensemble(gaussian_table(centers, 0.1, grid)), z_true, n_bins=10)
    overconfident = pit_metrics(pdf.table_to_ensemble(gaussian_table(centers, 0.03, grid)), z_true, n_bins=10)
    assert calibrated.ks < 0.03 and calibrated.ks_pvalue > 1e-3
    assert overconfident.ks > 0.2 and overconfident.cvm > 10 * calibrated.cvm
    assert overconfident.ad > calibrated.ad
    assert overconfident.histogram[0] > 2 * overconfident.histogram[5]
    assert sum(calibrated.histogram) == 4000 and len(calibrated.bin_edges) == 11
    assert overconfident.outlier_rate > 0.2 > 0.01 > calibrated.outlier_rate  # truths beyond the PDF's reach


@pytest.mark.filterwarnings("ignore::UserWarning")  # scipy's notices about anderson_ksamp, called by qp
def test_pit_statistics_are_qps():
    grid = np.linspace(0.0, 3.0, 301)
    centers = np.linspace(0.5, 2.5, 500)
    ensemble = pdf.table_to_ensemble(gaussian_table(centers, 0.1, grid))
    z_true = centers + 0.05
    ours = pit_metrics(ensemble, z_true)
    reference = qp.metrics.pit.PIT(ensemble, z_true)
    assert ours.ks == pytest.approx(reference.evaluate_PIT_KS().statistic)
    assert ours.cvm == pytest.approx(reference.evaluate_PIT_CvM().statistic)
    assert ours.ad == pytest.approx(reference.evaluate_PIT_anderson_ksamp().statistic)
    pits = reference.pit_samps
    assert ours.outlier_rate == np.mean((pits < 1e-4) | (pits > 0.9999))


def test_stacked_nz_of_narrow_pdfs_at_the_truth_is_the_true_nz():
    grid = np.linspace(0.0, 3.0, 301)
    z_true = np.random.default_rng(5).gamma(4.0, 0.25, 20_000).clip(0.05, 2.9)
    table = gaussian_table(z_true, 0.02, grid)
    nz = nz_comparison(pdf.table_to_ensemble(table).objdata["yvals"], grid, z_true)
    assert np.trapezoid(nz.stacked, grid) == pytest.approx(1.0, abs=1e-6)
    assert abs(nz.delta_mean_z) < 2e-3 and nz.ks_distance < 0.02
    shifted = nz_comparison(pdf.table_to_ensemble(gaussian_table(z_true + 0.1, 0.02, grid)).objdata["yvals"],
                            grid, z_true)
    assert shifted.delta_mean_z == pytest.approx(0.1, abs=0.01) and shifted.ks_distance > 0.05


def test_binned_metrics_cover_each_bin_and_leave_sparse_bins_empty(scattered):
    z_phot, z_true = scattered
    bins = binned_point_metrics(z_phot, z_true, z_true, np.array([0.0, 0.5, 1.0, 2.0, 2.5, 2.6]),
                                min_objects=500)
    assert [row["center"] for row in bins] == [0.25, 0.75, 1.5, 2.25, 2.55]
    assert sum(row["n_objects"] for row in bins) == np.sum(z_true < 2.6)
    assert bins[-1]["n_objects"] < 500 and bins[-1]["sigma_nmad"] is None
    third = (z_true >= 1) & (z_true < 2)
    assert bins[2]["sigma_nmad"] == pytest.approx(point_metrics(z_phot[third], z_true[third]).sigma_nmad)


def test_truth_is_matched_by_id_in_any_order(photoz_300, stage1_300):
    shuffled = stage1_300.take(pa.array(np.random.default_rng(1).permutation(stage1_300.num_rows)))
    partial = shuffled.slice(0, 200)
    sample = match_truth(photoz_300, partial)
    assert sample.photoz.num_rows == 200 and sample.photoz.schema.metadata == photoz_300.schema.metadata
    truth_by_id = dict(zip(stage1_300.column("id").to_pylist(), stage1_300.column("redshift").to_pylist(),
                           strict=True))
    assert sample.z_true.tolist() == [truth_by_id[i] for i in sample.photoz.column("id").to_pylist()]
    assert science_metrics(photoz_300, partial).n_objects == 200


def test_bad_truth_tables_are_refused(photoz_300, stage1_300):
    with pytest.raises(ValueError, match="truth table: 1 repeated id"):
        match_truth(photoz_300, pa.concat_tables([stage1_300, stage1_300.slice(3, 1)]))
    with pytest.raises(ValueError, match="no photo-z row has a finite 'redshift'"):
        match_truth(photoz_300, stage1_300.set_column(0, "id", pa.array(np.arange(300, dtype=np.int64))))
    with pytest.raises(ValueError, match="truth table: column 'z_spec' missing"):
        match_truth(photoz_300, stage1_300, MetricsConfig(truth_column="z_spec"))
    with pytest.raises(ValueError, match="redshift_edges must be at least two increasing values"):
        MetricsConfig(redshift_edges=(0.0, 1.0, 0.5))


def test_science_metrics_of_real_bpz_output_are_complete_json(photoz_300, stage1_300):
    metrics = science_metrics(photoz_300, stage1_300)
    values = json.loads(json.dumps(metrics.as_dict(), allow_nan=False))
    assert values["n_objects"] == values["n_photoz"] == 300 and values["primary"] == "zmode"
    assert set(values["point"]) == {"zmode", "zmean", "zmedian"}
    assert values["point"]["zmode"] == point_metrics(photoz_300.column("zmode").to_numpy(),
                                                     stage1_300.column("redshift").to_numpy()).as_dict()
    assert 0 < values["point"]["zmode"]["sigma_nmad"] < 0.2
    assert {"ks", "cvm", "ad", "outlier_rate", "histogram"} <= set(values["pit"])
    assert values["cde_loss"] < 0  # better than a flat PDF
    assert len(values["nz"]["stacked"]) == len(values["nz"]["grid"]) == 301
    assert values["magnitude_column"] == "mag_i_lsst" and values["by_magnitude"] and values["by_redshift"]
    assert sum(row["n_objects"] for row in values["by_redshift"]) == 300
