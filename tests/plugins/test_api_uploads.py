"""Uploads over HTTP, on SQLite and Postgres: every table format is registered (rows, columns, preview), a zipped
HATS catalog becomes a directory, and bad uploads get a clear 4xx with nothing stored changed."""

from __future__ import annotations

import io
import zipfile

import pytest
from api_calls import API, create_product, specz_table, table_bytes, upload
from conftest import UPLOAD_LIMIT_BYTES


@pytest.mark.parametrize(
    "name, table_format",
    [
        ("specz.csv", "csv"),
        ("specz.parquet", "parquet"),
        ("specz.hdf5", "hdf5"),
        ("specz.fits", "fits"),
        ("specz.xml", "votable"),
    ],
)
def test_every_table_format_is_registered(server, as_alice, name, table_format):
    product = create_product(server, as_alice)
    stored = upload(server, as_alice, product["id"], name, table_bytes(specz_table(), table_format))
    assert stored.status_code == 201, stored.text
    assert stored.json()["n_rows"] == 25
    columns = server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice).json()["columns"]
    assert sorted(column["column_name"] for column in columns) == ["dec", "id", "ra", "z", "z_err"]
    main_file = server.client.get(f"{API}/products/{product['id']}/main_file_info/", headers=as_alice).json()[
        "main_file"]
    assert main_file["format"] == table_format and len(main_file["preview"]) == 10
    assert main_file["preview"][1]["z"] == pytest.approx(0.11)


def test_a_csv_with_semicolons_and_no_header_is_understood(server, as_alice):
    product = create_product(server, as_alice)
    content = b"".join(f"{index};{10 + index / 10};{-5 - index / 10};{index / 50}\n".encode() for index in range(12))
    assert upload(server, as_alice, product["id"], "plain.csv", content).status_code == 201
    server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice)
    main_file = server.client.get(f"{API}/products/{product['id']}/main_file_info/", headers=as_alice).json()[
        "main_file"]
    assert main_file["delimiter"] == ";" and main_file["has_header"] is False and main_file["n_rows"] == 12
    assert main_file["columns"] == ["column_1", "column_2", "column_3", "column_4"]


def test_a_zipped_hats_catalog_is_stored_as_a_directory(server, as_alice, hats_zip):
    product = create_product(server, as_alice)
    stored = upload(server, as_alice, product["id"], "specz_hats.zip", hats_zip)
    assert stored.status_code == 201, stored.text
    assert stored.json() | {"name": "specz_hats", "is_directory": True, "n_rows": 40} == stored.json()
    columns = server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice).json()["columns"]
    names = [column["column_name"] for column in columns]
    assert {"id", "ra", "dec", "z", "z_err"} <= set(names) and not {"Norder", "Dir", "Npix"} & set(names)
    rows = server.client.get(f"{API}/products/{product['id']}/read_data/?page_size=1000", headers=as_alice).json()
    assert rows["count"] == 40 and sorted(row["id"] for row in rows["results"]) == list(range(40))


def test_free_format_products_take_any_main_file(server, as_alice):
    product = create_product(server, as_alice, "FlexZBoost model", product_type="training_results")
    stored = upload(server, as_alice, product["id"], "model.pkl", b"\x80\x04 pickled model")
    assert stored.status_code == 201 and stored.json()["n_rows"] is None
    assert server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice).json()["columns"] == []
    published = server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice, data={"status": 1})
    assert published.status_code == 200


def _zip(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return sink.getvalue()


@pytest.mark.parametrize(
    "name, content, status, problem",
    [
        ("../../etc/passwd.csv", b"ra,dec,z\n1,2,0.3\n", 400, "not a plain file name"),
        ("..", b"ra,dec,z\n1,2,0.3\n", 400, "not a plain file name"),
        ("dir\\specz.csv", b"ra,dec,z\n1,2,0.3\n", 400, "not a plain file name"),
        ("specz.txt", b"ra,dec,z\n1,2,0.3\n", 400, "is not supported"),
        ("specz.pkl", b"\x80\x04binary", 400, "must be a table"),
        ("specz.parquet", b"PAR1 this is not parquet", 400, "specz.parquet: not a readable parquet"),
        ("specz.csv", b"ra,dec,z\n1,2,0.3\n1,2\n", 400, "specz.csv"),
        ("specz.csv", bytes(range(256)) * 10, 400, "not UTF-8 text"),
        ("specz.csv", b"ra,dec,z\n", 400, "the table has no rows"),
        ("specz.fits", b"SIMPLE  = T" + b" " * 100, 400, "specz.fits"),
        ("specz.xml", b"<VOTABLE><broken", 400, "not a readable VOTable"),
        ("specz.zip", b"PK\x03\x04 not a zip", 400, "not a readable ZIP archive"),
        ("specz.zip", _zip({"notes.txt": b"no catalog here"}), 400, "must be a table"),
        ("specz.zip", _zip({"../escape/properties": b"x"}), 400, "unsafe entry '../escape/properties'"),
        ("specz.zip", _zip({"/abs/hats.properties": b"x"}), 400, "unsafe entry"),
        ("big.csv", b"ra,dec,z\n" + b"1.0,2.0,0.3\n" * (UPLOAD_LIMIT_BYTES // 12 + 10), 413, "upload limit"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(server, as_alice, name, content, status, problem):
    product = create_product(server, as_alice)
    before = server.snapshot()
    response = upload(server, as_alice, product["id"], name, content)
    assert response.status_code == status, response.text
    assert problem in response.json()["detail"]
    assert server.snapshot() == before


def test_an_upload_too_large_is_stopped_before_it_is_read(server, as_alice):
    product = create_product(server, as_alice)
    before = server.snapshot()
    huge = b"x" * (UPLOAD_LIMIT_BYTES * 2)
    response = upload(server, as_alice, product["id"], "huge.csv", huge)
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == UPLOAD_LIMIT_BYTES
    assert server.snapshot() == before


def test_a_zip_bomb_is_refused(server, as_alice):
    product = create_product(server, as_alice)
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("catalog/hats.properties", b"x")
        archive.writestr("catalog/zeros.bin", b"\0" * (UPLOAD_LIMIT_BYTES * 25))
    before = server.snapshot()
    response = upload(server, as_alice, product["id"], "bomb.zip", sink.getvalue())
    assert response.status_code == 413 and "unpacks to" in response.json()["detail"]
    assert server.snapshot() == before


def test_duplicate_file_names_and_second_main_files_are_refused(server, as_alice):
    product = create_product(server, as_alice)
    csv = table_bytes(specz_table(), "csv")
    assert upload(server, as_alice, product["id"], "specz.csv", csv).status_code == 201
    assert upload(server, as_alice, product["id"], "notes.txt", b"notes", role=2).status_code == 201
    before = server.snapshot()
    second_main = upload(server, as_alice, product["id"], "other.csv", csv)
    assert second_main.status_code == 409 and "already has a main file" in second_main.json()["detail"]
    same_name = upload(server, as_alice, product["id"], "notes.txt", b"other notes", role=2)
    assert same_name.status_code == 409 and "already has a file named 'notes.txt'" in same_name.json()["detail"]
    assert server.snapshot() == before


@pytest.mark.parametrize(
    "fields, files, problem",
    [
        ({"role": "0"}, {"file": ("a.csv", b"a\n1\n")}, "product is required"),
        ({"product": "1", "role": "7"}, {"file": ("a.csv", b"a\n1\n")}, "file role 7 is unknown"),
        ({"product": "1", "owner": "bob"}, {"file": ("a.csv", b"a\n1\n")}, "unknown field(s) owner"),
        ({"product": "1"}, {"upload": ("a.csv", b"a\n1\n")}, "in the multipart field 'file'"),
    ],
)
def test_malformed_upload_forms_are_refused(server, as_alice, fields, files, problem):
    create_product(server, as_alice)
    before = server.snapshot()
    response = server.client.post(f"{API}/product-files/", headers=as_alice, data=fields, files=files)
    assert response.status_code == 400, response.text
    assert problem in response.json()["detail"]
    assert server.snapshot() == before


def test_deleting_the_main_file_forgets_the_columns(server, as_alice):
    product = create_product(server, as_alice)
    stored = upload(server, as_alice, product["id"], "specz.csv", table_bytes(specz_table(), "csv")).json()
    server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice)
    assert server.client.delete(f"{API}/product-files/{stored['id']}/", headers=as_alice).status_code == 204
    assert server.client.get(f"{API}/product-contents/?product={product['id']}", headers=as_alice).json()[
        "count"] == 0
    assert server.snapshot()[1] == []
