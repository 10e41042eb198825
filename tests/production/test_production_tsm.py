"""A Training Set Maker request through the real ``pzserver`` client against the production profile: the
cross-match runs as a DAG run on the Celery workers, and the training set comes back as a product whose files are
in the profile's S3 bucket (PZ_STORAGE_URL), while the local product store the embedded default would use stays
empty. The client's API token comes from ``pz token create``, run in the services' environment.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import pytest

from pzlib.crossmatch.sample_data import OBJECT_COLUMN_MAP

pytestmark = pytest.mark.slow

PROCESS_TIMEOUT_S = 600


def pz_token(production, username: str) -> str:
    created = production.run("pz", "token", "create", username)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def wait_for_process(process) -> str:
    """The process's status once it leaves Pending/Queued/Running."""
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while (status := process.check_status()) in ("Pending", "Queued", "Running", "Stopping"):
        assert time.monotonic() < deadline, f"process still {status} after {PROCESS_TIMEOUT_S} s"
        time.sleep(3)
    return status


def test_a_training_set_made_through_the_client_is_stored_in_the_bucket(production, crossmatch_sample, s3_client):
    registered = production.run(
        "pz", "release", "set", "dc2-sample", "--display-name", "DC2 sample", "--public",
        "--object-catalog", str(crossmatch_sample.objects), "--column-map", json.dumps(OBJECT_COLUMN_MAP))
    assert registered.returncode == 0, registered.stderr
    pzserver = importlib.import_module("pzserver")
    client = pzserver.PzServer(token=pz_token(production, "carol"), host=f"{production.services.url}/pzserver/api/")
    upload = client.upload(name="DC2 reference spec-z", product_type="redshift_catalog",
                           main_file=str(crossmatch_sample.reference))
    upload.make_columns_association({"id": "ID", "ra": "RA", "dec": "Dec", "z": "z", "z_err": "z_err",
                                     "z_flag": "z_flag"})
    upload.save()

    tsm = client.training_set_maker("DC2 training set")
    tsm.set_release(name="dc2-sample")
    tsm.set_redshift(_id=upload.product_id)
    tsm.set_config({"crossmatch": {"radius_arcsec": 1.0, "n_neighbors": 1}, "output_format": "parquet"})
    tsm.run()
    assert wait_for_process(tsm) == "Successful"

    metadata = client.get_product_metadata(tsm.output["id"])
    assert metadata["status"] == 1 and metadata["product_type_internal_name"] == "training_set"
    assert len(client.get_product(tsm.output["id"])) > 0
    listed = s3_client.list_objects_v2(Bucket=production.bucket, Prefix="products/")
    keys = [entry["Key"] for entry in listed.get("Contents", [])]
    assert [key for key in keys if metadata["internal_name"] in key], keys
    assert [key for key in keys if key.endswith(crossmatch_sample.reference.name)], keys
    assert not (Path(production.services.environment["PZ_STATE_DIR"]) / "storage").exists()
