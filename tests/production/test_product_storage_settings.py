"""The product store of a bare ``s3://`` PZ_STORAGE_URL (as the PZ Server and the pipelines open it) is the S3
store of the PZ_S3_* settings, the one ``s3://`` inputs are read from: on the session's moto server, not AWS."""

from __future__ import annotations

from fixtures.s3 import S3_CREDENTIALS

from pzlib.storage import StorageConfig, open_storage


def test_a_bare_s3_url_reaches_the_store_of_the_pz_s3_settings(monkeypatch, s3_endpoint, s3_client, new_bucket):
    bucket = new_bucket("pz-store")
    monkeypatch.setenv("PZ_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("PZ_S3_REGION", S3_CREDENTIALS["region_name"])
    monkeypatch.setenv("PZ_S3_ACCESS_KEY_ID", S3_CREDENTIALS["access_key_id"])
    monkeypatch.setenv("PZ_S3_SECRET_ACCESS_KEY", S3_CREDENTIALS["secret_access_key"])

    assert StorageConfig.from_url(f"s3://{bucket}/products").endpoint_url == s3_endpoint
    open_storage(f"s3://{bucket}/products").put("a/file.txt", b"stored")

    stored = s3_client.get_object(Bucket=bucket, Key="products/a/file.txt")
    assert stored["Body"].read() == b"stored"
    assert StorageConfig.from_url("file:///var/pz/storage").endpoint_url is None
