"""pzlib.bench.runtime_model: the a + b·rows fit, the forecast's arithmetic, the scaling file, and bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from pzlib.bench import runtime_model
from pzlib.bench.runtime_model import (
    EstimatorScaling,
    ForecastConfig,
    PartitionOverhead,
    ScalingConfig,
    ScalingResult,
    ScalingRun,
    fit_linear,
    forecast,
    load_scaling,
    parse_count,
    parse_sizes,
    save_scaling,
)

A_S, B_S_PER_ROW = 0.8, 25e-6  # 40,000 objects/s
BYTES_PER_OBJECT = 48.0


def exact_scaling(estimator: str = "bpz", a: float = A_S, b: float = B_S_PER_ROW) -> EstimatorScaling:
    """Runs that lie exactly on seconds = a + b·rows."""
    runs = [ScalingRun(rows=rows, seconds=a + b * rows, process_seconds=a + b * rows + 2.0,
                       output_bytes=int(BYTES_PER_OBJECT * rows), peak_rss_mib=400.0, load_average=1.0)
            for rows in (10_000, 100_000, 1_000_000)]
    return EstimatorScaling(estimator, runs, "2026-01-01T00:00:00+00:00", {"hostname": "test", "cpu": "cpu"},
                            {"engine": "fast", "pdf_storage": "cdf8"})


def test_fit_on_exactly_linear_data_recovers_a_b_and_r_squared_1():
    rows = [10_000, 30_000, 100_000, 300_000, 1_000_000]
    fit = fit_linear(rows, [A_S + B_S_PER_ROW * n for n in rows])
    assert fit.intercept_s == pytest.approx(A_S, rel=1e-9)
    assert fit.seconds_per_row == pytest.approx(B_S_PER_ROW, rel=1e-12)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert fit.objects_per_second == pytest.approx(40_000)
    assert fit.seconds(150_000) == pytest.approx(A_S + B_S_PER_ROW * 150_000)


def test_fit_r_squared_drops_below_1_with_noise():
    fit = fit_linear([1, 2, 3, 4], [1.0, 2.2, 2.8, 4.1])
    assert 0.9 < fit.r_squared < 1.0


@pytest.mark.parametrize(
    ("rows", "seconds", "message"),
    [
        ([1_000], [1.0], "two or more different sizes"),
        ([1_000, 1_000], [1.0, 1.1], "two or more different sizes"),
        ([1_000, 2_000], [1.0], "same length"),
        ([1_000, 2_000], [1.0, -1.0], "positive finite"),
        ([1_000, 2_000], [1.0, math.nan], "positive finite"),
        ([1_000, 2_000], [2.0, 1.0], "not positive"),
    ],
)
def test_fit_rejects_bad_input(rows, seconds, message):
    with pytest.raises(ValueError, match=message):
        fit_linear(rows, seconds)


def test_forecast_arithmetic():
    scaling = ScalingResult({"bpz": exact_scaling()})
    config = ForecastConfig(objects=20_000_000_000, cores=2032, partition_rows=150_000,
                            overhead_s_per_partition=0.5)
    result = forecast(scaling, config)
    (item,) = result.estimators
    partitions = math.ceil(20e9 / 150_000)
    assert item.partitions == partitions == 133_334
    assert item.waves == math.ceil(partitions / 2032) == 66
    assert item.partition_seconds == pytest.approx(A_S + B_S_PER_ROW * 150_000 + 0.5)
    assert item.wall_seconds == pytest.approx(66 * (A_S + B_S_PER_ROW * 150_000 + 0.5))
    assert item.core_hours == pytest.approx((partitions * (A_S + 0.5) + B_S_PER_ROW * 20e9) / 3600)
    assert item.storage_bytes == pytest.approx(BYTES_PER_OBJECT * 20e9)
    assert result.overhead == PartitionOverhead(0.5, "given by the user")
    assert result.total_wall_seconds == item.wall_seconds


def scaling_with_setup(setup_s: float = 0.6) -> EstimatorScaling:
    """Runs on seconds = a + b·rows of which ``setup_s`` is model load and warm-up."""
    measured = exact_scaling()
    measured.runs = [replace(run, setup_seconds=setup_s) for run in measured.runs]
    return measured


def test_long_lived_workers_load_the_model_once_and_pay_the_array_overhead_once():
    setup_s, overhead_s, array_s, settle_s = 0.6, 0.5, 20.0, 0.01
    scaling = ScalingResult({"bpz": scaling_with_setup(setup_s)})
    overheads = {"slurm": PartitionOverhead(overhead_s, "measured", array_seconds=array_s, settle_seconds=settle_s)}
    result = forecast(scaling, ForecastConfig(objects=1_200_000, cores=2, partition_rows=10_000), overheads)
    (item,) = result.estimators
    per_partition = A_S - setup_s + B_S_PER_ROW * 10_000 + overhead_s
    assert (item.partitions, item.waves, item.workers) == (120, 60, 2)
    assert item.worker_setup_seconds == pytest.approx(setup_s)
    assert item.partition_seconds == pytest.approx(per_partition)
    assert item.settle_seconds == pytest.approx(120 * settle_s)
    assert item.wall_seconds == pytest.approx(array_s + setup_s + 60 * per_partition + 120 * settle_s)
    assert item.core_hours == pytest.approx((120 * (A_S - setup_s + overhead_s) + B_S_PER_ROW * 1_200_000
                                             + 2 * setup_s) / 3600)
    notes = "\n".join(runtime_model.forecast_notes(result))
    assert "2 long-lived workers" in notes and "20.0 s per array" in notes and "setup s = 0.60 s" in notes


def test_workers_are_at_most_one_per_partition_and_the_longest_share_sets_the_rounds():
    scaling = ScalingResult({"bpz": scaling_with_setup()})
    overheads = {"slurm": PartitionOverhead(0.0, "measured", array_seconds=0.0)}
    few = forecast(scaling, ForecastConfig(objects=30_000, cores=8, partition_rows=10_000), overheads)
    assert (few.estimators[0].workers, few.estimators[0].waves) == (3, 1)
    uneven = forecast(scaling, ForecastConfig(objects=50_000, cores=2, partition_rows=10_000), overheads)
    assert (uneven.estimators[0].workers, uneven.estimators[0].waves) == (2, 3)


def test_a_fresh_process_per_partition_pays_a_each_time():
    scaling = ScalingResult({"bpz": scaling_with_setup()})
    overheads = {"local": PartitionOverhead(2.0, "measured")}
    result = forecast(scaling, ForecastConfig(objects=1_200_000, cores=2, partition_rows=10_000, backend="local"),
                      overheads)
    (item,) = result.estimators
    assert result.config.long_lived_workers is False and item.workers == 0
    assert item.wall_seconds == pytest.approx(60 * (A_S + B_S_PER_ROW * 10_000 + 2.0))
    assert "a fresh process per partition" in runtime_model.forecast_notes(result)[0]


def test_without_a_recorded_setup_a_worker_pays_a_per_partition():
    """Scaling files from before the setup was recorded: the conservative figure, a per partition."""
    overheads = {"slurm": PartitionOverhead(0.5, "measured", array_seconds=20.0)}
    result = forecast(ScalingResult({"bpz": exact_scaling()}),
                      ForecastConfig(objects=1_200_000, cores=2, partition_rows=10_000), overheads)
    (item,) = result.estimators
    assert item.worker_setup_seconds == 0.0
    assert item.wall_seconds == pytest.approx(20.0 + 60 * (A_S + B_S_PER_ROW * 10_000 + 0.5))


def test_the_stream_fit_leaves_the_setup_out():
    measured = exact_scaling()
    noisy_setups = [0.9, 0.5, 0.7]  # the setup's noise would swamp b at small sizes; the stream fit drops it
    measured.runs = [replace(run, seconds=run.seconds - A_S + setup, setup_seconds=setup)
                     for run, setup in zip(measured.runs, noisy_setups, strict=True)]
    assert measured.setup_s == pytest.approx(0.7)
    assert measured.stream_fit.intercept_s == pytest.approx(0.0, abs=1e-9)
    assert measured.stream_fit.seconds_per_row == pytest.approx(B_S_PER_ROW)
    assert exact_scaling().stream_fit is None and exact_scaling().setup_s is None


def test_forecast_adds_estimators_run_one_after_the_other():
    scaling = ScalingResult({"bpz": exact_scaling("bpz"), "fzboost": exact_scaling("fzboost", b=50e-6)})
    result = forecast(scaling, ForecastConfig(objects=1_000_000, cores=4, overhead_s_per_partition=0.0))
    assert [item.estimator for item in result.estimators] == ["bpz", "fzboost"]
    assert result.total_wall_seconds == pytest.approx(sum(item.wall_seconds for item in result.estimators))
    assert result.total_storage_bytes == pytest.approx(2 * BYTES_PER_OBJECT * 1_000_000)
    only_fzboost = forecast(scaling, ForecastConfig(objects=1_000_000, cores=4, overhead_s_per_partition=0.0,
                                                    estimators=["fzboost"]))
    assert [item.estimator for item in only_fzboost.estimators] == ["fzboost"]


def test_forecast_uses_the_measured_backend_overhead_and_names_its_source():
    result = forecast(ScalingResult({"bpz": exact_scaling()}), ForecastConfig(objects=10**9, cores=100))
    assert result.overhead == runtime_model.MEASURED_OVERHEADS["slurm"]
    assert "bench_forecast.py" in result.overhead.source
    notes = "\n".join(runtime_model.forecast_notes(result))
    assert "bench_forecast.py" in notes and "10,000, 100,000, 1,000,000 rows" in notes


def test_a_saved_overhead_measurement_is_used(tmp_path):
    overhead_file = tmp_path / "overhead.json"
    runtime_model.save_overhead("local", PartitionOverhead(4.2, "a real run"), overhead_file)
    overheads = runtime_model.load_overheads(overhead_file)
    assert overheads["local"] == PartitionOverhead(4.2, "a real run")
    assert overheads["slurm"] == runtime_model.MEASURED_OVERHEADS["slurm"]
    result = forecast(ScalingResult({"bpz": exact_scaling()}),
                      ForecastConfig(objects=10**6, cores=2, backend="local"), overheads)
    assert result.overhead.seconds == 4.2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"objects": -5, "cores": 10}, "objects must be at least 1"),
        ({"objects": 0, "cores": 10}, "objects must be at least 1"),
        ({"objects": 1.5, "cores": 10}, "objects must be a whole number"),
        ({"objects": 10, "cores": 0}, "cores must be at least 1"),
        ({"objects": 10, "cores": 2, "partition_rows": 0}, "partition_rows must be at least 1"),
        ({"objects": 10, "cores": 2, "overhead_s_per_partition": -1.0}, "zero or more seconds"),
    ],
)
def test_forecast_config_rejects_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        ForecastConfig(**arguments)


def test_forecast_rejects_an_unmeasured_estimator_or_backend():
    scaling = ScalingResult({"bpz": exact_scaling()})
    with pytest.raises(ValueError, match="no scaling measurements for fzboost.*pz bench scaling"):
        forecast(scaling, ForecastConfig(objects=10, cores=2, estimators=["fzboost"]))
    with pytest.raises(ValueError, match="no measured overhead for backend 'cloud'.*--overhead-s-per-partition"):
        forecast(scaling, ForecastConfig(objects=10, cores=2, backend="cloud"), overheads={})


def test_scaling_file_round_trip(tmp_path):
    result = ScalingResult({"bpz": exact_scaling(), "fzboost": exact_scaling("fzboost", b=50e-6)})
    path = save_scaling(result, tmp_path / "bench" / "scaling.json")
    loaded = load_scaling(path)
    assert loaded.estimators.keys() == {"bpz", "fzboost"}
    assert loaded.estimators["bpz"].setup_s is None  # written before setups were recorded: still readable
    with_setup = save_scaling(ScalingResult({"bpz": scaling_with_setup(0.6)}), tmp_path / "setup.json")
    assert load_scaling(with_setup).estimators["bpz"].setup_s == pytest.approx(0.6)
    assert json.loads(with_setup.read_text())["estimators"]["bpz"]["setup_s"] == pytest.approx(0.6)
    assert loaded.estimators["bpz"].runs == result.estimators["bpz"].runs
    assert loaded.estimators["fzboost"].fit == result.estimators["fzboost"].fit
    stored = json.loads(path.read_text())["estimators"]["bpz"]
    assert stored["fit"]["seconds_per_row"] == pytest.approx(B_S_PER_ROW)
    assert stored["bytes_per_object"] == pytest.approx(BYTES_PER_OBJECT)


def test_a_new_measurement_replaces_only_its_estimators():
    earlier = ScalingResult({"bpz": exact_scaling(), "fzboost": exact_scaling("fzboost")})
    newer = ScalingResult({"bpz": exact_scaling(a=0.1)})
    merged = newer.merged_into(earlier)
    assert merged.estimators["bpz"].fit.intercept_s == pytest.approx(0.1)
    assert merged.estimators["fzboost"] is earlier.estimators["fzboost"]


def test_a_missing_scaling_file_says_to_run_pz_bench_scaling(tmp_path):
    with pytest.raises(ValueError, match=r"no scaling measurements here; run `pz bench scaling`"):
        load_scaling(tmp_path / "scaling.json")


def test_a_corrupt_scaling_file_is_named(tmp_path):
    path = tmp_path / "scaling.json"
    path.write_text('{"format": 1, "estimators": {"bpz": {"runs": []}}}')
    with pytest.raises(ValueError, match="scaling.json: not a scaling file"):
        load_scaling(path)


def test_parsing_counts_and_sizes():
    assert parse_count("20e9") == 20_000_000_000
    assert parse_count("2_032") == 2032
    assert parse_sizes("1e4, 1e5,1e6,1e4") == (10_000, 100_000, 1_000_000)
    with pytest.raises(ValueError, match="whole number"):
        parse_count("1.5")
    with pytest.raises(ValueError, match="a number like 20e9"):
        parse_count("many")
    with pytest.raises(ValueError, match="at least two different"):
        parse_sizes("1e4")


def test_scaling_config_takes_every_builtin_estimator_with_its_own_sizes(tmp_path):
    config = ScalingConfig(estimators=("bpz", "cmnn"), workdir=tmp_path)
    assert config.sizes_for("bpz") == runtime_model.DEFAULT_SIZES
    assert config.sizes_for("cmnn") == runtime_model.STAGE_SIZES
    given = ScalingConfig(estimators=("cmnn",), sizes=(3_000, 1_000), workdir=tmp_path)
    assert given.sizes_for("cmnn") == (1_000, 3_000)


def test_scaling_config_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="estimators must be among fzboost, bpz, tpz, gpz, cmnn, dnf, knn"):
        ScalingConfig(estimators=("som",), workdir=tmp_path)
    with pytest.raises(ValueError, match="sizes must be at least 1"):
        ScalingConfig(sizes=(0, 1_000), workdir=tmp_path)
    with pytest.raises(ValueError, match="at least two different"):
        ScalingConfig(sizes=(1_000, 1_000), workdir=tmp_path)


def test_tables_show_the_fit_and_the_forecast():
    from rich.console import Console

    scaling = ScalingResult({"bpz": exact_scaling(), "fzboost": exact_scaling("fzboost", b=50e-6)})
    console = Console(width=160, record=True)
    for table in runtime_model.scaling_tables(scaling):
        console.print(table)
    console.print(runtime_model.forecast_table(forecast(scaling, ForecastConfig(objects=20_000_000_000, cores=2032))))
    text = console.export_text()
    assert "1,000,000" in text and "R²" in text and "25.000" in text  # b in µs/object
    assert "133,334" in text and "total" in text
