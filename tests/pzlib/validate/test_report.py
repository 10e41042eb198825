"""pzlib.validate.report: the report folder (metrics, GX results, plots) of a real photo-z table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plant import with_value

from pzlib.validate.expectations import validate_table
from pzlib.validate.metrics import MetricsConfig
from pzlib.validate.report import ReportConfig, build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_files(photoz_300, stage1_300, tmp_path_factory):
    stage1_check = validate_table(stage1_300, "stage1_partition", source="stage1/part-00000.parquet")
    config = ReportConfig(title="dc2_300 · bpz", suite_context={"expected_rows": stage1_300.num_rows})
    return build_report(photoz_300, stage1_300, tmp_path_factory.mktemp("reports") / "bpz", config,
                        validations=[stage1_check])


def test_the_report_folder_holds_metrics_gx_results_and_plots(report_files):
    assert [path.name for path in report_files] == [
        "metrics.json", "gx_results.json", "zphot_vs_zspec.png", "nz.png", "pit.png",
        "metrics_vs_magnitude.png", "metrics_vs_redshift.png"]
    folder = report_files[0].parent
    assert sorted(path.name for path in folder.iterdir()) == sorted(path.name for path in report_files)
    assert not list(folder.parent.glob(".bpz.tmp-*"))
    for png in report_files[2:]:
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000


def test_metrics_json_is_strict_json_with_every_metric(report_files, photoz_300):
    summary = json.loads(report_files[0].read_text(), parse_constant=pytest.fail)
    metrics = summary["metrics"]
    assert summary["title"] == "dc2_300 · bpz"
    assert metrics["n_objects"] == 300 and 0 < metrics["point"]["zmode"]["sigma_nmad"] < 0.2
    point_names = {"sigma_nmad", "outlier_rate", "outlier_rate_rail", "bias", "sigma_iqr"}
    assert point_names <= set(metrics["point"]["zmode"])
    assert {"ks", "cvm", "ad", "outlier_rate"} <= set(metrics["pit"]) and metrics["cde_loss"] < 0
    assert metrics["by_magnitude"] and metrics["by_redshift"] and metrics["nz"]["stacked"]
    assert summary["provenance"]["estimator"] == "bpz"  # from the photo-z table's own metadata
    assert [(check["suite"], check["success"]) for check in summary["validation"]] == [
        ("photoz_table", True), ("stage1_partition", True)]


def test_gx_results_keep_every_check(report_files):
    checks = json.loads(report_files[1].read_text())
    assert [check["suite"] for check in checks] == ["photoz_table", "stage1_partition"]
    assert checks[1]["source"] == "stage1/part-00000.parquet"
    assert all(check["gx_result"]["results"] for check in checks)


def test_a_failing_table_still_gets_its_report_with_the_failure(photoz_300, stage1_300, tmp_path):
    bad = with_value(photoz_300, "zmode", 17, np.nan)
    config = ReportConfig(metrics=MetricsConfig(magnitude_column=None, point_columns=("zmedian", "zmode")))
    files = build_report(bad, stage1_300, tmp_path / "report", config)
    assert "metrics_vs_magnitude.png" not in [path.name for path in files]
    [check] = json.loads((tmp_path / "report" / "gx_results.json").read_text())
    assert check["success"] is False and check["failures"][0]["column"] == "zmode"
    assert check["failures"][0]["example_ids"] == [photoz_300.column("id")[17].as_py()]
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["metrics"]
    assert metrics["primary"] == "zmedian" and metrics["point"]["zmode"]["n_objects"] == 299


def test_a_rebuilt_report_replaces_the_old_folder(photoz_300, stage1_300, tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "stale.txt").write_text("from an earlier run")
    config = ReportConfig(metrics=MetricsConfig(magnitude_column=None))
    build_report(photoz_300.slice(0, 120), stage1_300, folder, config)
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / "metrics.json").read_text())["metrics"]["n_objects"] == 120


def test_bad_report_requests_are_refused(photoz_300, stage1_300, tmp_path):
    with pytest.raises(ValueError, match="dpi must be between 30 and 600"):
        ReportConfig(dpi=5)
    with pytest.raises(ValueError, match="truth table: column 'mag_r' missing"):
        build_report(photoz_300, stage1_300, tmp_path / "report",
                     ReportConfig(metrics={"magnitude_column": "mag_r"}))
    assert not (tmp_path / "report").exists()
