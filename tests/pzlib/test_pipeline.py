"""pzlib.pipeline: a release run's params, the four stages on the DC2 sample, quality, resume."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pzlib import pipeline

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


def test_input_with_positions_becomes_a_hats_catalog(dc2_run, dc2_300, tmp_path):
    import hats

    spec, _ = dc2_run
    run = pipeline.RunSpec(release="small", input=str(dc2_300), train=spec.train, output=str(tmp_path),
                           estimators=["bpz"], partition_rows=100)
    (tmp_path / "models").mkdir()
    for suffix in ("", ".json"):  # reuse the session's trained model (same training file and config)
        (tmp_path / "models" / f"bpz.pkl{suffix}").write_bytes(
            (spec.output_path / "models" / f"bpz.pkl{suffix}").read_bytes())
    result = pipeline.run(run, workers=2)["bpz"]
    assert result["format"] == "hats" and result["n_rows"] == 300
    catalog = hats.read_hats(result["catalog"])
    main = catalog.main_catalog if hasattr(catalog, "main_catalog") else catalog
    assert main.catalog_info.total_rows == 300
