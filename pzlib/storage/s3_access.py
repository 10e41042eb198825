"""How the platform reaches S3: one :class:`S3Access` (endpoint, region, keys) and the clients made from it.

The endpoint and the keys never come from a run's params: ``pz`` reads them from the settings
(``PZ_S3_ENDPOINT_URL``, ``PZ_S3_REGION``, ``PZ_S3_ACCESS_KEY_ID``, ``PZ_S3_SECRET_ACCESS_KEY``:
:meth:`S3Access.from_settings`), the DAGs from the Airflow connection ``pz_s3``
(:meth:`S3Access.from_connection_fields`); a field left empty is found by boto3's (and the AWS SDK's) own lookup:
environment, config files, instance role.

Every reader takes its client from here: a boto3 client (listing objects with their ETags, clear errors before any
work) and a pyarrow ``S3FileSystem`` (the data itself, file by file, as pyarrow's Parquet readers read it). Both
retry a failed request a few times with backoff (botocore's ``standard`` mode, the AWS SDK's standard strategy).
There is no fsspec ``s3`` filesystem here: s3fs (through aiobotocore) pins a botocore older than ours, so it cannot
be installed alongside today's boto3; hats' and lsdb's own S3 readers need it, so HATS catalogs on S3 are read with
pyarrow directly (:mod:`pzlib.storage.remote_catalogs`).

Examples
--------
>>> access = S3Access(endpoint_url="http://127.0.0.1:9000", access_key_id="pz", secret_access_key="secret")
>>> access
S3Access(endpoint_url='http://127.0.0.1:9000', region_name=None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from pyarrow import fs

from pzlib.config import Settings

S3_ATTEMPTS = 4
"""Tries of one S3 request (the first and three retries, with the SDKs' exponential backoff)."""


@dataclass(frozen=True)
class S3Access:
    """Where S3 is and which keys open it; the keys never show in a repr or a message."""

    endpoint_url: str | None = None
    """HTTP(S) endpoint of an S3-compatible store (MinIO, Ceph, moto); None for AWS itself."""
    region_name: str | None = None
    """S3 region; None lets boto3 find it (``AWS_REGION``, config files)."""
    access_key_id: str | None = field(default=None, repr=False)
    """Access key; None lets boto3 find credentials (environment, config files, instance role)."""
    secret_access_key: str | None = field(default=None, repr=False)
    """Secret key, given together with ``access_key_id``."""

    def __post_init__(self) -> None:
        for name in ("endpoint_url", "region_name", "access_key_id", "secret_access_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"S3 {name} must be text, got {type(value).__name__}")
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)  # empty: boto3's own lookup, as for None
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("S3 access: give both the access key id and the secret access key, or neither")
        if self.endpoint_url is not None:
            parsed = urlparse(self.endpoint_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"S3 endpoint_url {self.endpoint_url!r} must be an http:// or https:// URL")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Access:
        """The access the platform's settings describe (``PZ_S3_*``)."""
        return cls(settings.s3_endpoint_url, settings.s3_region, settings.s3_access_key_id,
                   settings.s3_secret_access_key)

    @classmethod
    def from_connection_fields(cls, host: str | None, login: str | None, password: str | None,
                               extra: dict[str, Any] | None) -> S3Access:
        """The access an Airflow connection describes (``pz_s3``): the endpoint in ``extra['endpoint_url']`` or the
        host, the region in ``extra['region_name']``, the keys as login and password."""
        extra = extra or {}
        if not isinstance(extra, dict):
            raise ValueError(f"S3 connection extra must be a JSON object, got {type(extra).__name__}")
        return cls(extra.get("endpoint_url") or host or None, extra.get("region_name") or None, login or None,
                   password or None)

    def boto3_client(self):
        """A boto3 S3 client; requests are retried (standard mode, :data:`S3_ATTEMPTS` tries)."""
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region_name,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
            config=Config(retries={"mode": "standard", "max_attempts": S3_ATTEMPTS},
                          # S3-compatible servers are reached by host name or IP, where bucket sub-domains do not exist.
                          s3={"addressing_style": "path"} if self.endpoint_url else None),
        )

    def arrow_filesystem(self) -> fs.S3FileSystem:
        """A ``pyarrow.fs.S3FileSystem`` (paths ``bucket/key``); requests are retried (the AWS SDK's standard
        strategy, :data:`S3_ATTEMPTS` tries)."""
        options: dict[str, Any] = {"retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS)}
        if self.endpoint_url:
            parsed = urlparse(self.endpoint_url)
            options.update(endpoint_override=parsed.netloc + parsed.path.rstrip("/"), scheme=parsed.scheme)
        if self.region_name:
            options["region"] = self.region_name
        if self.access_key_id:
            options.update(access_key=self.access_key_id, secret_key=self.secret_access_key)
        return fs.S3FileSystem(**options)
