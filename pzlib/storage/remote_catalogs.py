"""Catalogs named by URL: ``s3://`` (a Parquet file, a Parquet dataset or a HATS catalog under a prefix) and
``http(s)://`` (a published HATS catalog, as ``lsdb.open_catalog`` opens one).

:func:`locate_catalog` finds out, before any work, what a URL holds: which Parquet files a reader reads, a pyarrow
filesystem to read them with (byte ranges on demand, so files are streamed, several at a time by pyarrow's dataset
scanner), and the input's identity for stage I's provenance (:func:`remote_identity`): the size and ETag of every
object under an S3 URL; the HATS properties and each partition's size and ETag (or Last-Modified) over HTTP. So a
changed remote input is never taken for the one a run's partitions were made from.

A URL that cannot be reached raises :class:`CatalogUnreachable`, an OSError (a later try may succeed, and Airflow
retries it); anything else wrong — a missing bucket, key or prefix, refused credentials, no catalog there, a
scheme not read — raises :class:`~pzlib.tables.CatalogError` naming the URL and the problem, never a key.

On S3, objects are listed with boto3 (their ETags come with the listing) and read with pyarrow's
``S3FileSystem``, both retrying failed requests (:mod:`pzlib.storage.s3_access`); a HATS catalog is read by its
layout (properties, then the Parquet files of ``dataset/``), as hats' own reader would need s3fs, which cannot be
installed alongside our botocore. Over HTTP, which cannot list a folder, hats reads the properties and the
partition list through fsspec's HTTP filesystem as lsdb does; aiohttp retries nothing itself, so its client
session gets a middleware retrying a refused connection or a 5xx answer with backoff (:data:`HTTP_ATTEMPTS`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from pzlib.config import load_settings
from pzlib.storage.s3_access import S3_ATTEMPTS, S3Access
from pzlib.tables import HATS_MARKERS, CatalogError

REMOTE_SCHEMES = ("s3", "http", "https")
"""URL schemes an input catalog may have; anything else is a local path."""

PARQUET_SUFFIXES = (".parquet", ".pq")
"""Suffixes of the Parquet files a remote catalog is read from."""

HTTP_ATTEMPTS = 4
"""Tries of one HTTP request: the first and three retries, waiting :data:`HTTP_BACKOFF_SECONDS`, then twice that…"""
HTTP_BACKOFF_SECONDS = 0.25
"""Wait before the first retry of an HTTP request."""

_RETRIED_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HEAD_REQUESTS_AT_ONCE = 16
_URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_S3_PROBLEMS = {
    "InvalidAccessKeyId": "the S3 endpoint does not know the access key (PZ_S3_ACCESS_KEY_ID, or the login of the "
                          "pz_s3 connection)",
    "SignatureDoesNotMatch": "the secret key does not match the access key (PZ_S3_SECRET_ACCESS_KEY, or the "
                             "password of the pz_s3 connection)",
    "AccessDenied": "access denied: these S3 credentials may not list or read it",
    "InvalidBucketName": "not a valid bucket name",
}


class CatalogUnreachable(OSError):
    """A remote catalog cannot be reached now (endpoint down, connection dropped, a server error after every
    retry): a later try may succeed. The message names the URL and the problem."""

    def __init__(self, url: str, problem: str):
        self.url = url
        super().__init__(f"{url}: {problem}")


@dataclass(frozen=True)
class RemoteCatalog:
    """What a catalog URL holds, found before reading it."""

    url: str
    """The URL as given."""
    format: str
    """``parquet`` (one file or a dataset) or ``hats``."""
    filesystem: Any
    """What reads :attr:`paths`: a ``pyarrow.fs.S3FileSystem``, or fsspec's HTTP filesystem (pyarrow wraps it)."""
    paths: list[str]
    """The Parquet files holding the rows, in path order (as pyarrow orders a local dataset's files)."""
    identity: dict
    """What the input is, for provenance: the URL and a digest of every object's size and ETag."""
    schema_metadata: dict | None = None
    """A HATS catalog's table metadata (its ``_common_metadata``), which files lsdb wrote lack."""
    total_rows: int | None = None
    """Rows of a HATS catalog, from its properties; None when only the files can tell."""


def is_url(source: object) -> bool:
    """Whether ``source`` is a URL (``scheme://…``) rather than a local path."""
    return isinstance(source, str) and bool(_URL_PATTERN.match(source))


def locate_catalog(url: str, s3: S3Access | None = None) -> RemoteCatalog:
    """What the catalog at ``url`` holds and how to read it; every check a run needs before it starts.

    Parameters
    ----------
    url : str
        ``s3://bucket/key.parquet``, ``s3://bucket/prefix/`` (a Parquet dataset or a HATS catalog), or
        ``https://host/path`` of a HATS catalog.
    s3 : S3Access, optional
        How to reach S3; by default the platform's settings (``PZ_S3_*``).

    Raises
    ------
    CatalogUnreachable
        The endpoint or server cannot be reached, or answers with server errors, after every retry.
    CatalogError
        An unsupported scheme, a missing bucket, key or prefix, refused credentials, or no catalog at the URL.

    Examples
    --------
    >>> locate_catalog("s3://pz-inputs/dc2/").format  # doctest: +SKIP
    'hats'
    """
    scheme = urlparse(url).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise CatalogError(url, f"unsupported scheme '{scheme}': an input is a local path, s3://bucket/key or the "
                                "http(s):// URL of a HATS catalog")
    if scheme == "s3":
        return _locate_s3(url, s3 if s3 is not None else S3Access.from_settings(load_settings()))
    return _locate_http(url)


def remote_identity(url: str, s3: S3Access | None = None) -> dict:
    """The identity of the catalog at ``url`` (:attr:`RemoteCatalog.identity`): equal only while no object of it
    changed, appeared or went away."""
    return locate_catalog(url, s3).identity


def _identity(url: str, objects: list[tuple[str, int, str]]) -> dict:
    digest = hashlib.sha256(json.dumps(sorted(objects)).encode()).hexdigest()
    return {"url": url, "objects": len(objects), "bytes": sum(size for _, size, _ in objects),
            "objects_sha256": digest}


def _is_data_file(relative_key: str) -> bool:
    """A Parquet file of a dataset, as pyarrow's discovery takes one: no part of its path hidden (``.``, ``_``)."""
    parts = relative_key.split("/")
    return relative_key.lower().endswith(PARQUET_SUFFIXES) and not any(p.startswith((".", "_")) for p in parts)


def _parse_properties(url: str, text: bytes) -> dict[str, str]:
    """``key=value`` lines of a HATS properties file (Java properties, as hats writes them)."""
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CatalogError(url, "its HATS properties are not UTF-8 text") from error
    return {key.strip(): value.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "!"))
            for key, _, value in [line.partition("=")]}


def _primary_table(url: str, collection: dict[str, str]) -> str:
    """The folder of a HATS collection's main catalog; one inside the collection only."""
    primary = collection.get("hats_primary_table_url", "").strip("/")
    if not primary or "/" in primary or primary in (".", "..") or "://" in primary:
        raise CatalogError(url, f"collection.properties names its catalog {primary!r}; expected a folder of the "
                                "collection (hats_primary_table_url)")
    return primary


# --- S3 ---

@contextmanager
def _s3_errors(url: str, s3: S3Access, bucket: str) -> Iterator[None]:
    """boto3's errors as ours: unreachable (retried later) or a CatalogError saying what to fix."""
    try:
        yield
    except NoCredentialsError as error:
        raise CatalogError(url, "no S3 credentials found: set PZ_S3_ACCESS_KEY_ID and PZ_S3_SECRET_ACCESS_KEY (the "
                                "DAGs: the login and password of the pz_s3 connection)") from error
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError) as error:
        raise CatalogUnreachable(url, f"cannot reach the S3 endpoint {s3.endpoint_url or '(AWS)'} after "
                                      f"{S3_ATTEMPTS} tries: {error}") from error
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500:
            raise CatalogUnreachable(url, f"the S3 endpoint fails ({code or status}) after {S3_ATTEMPTS} tries") \
                from error
        if code == "NoSuchBucket":
            raise CatalogError(url, f"no such bucket '{bucket}'") from error
        message = error.response.get("Error", {}).get("Message", "")
        raise CatalogError(url, _S3_PROBLEMS.get(code, f"S3 refused the request: {code or status} {message}")) \
            from error


def _locate_s3(url: str, s3: S3Access) -> RemoteCatalog:
    parsed = urlparse(url)
    bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
    if not bucket:
        raise CatalogError(url, "names no bucket: use s3://bucket/key.parquet or s3://bucket/prefix/")
    client = s3.boto3_client()
    with _s3_errors(url, s3, bucket):
        listed = {entry["Key"]: (entry["Size"], entry.get("ETag", ""))
                  for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                  for entry in page.get("Contents", [])}
    filesystem = s3.arrow_filesystem()
    if key and not key.endswith("/") and key in listed:
        if not key.lower().endswith(PARQUET_SUFFIXES):
            raise CatalogError(url, "S3 inputs are Parquet files, Parquet datasets or HATS catalogs; this object "
                                    f"is none (suffix '{key.rpartition('.')[2]}')")
        return RemoteCatalog(url, "parquet", filesystem, [f"{bucket}/{key}"],
                             _identity(url, [(key, *listed[key])]))
    prefix = f"{key.rstrip('/')}/" if key.strip("/") else ""
    objects = {name: size_etag for name, size_etag in listed.items() if name.startswith(prefix)}
    if not objects:
        raise CatalogError(url, f"no such key or prefix in bucket '{bucket}'")
    identity = _identity(url, [(name[len(prefix):], size, etag) for name, (size, etag) in objects.items()])
    marker = next((name for name in HATS_MARKERS if prefix + name in objects), None)
    if marker is None:
        data = sorted(name for name in objects if _is_data_file(name[len(prefix):]))
        if not data:
            raise CatalogError(url, f"not a catalog: none of its {len(objects)} object(s) is a Parquet file or HATS "
                                    "properties")
        return RemoteCatalog(url, "parquet", filesystem, [f"{bucket}/{name}" for name in data], identity)

    def read_text(name: str) -> bytes:
        with _s3_errors(url, s3, bucket):
            return client.get_object(Bucket=bucket, Key=name)["Body"].read()

    catalog_prefix = prefix
    if marker == "collection.properties":
        catalog_prefix = f"{prefix}{_primary_table(url, _parse_properties(url, read_text(prefix + marker)))}/"
        marker = next((name for name in ("hats.properties", "properties") if catalog_prefix + name in objects), None)
        if marker is None:
            raise CatalogError(url, f"the collection's catalog {catalog_prefix[len(prefix):]} has no hats.properties")
    properties = _parse_properties(url, read_text(catalog_prefix + marker))
    dataset_prefix = f"{catalog_prefix}dataset/"
    data = sorted(name for name in objects if name.startswith(dataset_prefix)
                  and _is_data_file(name[len(dataset_prefix):]))
    if not data:
        raise CatalogError(url, "the HATS catalog has no Parquet partition under dataset/")
    common_metadata = f"{dataset_prefix}_common_metadata"
    metadata = None
    if common_metadata in objects:
        try:
            metadata = pq.read_schema(f"{bucket}/{common_metadata}", filesystem=filesystem).metadata
        except OSError as error:
            raise CatalogUnreachable(url, f"cannot read dataset/_common_metadata: {error}") from error
    rows = properties.get("hats_nrows", "")
    return RemoteCatalog(url, "hats", filesystem, [f"{bucket}/{name}" for name in data], identity, metadata,
                         int(rows) if rows.isdigit() else None)


# --- HTTP(S) ---

async def _retry_transient(request, handler):
    """aiohttp client middleware: a refused or dropped connection, a timeout or a 5xx/429 answer is tried again,
    :data:`HTTP_ATTEMPTS` times in all, with exponential backoff."""
    import aiohttp  # the HTTP stack (aiohttp, fsspec, hats: ~2 s) is imported only when an HTTP input is read

    attempt = 1
    while True:
        try:
            response = await handler(request)
        except (TimeoutError, aiohttp.ClientConnectionError):
            if attempt == HTTP_ATTEMPTS:
                raise
        else:
            if response.status not in _RETRIED_HTTP_STATUSES or attempt == HTTP_ATTEMPTS:
                return response
            response.release()
        await asyncio.sleep(HTTP_BACKOFF_SECONDS * 2 ** (attempt - 1))
        attempt += 1


HTTP_STORAGE_OPTIONS = {"client_kwargs": {"middlewares": (_retry_transient,)}}
"""fsspec storage options of every HTTP(S) read (hats' UPath and the data files alike): requests retried."""


@contextmanager
def _http_errors(url: str) -> Iterator[None]:
    """aiohttp's and fsspec's errors as ours: unreachable (retried later) or a CatalogError."""
    import aiohttp

    try:
        yield
    except CatalogError:
        raise
    except Exception as error:  # fsspec turns a failed request into FileNotFoundError; the cause says which
        cause = error.__cause__ if isinstance(error, FileNotFoundError) and error.__cause__ else error
        if isinstance(cause, aiohttp.ClientResponseError) and cause.status in (401, 403):
            raise CatalogError(url, f"the server refuses access (HTTP {cause.status})") from error
        if isinstance(cause, aiohttp.ClientResponseError) and cause.status in _RETRIED_HTTP_STATUSES:
            raise CatalogUnreachable(url, f"the server fails (HTTP {cause.status}) after {HTTP_ATTEMPTS} tries") \
                from error
        if isinstance(cause, aiohttp.ClientConnectionError | TimeoutError):
            raise CatalogUnreachable(url, f"cannot reach the server after {HTTP_ATTEMPTS} tries: {cause}") from error
        if isinstance(error, FileNotFoundError):
            raise CatalogError(url, f"a file of the HATS catalog is missing: {error}") from error
        raise CatalogError(url, f"not a readable HATS catalog: {error}") from error


def _locate_http(url: str) -> RemoteCatalog:
    import fsspec
    import hats
    from hats.io.paths import pixel_catalog_file
    from upath import UPath

    base = url.rstrip("/")
    filesystem = fsspec.filesystem("http", **HTTP_STORAGE_OPTIONS)
    properties: dict[str, bytes] = {}
    with _http_errors(url):
        for name in HATS_MARKERS:
            try:
                properties[name] = filesystem.cat_file(f"{base}/{name}")
            except FileNotFoundError as error:
                if error.__cause__ is not None:  # not a 404: a failed request
                    raise
    if not properties:
        raise CatalogError(url, f"not a HATS catalog: no {', '.join(HATS_MARKERS)} at this URL (an http(s) input "
                                "must be a HATS catalog)")
    with _http_errors(url):
        catalog = hats.read_hats(UPath(base, **HTTP_STORAGE_OPTIONS), read_moc=False)
        if isinstance(catalog, hats.catalog.CatalogCollection):
            catalog = catalog.main_catalog
        npix_suffix = catalog.catalog_info.npix_suffix
        if npix_suffix == "/":
            raise CatalogError(url, "the catalog keeps each partition in a folder, which HTTP cannot list")
        paths = sorted(pixel_catalog_file(catalog.catalog_base_dir, pixel, npix_suffix=npix_suffix).path
                       for pixel in catalog.get_healpix_pixels())
        if not paths:
            raise CatalogError(url, "the HATS catalog has no partition")
        with ThreadPoolExecutor(_HEAD_REQUESTS_AT_ONCE) as pool:
            infos = list(pool.map(filesystem.info, paths))
    objects = [(name, len(text), hashlib.sha256(text).hexdigest()) for name, text in properties.items()]
    objects.append(("catalog properties", 0, catalog.catalog_info.model_dump_json()))  # a collection's main table
    objects += [(path[len(base) + 1:], int(info.get("size") or 0), str(info.get("ETag") or info.get("Last-Modified")))
                for path, info in zip(paths, infos, strict=True)]
    return RemoteCatalog(url, "hats", filesystem, paths, _identity(url, objects), catalog.schema.metadata,
                         catalog.catalog_info.total_rows)
