"""Product files in object storage (pzlib.registry.registration, archives, pipelines) on the local filesystem and
on a real S3 endpoint (moto's server mode): tables registered, rows read, archives made, nothing left behind."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pzlib.registry import InvalidInput, NotFound, ProductStatus, Registry, User
from pzlib.registry.archives import ProductArchives
from pzlib.registry.pipelines import get_pipeline, start_process
from pzlib.registry.registration import FileTooLarge, ProductFiles, inspect_table
from pzlib.storage import Storage, StorageConfig, open_storage

DATA_DIR = Path(__file__).parents[2] / "data"


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(str(tmp_path / "store"))
    config = StorageConfig(
        f"s3://pz-registration-{uuid.uuid4().hex[:12]}/pz",
        endpoint_url=request.getfixturevalue("s3_endpoint"),
        access_key_id="testing",
        secret_access_key="testing",
        region_name="us-east-1",
    )
    store = open_storage(config)
    store.client.create_bucket(Bucket=store.bucket)
    return store


@pytest.fixture
def owner(tmp_path: Path) -> tuple[Registry, User]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    return registry, registry.create_user("alice")


def csv_bytes(rows: int = 30) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(pa.table({"id": list(range(rows)), "ra": [1.5] * rows, "z": [0.25] * rows}), sink)
    return sink.getvalue()


def test_a_table_is_registered_read_archived_and_removed(storage, owner):
    registry, alice = owner
    files = ProductFiles(registry, storage, upload_limit_bytes=1 << 20)
    product = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    stored = files.upload(alice, product.id, name="specz.csv", content=io.BytesIO(csv_bytes()))
    assert stored.n_rows == 30 and stored.checksum is not None
    assert [column.column_name for column in files.register(alice, product.id)] == ["id", "ra", "z"]
    rows = files.read_rows(alice, product.id, offset=28, limit=5)
    assert rows.count == 30 and [row["id"] for row in rows.rows] == [28, 29]

    archives = ProductArchives(registry, storage)
    assert archives.find(alice, product.id) is None
    archive = archives.prepare(alice, product.id)
    with zipfile.ZipFile(io.BytesIO(storage.get(archive.key))) as downloaded:
        assert downloaded.read("specz.csv") == csv_bytes()
    assert archives.find(alice, product.id) == archive

    files.delete_product(alice, product.id)
    assert storage.list_objects() == []
    with pytest.raises(NotFound):
        registry.get_product(alice, product.id)


def test_a_zipped_hats_catalog_is_unpacked_read_and_zipped_again(storage, owner):
    registry, alice = owner
    files = ProductFiles(registry, storage, upload_limit_bytes=1 << 20)
    product = registry.create_product(alice, display_name="HATS spec-z", product_type="redshift_catalog")
    hats_zip = (DATA_DIR / "specz_hats.zip").read_bytes()
    stored = files.upload(alice, product.id, name="specz_hats.zip", content=io.BytesIO(hats_zip))
    assert (stored.name, stored.is_directory, stored.n_rows) == ("specz_hats", True, 40)
    rows = files.read_rows(alice, product.id, offset=0, limit=100)
    assert sorted(row["id"] for row in rows.rows) == list(range(40))
    archive = ProductArchives(registry, storage).prepare(alice, product.id, main_file_only=True)
    with zipfile.ZipFile(io.BytesIO(storage.get(archive.key))) as downloaded:
        assert "specz_hats/collection.properties" in downloaded.namelist()


def test_a_refused_upload_leaves_storage_as_it_was(storage, owner):
    registry, alice = owner
    files = ProductFiles(registry, storage, upload_limit_bytes=100)
    product = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    with pytest.raises(FileTooLarge, match="larger than the upload limit of 100 bytes"):
        files.upload(alice, product.id, name="specz.csv", content=io.BytesIO(csv_bytes()))
    with pytest.raises(InvalidInput, match="not a plain file name"):
        files.upload(alice, product.id, name="../specz.csv", content=io.BytesIO(b"a\n1\n"))
    assert storage.list_objects() == []
    assert registry.list_files(alice, product.id) == ()


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"a,b\n1,2\n3\n", "Expected 2 columns"),
        (b"a,b\n", "the table has no rows"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    ],
)
def test_inspect_table_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=problem) as raised:
        inspect_table(path, "csv")
    assert "broken.csv" in str(raised.value)


def test_a_process_records_its_output_product(owner):
    registry, alice = owner
    specz = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    process = start_process(registry, alice, "training_set_maker", display_name="TS", inputs=[specz.id])
    output = registry.get_product(alice, process.output_product_id)
    assert output.product_type_name == get_pipeline(1).output_product_type
    assert output.status is ProductStatus.PROCESSING
    assert process.used_config["param"]["split"]["train_fraction"] == 0.7


def test_product_files_from_settings_use_the_settings_registry_and_store(tmp_path):
    from pzlib.config import Settings

    files = ProductFiles.from_settings(Settings(state_dir=tmp_path, upload_limit_bytes=1_000))
    alice = files.registry.create_user("alice")
    product = files.registry.create_product(alice, display_name="Notes", product_type="validation_results")
    files.upload(alice, product.id, name="notes.txt", content=io.BytesIO(b"hello"))
    assert (tmp_path / "registry.sqlite").is_file() and files.upload_limit_bytes == 1_000
    assert [path.read_bytes() for path in (tmp_path / "storage").rglob("notes.txt")] == [b"hello"]
    files.registry.engine.dispose()
