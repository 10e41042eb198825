"""The ``pz`` command as users run it: whole runs, single stages, and one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pzlib import pdf
from pzlib.catalog import write_parquet
from pzlib.validate.expectations import check_table


def pz(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pzlib.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained_bpz(dc2_paths, tmp_path_factory):
    model = tmp_path_factory.mktemp("models") / "bpz.pkl"
    result = pz("train", "--train", dc2_paths[0], "--estimator", "bpz", "--model", model)
    assert result.returncode == 0, result.stderr
    assert f"→ {model}" in result.stdout
    return model


def test_run_writes_one_row_per_object_with_id_and_zmode(dc2_paths, dc2_300, tmp_path):
    output = tmp_path / "photoz.parquet"
    result = pz("run", "--train", dc2_paths[0], "--input", dc2_300, "--estimator", "bpz", "--output", output,
                "--partition-rows", 120)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(output)
    assert table.num_rows == 300
    assert {"id", "ra", "dec", "zmode"} <= set(table.column_names)
    assert sorted(table.column("id").to_pylist()) == sorted(pq.read_table(dc2_300).column("id").to_pylist())
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("run: 300 rows") and "objects/s" in line and str(output) in line
    assert "σ_NMAD" in line
    # The export is a photo-z table as qp and the GX suite read it: its PDFs keep their description and type.
    assert pdf.storage_metadata(table.schema)["column"] == "pdf"
    check_table(table, "photoz_table", {"expected_rows": 300}, source=output.name)


def test_run_to_a_dataset_folder(dc2_paths, dc2_slice, tmp_path):
    output = tmp_path / "photoz"
    result = pz("run", "--train", dc2_paths[0], "--input", dc2_slice, "--estimator", "bpz", "--output", output,
                "--partition-rows", 800)
    assert result.returncode == 0, result.stderr
    assert list(output.glob("*.parquet"))
    assert pq.ParquetDataset(output).read(columns=["id", "zmode"]).num_rows == 2000


def test_stages_one_by_one(trained_bpz, dc2_300, tmp_path):
    result = pz("preprocess", dc2_300, tmp_path / "stage1", "--partition-rows", 100, "--round", "4",
                "--filter", "mag_i_lsst < 24")
    assert result.returncode == 0, result.stderr
    partitions = sorted((tmp_path / "stage1").glob("part-*.parquet"))
    assert result.stdout.startswith(f"preprocess: {len(partitions)} partition(s)")
    estimated = pz("estimate", "--model", trained_bpz, "--estimator", "bpz", "--input", partitions[0],
                   "--output", tmp_path / "p0.parquet")
    assert estimated.returncode == 0, estimated.stderr
    assert pq.read_metadata(tmp_path / "p0.parquet").num_rows == pq.read_metadata(partitions[0]).num_rows


def test_missing_column_is_one_message_and_earlier_output_is_kept(trained_bpz, dc2_300, tmp_path):
    output = tmp_path / "photoz.parquet"
    good = pz("estimate", "--model", trained_bpz, "--estimator", "bpz", "--input", dc2_300, "--output", output)
    assert good.returncode == 0, good.stderr
    before = output.read_bytes()
    broken = write_parquet(pq.read_table(dc2_300).drop_columns(["mag_err_g_lsst"]), tmp_path / "broken.parquet")
    result = pz("estimate", "--model", trained_bpz, "--estimator", "bpz", "--input", broken, "--output", output)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "broken.parquet" in message and "mag_err_g_lsst" in message and "column missing" in message
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.parquet", "photoz.parquet"]


def test_wrong_dtype_corrupt_and_empty_inputs(trained_bpz, dc2_300, tmp_path):
    import pyarrow as pa

    table = pq.read_table(dc2_300)
    text = table.set_column(table.schema.get_field_index("mag_r_lsst"), "mag_r_lsst",
                            pa.array([str(v) for v in table.column("mag_r_lsst").to_pylist()]))
    cases = {
        write_parquet(text, tmp_path / "text.parquet"): "column 'mag_r_lsst': expected a numeric column",
        tmp_path / "corrupt.parquet": "not a readable parquet catalog",
        tmp_path / "empty.parquet": "file is empty",
    }
    (tmp_path / "corrupt.parquet").write_bytes(b"garbage")
    (tmp_path / "empty.parquet").touch()
    for source, problem in cases.items():
        result = pz("estimate", "--model", trained_bpz, "--estimator", "bpz", "--input", source,
                    "--output", tmp_path / "out.parquet")
        assert result.returncode == 2, source
        assert str(source) in result.stderr and problem in result.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_estimator_and_unwritable_output(dc2_paths, dc2_300, tmp_path):
    result = pz("run", "--train", dc2_paths[0], "--input", dc2_300, "--estimator", "nosuch",
                "--output", tmp_path / "o.parquet")
    assert result.returncode == 2 and "unknown estimator 'nosuch'" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = pz("run", "--train", dc2_paths[0], "--input", dc2_300, "--estimator", "bpz",
                "--output", blocker / "o.parquet")
    assert result.returncode == 2 and "not writable" in result.stderr and str(blocker) in result.stderr


def test_bench_scaling_then_forecast_from_its_file(tmp_path):
    scaling_file = tmp_path / "scaling.json"
    # Sizes far apart: on a loaded machine, runs of a few thousand rows differ by noise more than by size.
    measured = pz("bench", "scaling", "--estimator", "bpz", "--sizes", "2000,40000", "--workdir", tmp_path,
                  "--scaling-file", scaling_file)
    assert measured.returncode == 0, measured.stderr
    assert "R²" in measured.stdout and "40,000" in measured.stdout and f"saved → {scaling_file}" in measured.stdout
    assert not list(tmp_path.glob("scaling_bpz_*.parquet")), "the measured outputs are removed"

    forecast_json = tmp_path / "forecast.json"
    predicted = pz("forecast", "--objects", "20e9", "--cores", "2032", "--scaling-file", scaling_file,
                   "--overhead-file", tmp_path / "no_overheads.json", "--json", forecast_json)
    assert predicted.returncode == 0, predicted.stderr
    assert "133,334" in predicted.stdout and "bench_forecast.py" in predicted.stdout
    assert "2,000, 40,000 rows" in predicted.stdout
    (bpz,) = json.loads(forecast_json.read_text())["estimators"]
    assert bpz["estimator"] == "bpz" and bpz["partitions"] == 133_334 and bpz["waves"] == 66
    assert bpz["wall_seconds"] > 0 and 0 < bpz["bytes_per_object"] < 100

    overridden = pz("forecast", "--objects", "1e6", "--cores", "2", "--partition-rows", "1e5",
                    "--overhead-s-per-partition", "3", "--scaling-file", scaling_file)
    assert overridden.returncode == 0, overridden.stderr
    assert "overhead 3.000 s/partition: given by the user" in overridden.stdout


def test_bench_and_forecast_cover_an_estimator_without_a_fast_path(tmp_path):
    """cmnn runs RAIL's own stage on both sides: the same answers, and a scaling fit pz forecast can use."""
    bench_json = tmp_path / "bench.json"
    bench = pz("bench", "--estimator", "cmnn", "--rows", "1500", "--repeats", "1", "--cores", "1",
               "--workdir", tmp_path, "--json", bench_json)
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench_json.read_text())
    assert report["estimator"] == "cmnn" and report["zmode_identical"] == 1_500 and report["batch_rows"] == 50_000
    assert "speed ratio ours/stock" in bench.stdout

    scaling_file = tmp_path / "scaling.json"
    measured = pz("bench", "scaling", "--estimator", "cmnn", "--sizes", "1000,4000", "--workdir", tmp_path,
                  "--scaling-file", scaling_file)
    assert measured.returncode == 0, measured.stderr
    assert json.loads(scaling_file.read_text())["estimators"]["cmnn"]["settings"]["engine"] == "rail"
    predicted = pz("forecast", "--objects", "1e6", "--cores", "4", "--estimator", "cmnn",
                   "--overhead-s-per-partition", "1", "--scaling-file", scaling_file)
    assert predicted.returncode == 0, predicted.stderr
    assert "cmnn" in predicted.stdout and "1,000, 4,000 rows (rail engine" in predicted.stdout


def test_batch_rows_default_to_the_estimators_own():
    from pzlib.cli import build_parser
    from pzlib.estimate import EstimateConfig

    args = build_parser().parse_args(["estimate", "--model", "m.pkl", "--input", "in.parquet", "--output", "o.parquet",
                                      "--estimator", "dnf"])
    assert EstimateConfig(args.estimator, batch_rows=args.batch_rows).batch_rows == 10_000
    scaling = build_parser().parse_args(["bench", "scaling", "--estimator", "knn"])
    assert (scaling.batch_rows, scaling.sizes) == (None, None)


def test_forecast_bad_input_is_one_message(tmp_path):
    missing = pz("forecast", "--objects", "20e9", "--cores", "2032", "--scaling-file", tmp_path / "none.json")
    assert missing.returncode == 2
    assert "none.json: no scaling measurements here; run `pz bench scaling`" in missing.stderr
    negative = pz("forecast", "--objects", "-5", "--cores", "2032", "--scaling-file", tmp_path / "none.json")
    assert negative.returncode == 2 and "--objects must be at least 1" in negative.stderr


def test_plain_bench_keeps_its_options():
    from pzlib.cli import build_parser, cmd_bench

    args = build_parser().parse_args(["bench", "--estimator", "bpz", "--rows", "1500"])
    assert (args.func, args.estimator, args.rows) == (cmd_bench, "bpz", 1500)
