"""TPZ, GPz, CMNN, DNF and KNN as first-class estimators: short names, trained on DC2 and run through `pz run`'s
stages, with the point estimates of RAIL's own stage and the metrics of RAIL's own evaluator; training sets they
cannot learn from stop stage II with the file and the problem named.

One run per session: the five estimators trained on the first 5,000 DC2 training galaxies and run on the
2,000-galaxy validation slice (``dc2_slice``) in two partitions.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import qp
import tables_io
from fixtures.reports import PNG_SIGNATURE

from pzlib import pdf
from pzlib.bench.compare import run_stock
from pzlib.catalog import CatalogError
from pzlib.cluster.resources import ESTIMATOR_DEFAULTS, resources_for
from pzlib.compute.publish import PLATFORM_USER, publish_comparison
from pzlib.compute.run import run
from pzlib.compute.spec import RunSpec
from pzlib.estimate import BUILTIN_ESTIMATORS, EstimateConfig, resolve_estimator
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import read_report, report_plot
from pzlib.storage import open_storage

NEW_ESTIMATORS = ["tpz", "gpz", "cmnn", "dnf", "knn"]
TRAINING_ROWS = 5_000


def _training_slice(dc2_paths, folder, rows: int, **replaced_columns) -> str:
    columns = tables_io.read(str(dc2_paths[0]))["photometry"]
    sliced = {name: values[:rows] for name, values in columns.items()}
    sliced.update({name: np.full(rows, value) for name, value in replaced_columns.items()})
    path = folder / f"dc2_training_{rows}.hdf5"
    tables_io.write({"photometry": sliced}, str(path))
    return str(path)


@pytest.fixture(scope="session")
def rail_run(dc2_paths, dc2_slice, tmp_path_factory) -> tuple[RunSpec, dict]:
    folder = tmp_path_factory.mktemp("rail_estimators")
    spec = RunSpec(release="dc2-rail", input=str(dc2_slice),
                   train=_training_slice(dc2_paths, folder, TRAINING_ROWS), output=str(folder / "run"),
                   estimators=NEW_ESTIMATORS, partition_rows=1_000)
    return spec, run(spec, workers=2)


def _photoz(spec: RunSpec, estimator: str) -> tuple[pa.Table, pa.Table]:
    """(photo-z rows of the run's partition outputs, their true redshifts), in the same order."""
    outputs = sorted((spec.output_path / estimator / "partitions").glob("part-*.parquet"))
    photoz = pa.concat_tables(pq.read_table(path) for path in outputs)
    photoz = photoz.replace_schema_metadata(pq.read_schema(outputs[0]).metadata)
    truth = pa.concat_tables(pq.read_table(spec.output_path / "stage1" / path.name, columns=["id", "redshift"])
                             for path in outputs)
    return photoz, truth


def test_short_names_are_their_rail_classes_and_an_unknown_name_lists_the_known_ones():
    classes = {name: resolve_estimator(name) for name in NEW_ESTIMATORS}
    assert {name: found.estimator.__name__ for name, found in classes.items()} == {
        "tpz": "TPZliteEstimator", "gpz": "GPzEstimator", "cmnn": "CMNNEstimator", "dnf": "DNFEstimator",
        "knn": "KNearNeighEstimator"}
    assert classes["knn"].informer.__name__ == "KNearNeighInformer"
    assert EstimateConfig("gpz").stage_options()["n_basis"] == 30
    assert EstimateConfig("gpz", rail_options={"n_basis": 12}).stage_options()["n_basis"] == 12
    # A summarizer's informer (no per-object estimator) and a made-up name are both unknown estimators.
    for name in ("NZDir", "som", 3):
        with pytest.raises(ValueError, match="fzboost, bpz, tpz, gpz, cmnn, dnf, knn or the class name") as error:
            RunSpec(release="r", input="in", train="train", output="out", estimators=["bpz", name])
        assert str(error.value).startswith("estimators:")


def test_every_builtin_estimator_has_its_measured_resources_and_batch():
    """Memory follows the stage III batch: DNF and KNN stream 10,000-row batches (measured 3.8 and 2.2 GB peak)."""
    assert set(ESTIMATOR_DEFAULTS) == set(BUILTIN_ESTIMATORS)
    assert {name: EstimateConfig(name).batch_rows for name in NEW_ESTIMATORS} == {
        "tpz": 50_000, "gpz": 50_000, "cmnn": 50_000, "dnf": 10_000, "knn": 10_000}
    assert (resources_for({}, "dnf").mem, resources_for({"dnf": {"mem": "8G"}}, "dnf").mem) == ("5G", "8G")
    assert EstimateConfig("dnf", batch_rows=2_000).batch_rows == 2_000

def test_each_estimator_runs_through_every_stage(rail_run):
    spec, results = rail_run
    assert set(results) == set(NEW_ESTIMATORS)
    for estimator, result in results.items():
        assert result["n_rows"] == 2_000, estimator
        catalog = pq.ParquetDataset(result["catalog"]).read()
        assert catalog.column_names == ["id", "zmode", "zmean", "zmedian", "z_p16", "z_p84", "pdf"]
        assert pdf.storage_metadata(catalog.schema)["representation"] == "cdf8"
        assert np.all(np.isfinite(catalog.column("zmode").to_numpy())), estimator
        assert result["metrics"]["sigma_nmad"] < 0.15, estimator
        assert (spec.report_path(estimator) / "metrics.json").exists()


@pytest.mark.parametrize("estimator", NEW_ESTIMATORS)
def test_point_estimates_equal_rails_own_stage_on_the_same_rows(estimator, rail_run, tmp_path):
    """RAIL's estimator stage run file → file with the same model on each partition's rows (as stage I wrote them,
    one chunk each, as stage III feeds them: DNF's answers depend on the chunk): its own point estimate (zmode; DNF
    has none, so the mode of its PDFs on the grid, by qp) is ours, as stored (float32)."""
    spec, _ = rail_run
    for partition in sorted((spec.output_path / "stage1").glob("part-*.parquet")):
        rows = pq.read_table(partition)
        stock_input, stock_output = tmp_path / f"{partition.stem}.hdf5", tmp_path / f"{partition.stem}_stock.hdf5"
        tables_io.write({"photometry": {name: rows.column(name).to_numpy() for name in rows.column_names}},
                        str(stock_input))
        stock = run_stock(estimator, spec.model_path(estimator), stock_input, stock_output)
        if estimator == "dnf":
            assert "zmode" not in stock
            grid = np.linspace(0.0, 3.0, 301)  # RAIL's default zmin, zmax, nzbins: every photo-z table's grid
            stock["zmode"] = qp.read(str(stock_output)).mode(grid).reshape(-1)
        ours = pq.read_table(spec.partition_output(estimator, partition))
        assert np.array_equal(ours.column("id").to_numpy(), stock["id"])
        np.testing.assert_array_equal(ours.column("zmode").to_numpy(), np.asarray(stock["zmode"], dtype=np.float32))


@pytest.mark.parametrize("estimator", NEW_ESTIMATORS)
def test_report_metrics_agree_with_rails_evaluator(estimator, rail_run, tmp_path, monkeypatch):
    """σ_NMAD within 1% and bias within 1e-3 of RAIL's PointToPointEvaluator on the same stored outputs; RAIL's
    outlier rate within four objects in 2,000 (objects at its threshold, 3 σ_IQR, flip between float32 and
    float64 arithmetic)."""
    from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

    spec, _ = rail_run
    ours = json.loads((spec.report_path(estimator) / "metrics.json").read_text())["metrics"]["point"]["zmode"]
    photoz, truth = _photoz(spec, estimator)
    assert photoz.column("id").equals(truth.column("id")) and ours["n_objects"] == photoz.num_rows
    monkeypatch.chdir(tmp_path)  # RAIL's evaluator writes its outputs into the working folder
    evaluator = PointToPointEvaluator.make_stage(
        name=f"rail_point_to_point_{estimator}", metrics=["point_stats_sigma_mad", "point_bias", "point_outlier_rate"],
        point_estimate_key="zmode", reference_dictionary_key="redshift", hdf5_groupname="")
    rail = evaluator.evaluate(pdf.table_to_ensemble(photoz), {"redshift": truth.column("redshift").to_numpy()})
    summary = rail["summary"].data
    assert ours["sigma_nmad"] == pytest.approx(float(summary["point_stats_sigma_mad"][0]), rel=0.01)
    assert ours["bias"] == pytest.approx(float(summary["point_bias"][0]), abs=1e-3)
    assert ours["outlier_rate_rail"] == pytest.approx(float(summary["point_outlier_rate"][0]), abs=4 / 2_000)


def test_too_few_training_rows_stop_stage_two_before_stage_three(dc2_paths, dc2_300, tmp_path):
    training = _training_slice(dc2_paths, tmp_path, 150)
    spec = RunSpec(release="few", input=str(dc2_300), train=training, output=str(tmp_path / "run"),
                   estimators=["knn", "gpz"])
    with pytest.raises(CatalogError, match=r"dc2_training_150.hdf5: 150 training rows after cleaning; gpz needs at "
                                           r"least 200"):
        run(spec, workers=1)
    assert spec.model_path("knn").exists() and not spec.model_path("gpz").exists()
    assert not (spec.output_path / "knn" / "partitions").exists()  # stage III never started


def test_a_band_without_a_detection_stops_stage_two_naming_it(dc2_paths, dc2_300, tmp_path):
    training = _training_slice(dc2_paths, tmp_path, 400, mag_y_lsst=99.0)
    spec = RunSpec(release="noband", input=str(dc2_300), train=training, output=str(tmp_path / "run"),
                   estimators=["cmnn"])
    with pytest.raises(CatalogError, match=r"dc2_training_400.hdf5, column 'mag_y_lsst': no training row is "
                                           r"detected in band y, so cmnn cannot learn from it"):
        run(spec, workers=1)
    assert not (spec.output_path / "cmnn").exists()



def test_a_run_of_several_estimators_ends_with_its_comparison_report(rail_run, registry, tmp_path):
    """Stage IV's comparison of the five estimators, published as one validation_results product; a rerun
    replaces it in place; a run of one estimator has nothing to compare."""
    spec, results = rail_run
    files = ProductFiles(registry, open_storage(str(tmp_path / "store")), upload_limit_bytes=1 << 24)
    published = publish_comparison(spec, files, triggered_by="admin", run_id="manual__1")
    assert published["display_name"] == "dc2-rail estimator comparison" and not published["replaced"]
    owner = registry.get_user(PLATFORM_USER)
    report = read_report(files, owner, published["product_id"])
    assert report.product.product_type_name == "validation_results" and report.product.official
    assert [plot.file.name for plot in report.plots] == [
        "compare_nz.png", "compare_pit.png", "compare_vs_magnitude.png", "compare_vs_redshift.png",
        "comparison_table.png"]
    assert all(report_plot(files, owner, published["product_id"], plot.file.name)[:8] == PNG_SIGNATURE
               for plot in report.plots)
    rows = {row["estimator"]: row for row in json.loads((spec.comparison_path / "metrics.json").read_text())
            ["comparison"]}
    assert list(rows) == NEW_ESTIMATORS
    for estimator, row in rows.items():
        own = json.loads((spec.report_path(estimator) / "metrics.json").read_text())["metrics"]
        assert row["sigma_nmad"] == own["point"]["zmode"]["sigma_nmad"] == results[estimator]["metrics"]["sigma_nmad"]
        assert (row["pit_ks"], row["cde_loss"]) == (own["pit"]["ks"], own["cde_loss"])
        assert row["bytes_per_object"] == results[estimator]["bytes"] / 2_000
        assert row["objects_per_second_per_core"] > 0
    again = publish_comparison(spec, files, triggered_by="admin", run_id="manual__2")
    assert again["replaced"] and again["product_id"] == published["product_id"]
    single = dataclasses.replace(spec, estimators=["knn"])
    assert publish_comparison(single, files) is None
