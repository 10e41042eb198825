"""Object storage: every interface test runs on the local filesystem and on a real S3 HTTP endpoint.

The S3 endpoint is moto's server mode, started once per session on a free port of 127.0.0.1 and driven through
boto3 like any S3-compatible store; each test gets a new bucket.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.s3 import S3_CREDENTIALS

from pzlib.storage import (
    InvalidKey,
    InvalidRange,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageConfig,
    StorageError,
    open_storage,
)
from pzlib.storage.s3 import MIN_PART_SIZE

CONTENT = bytes(range(256)) * 4  # 1 KiB, every byte value


class FailingStream(io.RawIOBase):
    """Yields ``good_bytes`` bytes, then fails as a dropped upload connection would."""

    def __init__(self, good_bytes: int):
        self._remaining = good_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._remaining == 0:
            raise ConnectionResetError("client went away")
        count = min(len(buffer), self._remaining)
        buffer[:count] = b"x" * count
        self._remaining -= count
        return count


@pytest.fixture(scope="session")
def s3_config(s3_endpoint: str) -> StorageConfig:
    """Settings of a store under the prefix ``products`` of a bucket made for the session."""
    config = StorageConfig(
        f"s3://pz-test-{uuid.uuid4().hex[:12]}/products",
        endpoint_url=s3_endpoint,
        part_size=MIN_PART_SIZE,
        **S3_CREDENTIALS,
    )
    store = open_storage(config)
    store.client.create_bucket(Bucket=store.bucket)
    return config


@pytest.fixture(scope="session")
def s3_session_storage(s3_config: StorageConfig) -> S3Storage:
    """The session's S3 store; its boto3 client is made once, as loading boto3's models takes a while."""
    return open_storage(s3_config)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty store on each backend."""
    if request.param == "local":
        yield open_storage(StorageConfig((tmp_path / "store").as_uri()))
        return
    session_storage = request.getfixturevalue("s3_session_storage")
    yield session_storage
    session_storage.delete_tree("")


def leftovers(storage: Storage) -> list[str]:
    """Traces of unfinished writes: temporary files (local) or open multipart uploads (S3)."""
    if isinstance(storage, LocalStorage):
        return [name for _, _, names in os.walk(storage.root) for name in names if name.endswith(".partial")]
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Writing


def test_put_stores_bytes_files_and_streams_and_returns_size_and_checksum(
    storage: Storage, tmp_path: Path
) -> None:
    local_file = tmp_path / "specz.csv"
    local_file.write_bytes(CONTENT[:100])

    from_bytes = storage.put("a/bytes.bin", CONTENT)
    from_path = storage.put("a/path.csv", local_file)
    from_text_path = storage.put("a/text_path.csv", str(local_file))
    from_stream = storage.put("a/stream.bin", io.BytesIO(CONTENT[:10]))

    assert (from_bytes.key, from_bytes.size, from_bytes.sha256) == ("a/bytes.bin", 1024, sha256(CONTENT))
    assert (from_path.size, from_path.sha256) == (100, sha256(CONTENT[:100]))
    assert from_text_path.sha256 == from_path.sha256
    assert (from_stream.size, from_stream.sha256) == (10, sha256(CONTENT[:10]))
    assert storage.get("a/bytes.bin") == CONTENT
    assert storage.size("a/path.csv") == 100
    assert storage.exists("a/stream.bin")


def test_put_replaces_an_object(storage: Storage) -> None:
    storage.put("specz.csv", b"old content")

    storage.put("specz.csv", b"new")

    assert storage.get("specz.csv") == b"new"
    assert [stored.key for stored in storage.list_objects()] == ["specz.csv"]


def test_large_objects_stream_through_in_parts(storage: Storage) -> None:
    large = os.urandom(MIN_PART_SIZE + 1000)

    stored = storage.put("hats/large.parquet", io.BytesIO(large))

    assert (stored.size, stored.sha256) == (len(large), sha256(large))
    boundary = MIN_PART_SIZE
    assert (
        storage.get("hats/large.parquet", boundary - 10, boundary + 10)
        == large[boundary - 10 : boundary + 10]
    )
    assert leftovers(storage) == []


@pytest.mark.parametrize("good_bytes", [100, MIN_PART_SIZE + 100], ids=["small", "multipart"])
def test_a_failed_put_keeps_the_previous_object_and_leaves_nothing_behind(
    storage: Storage, good_bytes: int
) -> None:
    storage.put("specz.csv", b"previous")

    with pytest.raises(ConnectionResetError):
        storage.put("specz.csv", io.BufferedReader(FailingStream(good_bytes)))
    with pytest.raises(ConnectionResetError):
        storage.put("new.csv", io.BufferedReader(FailingStream(good_bytes)))

    assert storage.get("specz.csv") == b"previous"
    assert [stored.key for stored in storage.list_objects()] == ["specz.csv"]
    assert leftovers(storage) == []


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/absolute",
        "trailing/",
        "a//b",
        "../escape",
        "a/../../escape",
        "a/./b",
        "back\\slash",
        "nul\x00",
        "é" * 600,
    ],
)
def test_malformed_keys_are_refused_and_nothing_is_written(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.put(key, b"data")
    with pytest.raises(InvalidKey):
        storage.open(key)

    assert storage.list_objects() == []


# Reading


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, CONTENT),
        (2, 5, CONTENT[2:5]),
        (1000, 10**9, CONTENT[1000:]),
        (1023, None, CONTENT[1023:]),
        (7, 7, b""),
    ],
    ids=["whole", "inside", "end-clamped", "last-byte", "empty"],
)
def test_open_streams_a_byte_range(storage: Storage, start: int, end: int | None, expected: bytes) -> None:
    storage.put("specz.csv", CONTENT)

    with storage.open("specz.csv", start, end) as reader:
        pieces = list(iter(lambda: reader.read(100), b""))

    assert b"".join(pieces) == expected


def test_an_empty_object_reads_whole(storage: Storage) -> None:
    assert storage.put("empty.txt", b"").size == 0

    assert storage.get("empty.txt") == b""
    assert storage.size("empty.txt") == 0


@pytest.mark.parametrize(("start", "end"), [(-1, None), (1024, None), (5000, 6000), (10, 5)])
def test_byte_ranges_outside_the_object_are_refused(storage: Storage, start: int, end: int | None) -> None:
    storage.put("specz.csv", CONTENT)

    with pytest.raises(InvalidRange, match="outside object 'specz.csv' of 1024 bytes") as refused:
        storage.open("specz.csv", start, end)

    assert refused.value.size == 1024


def test_missing_objects_are_reported(storage: Storage, tmp_path: Path) -> None:
    for read in (storage.open, storage.size, storage.get, lambda key: storage.download(key, tmp_path / "x")):
        with pytest.raises(ObjectNotFound, match="'missing.csv'"):
            read("missing.csv")

    assert not storage.exists("missing.csv")
    storage.delete("missing.csv")
    assert not (tmp_path / "x").exists()


def test_download_copies_an_object_to_a_local_file(storage: Storage, tmp_path: Path) -> None:
    storage.put("a/specz.csv", CONTENT)
    destination = tmp_path / "downloads" / "specz.csv"

    downloaded = storage.download("a/specz.csv", destination)

    assert destination.read_bytes() == CONTENT
    assert (downloaded.size, downloaded.sha256) == (1024, sha256(CONTENT))
    assert sorted(path.name for path in destination.parent.iterdir()) == ["specz.csv"]


# Listing, deleting and directories


def test_list_objects_takes_the_prefix_as_a_directory(storage: Storage) -> None:
    for key in ("cat/b.csv", "cat/sub/a.csv", "catalog/c.csv", "cat.csv"):
        storage.put(key, b"12345")

    assert [(stored.key, stored.size) for stored in storage.list_objects("cat")] == [
        ("cat/b.csv", 5),
        ("cat/sub/a.csv", 5),
    ]
    assert storage.list_objects("cat/") == storage.list_objects("cat")
    assert [stored.key for stored in storage.list_objects()] == [
        "cat.csv",
        "cat/b.csv",
        "cat/sub/a.csv",
        "catalog/c.csv",
    ]
    assert storage.list_objects("nothing") == []


def test_delete_and_delete_tree(storage: Storage) -> None:
    for key in ("cat/a.csv", "cat/sub/b.csv", "catalog/c.csv"):
        storage.put(key, b"x")

    storage.delete("catalog/c.csv")
    assert storage.delete_tree("cat") == 2

    assert storage.list_objects() == []
    assert not storage.exists("cat/a.csv")


def test_a_hats_directory_round_trips(storage: Storage, tmp_path: Path) -> None:
    catalog = tmp_path / "specz_hats"
    files = {
        "properties": b"obs_collection=specz\n",
        "partition_info.csv": b"Norder,Npix\n0,1\n",
        "dataset/Norder=0/Dir=0/Npix=1.parquet": CONTENT,
    }
    for relative_path, data in files.items():
        (catalog / relative_path).parent.mkdir(parents=True, exist_ok=True)
        (catalog / relative_path).write_bytes(data)

    stored = storage.put_directory(catalog, "training_set/3_ts/specz_hats")
    fetched = storage.get_directory("training_set/3_ts/specz_hats", tmp_path / "copy")

    assert [item.key.removeprefix("training_set/3_ts/specz_hats/") for item in stored] == sorted(files)
    assert [item.sha256 for item in fetched] == [sha256(files[name]) for name in sorted(files)]
    for relative_path, data in files.items():
        assert (tmp_path / "copy" / relative_path).read_bytes() == data


def test_directory_copies_refuse_what_is_not_a_directory(storage: Storage, tmp_path: Path) -> None:
    a_file = tmp_path / "plain.csv"
    a_file.write_bytes(b"x")

    with pytest.raises(StorageError, match="is not a directory"):
        storage.put_directory(a_file, "somewhere")
    with pytest.raises(ObjectNotFound, match="no object is stored under 'nothing'"):
        storage.get_directory("nothing", tmp_path / "copy")

    assert storage.list_objects() == []


# Backend-specific behaviour and configuration


def test_s3_store_keeps_its_objects_under_its_prefix(s3_config: StorageConfig) -> None:
    storage = open_storage(s3_config)
    storage.put("a/specz.csv", b"data")

    raw_keys = [entry["Key"] for entry in storage.client.list_objects_v2(Bucket=storage.bucket)["Contents"]]
    storage.delete_tree("")

    assert isinstance(storage, S3Storage)
    assert storage.url == s3_config.url
    assert raw_keys == ["products/a/specz.csv"]


def test_local_store_ignores_the_temporary_files_of_interrupted_writes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("a/specz.csv", b"data")
    crashed_write = tmp_path / "a" / f".specz.csv.{uuid.uuid4().hex}.partial"
    crashed_write.write_bytes(b"da")

    assert [stored.key for stored in storage.list_objects()] == ["a/specz.csv"]
    with pytest.raises(InvalidKey):
        storage.put(f"a/{crashed_write.name}", b"x")


def test_local_store_refuses_a_key_that_is_also_a_directory(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("cat/a.csv", b"data")

    with pytest.raises(InvalidKey, match="clashes"):
        storage.put("cat", b"x")
    with pytest.raises(InvalidKey, match="clashes"):
        storage.put("cat/a.csv/b", b"x")
    with pytest.raises(InvalidKey, match="delete_tree"):
        storage.delete("cat")

    assert storage.get("cat/a.csv") == b"data"
    assert leftovers(storage) == []


def test_open_storage_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    from_file_url = open_storage(tmp_path.as_uri())
    from_path = open_storage(str(tmp_path / "relative" / ".." / "store"))
    from_s3_url = open_storage(
        StorageConfig(
            "s3://bucket/a/prefix/",
            region_name="us-east-1",
            **{key: value for key, value in S3_CREDENTIALS.items() if key != "region_name"},
        )
    )

    assert isinstance(from_file_url, LocalStorage) and from_file_url.root == tmp_path
    assert isinstance(from_path, LocalStorage)
    assert isinstance(from_s3_url, S3Storage)
    assert (from_s3_url.bucket, from_s3_url.prefix, from_s3_url.url) == (
        "bucket",
        "a/prefix",
        "s3://bucket/a/prefix",
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "ftp://host/path"}, "unknown scheme 'ftp'"),
        ({"url": "file://server/share"}, "names a host"),
        ({"url": "s3:///prefix"}, "names no bucket"),
        ({"url": ""}, "storage url is empty"),
        ({"url": "s3://bucket", "access_key_id": "key"}, "give both"),
        ({"url": "s3://bucket", "part_size": 1024}, "part_size must be at least"),
    ],
)
def test_bad_storage_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StorageConfig(**settings)
