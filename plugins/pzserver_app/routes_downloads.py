"""Routes of downloads: a product's ZIP, its main file (a directory is zipped) and single files, with HTTP
Range requests so an interrupted download resumes where it stopped.

``download/prepare/`` makes the archive at once (products are lightweight) and answers ``ready``;
``download/status/`` says whether the current version's archive exists; ``download/file/`` streams it (and
makes it first when needed, as the older clients' ``download/`` and ``download_main_file/`` routes expect).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from pzlib.registry import FileRole, NotFound, User
from pzlib.registry.archives import Archive
from pzlib.storage import InvalidRange
from pzserver_app import schemas
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import TEXT, described
from pzserver_app.queries import RecordId
from pzserver_app.routes_products import product_reference

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

_SINGLE_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})$")
_RANGE = described(headers={"Range": TEXT})
_TOKEN_FILENAME = re.compile(r"^[A-Za-z0-9._-]+$")
_CHUNK = 1024 * 1024


def _download_url(product_id: int, main_file_only: bool) -> str:
    return f"products/{product_id}/download/{'main-file/' if main_file_only else ''}file/"


def _describe(archive: Archive, main_file_only: bool) -> dict[str, Any]:
    return schemas.archive(archive, _download_url(archive.product_id, main_file_only))


@router.post("/products/{product}/download/prepare/")
def prepare_product(product: str, user: ChangingUser, context: Context) -> dict[str, Any]:
    return _describe(context.archives.prepare(user, product_reference(product)), main_file_only=False)


@router.get("/products/{product}/download/status/")
def product_status(product: str, user: CurrentUser, context: Context) -> dict[str, Any]:
    return _describe(_found(context, user, product, main_file_only=False), main_file_only=False)


@router.get("/products/{product}/download/file/", openapi_extra=_RANGE)
def product_file(product: str, request: Request, user: CurrentUser, context: Context) -> StreamingResponse:
    return _stream(request, context, context.archives.prepare(user, product_reference(product)))


@router.get("/products/{product}/download/", openapi_extra=_RANGE)
def product_download(product: str, request: Request, user: CurrentUser, context: Context) -> StreamingResponse:
    """The product's ZIP in one call (pzserver clients before 0.3)."""
    return _stream(request, context, context.archives.prepare(user, product_reference(product)))


@router.post("/products/{product}/download/main-file/prepare/")
def prepare_main_file(product: str, user: ChangingUser, context: Context) -> dict[str, Any]:
    archive = context.archives.prepare(user, product_reference(product), main_file_only=True)
    return _describe(archive, main_file_only=True)


@router.get("/products/{product}/download/main-file/status/")
def main_file_status(product: str, user: CurrentUser, context: Context) -> dict[str, Any]:
    return _describe(_found(context, user, product, main_file_only=True), main_file_only=True)


@router.get("/products/{product}/download/main-file/file/", openapi_extra=_RANGE)
def main_file(product: str, request: Request, user: CurrentUser, context: Context) -> StreamingResponse:
    archive = context.archives.prepare(user, product_reference(product), main_file_only=True)
    return _stream(request, context, archive)


@router.get("/products/{product}/download_main_file/", openapi_extra=_RANGE)
def main_file_download(product: str, request: Request, user: CurrentUser, context: Context) -> StreamingResponse:
    """The main file in one call (pzserver clients before 0.3)."""
    archive = context.archives.prepare(user, product_reference(product), main_file_only=True)
    return _stream(request, context, archive)


@router.get("/product-files/{file_id}/download/", openapi_extra=_RANGE)
def single_file(file_id: RecordId, request: Request, user: CurrentUser, context: Context) -> StreamingResponse:
    """One file of a product; a main file that is a directory comes zipped."""
    stored = context.registry.get_file(user, file_id)
    if stored.role is FileRole.MAIN:
        return _stream(request, context, context.archives.prepare(user, stored.product_id, main_file_only=True))
    archive = Archive(
        product_id=stored.product_id,
        key=stored.storage_key,
        filename=stored.name,
        size=stored.size,
        checksum=stored.checksum,
        created_at=stored.created_at,
        fingerprint=stored.checksum or str(stored.id),
    )
    return _stream(request, context, archive)


def _found(context: ServerContext, user: User, product: str, *, main_file_only: bool) -> Archive:
    archive = context.archives.find(user, product_reference(product), main_file_only=main_file_only)
    if archive is None:
        prepare = "download/main-file/prepare/" if main_file_only else "download/prepare/"
        raise NotFound(f"no download of product {product} is prepared; POST products/{product}/{prepare} first")
    return archive


def _stream(request: Request, context: ServerContext, archive: Archive) -> StreamingResponse:
    size = context.storage.size(archive.key)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _content_disposition(archive.filename),
    }
    if archive.checksum:
        headers["ETag"] = f'"{archive.checksum}"'
    byte_range = _requested_range(request.headers.get("range"), size)
    if byte_range is None:
        start, end, status_code = 0, size, 200
    else:
        start, end = byte_range
        status_code = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    reader = context.storage.open(archive.key, start, end)
    media_type = "application/zip" if archive.filename.endswith(".zip") else "application/octet-stream"
    return StreamingResponse(_chunks(reader), status_code=status_code, headers=headers, media_type=media_type)


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` asked for, or None for the whole object.

    Malformed and multi-range headers are ignored (RFC 9110 allows serving the whole object); a range that
    starts past the end raises ``InvalidRange`` (416).
    """
    if not header:
        return None
    match = _SINGLE_RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise InvalidRange(f"the range {header!r} asks for no bytes", size)
        return max(size - length, 0), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        raise InvalidRange(f"the range {header!r} lies outside the {size} bytes of the file", size)
    return start, end


def _content_disposition(filename: str) -> str:
    # A bare token name is what every client parses, including pzserver clients before 0.3.
    if _TOKEN_FILENAME.match(filename):
        return f"attachment; filename={filename}"
    fallback = re.sub(r'[^A-Za-z0-9._-]', "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _chunks(reader: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := reader.read(_CHUNK):
            yield chunk
    finally:
        reader.close()
