"""Stage I and II read their catalogs from S3 (the session's moto server) and from an http(s) HATS URL (a local
``http.server``): the same photo-z table as the run on the local file, provenance that sees a changed remote input,
and a clear error naming the URL, before any work, for every bad input."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from fixtures.s3 import S3_CREDENTIALS

from pzlib.catalog import CatalogError, open_catalog, write_hats
from pzlib.compute.acquire import acquire
from pzlib.compute.run import run
from pzlib.compute.spec import RunSpec
from pzlib.config import load_settings
from pzlib.preprocess import MANIFEST_NAME
from pzlib.storage.remote_catalogs import CatalogUnreachable
from pzlib.storage.s3_access import S3Access

PARTITION_ROWS = 100


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output is not the place for an access log
        pass


@pytest.fixture(scope="session")
def http_root(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """(folder, its URL): a real HTTP server in a thread, serving a folder, for the whole session."""
    folder = tmp_path_factory.mktemp("http_root")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def s3_access(s3_endpoint) -> S3Access:
    return S3Access(s3_endpoint, S3_CREDENTIALS["region_name"], S3_CREDENTIALS["access_key_id"],
                    S3_CREDENTIALS["secret_access_key"])


@pytest.fixture(scope="module")
def s3_settings(s3_access) -> Iterator[None]:
    """``PZ_S3_*`` naming the moto server: what ``pz run`` and ``run`` read S3 with by default."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PZ_S3_ENDPOINT_URL", s3_access.endpoint_url)
        patch.setenv("PZ_S3_REGION", s3_access.region_name)
        patch.setenv("PZ_S3_ACCESS_KEY_ID", s3_access.access_key_id)
        patch.setenv("PZ_S3_SECRET_ACCESS_KEY", s3_access.secret_access_key)
        yield


def _upload_folder(s3_client, folder: Path, bucket: str, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3_client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


@pytest.fixture(scope="module")
def remote(dc2_300, s3_client, http_root, tmp_path_factory) -> dict[str, str]:
    """dc2_300 as a HATS catalog (lsdb, as pzlib writes one), a Parquet file and a two-file Parquet dataset, in a
    bucket and (the HATS catalog) on the HTTP server; a prefix holding no catalog; the URLs by name."""
    work = tmp_path_factory.mktemp("remote_inputs")
    write_hats(pq.read_table(dc2_300), work / "dc2_hats")
    (work / "dataset").mkdir()
    table = pq.read_table(dc2_300)
    pq.write_table(table.slice(0, 150), work / "dataset" / "part-0.parquet")
    pq.write_table(table.slice(150), work / "dataset" / "part-1.parquet")
    bucket = "pz-remote-inputs"
    s3_client.create_bucket(Bucket=bucket)
    s3_client.upload_file(str(dc2_300), bucket, "file/dc2_300.parquet")
    _upload_folder(s3_client, work / "dataset", bucket, "dataset")
    _upload_folder(s3_client, work / "dc2_hats", bucket, "hats")
    s3_client.put_object(Bucket=bucket, Key="notes/readme.txt", Body=b"no catalog here")
    folder, base_url = http_root
    shutil.copytree(work / "dc2_hats", folder / "dc2_hats")
    (folder / "empty").mkdir()
    (folder / "empty" / "index.txt").write_text("no catalog here")
    return {"bucket": bucket, "file": f"s3://{bucket}/file/dc2_300.parquet", "dataset": f"s3://{bucket}/dataset/",
            "hats": f"s3://{bucket}/hats", "https": f"{base_url}/dc2_hats", "http_base": base_url}


@pytest.fixture(scope="module")
def local_run(dc2_300, tmp_path_factory) -> tuple[RunSpec, pa.Table]:
    """The BPZ run of the local file, its model trained on it (once for the module); (spec, photo-z by id)."""
    spec = RunSpec(release="local", input=str(dc2_300), train=str(dc2_300),
                   output=str(tmp_path_factory.mktemp("local_run")), estimators=["bpz"], partition_rows=PARTITION_ROWS)
    result = run(spec, workers=1)["bpz"]
    return spec, _photoz_by_id(result["catalog"])


def _photoz_by_id(catalog: str | Path) -> pa.Table:
    table = open_catalog(catalog).read()
    columns = [name for name in table.column_names if name not in ("Norder", "Dir", "Npix", "_healpix_29")]
    return table.select(columns).sort_by("id").replace_schema_metadata(None)


def _spec_like(local: RunSpec, input_url: str, output: Path, train: str | None = None) -> RunSpec:
    """A run of ``input_url`` like the local one; with the same training file, stage II reuses its model."""
    spec = RunSpec(release="remote", input=input_url, train=train or local.train, output=str(output),
                   estimators=["bpz"], partition_rows=PARTITION_ROWS)
    if train is None:
        shutil.copytree(local.output_path / "models", spec.output_path / "models")
    return spec


def _stage1_rows(spec: RunSpec) -> pa.Table:
    partitions = sorted((spec.output_path / "stage1").glob("part-*.parquet"))
    return pa.concat_tables(pq.read_table(path) for path in partitions).sort_by("id")


def test_a_hats_catalog_on_s3_gives_the_local_photoz(remote, local_run, s3_settings, tmp_path):
    """The whole run with input and training set on S3, the access from PZ_S3_* (run's default)."""
    local, local_photoz = local_run
    spec = _spec_like(local, remote["hats"], tmp_path / "run", train=remote["file"])
    result = run(spec, workers=1)["bpz"]
    assert result["n_rows"] == 300
    assert _photoz_by_id(result["catalog"]).equals(local_photoz)
    sidecar = json.loads((spec.output_path / "models" / "bpz.pkl.json").read_text())
    assert sidecar["identity"]["training"]["url"] == remote["file"]


def test_an_https_hats_catalog_gives_the_local_photoz_through_pz_run(remote, local_run, tmp_path):
    local, local_photoz = local_run
    workdir = tmp_path / "work"
    _spec_like(local, remote["https"], workdir)  # the local run's model, reused
    output = tmp_path / "photoz.parquet"
    # The command in its own process, as users run it (it sets RAIL's log level for the whole process).
    ran = subprocess.run([sys.executable, "-m", "pzlib.cli", "run", "--train", local.train, "--input", remote["https"],
                          "--estimator", "bpz", "--output", str(output), "--workdir", str(workdir),
                          "--partition-rows", str(PARTITION_ROWS), "--workers", "1"],
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    assert _photoz_by_id(output).equals(local_photoz)
    manifest = json.loads((workdir / "stage1" / MANIFEST_NAME).read_text())
    assert manifest["input"]["url"] == remote["https"] and manifest["input"]["objects"] >= 2


@pytest.mark.parametrize("name", ["file", "dataset"])
def test_a_parquet_file_or_dataset_on_s3_gives_the_local_stage1(name, remote, local_run, s3_access, tmp_path):
    """Stage III sees only stage I's partitions: the same rows there mean the same photo-z."""
    local, _ = local_run
    spec = _spec_like(local, remote[name], tmp_path / "run")
    partitions = acquire(spec, s3=s3_access)
    assert len(partitions) == 3
    assert _stage1_rows(spec).equals(_stage1_rows(local))


def test_a_changed_object_reruns_stage1_and_an_unchanged_one_does_not(remote, local_run, s3_access, s3_client,
                                                                      dc2_300, tmp_path):
    local, _ = local_run
    key = "changing/dc2.parquet"
    s3_client.upload_file(str(dc2_300), remote["bucket"], key)
    spec = _spec_like(local, f"s3://{remote['bucket']}/{key}", tmp_path / "run")
    first = acquire(spec, s3=s3_access)
    written = [Path(path).stat().st_mtime_ns for path in first]
    assert acquire(spec, s3=s3_access) == first
    assert [Path(path).stat().st_mtime_ns for path in first] == written  # kept: same ETags, same config

    smaller = tmp_path / "smaller.parquet"
    pq.write_table(pq.read_table(dc2_300).slice(0, 250), smaller)
    s3_client.upload_file(str(smaller), remote["bucket"], key)
    again = acquire(spec, s3=s3_access)
    assert len(again) == 3 and _stage1_rows(spec).num_rows == 250
    manifest = json.loads((spec.output_path / "stage1" / MANIFEST_NAME).read_text())
    assert manifest["input"]["bytes"] == smaller.stat().st_size


def _bad_run(spec: RunSpec, s3: S3Access | None = None, error: type[Exception] = CatalogError) -> str:
    """The message of the error a run of ``spec`` stops with, having written nothing."""
    with pytest.raises(error) as raised:
        acquire(spec, s3=s3)
    assert not (spec.output_path / "stage1").exists() or not any((spec.output_path / "stage1").iterdir())
    return str(raised.value)


@pytest.mark.parametrize(("url", "problem"), [
    ("s3://pz-no-such-bucket/x.parquet", "no such bucket 'pz-no-such-bucket'"),
    ("s3://pz-remote-inputs/no/such/key.parquet", "no such key or prefix in bucket 'pz-remote-inputs'"),
    ("s3://pz-remote-inputs/notes/", "not a catalog: none of its 1 object(s) is a Parquet file or HATS properties"),
    ("s3://pz-remote-inputs/notes/readme.txt", "S3 inputs are Parquet files, Parquet datasets or HATS catalogs"),
    ("gs://pz-remote-inputs/file/dc2_300.parquet", "unsupported scheme 'gs'"),
    ("ftp://example.org/catalog", "unsupported scheme 'ftp'"),
])
def test_a_bad_s3_url_or_scheme_stops_the_run_before_any_work(url, problem, remote, local_run, s3_access,
                                                               tmp_path):
    spec = _spec_like(local_run[0], url, tmp_path / "run")
    assert _bad_run(spec, s3_access).startswith(f"{url}: {problem}")


def test_an_https_url_without_hats_properties_is_not_a_catalog(remote, local_run, tmp_path):
    url = f"{remote['http_base']}/empty"
    message = _bad_run(_spec_like(local_run[0], url, tmp_path / "run"))
    assert message.startswith(f"{url}: not a HATS catalog: no collection.properties, hats.properties, properties")


def test_an_unreachable_endpoint_or_server_is_named_and_retried_later(local_run, tmp_path):
    """Unreachable is an OSError (Airflow retries the task), not a bad-input ValueError."""
    local, _ = local_run
    closed = S3Access("http://127.0.0.1:9", "us-east-1", "AKIAEXAMPLE", "never-printed-secret")
    message = _bad_run(_spec_like(local, "s3://bucket/key.parquet", tmp_path / "s3"), closed, CatalogUnreachable)
    assert message.startswith("s3://bucket/key.parquet: cannot reach the S3 endpoint http://127.0.0.1:9 after 4 tries")
    assert "never-printed-secret" not in message and "AKIAEXAMPLE" not in message
    message = _bad_run(_spec_like(local, "http://127.0.0.1:9/catalog", tmp_path / "http"), error=CatalogUnreachable)
    assert message.startswith("http://127.0.0.1:9/catalog: cannot reach the server after 4 tries")
    assert not isinstance(CatalogUnreachable("u", "p"), ValueError)


@pytest.fixture
def moto_checks_credentials(s3_endpoint, s3_access) -> Iterator[dict[str, str]]:
    """moto accepts any key unless told to authenticate (``/moto-api/reset-auth``); then only keys of its IAM users
    sign, and a user needs a policy to read. Yields a user's key id and secret (no policy); auth is off after."""
    iam = boto3.session.Session().client(
        "iam", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing")
    iam.create_user(UserName="pz-reader-without-policy")
    key = iam.create_access_key(UserName="pz-reader-without-policy")["AccessKey"]
    requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        requests.post(f"{s3_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_wrong_credentials_are_named_without_printing_them(remote, local_run, s3_endpoint, moto_checks_credentials,
                                                           tmp_path):
    spec = _spec_like(local_run[0], remote["file"], tmp_path / "run")
    user = moto_checks_credentials
    cases = {
        "the S3 endpoint does not know the access key": ("AKIAUNKNOWNKEY000000", "unknown-secret-value"),
        "the secret key does not match the access key": (user["id"], "wrong-secret-value"),
        "access denied: these S3 credentials may not list or read it": (user["id"], user["secret"]),
    }
    for problem, (key_id, secret) in cases.items():
        message = _bad_run(spec, S3Access(s3_endpoint, "us-east-1", key_id, secret))
        assert message.startswith(f"{remote['file']}: {problem}")
        assert secret not in message and key_id not in message


def test_no_credentials_at_all_is_named(remote, local_run, s3_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    message = _bad_run(_spec_like(local_run[0], remote["file"], tmp_path / "run"), S3Access(s3_endpoint, "us-east-1"))
    assert message.startswith(f"{remote['file']}: no S3 credentials found: set PZ_S3_ACCESS_KEY_ID")


def test_s3_access_from_settings_and_connection_fields_never_shows_the_keys():
    settings = load_settings({"PZ_S3_ENDPOINT_URL": "http://minio:9000", "PZ_S3_REGION": "sa-east-1",
                              "PZ_S3_ACCESS_KEY_ID": "AKIASETTINGS", "PZ_S3_SECRET_ACCESS_KEY": "settings-secret"})
    access = S3Access.from_settings(settings)
    assert access == S3Access("http://minio:9000", "sa-east-1", "AKIASETTINGS", "settings-secret")
    assert "settings-secret" not in repr(settings) + repr(access) and "AKIASETTINGS" not in repr(access)
    assert S3Access.from_settings(load_settings({})) == S3Access()  # empty: boto3's own lookup
    connection = S3Access.from_connection_fields("http://host:1", "login", "password",
                                                 {"endpoint_url": "http://minio:9000", "region_name": "eu"})
    assert connection == S3Access("http://minio:9000", "eu", "login", "password")
    assert S3Access.from_connection_fields("http://host:1", None, None, {}).endpoint_url == "http://host:1"
    with pytest.raises(ValueError, match="give both the access key id and the secret access key"):
        S3Access(access_key_id="only-the-id")
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        S3Access.from_connection_fields("minio:9000", None, None, None)
