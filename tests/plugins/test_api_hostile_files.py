"""Hostile uploads through the HTTP API, one request per class (tests/pzlib/registry/test_hostile_files.py holds
every variant): each gets its 4xx with a JSON detail naming the file, fetches no URL, names no server path and
stores nothing."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import h5py
import pytest
from api_calls import create_product, upload
from conftest import UPLOAD_LIMIT_BYTES
from fixtures.hostile_files import (
    COLLECTION,
    LEAF,
    collection_properties,
    counting_http_server,
    hats_zip,
    hdf5,
    url,
    votable,
)


@pytest.fixture(scope="module")
def listener() -> Iterator[ThreadingHTTPServer]:
    with counting_http_server() as server:
        yield server


HOSTILE_UPLOADS = {
    "votable-stream-href": lambda base_url: (
        "specz.xml", votable(f'<BINARY><STREAM href="{base_url}/secret.bin"/></BINARY>'), 400, "STREAM"),
    "hdf5-external-link": lambda base_url: (
        "specz.hdf5", hdf5(lambda h5file: h5file.__setitem__("z", h5py.ExternalLink("/etc/secret.h5", "/z"))),
        400, "external link"),
    "hats-properties-url": lambda base_url: (
        "specz_hats.zip", hats_zip(replace={COLLECTION: collection_properties(hats_primary_table_url=base_url)}),
        400, "hats_primary_table_url"),
    "zip-bomb": lambda base_url: (
        "bomb.zip", hats_zip(add={"specz_hats/zeros.bin": bytes(8 * UPLOAD_LIMIT_BYTES)},
                             compression=zipfile.ZIP_DEFLATED), 413, "unpacks to"),
    "long-name": lambda base_url: ("é" * 120 + ".csv", b"ra,dec,z\n1,2,0.3\n", 400, "the limit is 200 bytes"),
    "corrupt-table": lambda base_url: (
        "specz_hats.zip", hats_zip(replace={LEAF: b"PAR1" + bytes(100) + b"PAR1"}), 400, LEAF),
}


@pytest.mark.parametrize("kind", HOSTILE_UPLOADS)
def test_a_hostile_upload_gets_a_4xx_naming_the_file_and_stores_nothing(server, as_alice, listener, kind):
    name, content, status, reason = HOSTILE_UPLOADS[kind](url(listener))
    product = create_product(server, as_alice)
    before, requests_before = server.snapshot(), len(listener.requests)
    response = upload(server, as_alice, product["id"], name, content)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert name.removesuffix(".zip")[:30] in detail and reason in detail, detail
    assert "pz-upload-" not in detail and "/tmp/" not in detail, detail
    assert listener.requests[requests_before:] == []
    assert server.snapshot() == before
