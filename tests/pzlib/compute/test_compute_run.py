"""pzlib.compute.run: the four stages on the DC2 sample — quality, resume, catalog formats, and what a
rerun does with a damaged output."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.damage import flip_bit_in_data_page

from pzlib import pdf
from pzlib.catalog import CatalogError, open_catalog, write_parquet
from pzlib.compute.assemble import assemble
from pzlib.compute.run import run


def test_dc2_run_meets_the_quality_targets(dc2_run):
    spec, results = dc2_run
    fzboost, bpz = results["fzboost"]["metrics"], results["bpz"]["metrics"]
    assert results["fzboost"]["n_rows"] == results["bpz"]["n_rows"] == 20_449
    assert fzboost["sigma_nmad"] <= 0.025 and fzboost["outlier_rate"] <= 0.04
    assert bpz["sigma_nmad"] <= 0.07
    assert len(list((spec.output_path / "stage1").glob("part-*.parquet"))) == 3
    catalog = results["bpz"]["catalog"]
    assert results["bpz"]["format"] == "parquet"
    assert pq.ParquetDataset(catalog).read(columns=["id"]).num_rows == 20_449
    recorded = json.loads((spec.output_path / "bpz" / "metrics.json").read_text())
    assert recorded["metrics"] == bpz


def test_rerun_recomputes_nothing(dc2_run):
    spec, results = dc2_run
    outputs = sorted((spec.output_path / "fzboost" / "partitions").glob("*.parquet"))
    models = [spec.model_path(e) for e in spec.estimators]
    before = [p.stat().st_mtime_ns for p in outputs + models]
    again = run(spec, workers=1)
    assert [p.stat().st_mtime_ns for p in outputs + models] == before
    assert again["fzboost"]["metrics"] == results["fzboost"]["metrics"]


def test_input_with_positions_becomes_a_hats_catalog(small_run):
    import hats

    result = run(small_run, workers=2)["bpz"]
    assert result["format"] == "hats" and result["n_rows"] == 300
    catalog = hats.read_hats(result["catalog"])
    main = catalog.main_catalog if hasattr(catalog, "main_catalog") else catalog
    assert main.catalog_info.total_rows == 300


def test_the_dc2_report_sigma_nmad_agrees_with_rails_evaluator(dc2_run, tmp_path, monkeypatch):
    """Done criterion of the validation issue: FlexZBoost σ_NMAD of the DC2 run's report within 1% of RAIL's."""
    from rail.evaluation.point_to_point_evaluator import PointToPointEvaluator

    spec, results = dc2_run
    summary = json.loads((spec.report_path("fzboost") / "metrics.json").read_text())
    ours = summary["metrics"]["point"]["zmode"]
    outputs = sorted((spec.output_path / "fzboost" / "partitions").glob("part-*.parquet"))
    photoz = pa.concat_tables(pq.read_table(path) for path in outputs)
    photoz = photoz.replace_schema_metadata(pq.read_schema(outputs[0]).metadata)
    truth = pa.concat_tables(pq.read_table(spec.output_path / "stage1" / path.name, columns=["id", "redshift"])
                             for path in outputs)
    assert photoz.column("id").equals(truth.column("id")) and ours["n_objects"] == photoz.num_rows == 20_449

    monkeypatch.chdir(tmp_path)  # RAIL's evaluator writes its outputs into the working folder
    evaluator = PointToPointEvaluator.make_stage(
        name="rail_point_to_point_dc2", metrics=["point_stats_sigma_mad", "point_bias"],
        point_estimate_key="zmode", reference_dictionary_key="redshift", hdf5_groupname="")
    rail = evaluator.evaluate(pdf.table_to_ensemble(photoz), {"redshift": truth.column("redshift").to_numpy()})
    rail_sigma_nmad = float(rail["summary"].data["point_stats_sigma_mad"][0])
    assert ours["sigma_nmad"] == pytest.approx(rail_sigma_nmad, rel=0.01)
    assert ours["sigma_nmad"] == pytest.approx(results["fzboost"]["metrics"]["sigma_nmad"], rel=1e-6)


def _catalog_rows(catalog: str) -> pa.Table:
    """An assembled catalog's rows in id order, without HATS's own partitioning columns."""
    table = open_catalog(catalog).read()
    return table.drop_columns([c for c in ("Norder", "Dir", "Npix") if c in table.column_names]).sort_by("id")


def test_a_flipped_bit_in_a_finished_partition_is_found_recomputed_and_the_catalog_is_right(small_run, caplog):
    first = run(small_run, workers=1)["bpz"]
    undisturbed = _catalog_rows(first["catalog"])
    outputs = sorted((small_run.output_path / "bpz" / "partitions").glob("part-*.parquet"))
    written = [path.read_bytes() for path in outputs]
    flip_bit_in_data_page(outputs[1], "zmode")

    with caplog.at_level(logging.INFO, logger="pzlib"):
        again = run(small_run, workers=1)["bpz"]

    assert f"output {outputs[1]} failed its checksum" in caplog.text and "; recomputing" in caplog.text
    arrays = json.loads((small_run.output_path / "bpz" / "jobs" / "state.json").read_text())["arrays"]
    assert [Path(path).name for path in arrays[-1]["partitions"]] == [outputs[1].name]  # only it went to a worker
    assert [path.read_bytes() for path in outputs] == written
    assert _catalog_rows(again["catalog"]).equals(undisturbed)
    assert again["metrics"] == first["metrics"]


def test_pz_run_on_the_same_work_folder_recomputes_a_damaged_partition(small_run, tmp_path):
    def pz_run(output: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pzlib.cli", "run", "--train", small_run.train, "--input",
                               small_run.input, "--estimator", "bpz", "--partition-rows", "100", "--workers", "1",
                               "--output", str(output), "--workdir", small_run.output], capture_output=True,
                              text=True, timeout=600)

    first = pz_run(tmp_path / "first.parquet")
    assert first.returncode == 0, first.stderr
    damaged = small_run.output_path / "bpz" / "partitions" / "part-00002.parquet"
    flip_bit_in_data_page(damaged, "pdf")

    second = pz_run(tmp_path / "second.parquet")

    assert second.returncode == 0, second.stderr
    assert f"output {damaged} failed its checksum" in second.stderr and "; recomputing" in second.stderr
    assert pq.read_table(tmp_path / "second.parquet").equals(pq.read_table(tmp_path / "first.parquet"))


def test_the_assembled_catalog_shares_no_storage_and_stage_four_checks_its_inputs(small_run, tmp_path):
    without_positions = write_parquet(pq.read_table(small_run.input).drop_columns(["ra", "dec"]),
                                      tmp_path / "no_positions.parquet")
    spec = dataclasses.replace(small_run, input=str(without_positions))
    result = run(spec, workers=1)["bpz"]
    assert result["format"] == "parquet"
    outputs = sorted((spec.output_path / "bpz" / "partitions").glob("part-*.parquet"))
    copies = [Path(result["catalog"]) / path.name for path in outputs]
    assert [copy.read_bytes() for copy in copies] == [path.read_bytes() for path in outputs]
    assert all(not os.path.samefile(copy, path) for copy, path in zip(copies, outputs, strict=True))
    published = copies[0].read_bytes()

    flip_bit_in_data_page(outputs[0], "zmode")

    assert copies[0].read_bytes() == published
    with pytest.raises(CatalogError, match=f"{outputs[0]}: failed its checksum .*; run stage III again"):
        assemble(spec, "bpz", [str(path) for path in outputs])


def test_an_input_without_true_redshifts_runs_without_metrics(small_run, tmp_path):
    """A release's object catalog has no true redshifts: the run simply has no metrics (it stopped with
    "column 'redshift': column missing")."""
    objects = write_parquet(pq.read_table(small_run.input).drop_columns(["redshift"]), tmp_path / "objects.parquet")
    result = run(dataclasses.replace(small_run, input=str(objects)), workers=1)["bpz"]
    assert result["n_rows"] == 300 and result["metrics"] is None and result["report"] is None
    assert "redshift" not in pq.read_schema(next((small_run.output_path / "stage1").glob("part-*.parquet"))).names


def test_the_catalog_comes_with_its_manifest_and_felis_schema_and_a_rerun_keeps_it(small_run, caplog):
    first = run(small_run, workers=1)["bpz"]
    manifest = json.loads(Path(first["manifest"]).read_text())
    assert manifest["label"] == "small/bpz" and {entry["key"].split("/")[-1] for entry in manifest["files"]} >= {
        "hats.properties", "_common_metadata"}
    assert "photoz_bpz" in Path(first["felis_schema"]).read_text()
    catalog_files = {path: path.stat().st_mtime_ns for path in Path(first["catalog"]).rglob("*") if path.is_file()}

    with caplog.at_level(logging.INFO, logger="pzlib"):
        run(small_run, workers=1)
    assert "kept catalog" in caplog.text
    assert {path: path.stat().st_mtime_ns for path in catalog_files} == catalog_files  # not written again

    damaged = next(path for path in catalog_files if path.suffix == ".parquet" and "Npix" in path.name)
    damaged.write_bytes(damaged.read_bytes()[:-1] + bytes([damaged.read_bytes()[-1] ^ 1]))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pzlib"):
        again = run(small_run, workers=1)["bpz"]
    assert "differs from its manifest" in caplog.text and "assembling it again" in caplog.text
    assert json.loads(Path(again["manifest"]).read_text())["files"] != [] and again["n_rows"] == 300
    assert _catalog_rows(again["catalog"]).equals(_catalog_rows(first["catalog"]))


def test_pz_run_writes_the_hats_catalog_at_its_output(small_run, tmp_path):
    import lsdb

    output = tmp_path / "photoz"
    result = subprocess.run([sys.executable, "-m", "pzlib.cli", "run", "--train", small_run.train, "--input",
                             small_run.input, "--estimator", "bpz", "--partition-rows", "100", "--workers", "1",
                             "--output", str(output), "--workdir", small_run.output], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    catalog = lsdb.open_catalog(output).compute()
    assert len(catalog) == 300 and {"id", "zmode", "pdf"} <= set(catalog.columns)
