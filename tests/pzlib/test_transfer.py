"""Delivery of a folder to S3 (pzlib.storage.transfer) against real moto S3 servers.

The session's moto server (tests/fixtures/s3.py) accepts any credentials; the credential and permission tests
run their own moto server in a subprocess with IAM authentication on (``INITIAL_NO_AUTH_ACTION_COUNT``: the
first requests set up users, every later one is checked). The interruption test kills a real delivery process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from fixtures.s3 import S3_CREDENTIALS

from pzlib.storage.s3 import MIN_PART_SIZE
from pzlib.storage.transfer import (
    MANIFEST_KEY,
    DeliveryMismatch,
    DestinationRefused,
    DestinationUnreachable,
    LocalFileChanged,
    Manifest,
    build_manifest,
    deliver,
    read_delivered_manifest,
    verify_delivery,
)

PART_SIZE = MIN_PART_SIZE
BIG_FILE = "dataset/Norder=1/Dir=0/Npix=44.parquet"
BIG_SIZE = 12 * 1024 * 1024  # three parts of PART_SIZE


def make_client(endpoint: str, access_key_id: str, secret_access_key: str, **config):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=S3_CREDENTIALS["region_name"], aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key, config=Config(s3={"addressing_style": "path"}, **config),
    )


def write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A HATS-shaped folder: small metadata files, nested partitions, an empty file and one multipart-sized file."""
    folder = tmp_path / "catalog"
    write_file(folder / "properties", b"obs_collection=pz_dp1\nhats_nrows=1000\n")
    write_file(folder / "partition_info.csv", b"Norder,Npix\n0,1\n1,44\n")
    write_file(folder / "dataset/_common_metadata", os.urandom(3_000))
    write_file(folder / "dataset/Norder=0/Dir=0/Npix=1.parquet", os.urandom(200_000))
    write_file(folder / BIG_FILE, os.urandom(BIG_SIZE))
    write_file(folder / "dataset/empty_marker", b"")
    return folder


def remote_contents(client, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix/``, by relative key, with its bytes."""
    contents = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for listed in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()
            contents[listed["Key"][len(prefix) + 1:]] = body
    return contents


def remote_keys(client, bucket: str, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [listed["Key"] for page in pages for listed in page.get("Contents", [])]


def local_contents(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_manifest_lists_every_file_with_its_sha256_and_round_trips(catalog: Path):
    manifest = build_manifest(catalog, label="dp1")
    contents = local_contents(catalog)
    assert [entry.key for entry in manifest.files] == sorted(contents)
    for entry in manifest.files:
        assert (entry.size, entry.sha256) == (len(contents[entry.key]), hashlib.sha256(contents[entry.key]).hexdigest())
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.total_bytes == sum(map(len, contents.values()))
    with pytest.raises(ValueError, match="label"):
        build_manifest(catalog, label="dp1\n")
    with pytest.raises(ValueError, match="not a delivery manifest"):
        Manifest.from_json('{"label": "dp1"}')


def test_delivery_copies_every_file_verifies_and_a_rerun_copies_nothing(catalog, s3_client, new_bucket):
    bucket = new_bucket("pz-deliver")
    manifest = build_manifest(catalog, label="dp1")
    lines = []
    result = deliver(catalog, s3_client, bucket, "releases/dp1", manifest, part_size=PART_SIZE, report=lines.append)

    assert result.copied_keys == tuple(entry.key for entry in manifest.files)
    assert (result.copied_bytes, result.skipped_keys, result.skipped_bytes) == (manifest.total_bytes, (), 0)
    delivered = remote_contents(s3_client, bucket, "releases/dp1")
    assert delivered.pop(MANIFEST_KEY) == manifest.to_json().encode()
    assert delivered == local_contents(catalog)
    big = s3_client.head_object(Bucket=bucket, Key=f"releases/dp1/{BIG_FILE}")
    assert big["ETag"].endswith('-3"'), "the 12 MiB file went in three 5 MiB parts"
    assert big["Metadata"] == {"sha256": manifest.files[[e.key for e in manifest.files].index(BIG_FILE)].sha256,
                               "label": "dp1"}
    verify_delivery(s3_client, bucket, "releases/dp1", manifest)
    assert read_delivered_manifest(s3_client, bucket, "releases/dp1") == manifest
    assert any("copied" in line for line in lines)

    rerun = deliver(catalog, s3_client, bucket, "releases/dp1", manifest, part_size=PART_SIZE)
    assert (rerun.copied_keys, rerun.copied_bytes) == ((), 0)
    assert rerun.skipped_keys == result.copied_keys and rerun.skipped_bytes == manifest.total_bytes


def test_a_changed_or_removed_remote_object_is_reported_and_copied_again(catalog, s3_client, new_bucket):
    bucket = new_bucket("pz-repair")
    manifest = build_manifest(catalog, label="dp1")
    deliver(catalog, s3_client, bucket, "dp1", manifest, part_size=PART_SIZE)
    s3_client.delete_object(Bucket=bucket, Key="dp1/properties")
    s3_client.put_object(Bucket=bucket, Key="dp1/partition_info.csv", Body=b"Norder,Npix\n")
    # Same size, other bytes, and the metadata still claiming the manifest's SHA-256 would be undetectable by
    # HEAD; bytes written without our metadata are not:
    same_size = os.urandom(3_000)
    s3_client.put_object(Bucket=bucket, Key="dp1/dataset/_common_metadata", Body=same_size)
    s3_client.put_object(Bucket=bucket, Key="dp1/dataset/Norder=0/Dir=0/Npix=1.parquet", Body=os.urandom(200_000),
                         Metadata={"sha256": "0" * 64, "label": "dp1"})

    with pytest.raises(DeliveryMismatch) as mismatch:
        verify_delivery(s3_client, bucket, "dp1", manifest)
    kinds = {found.key: found.kind for found in mismatch.value.mismatches}
    assert kinds == {"properties": "missing", "partition_info.csv": "size", "dataset/_common_metadata": "checksum",
                     "dataset/Norder=0/Dir=0/Npix=1.parquet": "checksum"}
    assert "s3://" + bucket + "/dp1 does not match its manifest (4 differences)" in str(mismatch.value)
    assert "properties: missing" in str(mismatch.value)

    result = deliver(catalog, s3_client, bucket, "dp1", manifest, part_size=PART_SIZE)
    assert set(result.copied_keys) == set(kinds)
    assert BIG_FILE in result.skipped_keys
    delivered = remote_contents(s3_client, bucket, "dp1")
    assert delivered.pop(MANIFEST_KEY) == manifest.to_json().encode()
    assert delivered == local_contents(catalog)


def test_a_flipped_local_byte_is_detected(catalog, s3_client, new_bucket):
    bucket = new_bucket("pz-flip")
    manifest = build_manifest(catalog, label="dp1")
    deliver(catalog, s3_client, bucket, "dp1", manifest, part_size=PART_SIZE)
    big_path = catalog / BIG_FILE
    content = bytearray(big_path.read_bytes())
    content[7_000_000] ^= 0x01
    big_path.write_bytes(content)

    rebuilt = build_manifest(catalog, label="dp1")
    with pytest.raises(DeliveryMismatch) as mismatch:
        verify_delivery(s3_client, bucket, "dp1", rebuilt)
    assert [(found.key, found.kind) for found in mismatch.value.mismatches] == [(BIG_FILE, "checksum")]

    # The stale manifest: its bytes are never sent under its SHA-256, and no manifest appears.
    with pytest.raises(LocalFileChanged, match=f"file '{BIG_FILE}' of the delivered folder changed"):
        deliver(catalog, s3_client, bucket, "elsewhere", manifest, part_size=PART_SIZE)
    assert f"elsewhere/{BIG_FILE}" not in remote_keys(s3_client, bucket, "elsewhere/")
    assert f"elsewhere/{MANIFEST_KEY}" not in remote_keys(s3_client, bucket, "elsewhere/")

    result = deliver(catalog, s3_client, bucket, "dp1", rebuilt, part_size=PART_SIZE)
    assert result.copied_keys == (BIG_FILE,)
    assert s3_client.get_object(Bucket=bucket, Key=f"dp1/{BIG_FILE}")["Body"].read() == bytes(content)
    assert read_delivered_manifest(s3_client, bucket, "dp1") == rebuilt


def test_an_object_outside_the_manifest_is_refused_and_kept(catalog, s3_client, new_bucket):
    bucket = new_bucket("pz-extra")
    s3_client.put_object(Bucket=bucket, Key="dp1/dataset/Norder=5/Dir=0/Npix=9.parquet", Body=b"stray")
    with pytest.raises(DeliveryMismatch, match=r"nothing was copied.*\n  dataset/Norder=5/Dir=0/Npix=9.parquet: "
                                               "not in the manifest"):
        deliver(catalog, s3_client, bucket, "dp1", build_manifest(catalog, "dp1"), part_size=PART_SIZE)
    assert remote_keys(s3_client, bucket) == ["dp1/dataset/Norder=5/Dir=0/Npix=9.parquet"]


def test_an_unfinished_multipart_upload_is_not_present_and_is_aborted(catalog, s3_client, new_bucket):
    """What a delivery killed mid-way through the big file leaves: parts stored, no object."""
    bucket = new_bucket("pz-orphan")
    upload = s3_client.create_multipart_upload(Bucket=bucket, Key=f"dp1/{BIG_FILE}")
    s3_client.upload_part(Bucket=bucket, Key=f"dp1/{BIG_FILE}", UploadId=upload["UploadId"], PartNumber=1,
                          Body=(catalog / BIG_FILE).read_bytes()[:PART_SIZE])
    manifest = build_manifest(catalog, label="dp1")
    result = deliver(catalog, s3_client, bucket, "dp1", manifest, part_size=PART_SIZE)
    assert BIG_FILE in result.copied_keys and result.aborted_uploads == 1
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    verify_delivery(s3_client, bucket, "dp1", manifest)


def test_another_release_at_the_destination_is_refused_and_left_unchanged(catalog, tmp_path, s3_client, new_bucket):
    bucket = new_bucket("pz-other")
    other = tmp_path / "other_release"
    write_file(other / "properties", b"obs_collection=pz_dp0\n")
    write_file(other / "dataset/Norder=0/Dir=0/Npix=1.parquet", os.urandom(50_000))
    deliver(other, s3_client, bucket, "photoz", build_manifest(other, label="dp0"), part_size=PART_SIZE)
    before = remote_contents(s3_client, bucket, "photoz")

    manifest = build_manifest(catalog, label="dp1")
    with pytest.raises(DestinationRefused, match=f"s3://{bucket}/photoz holds the delivery of 'dp0', not 'dp1'"):
        deliver(catalog, s3_client, bucket, "photoz", manifest, part_size=PART_SIZE)
    assert remote_contents(s3_client, bucket, "photoz") == before

    # dp0's delivery killed before its manifest: its objects still name it.
    s3_client.delete_object(Bucket=bucket, Key=f"photoz/{MANIFEST_KEY}")
    del before[MANIFEST_KEY]
    with pytest.raises(DestinationRefused, match=r"holds objects of another delivery \('dp0'\), not 'dp1': "
                                                 r"dataset/Norder=0/Dir=0/Npix=1.parquet, properties"):
        deliver(catalog, s3_client, bucket, "photoz", manifest, part_size=PART_SIZE)
    assert remote_contents(s3_client, bucket, "photoz") == before


def test_a_missing_bucket_or_an_unreachable_endpoint_is_named_before_copying(catalog, s3_client, new_bucket):
    manifest = build_manifest(catalog, label="dp1")
    with pytest.raises(DestinationRefused, match=r"^s3://pz-no-such-bucket-0/dp1: the bucket does not exist"):
        deliver(catalog, s3_client, "pz-no-such-bucket-0", "dp1", manifest, part_size=PART_SIZE)

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    unreachable = make_client(f"http://127.0.0.1:{closed_port}", "testing", "testing", retries={"max_attempts": 1},
                              connect_timeout=2)
    with pytest.raises(DestinationUnreachable, match=rf"^s3://any-bucket/dp1: the S3 endpoint "
                                                     rf"http://127.0.0.1:{closed_port} cannot be reached"):
        deliver(catalog, unreachable, "any-bucket", "dp1", manifest, part_size=PART_SIZE)
    with pytest.raises(DestinationUnreachable):
        verify_delivery(unreachable, "any-bucket", "dp1", manifest)


@pytest.fixture(scope="module")
def authenticating_s3() -> Iterator[dict]:
    """A moto server checking every request after its first six (which make a bucket and two IAM users)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "6"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the authenticating moto server did not start") from None
                time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        setup_credentials = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup",
                             "region_name": S3_CREDENTIALS["region_name"]}
        iam = boto3.session.Session().client("iam", endpoint_url=endpoint, **setup_credentials)
        make_client(endpoint, "setup", "setup").create_bucket(Bucket="pz-guarded")  # 1
        keys = {}
        for user in ("admin", "nobody"):
            iam.create_user(UserName=user)  # 2, 4
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]  # 3, 5
        iam.put_user_policy(UserName="admin", PolicyName="s3", PolicyDocument=json.dumps(  # 6
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        yield {"endpoint": endpoint, "keys": keys}
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(("who", "expected"), [
    pytest.param("unknown key", r"the S3 credentials were refused \(InvalidAccessKeyId\)", id="unknown-key"),
    pytest.param("wrong secret", r"the S3 credentials were refused \(SignatureDoesNotMatch\)", id="wrong-secret"),
    pytest.param("no permission", r"access denied \(AccessDenied\)", id="no-permission"),
])
def test_refused_credentials_and_denied_access_are_named_and_change_nothing(catalog, authenticating_s3, who,
                                                                            expected):
    endpoint, keys = authenticating_s3["endpoint"], authenticating_s3["keys"]
    key_id, secret = {"unknown key": ("AKIAUNKNOWN000000000", "secret"),
                      "wrong secret": (keys["nobody"]["AccessKeyId"], "wrong-secret"),
                      "no permission": (keys["nobody"]["AccessKeyId"], keys["nobody"]["SecretAccessKey"])}[who]
    with pytest.raises(DestinationRefused, match=rf"^s3://pz-guarded/dp1: {expected}"):
        deliver(catalog, make_client(endpoint, key_id, secret), "pz-guarded", "dp1",
                build_manifest(catalog, label="dp1"), part_size=PART_SIZE)
    admin = make_client(endpoint, keys["admin"]["AccessKeyId"], keys["admin"]["SecretAccessKey"])
    assert remote_keys(admin, "pz-guarded") == []


def test_the_admin_of_the_authenticating_server_can_deliver(catalog, authenticating_s3):
    """The refusals above come from the credentials, not from a server that refuses everything."""
    keys = authenticating_s3["keys"]
    admin = make_client(authenticating_s3["endpoint"], keys["admin"]["AccessKeyId"], keys["admin"]["SecretAccessKey"])
    manifest = build_manifest(catalog, label="dp1")
    deliver(catalog, admin, "pz-guarded", "admin-check", manifest, part_size=PART_SIZE)
    verify_delivery(admin, "pz-guarded", "admin-check", manifest)


KILLED_DELIVERY = """
import sys, time
import boto3
from botocore.config import Config
from pzlib.storage.transfer import build_manifest, deliver

folder, endpoint, bucket, prefix = sys.argv[1:]
client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))
# Each upload waits a little, so that the test sees the delivery half done.
client.meta.events.register("before-send.s3.PutObject", lambda **_: time.sleep(0.05))
deliver(folder, client, bucket, prefix, build_manifest(folder, "dp1"), max_concurrency=2)
"""


def test_a_killed_delivery_is_finished_by_a_rerun_that_copies_only_the_rest(tmp_path, s3_endpoint, s3_client,
                                                                            new_bucket):
    bucket = new_bucket("pz-killed")
    folder = tmp_path / "catalog"
    for index in range(40):
        write_file(folder / f"dataset/Norder=2/Dir=0/Npix={index}.parquet", os.urandom(64_000 + index))
    environment = {**os.environ, "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["access_key_id"],
                   "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["secret_access_key"],
                   "AWS_DEFAULT_REGION": S3_CREDENTIALS["region_name"]}
    delivery = subprocess.Popen([sys.executable, "-c", KILLED_DELIVERY, str(folder), s3_endpoint, bucket, "dp1"],
                                env=environment)
    try:
        deadline = time.monotonic() + 30
        while len(remote_keys(s3_client, bucket)) < 5 and delivery.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        delivery.send_signal(signal.SIGKILL)
        delivery.wait()
    assert delivery.returncode == -signal.SIGKILL, "the delivery ended before it could be killed"
    listed = remote_keys(s3_client, bucket)
    while (settled := remote_keys(s3_client, bucket)) != listed:  # requests the server had whole still complete
        listed = settled
        time.sleep(0.2)
    present = {key.removeprefix("dp1/") for key in listed}
    assert 0 < len(present) < 40 and MANIFEST_KEY not in present

    manifest = build_manifest(folder, label="dp1")
    rerun = deliver(folder, s3_client, bucket, "dp1", manifest, part_size=PART_SIZE)
    assert set(rerun.skipped_keys) == present
    assert set(rerun.copied_keys) == {entry.key for entry in manifest.files} - present
    undisturbed = deliver(folder, s3_client, bucket, "undisturbed", manifest, part_size=PART_SIZE)
    assert len(undisturbed.copied_keys) == 40
    assert remote_contents(s3_client, bucket, "dp1") == remote_contents(s3_client, bucket, "undisturbed")
