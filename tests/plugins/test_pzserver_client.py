"""The real ``pzserver`` client (PyPI 0.3.7) against the PZ Server plugin in the running Airflow api-server:
upload → associate columns → publish → list with filters → metadata → get_product → download_product; the
Training Set Maker and Combine Redshift Catalogs requests run as real DAG runs whose outputs come back as
products; a stopped and a failing run; and the plugin's routes accepting Airflow's own JWTs.

pzserver 0.3.7 declares pandas<3 while the platform pins pandas 3 (it works with it), so the Makefile installs
it without its dependencies after requirements.txt. Its API token comes from ``pz token create``, run with
the api-server's settings.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import zipfile

import httpx
import pyarrow.parquet as pq
import pytest
from api_calls import specz_table, table_bytes
from fixtures.pzserver import pz_token

PZSERVER_VERSION = "0.3.7"


@pytest.fixture(scope="session")
def pzserver_module():
    """The pzserver client package from PyPI, the version LIneA's users have."""
    module = importlib.import_module("pzserver")
    assert module.__version__ == PZSERVER_VERSION, "run `make install`: the Makefile installs pzserver 0.3.7"
    return module


@pytest.fixture(scope="module")
def api_url(airflow_services) -> str:
    """The PZ Server API of the running api-server, as the client's ``host``."""
    return f"{airflow_services.url}/pzserver/api/"


def test_the_pzserver_client_uploads_publishes_finds_reads_and_downloads(
    pzserver_module, airflow_services, api_url, tmp_path
):
    client = pzserver_module.PzServer(token=pz_token(airflow_services, "alice"), host=api_url)
    assert "redshift_catalog" in [item["name"] for item in client.get_product_types()]

    main_file = tmp_path / "desi_specz.csv"
    main_file.write_bytes(table_bytes(specz_table(), "csv"))
    upload = client.upload(name="DESI DR1 spec-z", product_type="redshift_catalog", main_file=str(main_file),
                           description="Spectroscopic redshifts for the test")
    assert sorted(upload.columns) == ["dec", "id", "ra", "z", "z_err"]
    upload.make_columns_association({"ra": "RA", "dec": "Dec", "z": "z", "z_err": "z_err", "id": "id"})
    upload.save()

    found = client.get_products_list(filters={"product_type": "redshift_catalog", "product_name": "DESI"})
    assert [product["display_name"] for product in found] == ["DESI DR1 spec-z"]
    assert client.get_products_list(filters={"product_name": "nothing like it"}) == []
    with pytest.raises(ValueError, match="Invalid filter key"):
        client.get_products_list(filters={"colour": "red"})

    metadata = client.get_product_metadata(upload.product_id)
    assert metadata["uploaded_by"] == "alice" and metadata["status"] == 1
    assert metadata["main_file"]["n_rows"] == 25
    assert metadata["main_file"]["columns"] == ["id", "ra", "dec", "z", "z_err"]
    assert {column["alias"] for column in metadata["main_file"]["columns_association"]} == {
        "ID", "RA", "Dec", "z", "z_err"}
    by_name = client.get_product_metadata(metadata["internal_name"], mainfile_info=False)
    assert by_name["id"] == upload.product_id

    table = client.get_product(upload.product_id)
    assert len(table) == 25 and list(table.colnames) == ["id", "ra", "dec", "z", "z_err"]
    assert table["z"][3] == pytest.approx(0.13)

    downloads = tmp_path / "downloads"
    client.download_product(upload.product_id, save_in=str(downloads))
    archive_path = downloads / f"{metadata['internal_name']}.zip"
    with zipfile.ZipFile(archive_path) as archive:
        assert archive.read("desi_specz.csv") == main_file.read_bytes()


def test_the_client_reads_a_parquet_training_set(pzserver_module, airflow_services, api_url, tmp_path):
    client = pzserver_module.PzServer(token=pz_token(airflow_services, "bob"), host=api_url)
    main_file = tmp_path / "training.parquet"
    pq.write_table(specz_table(30), main_file)
    upload = client.upload(name="Bob's training set", product_type="training_set", main_file=str(main_file))
    upload.make_columns_association({"z": "z"})
    upload.save()
    table = client.get_product(upload.product_id)
    assert len(table) == 30 and table["id"][29] == 29


def test_a_bad_token_is_refused_at_construction(pzserver_module, api_url):
    with pytest.raises(Exception, match="Status code 401"):
        pzserver_module.PzServer(token="not-a-token", host=api_url)


def test_airflow_jwts_and_the_ui_cookie_authenticate_the_plugin(airflow_services, api_url):
    login = httpx.post(f"{airflow_services.url}/auth/token",
                       json={"username": airflow_services.username, "password": airflow_services.password}, timeout=30)
    jwt = login.json()["access_token"]
    me = httpx.get(f"{api_url}users/me/", headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == airflow_services.username and me.json()["is_admin"] is True
    with_cookie = httpx.get(f"{api_url}users/me/", cookies={"_token": jwt}, timeout=30)
    assert with_cookie.json()["username"] == airflow_services.username
    forged = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
    refused = httpx.get(f"{api_url}users/me/", headers={"Authorization": f"Bearer {forged}"}, timeout=30)
    assert refused.status_code == 401
    assert httpx.get(f"{api_url}products/", timeout=30).status_code == 401


def wait_for_process(process, timeout_s: float = 600) -> str:
    """The client-side process's status once it leaves Pending/Queued/Running (the client itself polls every 30 s)."""
    deadline = time.monotonic() + timeout_s
    while (status := process.check_status()) in ("Pending", "Queued", "Running", "Stopping"):
        assert time.monotonic() < deadline, f"process still {status} after {timeout_s:.0f} s"
        time.sleep(3)
    return status


def published(client, path, name: str, product_type: str, association: dict[str, str]) -> int:
    """A product uploaded, associated and published through the client, as a user does it."""
    upload = client.upload(name=name, product_type=product_type, main_file=str(path))
    upload.make_columns_association(association)
    upload.save()
    return upload.product_id


@pytest.fixture(scope="module")
def dc2_release(airflow_services, crossmatch_sample) -> str:
    """The sample's object catalog registered as release ``dc2-sample`` with ``pz release set``, as an admin does."""
    from pzlib.crossmatch.sample_data import OBJECT_COLUMN_MAP

    registered = subprocess.run(
        [sys.executable, "-m", "pzlib.cli", "release", "set", "dc2-sample", "--display-name", "DC2 sample",
         "--public", "--object-catalog", str(crossmatch_sample.objects), "--column-map", json.dumps(OBJECT_COLUMN_MAP)],
        env=airflow_services.environment, capture_output=True, text=True, timeout=300,
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["object_catalog"] == str(crossmatch_sample.objects)
    return "dc2-sample"


def test_the_client_makes_a_training_set_that_comes_back_as_a_product(
    pzserver_module, airflow_services, api_url, crossmatch_sample, dc2_release
):
    client = pzserver_module.PzServer(token=pz_token(airflow_services, "carol"), host=api_url)
    specz_id = published(client, crossmatch_sample.reference, "DC2 reference spec-z", "redshift_catalog",
                         {"id": "ID", "ra": "RA", "dec": "Dec", "z": "z", "z_err": "z_err", "z_flag": "z_flag"})

    tsm = client.training_set_maker("DC2 training set")
    tsm.set_release(name=dc2_release)
    tsm.set_redshift(_id=specz_id)
    tsm.set_config({"crossmatch": {"radius_arcsec": 1.0, "n_neighbors": 1}, "output_format": "parquet"})
    tsm.run()
    assert wait_for_process(tsm) == "Successful"

    table = client.get_product(tsm.output["id"])
    metadata = client.get_product_metadata(tsm.output["id"])
    assert metadata["status"] == 1 and metadata["product_type_internal_name"] == "training_set"
    assert 0 < len(table) <= pq.read_metadata(crossmatch_sample.reference).num_rows
    assert {"objectId", "redshift", "mag_i_lsst", "is_training_set"} <= set(table.colnames)
    aliases = {column["column_name"]: column["alias"] for column in metadata["main_file"]["columns_association"]}
    assert aliases["redshift"] == "z" and aliases["objectId"] == "ID" and aliases["ra"] == "RA"
    provenance = metadata["provenance"]
    assert 0.5 < provenance["matched_fraction"] <= 1 and provenance["separation_arcsec"]["max"] <= 1.0


def test_the_client_combines_redshift_catalogs(pzserver_module, airflow_services, api_url, crossmatch_sample):
    client = pzserver_module.PzServer(token=pz_token(airflow_services, "carol"), host=api_url)
    ids = []
    for survey in [entry for entry in crossmatch_sample.surveys if entry["survey"] in ("2DFGRS", "JADES")]:
        roles = {"id": "ID", "ra": "RA", "dec": "Dec", "z": "z", "z_err": "z_err", "z_flag": "z_flag"}
        ids.append(published(client, survey["path"], survey["survey"], "redshift_catalog",
                             {column: roles[role] for role, column in survey["columns"].items()}))

    crc = client.combine_redshift_catalogs("2dFGRS + JADES")
    for product_id in ids:
        crc.append_catalog(_id=product_id)
    crc.set_config({"combine_type": "concatenate_and_remove_duplicates"})
    crc.run()
    assert wait_for_process(crc) == "Successful"

    table = client.get_product(crc.output["id"])
    expected = sum(entry["rows"] for entry in crossmatch_sample.surveys if entry["survey"] in ("2DFGRS", "JADES"))
    assert 0 < len(table) < expected  # the overlap's duplicates are gone
    assert set(table["survey"]) == {"2DFGRS", "JADES"}
    assert set(table["z_flag_homogenized"]) <= {0, 1, 2, 3, 4}


def test_a_stopped_or_failing_run_ends_its_process_and_fails_its_product(
    pzserver_module, airflow_services, api_url, crossmatch_sample, dc2_release
):
    token = pz_token(airflow_services, "dave")
    client = pzserver_module.PzServer(token=token, host=api_url)
    two_df = next(entry for entry in crossmatch_sample.surveys if entry["survey"] == "2DFGRS")
    # Published with its RA associated to the survey's text column: the request is well formed, the run fails.
    broken = published(client, two_df["path"], "2dFGRS, RA mixed up", "redshift_catalog",
                       {"name": "RA", "dec_j2000_deg": "Dec", "z": "z"})
    good = published(client, crossmatch_sample.reference, "Reference again", "redshift_catalog",
                     {"ra": "RA", "dec": "Dec", "z": "z"})

    failing = client.training_set_maker("From broken positions")
    failing.set_release(name=dc2_release)
    failing.set_redshift(_id=broken)
    failing.run()
    stopped = client.training_set_maker("Stopped at once")
    stopped.set_release(name=dc2_release)
    stopped.set_redshift(_id=good)
    stopped.run()
    assert stopped.stop()["status"] == "Stopped"

    assert wait_for_process(failing) == "Failed"
    for process, status in ((failing, "Failed"), (stopped, "Stopped")):
        assert process.check_status() == status
        assert client.get_product_metadata(process.output["id"], mainfile_info=False)["status"] == 9
    failed = httpx.get(f"{api_url}processes/{failing.process['id']}/", headers={"Authorization": f"Token {token}"},
                       timeout=30).json()
    assert "failed" in failed["error"] and "column 'name': ra must be numeric" in failed["error"]
