"""Downloads over HTTP: prepare/status/file for a product's ZIP and for its main file, Range resume, the older
clients' one-call routes, and single files."""

from __future__ import annotations

import io
import zipfile

from api_calls import API, create_product, published_specz, specz_table, table_bytes, upload


def test_a_product_downloads_as_a_zip_of_its_files_and_metadata(server, as_alice):
    product = published_specz(server, as_alice)
    upload(server, as_alice, product["id"], "README.md", b"# DESI spec-z\n", role=1)
    status_url = f"{API}/products/{product['id']}/download/status/"
    assert server.client.get(status_url, headers=as_alice).status_code == 404
    prepared = server.client.post(f"{API}/products/{product['id']}/download/prepare/", headers=as_alice)
    assert prepared.status_code == 200, prepared.text
    archive = prepared.json()
    assert archive["status"] == "ready" and archive["filename"] == f"{product['internal_name']}.zip"
    assert server.client.get(status_url, headers=as_alice).json() == archive
    response = server.client.get(f"{API}/{archive['download_url']}", headers=as_alice)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f"attachment; filename={archive['filename']}"
    assert int(response.headers["content-length"]) == archive["size"] == len(response.content)
    with zipfile.ZipFile(io.BytesIO(response.content)) as downloaded:
        assert sorted(downloaded.namelist()) == sorted(
            ["specz.csv", "README.md", f"{product['internal_name']}_metadata.json"])
        assert downloaded.read("specz.csv") == table_bytes(specz_table(), "csv")


def test_a_changed_product_gets_a_new_archive(server, as_alice):
    product = published_specz(server, as_alice)
    first = server.client.post(f"{API}/products/{product['id']}/download/prepare/", headers=as_alice).json()
    server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice, data={"description": "v2"})
    second = server.client.post(f"{API}/products/{product['id']}/download/prepare/", headers=as_alice).json()
    assert second["task_id"] != first["task_id"]
    archives = [key for key, _ in server.snapshot()[1] if key.startswith(f"downloads/{product['id']}/")]
    assert len(archives) == 2  # the new archive and its record; the stale pair is gone


def test_an_interrupted_download_resumes_with_a_range(server, as_alice):
    product = published_specz(server, as_alice)
    url = f"{API}/products/{product['id']}/download/file/"
    whole = server.client.get(url, headers=as_alice).content
    rest = server.client.get(url, headers={**as_alice, "Range": "bytes=100-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"
    assert whole[:100] + rest.content == whole
    middle = server.client.get(url, headers={**as_alice, "Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == whole[10:20]
    tail = server.client.get(url, headers={**as_alice, "Range": "bytes=-5"})
    assert tail.content == whole[-5:]
    past_end = server.client.get(url, headers={**as_alice, "Range": f"bytes={len(whole)}-"})
    assert past_end.status_code == 416 and past_end.headers["content-range"] == f"bytes */{len(whole)}"
    ignored = server.client.get(url, headers={**as_alice, "Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200 and ignored.content == whole


def test_the_main_file_downloads_as_stored(server, as_alice):
    product = published_specz(server, as_alice)
    prepared = server.client.post(f"{API}/products/{product['id']}/download/main-file/prepare/", headers=as_alice)
    assert prepared.json()["filename"] == "specz.csv"
    assert server.client.get(f"{API}/products/{product['id']}/download/main-file/status/",
                             headers=as_alice).json()["status"] == "ready"
    response = server.client.get(f"{API}/{prepared.json()['download_url']}", headers=as_alice)
    assert response.content == table_bytes(specz_table(), "csv")
    assert response.headers["content-disposition"] == "attachment; filename=specz.csv"


def test_a_hats_main_file_downloads_zipped(server, as_alice, hats_zip):
    product = create_product(server, as_alice)
    assert upload(server, as_alice, product["id"], "specz_hats.zip", hats_zip).status_code == 201
    prepared = server.client.post(f"{API}/products/{product['id']}/download/main-file/prepare/", headers=as_alice)
    assert prepared.json()["filename"] == "specz_hats.zip"
    response = server.client.get(f"{API}/{prepared.json()['download_url']}", headers=as_alice)
    with zipfile.ZipFile(io.BytesIO(response.content)) as downloaded:
        assert "specz_hats/collection.properties" in downloaded.namelist()


def test_older_clients_one_call_routes(server, as_alice):
    product = published_specz(server, as_alice)
    product_zip = server.client.get(f"{API}/products/{product['id']}/download", headers=as_alice)
    assert product_zip.status_code == 200 and product_zip.content.startswith(b"PK")
    main_file = server.client.get(f"{API}/products/{product['id']}/download_main_file/", headers=as_alice)
    assert main_file.content == table_bytes(specz_table(), "csv")


def test_single_files_download(server, as_alice):
    product = published_specz(server, as_alice)
    notes = upload(server, as_alice, product["id"], "notes.txt", b"measured at LIneA", role=2).json()
    response = server.client.get(f"{API}/{notes['file']}", headers=as_alice)
    assert response.content == b"measured at LIneA"


def test_a_product_without_files_has_nothing_to_download(server, as_alice):
    product = create_product(server, as_alice)
    response = server.client.post(f"{API}/products/{product['id']}/download/prepare/", headers=as_alice)
    assert response.status_code == 400 and "has no file to download" in response.json()["detail"]
