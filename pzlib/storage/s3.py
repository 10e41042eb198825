"""Object storage on S3 or an S3-compatible store (MinIO, Ceph, moto) through boto3.

S3 makes an object visible only when its upload completes, so ``put`` is atomic by nature: small objects go in
one ``PutObject``, larger ones in a multipart upload that is aborted on any failure. The SHA-256 is computed
while streaming, part by part, so nothing is read twice. Ranged reads use ``GetObject`` with a ``Range``
header after a ``HeadObject`` that checks the range.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from pzlib.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    Source,
    Storage,
    bounded_reader,
    check_key,
    check_prefix,
    join_key,
    opened_source,
    resolve_range,
)

MIN_PART_SIZE = 5 * 1024 * 1024
"""Smallest part S3 accepts in a multipart upload (except the last)."""

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_DELETE_BATCH = 1000  # most keys one DeleteObjects call accepts


class S3Storage(Storage):
    """Objects kept in an S3 bucket, below an optional key prefix.

    Parameters
    ----------
    client : botocore S3 client
        Made by ``boto3.client("s3", ...)``; ``pzlib.storage.open_storage`` makes one from a config.
    bucket : str
        Bucket name; the bucket must exist.
    prefix : str
        Key prefix of this store inside the bucket, ``""`` for the whole bucket.
    part_size : int
        Bytes per multipart-upload part (at least 5 MiB); smaller objects go in one request.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, part_size: int = 8 * 1024 * 1024):
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 rule), got {part_size}"
            )
        self.client = client
        """boto3 S3 client."""
        self.bucket = bucket
        """Bucket holding the objects."""
        self.prefix = check_prefix(prefix)
        """Key prefix of this store in the bucket."""
        self.part_size = part_size
        """Bytes per multipart-upload part."""
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def put(self, key: str, source: Source) -> ObjectInfo:
        object_key = self._object_key(key)
        digest = hashlib.sha256()
        with opened_source(source) as reader:
            first_part = _read_part(reader, self.part_size)
            digest.update(first_part)
            if len(first_part) < self.part_size:
                self.client.put_object(Bucket=self.bucket, Key=object_key, Body=first_part)
                return ObjectInfo(key=key, size=len(first_part), sha256=digest.hexdigest())
            size = self._multipart_upload(object_key, first_part, reader, digest)
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        start, end = resolve_range(key, self.size(key), start, end)
        if start == end:
            return io.BytesIO()
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._object_key(key), Range=f"bytes={start}-{end - 1}"
            )
        except ClientError as error:
            raise self._translated(error, key) from error
        return bounded_reader(response["Body"], end - start)

    def size(self, key: str) -> int:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as error:
            raise self._translated(error, key) from error
        return response["ContentLength"]

    def list_objects(self, prefix: str = "") -> list[ObjectInfo]:
        relative_prefix = check_prefix(prefix)
        listed_prefix = join_key(self.prefix, relative_prefix) if relative_prefix else self.prefix
        start = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        found = []
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=f"{listed_prefix}/" if listed_prefix else ""
        ):
            for entry in page.get("Contents", []):
                found.append(ObjectInfo(key=entry["Key"][start:], size=entry["Size"]))
        return sorted(found, key=lambda stored: stored.key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def delete_tree(self, prefix: str) -> int:
        removed = self.list_objects(check_prefix(prefix))
        for batch_start in range(0, len(removed), _DELETE_BATCH):
            batch = removed[batch_start : batch_start + _DELETE_BATCH]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": self._object_key(stored.key)} for stored in batch],
                    "Quiet": True,
                },
            )
        return len(removed)

    def _object_key(self, key: str) -> str:
        return join_key(self.prefix, check_key(key))

    def _multipart_upload(self, object_key: str, first_part: bytes, reader: BinaryIO, digest: Any) -> int:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=object_key)["UploadId"]
        try:
            completed_parts = []
            size = 0
            part = first_part
            while part:
                part_number = len(completed_parts) + 1
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=part_number, Body=part
                )
                completed_parts.append({"ETag": response["ETag"], "PartNumber": part_number})
                size += len(part)
                part = _read_part(reader, self.part_size)
                digest.update(part)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": completed_parts},
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            raise
        return size

    def _translated(self, error: ClientError, key: str) -> Exception:
        if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
            return ObjectNotFound(f"no object {key!r} in {self.url}")
        return error


def _read_part(reader: BinaryIO, part_size: int) -> bytes:
    """Up to ``part_size`` bytes; fewer only at the end of the stream (S3 parts but the last are full)."""
    chunks = []
    remaining = part_size
    while remaining:
        chunk = reader.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
