"""A release run from an object store to a registered product, over the real Airflow services and a real S3
endpoint (moto's server mode): input on S3, the catalog delivered to S3 and verified there, registered as an
official ``photoz_estimates`` product with its manifest, Felis schema and provenance; LSDB reads the delivered
catalog from the endpoint and joins it with the object catalog; the pzserver client finds it; a rerun copies
nothing; a destination holding another release is refused before any work.

The input is the 300-galaxy DC2 fixture (sky positions, true redshifts) in partitions of 100 rows, with BPZ.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import lsdb
import numpy as np
import pyarrow.parquet as pq
import pytest
from fixtures.airflow import task_states, wait_for_dag, wait_for_run
from fixtures.pzserver import pz_token
from fixtures.s3 import S3_CREDENTIALS

from pzlib import pdf
from pzlib.compute.publish import PLATFORM_USER
from pzlib.config import load_settings
from pzlib.registry import ProductStatus
from pzlib.registry.registration import ProductFiles
from pzlib.registry.schema import FileRole
from pzlib.storage.transfer import MANIFEST_KEY, Manifest, verify_delivery

pytestmark = pytest.mark.slow

DAG_ID = "pz_compute"
RUN_TIMEOUT_S = 600
RELEASE = "dc2-300-s3"


@pytest.fixture(scope="module")
def client(airflow_services, s3_endpoint):
    """A logged-in Airflow REST client, with the connection ``pz_s3`` to the session's S3 endpoint made over REST
    as an operator would."""
    with airflow_services.client() as authenticated:
        wait_for_dag(authenticated, DAG_ID)
        connection = {"connection_id": "pz_s3", "conn_type": "generic", "login": S3_CREDENTIALS["access_key_id"],
                      "password": S3_CREDENTIALS["secret_access_key"],
                      "extra": json.dumps({"endpoint_url": s3_endpoint, "region_name": S3_CREDENTIALS["region_name"]})}
        response = authenticated.post("/api/v2/connections", json=connection)
        assert response.status_code in (200, 201, 409), response.text
        yield authenticated


@pytest.fixture(scope="module")
def bucket(s3_client, dc2_300) -> str:
    """A bucket holding the input, readable by anyone (as a published release is)."""
    name = "pz-release-delivery"
    s3_client.create_bucket(Bucket=name)
    s3_client.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{name}/*"]}]}))
    s3_client.upload_file(str(dc2_300), name, "inputs/dc2_300.parquet")
    return name


def trigger(client, conf: dict) -> tuple[str, str]:
    """(run id, final state) of a pz_compute run with ``conf``."""
    response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    return run_id, wait_for_run(client, DAG_ID, run_id, RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def run_conf(bucket, dc2_paths, tmp_path_factory) -> dict:
    return {"release": RELEASE, "input": f"s3://{bucket}/inputs/dc2_300.parquet", "train": str(dc2_paths[0]),
            "output": str(tmp_path_factory.mktemp("delivery") / "run"), "estimators": ["bpz"], "partition_rows": 100,
            "destination": f"s3://{bucket}/releases/{RELEASE}"}


@pytest.fixture(scope="module")
def delivered_run(client, run_conf) -> str:
    run_id, state = trigger(client, run_conf)
    assert state == "success", task_states(client, DAG_ID, run_id)
    return run_id


@pytest.fixture(scope="module")
def registry(airflow_services):
    files = ProductFiles.from_settings(load_settings(airflow_services.environment))
    return files, files.registry.get_user(PLATFORM_USER)


def catalog_product(registry):
    files, owner = registry
    [product] = [found for found in files.registry.list_products(owner).results
                 if found.product_type_name == "photoz_estimates"]
    return product


def test_the_catalog_is_delivered_and_verifies_against_its_manifest(delivered_run, run_conf, bucket, s3_client):
    output = Path(run_conf["output"])
    manifest = Manifest.from_json((output / "bpz" / "manifest.json").read_text())
    prefix = f"releases/{RELEASE}/bpz"
    verify_delivery(s3_client, bucket, prefix, manifest)  # raises on any missing, extra or different object
    delivered = json.loads(s3_client.get_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST_KEY}")["Body"].read())
    assert delivered == json.loads(manifest.to_json())
    record = json.loads((output / "bpz" / "delivery.json").read_text())
    assert record["url"] == f"s3://{bucket}/{prefix}" and record["copied_files"] == len(manifest.files)


def test_lsdb_reads_the_delivered_catalog_from_the_endpoint_and_joins_it_with_the_objects(
        delivered_run, run_conf, bucket, s3_endpoint, dc2_300):
    photoz = lsdb.open_catalog(f"{s3_endpoint}/{bucket}/releases/{RELEASE}/bpz")
    objects = lsdb.from_dataframe(pq.read_table(dc2_300).to_pandas(), catalog_name="objects", ra_column="ra",
                                  dec_column="dec")
    joined = objects.join(photoz, left_on="id", right_on="id", suffixes=("", "_photoz")).compute()
    assert len(joined) == 300 and set(joined["id"]) == set(pq.read_table(dc2_300).column("id").to_pylist())

    local = pq.ParquetDataset(Path(run_conf["output"]) / "bpz" / "partitions").read().to_pandas().set_index("id")
    by_id = joined.set_index("id")
    assert np.array_equal(by_id["zmode_photoz"].to_numpy(), local.loc[by_id.index, "zmode"].to_numpy())

    with (photoz.hc_structure.catalog_path / "dataset" / "_common_metadata").open("rb") as common_metadata:
        schema = pq.read_schema(common_metadata)  # the recipe of pzlib.pdf.frame_to_ensemble
    ensemble = pdf.frame_to_ensemble(by_id.rename(columns={"pdf_photoz": "pdf"}), schema)
    assert ensemble.npdf == 300
    medians = ensemble.ppf(0.5).ravel()
    assert np.allclose(medians, local.loc[by_id.index, "zmedian"].to_numpy(), atol=0.02)


def test_the_catalog_is_an_official_product_with_manifest_felis_schema_and_provenance(delivered_run, registry,
                                                                                      bucket):
    files, owner = registry
    product = catalog_product(registry)
    assert (product.display_name, product.status, product.official) == (f"{RELEASE} bpz photo-z",
                                                                         ProductStatus.PUBLISHED, True)
    stored = {found.name: found for found in files.registry.list_files(owner, product.id)}
    assert stored["manifest.json"].role is FileRole.MAIN
    assert {stored["felis.yaml"].role, stored["provenance.json"].role} == {FileRole.AUXILIARY}
    provenance = product.provenance
    assert provenance["catalog"] == f"s3://{bucket}/releases/{RELEASE}/bpz" and provenance["n_rows"] == 300
    assert provenance["software"]["estimator"]["distribution"] == "pz-rail-bpz"
    assert provenance["software"]["git_commit"] and len(provenance["model_sha256"]) == 64
    assert provenance["airflow"]["run_id"] == delivered_run and provenance["airflow"]["dag_id"] == DAG_ID
    assert provenance["input"]["fingerprint"] and provenance["input"]["rows"] == 300
    assert set(provenance["timings"]) == {"stage_1_acquire", "stage_2_train", "stage_3_estimate",
                                          "stage_4_postprocess"}
    assert provenance["timings"]["stage_3_estimate"]["pieces"] == 3
    report = files.registry.get_product(owner, provenance["validation_report"])
    assert report.product_type_name == "validation_results" and report.official
    assert "zmode" in product.description and "pos.eq.ra" in product.description


def test_the_pzserver_client_finds_the_catalog_and_reads_its_metadata(delivered_run, airflow_services, registry):
    pzserver = importlib.import_module("pzserver")
    client = pzserver.PzServer(token=pz_token(airflow_services, "erin"),
                               host=f"{airflow_services.url}/pzserver/api/")
    found = client.get_products_list(filters={"product_type": "photoz_estimates"})
    assert f"{RELEASE} bpz photo-z" in [product["display_name"] for product in found]
    metadata = client.get_product_metadata(catalog_product(registry).id)
    assert metadata["official_product"] is True and metadata["product_type_internal_name"] == "photoz_estimates"


def test_a_rerun_copies_nothing_and_replaces_the_product(delivered_run, client, run_conf, registry):
    first = catalog_product(registry)
    run_id, state = trigger(client, run_conf)
    assert state == "success", task_states(client, DAG_ID, run_id)
    record = json.loads((Path(run_conf["output"]) / "bpz" / "delivery.json").read_text())
    assert record["copied_files"] == 0 and record["copied_bytes"] == 0
    again = catalog_product(registry)
    assert again.id == first.id and again.provenance["airflow"]["run_id"] == run_id


def test_a_destination_holding_another_release_is_refused_before_any_work(delivered_run, client, run_conf, registry,
                                                                          tmp_path):
    products_before = {product.id for product in registry[0].registry.list_products(registry[1]).results}
    conf = {**run_conf, "release": "another-release", "output": str(tmp_path / "other")}
    run_id, state = trigger(client, conf)
    states = task_states(client, DAG_ID, run_id)
    assert state == "failed" and states["stage_1_acquire.check_run"] == "failed", states
    assert states["stage_1_acquire.partition_input"] == "upstream_failed"
    assert not (tmp_path / "other" / "stage1").exists()
    assert {product.id for product in registry[0].registry.list_products(registry[1]).results} == products_before
