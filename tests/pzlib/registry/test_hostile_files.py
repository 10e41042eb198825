"""Hostile uploads (pzlib.registry.file_safety and the readers of pzlib.catalog): files that would make the server
read another file of its disk or fetch a URL, zip bombs, over-long names and corrupt tables. Every file is built
here. Each upload is refused with a message naming the file and the reason and no server path, nothing is stored,
no temporary folder is left, no URL is fetched (a local HTTP listener counts requests) — and a file stored
before these checks existed is refused again when its rows are read."""

from __future__ import annotations

import gzip
import io
import shutil
import struct
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from fixtures.hostile_files import (
    COLLECTION,
    HATS_ZIP,
    LEAF,
    SECRET_BYTES,
    SECRET_VALUES,
    collection_properties,
    counting_http_server,
    hats_zip,
    hdf5,
    url,
    votable,
)

from pzlib.registry import InvalidInput, Registry, User
from pzlib.registry.checks import MAX_FILE_NAME_BYTES
from pzlib.registry.registration import FileTooLarge, ProductFiles
from pzlib.registry.schema import NAME_LENGTH
from pzlib.storage import open_storage

UPLOAD_LIMIT_BYTES = 64 * 1024
"""Room for the test catalogs; the zipped-catalog limit is twice this (the default ratio)."""


@pytest.fixture(scope="module")
def listener() -> Iterator[ThreadingHTTPServer]:
    with counting_http_server() as server:
        yield server


@dataclass
class Server:
    """Product files over SQLite and local storage, with its temporary folder and a folder outside both."""

    files: ProductFiles
    alice: User
    scratch: Path
    """Where uploads are received and unpacked (the server's temporary folder)."""
    outside: Path
    """Files of the server's disk that no upload may reach."""
    listener: ThreadingHTTPServer

    @property
    def url(self) -> str:
        return url(self.listener)

    def product(self) -> int:
        return self.files.registry.create_product(  # display names are unique per owner
            self.alice, display_name=f"Spec-z {uuid.uuid4().hex[:8]}", product_type="redshift_catalog").id

    def refuse(self, name: str, content: bytes, *reasons: str, error: type[InvalidInput] = InvalidInput) -> str:
        """Upload ``content`` as the main file ``name``; check that it is refused and left no trace."""
        product_id = self.product()
        before = len(self.listener.requests)
        with pytest.raises(error) as raised:
            self.files.upload(self.alice, product_id, name=name, content=io.BytesIO(content))
        message = str(raised.value)
        shown_name = name.removesuffix(".zip")[:30]
        assert shown_name in message and all(reason in message for reason in reasons), message
        self.assert_no_server_path(message)
        assert self.listener.requests[before:] == []
        assert self.files.storage.list_objects() == []
        assert self.files.registry.list_files(self.alice, product_id) == ()
        assert list(self.scratch.iterdir()) == []
        return message

    def assert_no_server_path(self, message: str) -> None:
        assert str(self.scratch) not in message and "pz-upload-" not in message, message
        assert str(self.files.storage.root) not in message, message


@pytest.fixture
def server(tmp_path: Path, listener: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> Server:
    scratch = tmp_path / "server-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    files = ProductFiles(registry, open_storage(str(tmp_path / "server-store")), upload_limit_bytes=UPLOAD_LIMIT_BYTES)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(SECRET_BYTES)
    (outside / "secret.f8").write_bytes(np.array(SECRET_VALUES).tobytes())  # native doubles, for HDF5
    with h5py.File(outside / "secret.h5", "w") as secret:
        secret["z"] = np.array(SECRET_VALUES)
    shutil.unpack_archive(HATS_ZIP, outside)  # another user's catalog: outside/specz_hats
    return Server(files, registry.create_user("alice"), scratch, outside, listener)


# --- builders of hostile files (the shared ones are in tests/fixtures/hostile_files.py) ---------------------------


def lying_zip(content: bytes) -> bytes:
    """A HATS zip whose extra entry declares 1,000 bytes in both headers but inflates to ``content``."""
    data = bytearray(hats_zip(add={"specz_hats/padding.bin": content}, compression=zipfile.ZIP_DEFLATED))
    local = data.rfind(b"PK\x03\x04")  # the last entry written is the padding
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 1000)
    struct.pack_into("<I", data, central + 24, 1000)
    return bytes(data)


def parquet_summary_naming(data_file: Path) -> bytes:
    """A Parquet summary (_metadata) whose row groups live in ``data_file``."""
    metadata = pq.read_metadata(data_file)
    metadata.set_file_path(str(data_file))
    sink = io.BytesIO()
    metadata.write_metadata_file(sink)
    return sink.getvalue()


def fits_bytes() -> bytes:
    sink = io.BytesIO()
    Table({"z": np.array(SECRET_VALUES)}).write(sink, format="fits")
    return sink.getvalue()


# --- formats that refer outside: refused at upload -------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "http"])
@pytest.mark.parametrize("serialization", ["BINARY", "BINARY2", "FITS"])
def test_a_votable_stream_with_an_href_is_refused_without_reading_it(server, where, serialization):
    href = (server.outside / "secret.bin").as_uri() if where == "file" else f"{server.url}/secret.bin"
    extnum = ' extnum="1"' if serialization == "FITS" else ""
    content = votable(f'<{serialization}{extnum}><STREAM href="{href}"/></{serialization}>')
    server.refuse("specz.xml", content, "specz.xml", "STREAM", href)


def test_a_votable_with_a_doctype_or_an_include_is_refused(server):
    entity = f'\n<!DOCTYPE VOTABLE [<!ENTITY secret SYSTEM "{(server.outside / "secret.bin").as_uri()}">]>'
    server.refuse("entity.xml", votable("<TABLEDATA><TR><TD>&secret;</TD></TR></TABLEDATA>", doctype=entity),
                  "DOCTYPE")
    include = '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/hostname"/>'
    server.refuse("include.xml", votable("<TABLEDATA><TR><TD>1</TD></TR></TABLEDATA>", field_extra=include),
                  "includes other XML")


def test_a_gzipped_votable_is_refused_before_astropy_inflates_it(server):
    content = gzip.compress(votable("<TABLEDATA>" + "<TR><TD>0</TD></TR>" * 2000 + "</TABLEDATA>"))
    server.refuse("packed.vot", content, "not a readable VOTable")


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda h5file, outside: h5file.create_dataset(
            "z", shape=(3,), dtype="f8", external=[(str(outside / "secret.f8"), 0, 24)]),
         "stores its data in the external file"),
        (lambda h5file, outside: h5file.create_virtual_dataset("z", _virtual_layout(outside / "secret.h5")),
         "virtual dataset"),
        (lambda h5file, outside: h5file.__setitem__("z", h5py.ExternalLink(str(outside / "secret.h5"), "/z")),
         "external link"),
    ],
    ids=["external-storage", "virtual-dataset", "external-link"],
)
def test_an_hdf5_table_with_data_elsewhere_is_refused(server, build, reason):
    content = hdf5(lambda h5file: build(h5file, server.outside))
    server.refuse("specz.hdf5", content, "specz.hdf5", reason, "must hold its data in the file itself")


def _virtual_layout(source: Path) -> h5py.VirtualLayout:
    layout = h5py.VirtualLayout(shape=(3,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(source), "z", shape=(3,))
    return layout


@pytest.mark.parametrize(
    "changes, reason",
    [
        (lambda server: {"hats_primary_table_url": str(server.outside / "specz_hats" / "specz_hats")},
         "an absolute path"),
        # From <scratch>/pz-upload-*/unpacked/specz_hats, four levels up is the test's folder.
        (lambda server: {"hats_primary_table_url": "../../../../outside/specz_hats/specz_hats"}, "'..'"),
        (lambda server: {"hats_primary_table_url": f"{server.url}/specz_hats"}, "a URL"),
        (lambda server: {"default_margin": f"{server.url}/margin", "all_margins": f"{server.url}/margin"}, "a URL"),
        (lambda server: {"all_indexes": f"id {server.outside}/index"}, "an absolute path"),
        (lambda server: {"hats_primary_table_url": "\\u002e\\u002e/\\u002e\\u002e/outside"}, "'..'"),
    ],
    ids=["absolute", "dotdot", "url", "margin-url", "index-absolute", "escaped-dotdot"],
)
def test_a_zipped_hats_catalog_pointing_outside_is_refused_before_unpacking(server, changes, reason):
    content = hats_zip(replace={COLLECTION: collection_properties(**changes(server))})
    server.refuse("specz_hats.zip", content, COLLECTION, reason)


def test_a_hats_summary_naming_outside_files_or_a_compressed_point_map_is_refused(server):
    pq.write_table(pa.table({"z": list(SECRET_VALUES)}), server.outside / "secret.parquet")
    summary = parquet_summary_naming(server.outside / "secret.parquet")
    server.refuse("summary.zip", hats_zip(replace={"specz_hats/specz_hats/dataset/_metadata": summary}),
                  "names the data file", "an absolute path")
    with zipfile.ZipFile(HATS_ZIP) as source:
        point_map = gzip.compress(source.read("specz_hats/specz_hats/point_map.fits"))
    server.refuse("pointmap.zip", hats_zip(replace={"specz_hats/specz_hats/point_map.fits": point_map}),
                  "point_map.fits is not a plain FITS file")


def test_a_fits_file_that_is_compressed_data_is_refused(server):
    for name, container in [("zipped.fits", "zip"), ("gzipped.fits", "gzip")]:
        if container == "zip":
            sink = io.BytesIO()
            with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("inner.fits", fits_bytes())
            content = sink.getvalue()
        else:
                    content = gzip.compress(fits_bytes())
        server.refuse(name, content, name, "not a FITS file")


def test_a_parquet_file_naming_another_file_is_not_followed(server):
    # Parquet readers open only the given file: a footer whose column chunks name another file is unreadable.
    pq.write_table(pa.table({"z": list(SECRET_VALUES)}), server.outside / "secret.parquet")
    message = server.refuse("specz.parquet", parquet_summary_naming(server.outside / "secret.parquet"),
                            "cannot read", "Deserializing page header failed")
    assert "42.5" not in message


# --- zip bombs ------------------------------------------------------------------------------------------------


def test_a_zip_unpacking_beyond_the_limit_is_refused_before_anything_is_written(server):
    # 16x the upload limit: the old 20x rule unpacked (and stored) it; the limit is now twice the upload limit.
    content = hats_zip(add={"specz_hats/padding.bin": b"\0" * (16 * UPLOAD_LIMIT_BYTES)},
                       compression=zipfile.ZIP_DEFLATED)
    assert len(content) < UPLOAD_LIMIT_BYTES
    server.refuse("bomb.zip", content, "bomb.zip", "padding.bin' unpacks to 1.0 MiB", "131072 bytes",
                  error=FileTooLarge)


def test_a_zip_lying_about_its_sizes_is_stopped_at_the_declared_size(server):
    content = lying_zip(b"\0" * (16 * UPLOAD_LIMIT_BYTES))
    assert zipfile.ZipFile(io.BytesIO(content)).getinfo("specz_hats/padding.bin").file_size == 1000
    server.refuse("liar.zip", content, "liar.zip", "corrupt ZIP archive", "padding.bin")


def test_the_unzipped_limit_is_a_setting(tmp_path):
    from pzlib.config import Settings, load_settings

    settings = load_settings({"PZ_STATE_DIR": str(tmp_path), "PZ_UNZIPPED_LIMIT_BYTES": "4096"})
    assert settings.unzipped_limit_bytes == 4096
    assert Settings().unzipped_limit_bytes == 2 * Settings().upload_limit_bytes
    files = ProductFiles.from_settings(settings)
    assert files.unzipped_limit_bytes == 4096
    files.registry.engine.dispose()


# --- names and messages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a" * 296 + ".csv", "a" * 230 + ".csv", "é" * 150 + ".csv", "b" * 300 + ".zip"],
    ids=["300-bytes", "230-bytes", "154-chars-304-bytes", "zip-304-bytes"],
)
def test_an_over_long_file_name_is_refused_naming_the_limit(server, name):
    server.refuse(name, b"ra,dec,z\n1,2,0.5\n", f"the limit is {MAX_FILE_NAME_BYTES} bytes")


def test_a_name_at_the_limit_is_stored_in_a_product_of_the_longest_name(server):
    product = server.files.registry.create_product(server.alice, display_name="p" * NAME_LENGTH,
                                                   product_type="redshift_catalog")
    assert len(product.internal_name) > 255  # its storage folder is cut to fit the file system
    name = "é" * ((MAX_FILE_NAME_BYTES - 4) // 2) + ".csv"
    stored = server.files.upload(server.alice, product.id, name=name, content=io.BytesIO(b"z\n0.5\n"))
    assert stored.name == name and len(name.encode()) <= MAX_FILE_NAME_BYTES
    assert server.files.read_rows(server.alice, product.id, offset=0, limit=5).rows == ({"z": 0.5},)


@pytest.mark.parametrize(
    "name, content",
    [
        ("broken.parquet", b"PAR1 not parquet at all PAR1"),
        ("broken.hdf5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
        ("broken.xml", b"<VOTABLE><RESOURCE>"),
        ("broken.zip", hats_zip(replace={LEAF: b"PAR1" + bytes(100) + b"PAR1"})),
    ],
)
def test_a_corrupt_table_is_refused_without_naming_a_server_path(server, name, content):
    # pyarrow names the file it failed on by its full path; a member of an archive keeps its path inside it.
    message = server.refuse(name, content, name.removesuffix(".zip"))
    assert name.endswith(".zip") == (LEAF in message)


# --- reading a file stored before these checks ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["votable", "hdf5", "hats", "corrupt"])
def test_reading_a_stored_file_refuses_it_again(server, kind):
    """A file stored earlier is swapped for a hostile one in storage: read_rows runs the same checks."""
    product_id = server.product()
    clean_rows = pa.table({"z": np.array(SECRET_VALUES) * 0})
    if kind == "votable":
        sink = io.BytesIO()
        Table({"z": clean_rows["z"].to_numpy()}).write(sink, format="votable")
        name, clean = "specz.xml", sink.getvalue()
        hostile = votable(f'<BINARY><STREAM href="{server.url}/secret.bin"/></BINARY>')
    elif kind == "hdf5":
        name = "specz.hdf5"
        clean = hdf5(lambda h5file: h5file.__setitem__("z", np.zeros(3)))
        link = h5py.ExternalLink(str(server.outside / "secret.h5"), "/z")
        hostile = hdf5(lambda h5file: h5file.__setitem__("z", link))
    elif kind == "hats":
        name, clean = "specz_hats.zip", hats_zip()
        elsewhere = str(server.outside / "specz_hats" / "specz_hats")
        hostile = collection_properties(hats_primary_table_url=elsewhere)
    else:
        sink = io.BytesIO()
        pq.write_table(clean_rows, sink)
        name, clean, hostile = "specz.parquet", sink.getvalue(), b"PAR1 overwritten PAR1"
    stored = server.files.upload(server.alice, product_id, name=name, content=io.BytesIO(clean))
    target = server.files.storage.root / stored.storage_key
    (target / "collection.properties" if stored.is_directory else target).write_bytes(hostile)
    before = len(server.listener.requests)
    with pytest.raises(InvalidInput) as raised:
        server.files.read_rows(server.alice, product_id, offset=0, limit=10)
    server.assert_no_server_path(str(raised.value))
    assert stored.name in str(raised.value)
    assert server.listener.requests[before:] == []
