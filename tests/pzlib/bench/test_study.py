"""``pz study`` (pzlib.bench.study): a tiny real study on DC2 with both engines — the report folder's table and
plots, the unchanged setting against itself exactly zero, changed settings seen — and bad options refused."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pzlib.bench.study import Run, StudyConfig, difference, run_study
from pzlib.catalog import CatalogError
from pzlib.cli import main

SAMPLE_ROWS = 300
TRAINING_ROWS = 10_225  # RAIL's DC2 training sample


@pytest.fixture(scope="module")
def tiny_study(dc2_300, tmp_path_factory):
    """BPZ (quick to train) on the 300-row DC2 fixture: 2 values per axis, ours and stock RAIL, one repeat."""
    workdir = tmp_path_factory.mktemp("study")
    config = StudyConfig("bpz", engines=("ours", "rail"), rows=(150,), decimals=(1,), training_sizes=(200,),
                         grid_points=(101,), sample_rows=SAMPLE_ROWS, repeats=1, workdir=workdir,
                         output=workdir / "report", input=dc2_300)
    steps = []
    files = run_study(config, steps.append)
    with open(config.output / "study.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return config, files, rows, steps


def _row(rows: list[dict], axis: str, value, engine: str) -> dict:
    (found,) = [row for row in rows if row["axis"] == axis and row["value"] == str(value) and row["engine"] == engine]
    return found


def test_study_writes_table_and_plots(tiny_study):
    config, files, rows, steps = tiny_study
    assert sorted(path.name for path in files) == sorted([
        "study.csv", "study.md", "runtime_vs_rows.png", "decimals.png", "nz_decimals.png", "training_size.png",
        "nz_training_size.png", "grid_points.png", "nz_grid_points.png"])
    for path in files:
        assert path.parent == config.output and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = {(axis, str(value), engine)
                for axis, values in {"rows": (150, SAMPLE_ROWS), "decimals": ("unrounded", 1),
                                     "training_size": (200, TRAINING_ROWS), "grid_points": (101, 301)}.items()
                for value in values for engine in ("ours", "rail")}
    assert {(row["axis"], row["value"], row["engine"]) for row in rows} == expected
    assert len(rows) == len(expected)
    markdown = (config.output / "study.md").read_text()
    assert markdown.count("\n| ") == len(rows) + 1  # heading row and one line per table row
    assert len(steps) == config.steps()  # 2 trainings, 5 distinct settings × 2 engines
    for row in rows:
        assert int(row["rows"]) == (int(row["value"]) if row["axis"] == "rows" else SAMPLE_ROWS)
        assert float(row["seconds"]) > 0
    assert float(_row(rows, "decimals", 1, "ours")["input_bytes_per_object"]) < float(
        _row(rows, "decimals", "unrounded", "ours")["input_bytes_per_object"])


def test_unchanged_setting_is_exactly_itself(tiny_study):
    _, _, rows, _ = tiny_study
    unchanged = [_row(rows, axis, value, engine)
                 for axis, value in (("rows", SAMPLE_ROWS), ("decimals", "unrounded"),
                                     ("training_size", TRAINING_ROWS), ("grid_points", 301))
                 for engine in ("ours", "rail")]
    for row in unchanged:
        for key in ("changed_fraction", "sigma_nmad_difference", "bias_difference", "outliers_3sigma", "nz_ks"):
            assert float(row[key]) == 0.0, (row["axis"], row["engine"], key)
    for engine in ("ours", "rail"):  # fewer rows: the same answers for the rows they share
        assert float(_row(rows, "rows", 150, engine)["changed_fraction"]) == 0.0
        assert _row(rows, "rows", 150, engine)["nz_ks"] == ""  # other rows: N(z) not compared
        # A coarser grid and one decimal move zmodes, and the study sees it.
        assert float(_row(rows, "grid_points", 101, engine)["changed_fraction"]) > 0.5
        assert float(_row(rows, "grid_points", 101, engine)["nz_ks"]) > 0
        assert float(_row(rows, "decimals", 1, engine)["changed_fraction"]) > 0


def test_engines_agree_on_the_photo_z(tiny_study):
    _, _, rows, _ = tiny_study
    for row in rows:
        if row["engine"] == "ours":
            stock = _row(rows, row["axis"], row["value"], "rail")
            for key in ("changed_fraction", "sigma_nmad_truth", "outlier_rate_truth"):
                assert row[key] == stock[key], (row["axis"], row["value"], key)


def _run(zmode) -> Run:
    grid = np.linspace(0.0, 3.0, 31)
    return Run(seconds=1.0, cpu_seconds=1.0, zmode=np.asarray(zmode, dtype=np.float32), grid=grid,
               stacked_cdf=np.linspace(0.0, 1.0, grid.size))


def test_difference_counts_what_moved():
    rng = np.random.default_rng(1)
    zmode = rng.uniform(0.1, 2.0, 1_000).astype(np.float32)
    unchanged = _run(zmode)
    same = difference(unchanged, _run(zmode.copy()))
    assert (same.changed_fraction, same.sigma_nmad, same.bias, same.outlier_fraction, same.nz_ks) == (0, 0, 0, 0, 0)
    moved = zmode.copy()
    moved[7] += 1.5
    changed = difference(_run(moved), unchanged)
    assert changed.changed_fraction == changed.outlier_fraction == 1 / 1_000
    assert changed.sigma_nmad == 0.0 and changed.n_objects == 1_000


@pytest.mark.parametrize(("options", "message"), [
    ({"estimator": "nope"}, "unknown estimator 'nope'"),
    ({"engines": ("fast",)}, "engines must be some of ours, rail, got fast"),
    ({"estimator": "cmnn"}, "estimator 'cmnn' has no fast path of ours"),
    ({"rows": (0, 100)}, "rows must be positive whole numbers"),
    ({"decimals": (11,)}, "round_decimals must be between 0 and 10, got 11"),
    ({"grid_points": (1,)}, "grid_points must be at least 2"),
    ({"sample_rows": 0}, "sample_rows must be a positive whole number"),
    ({"repeats": 0}, "repeats must be a positive whole number"),
])
def test_bad_options_are_refused(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        StudyConfig(**{"workdir": tmp_path, **options})


def test_training_size_beyond_the_training_set_is_refused_before_training(dc2_300, tmp_path):
    config = StudyConfig("bpz", training_sizes=(500,), train=dc2_300, input=dc2_300, workdir=tmp_path)
    with pytest.raises(CatalogError, match=r"dc2_300.parquet: training_sizes \[500\] exceed its 300 rows"):
        run_study(config)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--rows", "2e3,lots"], "--rows must be a number like 20e9 or 150000, got 'lots'"),
    (["--decimals", "2.5"], "decimals must be whole numbers, got '2.5'"),
    (["--engines", "ours,gpu"], "engines must be some of ours, rail, got ours, gpu"),
])
def test_cli_names_the_bad_option(arguments, message, tmp_path, capsys):
    assert main(["study", "--estimator", "bpz", "--workdir", str(tmp_path), *arguments]) == 2
    error = capsys.readouterr().err
    assert message in " ".join(error.split()) and "Traceback" not in error
