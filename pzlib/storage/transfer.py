"""Verified, resumable delivery of a folder (a release's HATS catalog) to ``s3://bucket/prefix``.

The caller builds a :class:`Manifest` of the folder (every file's relative key, size and SHA-256, and a
``label`` such as the release name) and hands it to :func:`deliver`, which:

1. checks the destination before copying a byte: the endpoint answers, the bucket exists, the credentials are
   accepted and may list it, and nothing there belongs to another label (a ``_manifest.json`` or an object's
   metadata naming another release) — else :class:`DestinationRefused` or :class:`DestinationUnreachable`,
   naming the URL, and nothing is changed;
2. lists the destination and reads each object's SHA-256 from its metadata: an object is kept only when its
   size and SHA-256 equal the manifest's, so a rerun copies only what is missing or differs;
3. copies the rest with s3transfer's managed transfers (several files at once, large files in parallel parts),
   each object carrying its SHA-256 and the label in its metadata, each local file's bytes checked against the
   manifest just before it goes;
4. lists the destination again and compares it with the manifest (:func:`verify_delivery`), and only when
   everything matches uploads the manifest itself, last, as ``prefix/_manifest.json``.

So a ``_manifest.json`` at the destination means a complete, verified delivery: a rerun that has anything to
copy removes it first. S3 makes an object visible only when its upload completes, so a killed delivery leaves
whole objects or nothing; its unfinished multipart uploads (invisible, but stored and billed) are aborted by
s3transfer when the process lives to see the failure, and by the next ``deliver`` to the prefix otherwise.

An object under the prefix that the manifest does not list fails the delivery and is never deleted: a reader
that scans the folder (a Parquet dataset reader) would take a stray Parquet file for data, and only its owner
knows whether it may go. ``deliver`` refuses before copying when it finds one; the message names each key.
Two deliveries to the same prefix at once are not supported (each aborts the other's unfinished uploads).

Examples
--------
>>> manifest = build_manifest("var/runs/dp1/catalog", label="dp1")  # doctest: +SKIP
>>> result = deliver("var/runs/dp1/catalog", client, "releases", "dp1/photoz", manifest)  # doctest: +SKIP
>>> result.copied_bytes, result.skipped_keys  # doctest: +SKIP
(1288490188, ())
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from s3transfer.manager import TransferManager

from pzlib.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    StorageError,
    check_key,
    check_prefix,
    is_partial_name,
    join_key,
)
from pzlib.storage.s3 import MIN_PART_SIZE

MANIFEST_KEY = "_manifest.json"
"""Key of the manifest under the destination prefix, uploaded once the delivery verifies."""
SHA256_METADATA = "sha256"
"""User-metadata name (``x-amz-meta-sha256``) of an object's SHA-256, hex."""
LABEL_METADATA = "label"
"""User-metadata name (``x-amz-meta-label``) of the label of the delivery that wrote the object."""
DEFAULT_PART_SIZE = 8 * 1024 * 1024
"""Bytes per multipart part; files at least this large are uploaded in parts."""

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LABEL = re.compile(r"^[\x21-\x7e]([\x20-\x7e]{0,198}[\x21-\x7e])?$")  # printable ASCII: it travels in a header
_REFUSED_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"}
)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class DestinationRefused(StorageError, ValueError):
    """The destination cannot take this delivery (no bucket, credentials refused, another release there...).

    A ``ValueError``: a retry would meet it again (see ``pzlib.retries.NOT_RETRIED``)."""


class DestinationUnreachable(StorageError, ConnectionError):
    """The S3 endpoint does not answer; a later retry may succeed."""


class LocalFileChanged(StorageError, ValueError):
    """A file of the folder no longer has the size or SHA-256 its manifest records."""


@dataclass(frozen=True)
class Mismatch:
    """One difference between the destination and the manifest."""

    key: str
    """Key relative to the destination prefix."""
    kind: str
    """``missing``, ``size``, ``checksum`` or ``extra`` (an object the manifest does not list)."""
    detail: str
    """What differs, in words."""


class DeliveryMismatch(StorageError):
    """The destination does not hold exactly the manifest's files; ``mismatches`` lists each difference."""

    def __init__(self, url: str, mismatches: list[Mismatch], advice: str):
        lines = "\n".join(f"  {mismatch.key}: {mismatch.detail}" for mismatch in mismatches)
        super().__init__(f"{url} does not match its manifest ({len(mismatches)} differences); {advice}:\n{lines}")
        self.mismatches = mismatches
        """Every difference, missing and changed objects by manifest order, then extra ones by key."""


@dataclass(frozen=True)
class Manifest:
    """What a delivered folder holds: every file's key (relative POSIX path), size and SHA-256, and a label."""

    label: str
    """Names the delivery (the release): a destination holding another label's files is refused."""
    files: tuple[ObjectInfo, ...]
    """One entry per file, sorted by key, each with its ``sha256``."""

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not _LABEL.fullmatch(self.label):
            raise ValueError(
                f"manifest label {self.label!r} must be 1 to 200 printable ASCII characters (it is stored in S3 "
                "object metadata), without leading or trailing spaces"
            )
        if not self.files:
            raise ValueError(f"manifest {self.label!r} lists no file; a delivery needs at least one")
        for entry in self.files:
            check_key(entry.key)
            if entry.key == MANIFEST_KEY:
                raise ValueError(f"manifest {self.label!r} lists {MANIFEST_KEY!r}, the name of the manifest itself")
            if not isinstance(entry.size, int) or entry.size < 0:
                raise ValueError(f"manifest entry {entry.key!r} has the size {entry.size!r}; give a byte count")
            if not isinstance(entry.sha256, str) or not _SHA256_HEX.fullmatch(entry.sha256):
                raise ValueError(f"manifest entry {entry.key!r} has no SHA-256 (64 lowercase hex digits)")
        keys = [entry.key for entry in self.files]
        if keys != sorted(set(keys)):
            raise ValueError(f"manifest {self.label!r}: keys must be unique and sorted")

    @property
    def total_bytes(self) -> int:
        """Bytes of all files."""
        return sum(entry.size for entry in self.files)

    def to_json(self) -> str:
        """The manifest as JSON text, the same for the same folder and label (it is compared byte for byte)."""
        files = [{"key": entry.key, "size": entry.size, "sha256": entry.sha256} for entry in self.files]
        return json.dumps({"label": self.label, "files": files}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Read a manifest written by ``to_json``; a malformed one raises ``ValueError`` saying what is wrong."""
        try:
            document = json.loads(text)
            files = tuple(
                ObjectInfo(key=entry["key"], size=entry["size"], sha256=entry["sha256"]) for entry in document["files"]
            )
            label = document["label"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"not a delivery manifest ({type(error).__name__}: {error}); expected "
                '{"label": ..., "files": [{"key": ..., "size": ..., "sha256": ...}, ...]}'
            ) from None
        return cls(label=label, files=files)


@dataclass(frozen=True)
class DeliveryResult:
    """What a ``deliver`` call did."""

    copied_keys: tuple[str, ...]
    """Files uploaded by this call, by key (the manifest itself not counted)."""
    copied_bytes: int
    skipped_keys: tuple[str, ...]
    """Files already at the destination with the manifest's size and SHA-256, left as they were."""
    skipped_bytes: int
    aborted_uploads: int
    """Unfinished multipart uploads of an earlier, killed delivery that this call aborted."""
    seconds: float
    """Wall time of the whole call, checks and verification included."""


def build_manifest(folder: str | os.PathLike, label: str) -> Manifest:
    """The manifest of every file below ``folder``, each file's SHA-256 streamed.

    Temporary files of an unfinished atomic write (``base.is_partial_name``) are left out: they are not part
    of the folder's content.

    Raises
    ------
    ValueError
        ``folder`` is not a directory, holds no file, or holds a ``_manifest.json`` at its top.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory; a delivery copies a folder")
    file_paths = sorted(
        (path for path in root.rglob("*") if path.is_file() and not is_partial_name(path.name)),
        key=lambda path: path.relative_to(root).as_posix(),
    )
    if (root / MANIFEST_KEY).is_file():
        raise ValueError(f"{root} holds a file named {MANIFEST_KEY}, the name a delivery gives its manifest")
    entries = []
    for path in file_paths:
        size, sha256 = _file_digest(path)
        entries.append(ObjectInfo(key=path.relative_to(root).as_posix(), size=size, sha256=sha256))
    if not entries:
        raise ValueError(f"{root} holds no file to deliver")
    return Manifest(label=label, files=tuple(entries))


def read_delivered_manifest(client: Any, bucket: str, prefix: str) -> Manifest | None:
    """The manifest of a completed delivery under ``s3://bucket/prefix``, or ``None`` when there is none.

    Raises
    ------
    DestinationRefused, DestinationUnreachable
        The destination cannot be read, or its ``_manifest.json`` is not a delivery manifest.
    """
    prefix = check_prefix(prefix)
    url = _url(bucket, prefix)
    try:
        response = client.get_object(Bucket=bucket, Key=join_key(prefix, MANIFEST_KEY))
        text = response["Body"].read()
    except ClientError as error:
        if _error_code(error) in _MISSING_CODES:
            return None
        raise _destination_error(error, client, url) from error
    except (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError) as error:
        raise _destination_error(error, client, url) from error
    try:
        return Manifest.from_json(text)
    except ValueError as error:
        raise DestinationRefused(f"{url}: its {MANIFEST_KEY} is unreadable: {error}") from None


def check_destination(client: Any, bucket: str, prefix: str, label: str) -> None:
    """Before any work is done for it: ``s3://bucket/prefix`` can be read and listed, and holds no completed
    delivery of another label (what :func:`deliver` checks again, with every object, before copying).

    Raises
    ------
    DestinationRefused, DestinationUnreachable
        As :func:`deliver`'s first step.
    """
    prefix = check_prefix(prefix)
    url = _url(bucket, prefix)
    delivered = read_delivered_manifest(client, bucket, prefix)
    if delivered is not None and delivered.label != label:
        raise DestinationRefused(f"{url} holds the delivery of {delivered.label!r}, not {label!r}; deliver to another "
                                 "prefix")
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
    except ClientError as error:
        raise _destination_error(error, client, url) from error
    except (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError) as error:
        raise _destination_error(error, client, url) from error


def verify_delivery(client: Any, bucket: str, prefix: str, manifest: Manifest, *, max_concurrency: int = 8) -> None:
    """Check that ``s3://bucket/prefix`` holds exactly the manifest's files (list, then one HEAD per object).

    An object matches when its size and the SHA-256 in its metadata equal the manifest's; the manifest's own
    ``_manifest.json`` is not compared.

    Raises
    ------
    DeliveryMismatch
        Missing objects, wrong sizes or checksums, objects the manifest does not list: all of them in one message.
    DestinationRefused, DestinationUnreachable
        The destination cannot be read.
    """
    prefix = check_prefix(prefix)
    _check_concurrency(max_concurrency)
    url = _url(bucket, prefix)
    mismatches = _mismatches(manifest, _remote_objects(client, bucket, prefix, manifest, max_concurrency, url))
    if mismatches:
        raise DeliveryMismatch(url, mismatches, "deliver the folder again to repair it")


def deliver(
    folder: str | os.PathLike,
    client: Any,
    bucket: str,
    prefix: str,
    manifest: Manifest,
    *,
    max_concurrency: int = 8,
    part_size: int = DEFAULT_PART_SIZE,
    report: Callable[[str], None] | None = None,
) -> DeliveryResult:
    """Copy the manifest's files from ``folder`` to ``s3://bucket/prefix``, verify them, then upload the manifest.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder the manifest was built from.
    client : botocore S3 client
        Made by ``boto3.client("s3", ...)``; it may be shared between threads.
    bucket, prefix : str
        Destination; ``prefix`` may be ``""`` (the bucket's top).
    manifest : Manifest
        From ``build_manifest(folder, label)``.
    max_concurrency : int
        Parts and files in flight at once (also the parallel HEAD requests of a check).
    part_size : int
        Bytes per multipart part, at least 5 MiB; smaller files go in one request.
    report : callable, optional
        Called with one line of text per step (a task's log).

    Returns
    -------
    DeliveryResult
        What was copied, what was already there, how long it took.

    Raises
    ------
    DestinationRefused
        No bucket, credentials refused or lacking permission, another label's delivery at the prefix, or
        objects there that the manifest does not list; nothing was copied or removed.
    DestinationUnreachable
        The endpoint does not answer.
    LocalFileChanged
        A file no longer matches the manifest; files copied before it stay (they match), the rest are not sent.
    DeliveryMismatch
        After copying, the destination still differs from the manifest; no manifest is uploaded.
    """
    started = time.perf_counter()
    root = Path(folder)
    prefix = check_prefix(prefix)
    url = _url(bucket, prefix)
    if not isinstance(manifest, Manifest):
        raise TypeError(f"manifest must be a Manifest (from build_manifest), got {type(manifest).__name__}")
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory; deliver copies the folder its manifest was built from")
    _check_concurrency(max_concurrency)
    if not isinstance(part_size, int) or part_size < MIN_PART_SIZE:
        raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 rule), got {part_size!r}")
    say = report or (lambda line: None)

    check_destination(client, bucket, prefix, manifest.label)
    delivered = read_delivered_manifest(client, bucket, prefix)
    remote = _remote_objects(client, bucket, prefix, manifest, max_concurrency, url)
    foreign = sorted(key for key, found in remote.items() if found.label not in (None, manifest.label))
    if foreign:
        raise DestinationRefused(
            f"{url} holds objects of another delivery ({remote[foreign[0]].label!r}), not {manifest.label!r}: "
            f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}; deliver to another prefix"
        )
    mismatches = _mismatches(manifest, remote)
    extra = [mismatch for mismatch in mismatches if mismatch.kind == "extra"]
    if extra:
        raise DeliveryMismatch(url, extra, "nothing was copied; remove these objects or deliver to another prefix")
    to_copy_keys = {mismatch.key for mismatch in mismatches}
    to_copy = [entry for entry in manifest.files if entry.key in to_copy_keys]
    skipped = [entry for entry in manifest.files if entry.key not in to_copy_keys]
    say(f"{url}: {len(skipped)} of {len(manifest.files)} files already delivered, {len(to_copy)} to copy")

    if to_copy and delivered is not None:
        # A manifest at the destination means "complete and verified"; it comes back once that is true again.
        try:
            client.delete_object(Bucket=bucket, Key=join_key(prefix, MANIFEST_KEY))
        except ClientError as error:
            raise _destination_error(error, client, url) from error
    aborted = _abort_unfinished_uploads(client, bucket, prefix, url)
    if aborted:
        say(f"{url}: aborted {aborted} unfinished multipart upload(s) of an earlier delivery")
    _copy(root, client, bucket, prefix, manifest.label, to_copy, max_concurrency, part_size, url, say)

    verify_delivery(client, bucket, prefix, manifest, max_concurrency=max_concurrency)
    manifest_text = manifest.to_json()
    if to_copy or delivered is None or delivered.to_json() != manifest_text:
        try:
            client.put_object(Bucket=bucket, Key=join_key(prefix, MANIFEST_KEY), Body=manifest_text.encode(),
                              ContentType="application/json")
        except ClientError as error:
            raise _destination_error(error, client, url) from error
    say(f"{url}: verified {len(manifest.files)} files, manifest {MANIFEST_KEY} written")
    return DeliveryResult(
        copied_keys=tuple(entry.key for entry in to_copy),
        copied_bytes=sum(entry.size for entry in to_copy),
        skipped_keys=tuple(entry.key for entry in skipped),
        skipped_bytes=sum(entry.size for entry in skipped),
        aborted_uploads=aborted,
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _RemoteObject:
    size: int
    sha256: str | None = None
    label: str | None = None


def _copy(root: Path, client: Any, bucket: str, prefix: str, label: str, entries: list[ObjectInfo],
          max_concurrency: int, part_size: int, url: str, say: Callable[[str], None]) -> None:
    """Upload ``entries`` through one TransferManager: files in parallel, large files in parallel parts.

    Each file is hashed just before it is submitted, while earlier ones upload, so a file changed since the
    manifest was built is never sent under the manifest's SHA-256. On any error (or KeyboardInterrupt) the
    manager cancels what is in flight and aborts the multipart uploads it started.
    """
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                            max_concurrency=max_concurrency)
    try:
        with TransferManager(client, config) as manager:
            futures = []
            for entry in entries:
                path = root / entry.key
                _check_local_file(path, entry)
                metadata = {SHA256_METADATA: entry.sha256, LABEL_METADATA: label}
                futures.append((entry, manager.upload(str(path), bucket, join_key(prefix, entry.key),
                                                      extra_args={"Metadata": metadata})))
            for entry, future in futures:
                future.result()
                say(f"copied {entry.key} ({entry.size:,} bytes)")
    except ClientError as error:
        raise _destination_error(error, client, url) from error
    except (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError) as error:
        raise _destination_error(error, client, url) from error


def _check_local_file(path: Path, entry: ObjectInfo) -> None:
    if not path.is_file():
        raise LocalFileChanged(f"file {entry.key!r} of the delivered folder is gone; rebuild the manifest")
    size, sha256 = (path.stat().st_size, None)
    if size == entry.size:
        size, sha256 = _file_digest(path)
    if size != entry.size or sha256 != entry.sha256:
        raise LocalFileChanged(
            f"file {entry.key!r} of the delivered folder changed since its manifest was built (now {size:,} bytes"
            f"{f', SHA-256 {sha256[:12]}…' if sha256 else ''}; manifest: {entry.size:,} bytes, SHA-256 "
            f"{entry.sha256[:12]}…); rebuild the manifest"
        )


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _remote_objects(client: Any, bucket: str, prefix: str, manifest: Manifest, max_concurrency: int,
                    url: str) -> dict[str, _RemoteObject]:
    """Every object under the prefix but the manifest, by relative key; the SHA-256 and label are read (HEAD)
    for the manifest's files (an object of another label is refused even when its size differs); objects the
    manifest does not list refuse the delivery anyway."""
    listed_prefix = f"{prefix}/" if prefix else ""
    sizes: dict[str, int] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=listed_prefix):
            for listed in page.get("Contents", []):
                sizes[listed["Key"][len(listed_prefix):]] = listed["Size"]
    except ClientError as error:
        raise _destination_error(error, client, url) from error
    except (EndpointConnectionError, ConnectTimeoutError, NoCredentialsError) as error:
        raise _destination_error(error, client, url) from error
    sizes.pop(MANIFEST_KEY, None)
    listed_keys = {entry.key for entry in manifest.files}
    headed = [key for key in sizes if key in listed_keys]

    def head(key: str) -> _RemoteObject | None:
        try:
            response = client.head_object(Bucket=bucket, Key=join_key(prefix, key))
        except ClientError as error:
            if _error_code(error) in _MISSING_CODES:
                return None  # removed since the listing
            raise _destination_error(error, client, url) from error
        metadata = response.get("Metadata", {})
        return _RemoteObject(response["ContentLength"], metadata.get(SHA256_METADATA), metadata.get(LABEL_METADATA))

    with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
        heads = dict(zip(headed, pool.map(head, headed), strict=True))
    remote = {key: _RemoteObject(size) for key, size in sizes.items() if key not in heads}
    remote.update((key, found) for key, found in heads.items() if found is not None)
    return remote


def _mismatches(manifest: Manifest, remote: dict[str, _RemoteObject]) -> list[Mismatch]:
    found_mismatches = []
    for entry in manifest.files:
        found = remote.get(entry.key)
        if found is None:
            found_mismatches.append(Mismatch(entry.key, "missing", "missing"))
        elif found.size != entry.size:
            found_mismatches.append(
                Mismatch(entry.key, "size", f"{found.size:,} bytes, the manifest says {entry.size:,}")
            )
        elif found.sha256 != entry.sha256:
            recorded = f"SHA-256 {found.sha256[:12]}…" if found.sha256 else "no SHA-256 in its metadata"
            found_mismatches.append(
                Mismatch(entry.key, "checksum", f"{recorded}, the manifest says {entry.sha256[:12]}…")
            )
    listed = {entry.key for entry in manifest.files}
    found_mismatches.extend(
        Mismatch(key, "extra", "not in the manifest") for key in sorted(remote.keys() - listed)
    )
    return found_mismatches


def _abort_unfinished_uploads(client: Any, bucket: str, prefix: str, url: str) -> int:
    """Abort the multipart uploads under the prefix that a killed delivery left; return how many."""
    listed_prefix = f"{prefix}/" if prefix else ""
    try:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=listed_prefix)
        unfinished = [upload for page in pages for upload in page.get("Uploads", [])
                      if upload["Key"].startswith(listed_prefix)]
        for upload in unfinished:
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    except ClientError as error:
        raise _destination_error(error, client, url) from error
    return len(unfinished)


def _check_concurrency(max_concurrency: object) -> None:
    if not isinstance(max_concurrency, int) or isinstance(max_concurrency, bool) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")


def _url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _destination_error(error: Exception, client: Any, url: str) -> StorageError:
    """The user's words for an error of the S3 endpoint, naming the destination URL."""
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return DestinationUnreachable(
            f"{url}: the S3 endpoint {client.meta.endpoint_url} cannot be reached; check the endpoint URL and "
            "the network"
        )
    if isinstance(error, NoCredentialsError):
        return DestinationRefused(f"{url}: no S3 credentials were found; give an access key and secret")
    code = _error_code(error) if isinstance(error, ClientError) else ""
    if code == "NoSuchBucket":
        return DestinationRefused(f"{url}: the bucket does not exist; create it or fix the destination")
    if code in _REFUSED_CREDENTIALS:
        return DestinationRefused(f"{url}: the S3 credentials were refused ({code}); check the access key and secret")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return DestinationRefused(
            f"{url}: access denied ({code}); the credentials may not list, read or write objects there"
        )
    return StorageError(f"{url}: the S3 endpoint answered {code or type(error).__name__}: {error}")

