"""pzlib.bench.compare: both sides run on the same input and model and agree; the report carries every figure."""

from __future__ import annotations

from pzlib.bench.compare import format_report, run_benchmark


def test_bench_reports_side_by_side_figures(tmp_path):
    report = run_benchmark("bpz", rows=1_500, workdir=tmp_path, repeats=1)
    assert report["rows"] == 1_500
    for side in ("stock", "ours"):
        figures = report[side]
        assert figures["objects_per_second"] > 0 and figures["peak_rss_mib"] > 0
        assert figures["bytes_per_object"] > 0
        assert 0 < figures["metrics"]["sigma_nmad"] < 0.2
        assert figures["objects_per_cpu_second"] > 0 and figures["setup_seconds"] > 0
    assert report["zmode_identical"] == 1_500 and report["max_zmode_difference"] <= 1e-6
    assert report["ours"]["bytes_per_object"] < report["stock"]["bytes_per_object"] / 10
    assert report["cdf_error"]["max"] <= 0.5 / 255 + 1e-9
    cores = report["cores"]
    assert cores["one_worker"]["rows"] == cores["workers"]["rows"] == 1_500 and cores["ratio"] > 0
    assert len(cores["workers"]["peak_rss_mib"]) == 2 and min(cores["workers"]["peak_rss_mib"]) > 0
    text = format_report(report)
    assert report["stage1"]["steps"]["partitioning"]["rows"] == 1_500
    assert "speed ratio ours/stock" in text and "peak RSS" in text and "2 workers" in text and "stage I" in text
