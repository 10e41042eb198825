"""The real ``pzserver`` client (PyPI 0.3.7) against the PZ Server plugin in the running Airflow api-server:
upload → associate columns → publish → list with filters → metadata → get_product → download_product; and the
plugin's routes accepting Airflow's own JWTs.

pzserver 0.3.7 declares pandas<3 while the platform pins pandas 3 (it works with it), so the Makefile installs
it without its dependencies after requirements.txt. Its API token comes from ``pz token create``, run with
the api-server's settings.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile

import httpx
import pyarrow.parquet as pq
import pytest
from api_calls import specz_table, table_bytes

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


def pz_token(airflow_services, username: str) -> str:
    """A new API token from ``pz token create``, in the registry the api-server uses."""
    created = subprocess.run(
        [sys.executable, "-m", "pzlib.cli", "token", "create", username],
        env=airflow_services.environment, capture_output=True, text=True, timeout=120,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


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
