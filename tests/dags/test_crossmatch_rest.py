"""training_set_maker and combine_redshift_catalogs over the real Airflow services: a conf their params schema
rejects gets HTTP 400 at trigger time, naming the param, and no run is created (what a PZ Server process relies
on; the runs themselves are in test_crossmatch_dagtest.py)."""

from __future__ import annotations

import pytest
from fixtures.airflow import wait_for_dag

pytestmark = pytest.mark.slow

DAG_IDS = ("training_set_maker", "combine_redshift_catalogs")


@pytest.fixture(scope="module")
def client(airflow_services):
    with airflow_services.client() as authenticated:
        for dag_id in DAG_IDS:
            wait_for_dag(authenticated, dag_id)
        yield authenticated


@pytest.mark.parametrize(
    ("dag_id", "conf", "field"),
    [
        ("training_set_maker", {"radius_arcsec": 0}, "radius_arcsec"),
        ("training_set_maker", {"radius_arcsec": 3600}, "radius_arcsec"),
        ("training_set_maker", {"n_neighbors": 0}, "n_neighbors"),
        ("training_set_maker", {"specz_columns": {"ra": "RA", "dec": "DEC", "zed": "Z"}}, "specz_columns"),
        ("training_set_maker", {"specz_catalog": ""}, "specz_catalog"),
        ("training_set_maker", {"train_fraction": 1.5}, "train_fraction"),
        ("training_set_maker", {"output_format": "xlsx"}, "output_format"),
        ("training_set_maker", {"column_map": "sdss"}, "column_map"),
        ("combine_redshift_catalogs", {"inputs": []}, "inputs"),
        ("combine_redshift_catalogs", {"inputs": [{"path": "specz.csv"}]}, "inputs"),
        ("combine_redshift_catalogs", {"combine_type": "merge"}, "combine_type"),
        ("combine_redshift_catalogs", {"radius_arcsec": -1}, "radius_arcsec"),
    ],
)
def test_an_invalid_conf_is_rejected_at_trigger_time(client, dag_id, conf, field):
    runs_before = client.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["total_entries"]
    response = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 400, response.text
    assert f"param {field}" in response.json()["detail"]
    assert client.get(f"/api/v2/dags/{dag_id}/dagRuns").json()["total_entries"] == runs_before
