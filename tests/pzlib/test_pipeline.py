"""pzlib.pipeline: a release run's params, the four stages on the DC2 sample, quality, resume, and the
publication of the validation reports in the PZ Server registry."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.damage import flip_bit_in_data_page, truncate
from fixtures.reports import PNG_SIGNATURE

from pzlib import pdf, pipeline
from pzlib.catalog import CatalogError, open_catalog, write_parquet
from pzlib.registry import AlreadyExists, ProductFilter, ProductStatus
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import PLOT_CAPTIONS, read_report, report_plot
from pzlib.storage import open_storage

BASE = {"release": "dr1", "input": "in.parquet", "train": "train.parquet", "output": "out"}


@pytest.mark.parametrize("change, message", [
    ({"release": "bad name!"}, "release: 'bad name!' is not a valid name"),
    ({"estimators": ["nosuch"]}, "estimators: unknown estimator 'nosuch'"),
    ({"backend": "k8s"}, "backend: must be 'local' or 'slurm'"),
    ({"partition_rows": 0}, "partition_rows: must be a positive integer"),
    ({"column_map": "nope"}, "column_map: unknown column map 'nope'"),
    ({"colour": 1}, "colour: unknown parameter"),
    ({"input": ""}, "input: required"),
    ({"rail_options": {"bpz": {}}, "estimators": ["fzboost"]}, "rail_options: estimator"),
    ({"publish": "yes"}, "publish: must be true or false"),
    ({"owner": "no spaces"}, "owner: username 'no spaces' is not valid"),
])
def test_bad_params_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        pipeline.RunSpec.from_params({**BASE, **change})


def test_params_round_trip_and_schema():
    spec = pipeline.RunSpec.from_params(BASE)
    assert pipeline.RunSpec.from_params(spec.to_params()) == spec
    assert set(pipeline.RunSpec.params_schema()["properties"]) == set(spec.to_params())


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
    again = pipeline.run(spec, workers=1)
    assert [p.stat().st_mtime_ns for p in outputs + models] == before
    assert again["fzboost"]["metrics"] == results["fzboost"]["metrics"]


@pytest.fixture
def small_run(dc2_run, dc2_300, tmp_path) -> pipeline.RunSpec:
    """A BPZ run of the 300-galaxy sample in three partitions, with the session's trained model (same training
    file and config, so stage II reuses it)."""
    spec, _ = dc2_run
    run = pipeline.RunSpec(release="small", input=str(dc2_300), train=spec.train, output=str(tmp_path / "run"),
                           estimators=["bpz"], partition_rows=100)
    (run.output_path / "models").mkdir(parents=True)
    for suffix in ("", ".json"):
        (run.output_path / "models" / f"bpz.pkl{suffix}").write_bytes(
            (spec.output_path / "models" / f"bpz.pkl{suffix}").read_bytes())
    return run


def test_input_with_positions_becomes_a_hats_catalog(small_run):
    import hats

    result = pipeline.run(small_run, workers=2)["bpz"]
    assert result["format"] == "hats" and result["n_rows"] == 300
    catalog = hats.read_hats(result["catalog"])
    main = catalog.main_catalog if hasattr(catalog, "main_catalog") else catalog
    assert main.catalog_info.total_rows == 300


@pytest.fixture
def files(registry, tmp_path) -> ProductFiles:
    """A PZ Server registry (SQLite and Postgres) and store to publish into."""
    return ProductFiles(registry, open_storage(str(tmp_path / "store")), upload_limit_bytes=1 << 24)


def report_products(files: ProductFiles, owner) -> list:
    filters = ProductFilter(owner=(owner.id,), product_type=("validation_results",))
    return list(files.registry.list_products(owner, filters).results)


def test_stage_four_publishes_each_report_once(dc2_run, files):
    spec, results = dc2_run
    first = pipeline.publish_validation(spec, "fzboost", files, triggered_by="alice", run_id="manual__1")
    assert first["owner"] == pipeline.PLATFORM_USER and not first["replaced"]
    owner = files.registry.get_user(pipeline.PLATFORM_USER)
    product = files.registry.get_product(owner, first["product_id"])
    assert (product.product_type_name, product.status, product.display_name, product.pz_code) == (
        "validation_results", ProductStatus.PUBLISHED, "dc2-test fzboost validation", "fzboost")
    assert product.provenance["params"] == spec.to_params()
    assert product.provenance["triggered_by"] == "alice" and product.provenance["dag_run_id"] == "manual__1"

    report = read_report(files, owner, product.id)
    assert report.summary["metrics"]["point"]["zmode"]["sigma_nmad"] == pytest.approx(
        results["fzboost"]["metrics"]["sigma_nmad"], rel=1e-6)
    assert [check["suite"] for check in report.checks] == ["photoz_table"]
    assert [plot.file.name for plot in report.plots] == list(PLOT_CAPTIONS)
    assert report_plot(files, owner, product.id, "pit.png").startswith(PNG_SIGNATURE)
    files_before = [(stored.name, stored.size) for stored in files.registry.list_files(owner, product.id)]

    # Clearing stage IV (or rerunning the release) replaces the product's files; it never adds a product.
    again = pipeline.publish_validation(spec, "fzboost", files, run_id="manual__2")
    assert (again["product_id"], again["internal_name"], again["replaced"]) == (product.id, product.internal_name,
                                                                                 True)
    assert [stored.id for stored in report_products(files, owner)] == [product.id]
    republished = files.registry.get_product(owner, product.id)
    assert republished.status is ProductStatus.PUBLISHED and republished.provenance["dag_run_id"] == "manual__2"
    assert [(stored.name, stored.size) for stored in files.registry.list_files(owner, product.id)] == files_before

    bpz = pipeline.publish_validation(spec, "bpz", files)
    assert bpz["display_name"] == "dc2-test bpz validation" and len(report_products(files, owner)) == 2


def test_publishing_is_optional_and_owned_by_an_existing_user(dc2_run, files, alice):
    spec, _ = dc2_run
    assert pipeline.publish_validation(dataclasses.replace(spec, publish=False), "bpz", files) is None
    assert pipeline.check_publishing(dataclasses.replace(spec, publish=False), files) is None
    assert files.registry.list_products(alice).count == 0

    nobody = dataclasses.replace(spec, owner="nobody")
    with pytest.raises(ValueError, match="owner: the PZ Server has no user 'nobody'"):
        pipeline.check_publishing(nobody, files)
    with pytest.raises(ValueError, match="owner: the PZ Server has no user 'nobody'"):
        pipeline.publish_validation(nobody, "bpz", files)

    mine = dataclasses.replace(spec, owner="alice")
    assert pipeline.check_publishing(mine, files) == "alice"
    published = pipeline.publish_validation(mine, "bpz", files)
    assert published["owner"] == "alice" and [p.id for p in report_products(files, alice)] == [published["product_id"]]


def test_a_product_of_the_same_name_that_the_run_did_not_make_is_kept(dc2_run, files, alice):
    spec, _ = dc2_run
    mine = dataclasses.replace(spec, owner="alice")
    own = files.registry.create_product(alice, display_name="DC2-TEST bpz Validation", product_type="training_set")
    with pytest.raises(AlreadyExists, match=f"named 'DC2-TEST bpz Validation' \\({own.internal_name}\\)"):
        pipeline.publish_validation(mine, "bpz", files)
    assert [p.id for p in files.registry.list_products(alice).results] == [own.id]


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
    first = pipeline.run(small_run, workers=1)["bpz"]
    undisturbed = _catalog_rows(first["catalog"])
    outputs = sorted((small_run.output_path / "bpz" / "partitions").glob("part-*.parquet"))
    written = [path.read_bytes() for path in outputs]
    flip_bit_in_data_page(outputs[1], "zmode")

    with caplog.at_level(logging.INFO, logger="pzlib"):
        again = pipeline.run(small_run, workers=1)["bpz"]

    assert f"output {outputs[1]} failed its checksum" in caplog.text and "; recomputing" in caplog.text
    assert caplog.text.count("kept verified output") == 2
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
    result = pipeline.run(spec, workers=1)["bpz"]
    assert result["format"] == "parquet"
    outputs = sorted((spec.output_path / "bpz" / "partitions").glob("part-*.parquet"))
    copies = [Path(result["catalog"]) / path.name for path in outputs]
    assert [copy.read_bytes() for copy in copies] == [path.read_bytes() for path in outputs]
    assert all(not os.path.samefile(copy, path) for copy, path in zip(copies, outputs, strict=True))
    published = copies[0].read_bytes()

    flip_bit_in_data_page(outputs[0], "zmode")

    assert copies[0].read_bytes() == published
    with pytest.raises(CatalogError, match=f"{outputs[0]}: failed its checksum .*; run stage III again"):
        pipeline.assemble(spec, "bpz", [str(path) for path in outputs])


def _as_text(partition: Path, output: Path) -> str:
    table = pq.read_table(partition)
    write_parquet(table.set_column(table.schema.get_field_index("mag_r_lsst"), "mag_r_lsst",
                                   table.column("mag_r_lsst").cast(pa.string())), partition)
    return f"{partition}, column 'mag_r_lsst': expected a numeric column, found string"


def _all_nan(partition: Path, output: Path) -> str:
    table = pq.read_table(partition)
    write_parquet(table.set_column(table.schema.get_field_index("mag_g_lsst"), "mag_g_lsst",
                                   pa.array(np.full(table.num_rows, np.nan, dtype=np.float32))), partition)
    return f"{partition}, column 'mag_g_lsst': all 100 values are NaN or infinite"


def _truncated(partition: Path, output: Path) -> str:
    truncate(partition)
    return f"{partition}: not a readable parquet catalog"


def _unwritable_output(partition: Path, output: Path) -> str:
    (output / "in the way").mkdir(parents=True)  # a folder where the output file goes
    return f"{output}: cannot write: Is a directory"


@pytest.mark.parametrize("damage", [_as_text, _all_nan, _truncated, _unwritable_output],
                         ids=["string magnitudes", "all-NaN band", "truncated file", "unwritable output"])
def test_a_bad_partition_fails_alone_with_its_file_column_and_problem(damage, small_run):
    partitions = [Path(path) for path in pipeline.acquire(small_run)]
    bad = partitions[1]
    message = damage(bad, small_run.partition_output("bpz", bad))
    model = str(small_run.model_path("bpz"))

    outcomes = {}
    for partition in partitions:
        try:
            outcomes[partition.name] = pipeline.estimate_partition(small_run, "bpz", model, str(partition))
        except CatalogError as error:  # before the estimator was called: no RAIL error, no output's name
            outcomes[partition.name] = str(error)

    assert outcomes[bad.name].startswith(message)
    for partition in (partitions[0], partitions[2]):
        assert outcomes[partition.name] == str(small_run.partition_output("bpz", partition))
        assert pq.read_metadata(outcomes[partition.name]).num_rows == 100
    assert not list((small_run.output_path / "bpz" / "partitions").glob(".*"))  # no temporary file left


FULL_DISK_STAGE_THREE = """
import json, resource, sys
from pzlib import pipeline
from pzlib.catalog import CatalogError
spec, model, partitions = pipeline.RunSpec(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3:]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
for index, partition in enumerate(partitions):
    # While partition 1 is written, files stop growing at 1 kB, as on a full disk; then space is back.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000 if index == 1 else soft, hard))
    try:
        pipeline.estimate_partition(spec, "bpz", model, partition)
    except CatalogError as error:
        print(error)
"""


def test_a_full_disk_fails_the_partition_being_written_naming_its_file(small_run):
    # A real full disk needs a filesystem mounted for it; a file size limit (RLIMIT_FSIZE) makes the kernel refuse
    # the writes the same way (EFBIG where a full disk gives ENOSPC), in a process of its own.
    partitions = pipeline.acquire(small_run)
    result = subprocess.run([sys.executable, "-c", FULL_DISK_STAGE_THREE, json.dumps(small_run.to_params()),
                             str(small_run.model_path("bpz")), *partitions], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    full = small_run.partition_output("bpz", partitions[1])
    assert result.stdout.strip() == f"{full}: cannot write: File too large"
    assert sorted(path.name for path in full.parent.iterdir()) == [Path(partitions[0]).name, Path(partitions[2]).name]
    assert not small_run.partition_checksum("bpz", partitions[1]).exists()
