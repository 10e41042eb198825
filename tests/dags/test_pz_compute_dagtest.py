"""pz_compute through `airflow dags test` (dag.test()), the way `make demo` runs it: no services needed; the
validation reports and the comparison of the run's three estimators end up published in the PZ Server registry of
the run's PZ_STATE_DIR."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
from fixtures.airflow import AIRFLOW_SCRIPTS, airflow_environment

from pzlib.compute.publish import PLATFORM_USER
from pzlib.config import load_settings
from pzlib.registry import ProductStatus
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import read_report


def test_demo_script_runs_pz_compute_with_dag_test(dc2_paths, dc2_slice, tmp_path):
    output = tmp_path / "run"
    conf = {"input": str(dc2_slice), "train": str(dc2_paths[0]), "estimators": ["bpz", "cmnn", "tpz"],
            "partition_rows": 900}
    environment = airflow_environment(tmp_path / "airflow", PZ_DEMO_OUTPUT=str(output), PZ_DEMO_CONF=json.dumps(conf),
                                      PZ_STATE_DIR=str(tmp_path / "pz"))
    result = subprocess.run([AIRFLOW_SCRIPTS / "demo.sh"], env=environment, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    summary = json.loads((output / "bpz" / "metrics.json").read_text())
    assert summary["n_rows"] == 2000 and summary["release"] == "dc2-demo"
    assert f"bpz      2,000 objects → {output / 'bpz' / 'photoz'}" in result.stdout
    assert "vs true redshifts: σ_NMAD" in result.stdout
    assert sorted(p.name for p in (output / "bpz" / "partitions").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert pq.ParquetDataset(output / "bpz" / "photoz").read(columns=["zmode"]).num_rows == 2000

    files = ProductFiles.from_settings(load_settings({"PZ_STATE_DIR": str(tmp_path / "pz")}))
    owner = files.registry.get_user(PLATFORM_USER)
    products = {product.display_name: product for product in files.registry.list_products(owner).results}
    assert sorted(products) == sorted([f"dc2-demo {name} {kind}" for name in ("bpz", "cmnn", "tpz")
                                       for kind in ("photo-z", "validation")] + ["dc2-demo estimator comparison"])
    assert f"cmnn     2,000 objects → {output / 'cmnn' / 'photoz'}" in result.stdout
    assert f"3 estimators compared side by side → {output / 'comparison'}" in result.stdout
    comparison = read_report(files, owner, products["dc2-demo estimator comparison"].id)
    assert comparison.product.product_type_name == "validation_results" and comparison.product.official
    table = json.loads((output / "comparison" / "metrics.json").read_text())["comparison"]
    assert [row["estimator"] for row in table] == ["bpz", "cmnn", "tpz"]
    assert len(comparison.plots) == 5
    products = {product.product_type_name: product for product in products.values()
                if product.display_name.startswith("dc2-demo bpz")}
    product = products["validation_results"]
    assert (product.display_name, product.status) == ("dc2-demo bpz validation", ProductStatus.PUBLISHED)
    assert product.official and products["photoz_estimates"].official
    assert products["photoz_estimates"].provenance["validation_report"] == product.internal_name
    report = read_report(files, owner, product.id)
    assert report.summary["metrics"]["point"]["zmode"]["n_objects"] == 2000 and len(report.plots) == 5
