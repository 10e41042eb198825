"""Where products are stored: a ``StorageConfig`` and ``open_storage``, which makes the store it names.

The URL picks the backend: ``file:///var/pz/storage`` (or a plain path) for the local filesystem, the embedded
default; ``s3://bucket/prefix`` for S3 or an S3-compatible store reached through ``endpoint_url``. A bare
``s3://`` URL (``PZ_STORAGE_URL``, as the PZ Server and the pipelines pass it) reaches the store the platform's
settings name (``PZ_S3_ENDPOINT_URL``, ``PZ_S3_REGION``, ``PZ_S3_ACCESS_KEY_ID``, ``PZ_S3_SECRET_ACCESS_KEY``),
the same one ``s3://`` inputs are read from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import boto3
from botocore.config import Config

from pzlib.config import load_settings
from pzlib.storage.base import Storage
from pzlib.storage.local import LocalStorage
from pzlib.storage.s3 import MIN_PART_SIZE, S3Storage
from pzlib.storage.s3_access import S3Access


@dataclass(frozen=True)
class StorageConfig:
    """Settings of an object store."""

    url: str
    """``file:///absolute/path`` or a plain path (local), or ``s3://bucket`` / ``s3://bucket/prefix``."""
    endpoint_url: str | None = None
    """HTTP endpoint of an S3-compatible store (MinIO, Ceph, moto); ``None`` for AWS itself."""
    region_name: str | None = None
    """S3 region; ``None`` lets boto3 pick it from the environment."""
    access_key_id: str | None = None
    """S3 access key; ``None`` lets boto3 find credentials (environment, config files, instance role)."""
    secret_access_key: str | None = None
    """S3 secret key, given together with ``access_key_id``."""
    part_size: int = 8 * 1024 * 1024
    """Bytes per S3 multipart-upload part; objects smaller than this go in one request."""

    @classmethod
    def from_url(cls, url: str) -> StorageConfig:
        """The store at ``url``; an ``s3://`` one is reached with the platform's ``PZ_S3_*`` settings."""
        if urlparse(url).scheme != "s3":
            return cls(url)
        access = S3Access.from_settings(load_settings())
        return cls(url, access.endpoint_url, access.region_name, access.access_key_id, access.secret_access_key)

    def __post_init__(self) -> None:
        if not self.url.strip():
            raise ValueError("storage url is empty; use file:///path or s3://bucket/prefix")
        scheme = urlparse(self.url).scheme
        if scheme not in ("", "file", "s3"):
            raise ValueError(
                f"storage url {self.url!r} has the unknown scheme {scheme!r}; use file:///path or s3://bucket/prefix"
            )
        if scheme == "file" and urlparse(self.url).netloc not in ("", "localhost"):
            raise ValueError(f"storage url {self.url!r} names a host; a local store is file:///absolute/path")
        if scheme == "s3" and not urlparse(self.url).netloc:
            raise ValueError(
                f"storage url {self.url!r} names no bucket; use s3://bucket or s3://bucket/prefix"
            )
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 rule), got {self.part_size}"
            )


def open_storage(config: StorageConfig | str) -> Storage:
    """The store a configuration (or a bare URL) names.

    Parameters
    ----------
    config : StorageConfig or str
        Settings, or just the URL (an ``s3://`` one is reached with the ``PZ_S3_*`` settings).

    Returns
    -------
    Storage
        A ``LocalStorage`` or an ``S3Storage``.

    Examples
    --------
    >>> open_storage("file:///var/pz/storage").root
    PosixPath('/var/pz/storage')
    """
    if isinstance(config, str):
        config = StorageConfig.from_url(config)
    parsed = urlparse(config.url)
    if parsed.scheme == "s3":
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region_name,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            # S3-compatible servers are reached by host name or IP, where bucket sub-domains do not exist.
            config=Config(s3={"addressing_style": "path"}) if config.endpoint_url else None,
        )
        return S3Storage(client, parsed.netloc, parsed.path.strip("/"), part_size=config.part_size)
    local_path = unquote(parsed.path) if parsed.scheme == "file" else config.url
    return LocalStorage(Path(local_path))
