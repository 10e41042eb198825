"""training_set_maker and combine_redshift_catalogs through `airflow dags test` (dag.test()) on the DC2
cross-match sample: no services needed, one throwaway AIRFLOW_HOME for both."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from fixtures.airflow import AIRFLOW_SCRIPTS, airflow_environment

RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The scripts/airflow/env.sh environment of a migrated throwaway Airflow home."""
    state_dir = tmp_path_factory.mktemp("airflow_crossmatch")
    environment = airflow_environment(state_dir, PZ_STATE_DIR=str(state_dir / "pz"))
    migrated = _in_airflow_env(environment, '"$PZ_AIRFLOW_BIN" db migrate', timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return environment


def _in_airflow_env(environment: dict[str, str], command: str, *arguments: str,
                    timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'source "$0" && {command}', AIRFLOW_SCRIPTS / "env.sh", *arguments],
                          env=environment, capture_output=True, text=True, timeout=timeout)


def _dags_test(environment: dict[str, str], dag_id: str, conf: dict) -> str:
    """The log of `airflow dags test DAG_ID -c CONF`, asserting the run succeeded."""
    result = _in_airflow_env(environment, '"$PZ_AIRFLOW_BIN" dags test "$1" -c "$2"', dag_id, json.dumps(conf),
                             timeout=RUN_TIMEOUT_S)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert f"dag_id={dag_id}" in log and "state=success" in log, log[-5000:]
    return log


def test_training_set_maker_makes_the_training_set_and_logs_the_match(environment, crossmatch_sample, tmp_path):
    output_dir = tmp_path / "tsm"
    log = _dags_test(environment, "training_set_maker", crossmatch_sample.tsm_params(output_dir))
    report = json.loads((output_dir / "training_set.report.json").read_text())
    assert report["release"] == "dc2-sample" and 0.95 <= report["matched_fraction"] < 1
    assert f'matched {report["n_specz_matched"]} of {report["n_specz"]} spec-z' in log
    assert "separation (arcsec): mean" in log
    training = pd.read_parquet(report["output"]["path"])
    assert len(training) == report["output"]["rows"] and Path(report["output"]["path"]).parent == output_dir
    assert {"redshift", "mag_i_lsst", "is_training_set"} <= set(training.columns)


def test_combine_redshift_catalogs_removes_duplicates_and_logs_them(environment, crossmatch_sample, tmp_path):
    output_dir = tmp_path / "crc"
    conf = crossmatch_sample.crc_params(output_dir, combine_type="concatenate_and_remove_duplicates",
                                        output_format="csv", release="dc2-sample")
    log = _dags_test(environment, "combine_redshift_catalogs", conf)
    report = json.loads((output_dir / "combined_redshift_catalog.report.json").read_text())
    assert report["n_removed"] > 0 and report["output"]["format"] == "csv"
    assert f'{report["n_groups"]:,} group(s) holding {report["n_duplicate_rows"]:,} rows' in log
    combined = pd.read_csv(output_dir / "combined_redshift_catalog.csv")
    assert len(combined) == report["n_rows_in"] - report["n_removed"]
