"""Request bodies: JSON or form fields as one dict, uploads, value coercion, and the limits of what is read.

The ``pzserver`` client sends JSON to create products and processes, form fields to change products and
columns, and multipart forms to upload files; the handlers read all of them the same way. Bodies are read in
the handlers (never as FastAPI body parameters) so that authentication always runs first.

Nothing is read past a limit. ``LimitBodies`` counts the bytes of a request body as the server hands them
over, chunked or not, and stops at the limit with a 413: ``body_limit_bytes`` for JSON and url-encoded bodies,
``upload_limit_bytes`` plus ``MULTIPART_OVERHEAD_BYTES`` for a multipart body, which may carry a file; a
form's fields other than files are at most ``FORM_FIELD_LIMIT_BYTES`` each, and at most ``FORM_FIELDS``. JSON
is read strictly (``parse_json``): integers of at most 64 bits, finite numbers, no ``NaN``, text without lone
surrogates, at most ``MAX_JSON_DEPTH`` levels; anything else is a 400 that says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pzlib.config import Settings
from pzlib.registry import InvalidInput
from pzlib.registry.checks import MAX_COUNT, clipped, shown
from pzlib.registry.registration import FileTooLarge

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for form fields and part headers around an uploaded file, on top of the upload limit."""

FORM_FIELD_LIMIT_BYTES = 256 * 1024
"""Largest form field other than a file, as sent (a url-encoded character takes up to 9 bytes): room for the
longest description."""

FORM_FIELDS = 100
"""Most fields in one form."""

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects in a JSON body or field (the API's own nest three levels)."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DIGITS = re.compile(r"[0-9]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyTooLarge(InvalidInput):
    """A JSON or form body is larger than the limit (HTTP 413)."""

    def __init__(self, message: str, limit_bytes: int):
        super().__init__(message)
        self.limit_bytes = limit_bytes
        """The limit in force."""


class LimitBodies:
    """ASGI middleware: a request body is read only up to its limit, then the reader gets ``BodyTooLarge``
    (``FileTooLarge`` for a multipart body), which the app answers with a 413.

    The bytes are counted as the server hands them over, so a chunked body without ``Content-Length`` stops at
    the limit too; a declared length over the limit stops the reader before it reads anything. A handler that
    never reads the body reads none of it.
    """

    def __init__(self, app: ASGIApp, settings: Callable[[], Settings]):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, too_large = self._limit(headers, self.settings())
        declared = headers.get("content-length", "").strip()
        declared_too_large = bool(_DIGITS.fullmatch(declared)) and (len(declared) > 18 or int(declared) > limit)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared_too_large:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        await self.app(scope, limited_receive, send)

    @staticmethod
    def _limit(headers: Headers, settings: Settings) -> tuple[int, BodyTooLarge | FileTooLarge]:
        """The most bytes this request's body may have, and the error past them."""
        if media_type(headers) == "multipart/form-data":
            upload_limit = settings.upload_limit_bytes
            return upload_limit + MULTIPART_OVERHEAD_BYTES, FileTooLarge(
                f"the upload is larger than the limit of {upload_limit} bytes; nothing was stored", upload_limit
            )
        body_limit = settings.body_limit_bytes
        return body_limit, BodyTooLarge(
            f"the request body is larger than the limit of {body_limit} bytes; send less (or raise "
            "PZ_BODY_LIMIT_BYTES)",
            body_limit,
        )


def media_type(headers: Headers) -> str:
    """The media type of a request's ``Content-Type``, lower-case, without parameters."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def read_fields(request: Request) -> dict[str, Any]:
    """The fields of a JSON object, url-encoded or multipart body (repeated form fields become lists).

    Raises
    ------
    InvalidInput
        Malformed JSON or form, a JSON body that is not an object, a form with a file, or another content type.
    BodyTooLarge, FileTooLarge
        A body over its limit (``LimitBodies``).
    """
    content_type = media_type(request.headers)
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        body = await request.body()
        if not body.strip():
            return {}
        fields = parse_json(body, "the request body")
        if not isinstance(fields, dict):
            raise InvalidInput(f"the request body must be a JSON object, got {type(fields).__name__}")
        return fields
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await _read_form(request, max_files=0)
        try:
            return _form_fields(form)
        finally:
            await form.close()
    raise InvalidInput(f"unsupported content type {shown(content_type)}; send JSON or form data")


def parse_json(text: str | bytes, what: str) -> Any:
    """``text`` read as strict JSON.

    Raises
    ------
    InvalidInput
        Not JSON (or not UTF-8), an integer beyond 64 bits, a number that is not finite, ``NaN`` or
        ``Infinity``, a lone surrogate (``"\\ud800"``), or nesting deeper than ``MAX_JSON_DEPTH``.
    """
    try:
        value = json.loads(text, parse_int=_json_integer, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:
        raise InvalidInput(f"{what} nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError and the refusals of the parse hooks
        raise InvalidInput(f"{what} is not valid JSON: {error}") from None
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                raise InvalidInput(f"{what} holds a lone surrogate (such as \"\\ud800\"), which is not text")
        elif isinstance(item, list | dict):
            if depth >= MAX_JSON_DEPTH:
                raise InvalidInput(f"{what} nests deeper than {MAX_JSON_DEPTH} levels of arrays and objects")
            children = [*item, *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


def _json_integer(digits: str) -> int:
    if len(digits.lstrip("-")) > 19 or not -(2**63) <= int(digits) <= MAX_COUNT:
        raise ValueError(f"the number {clipped(digits, 40)} is beyond the 64-bit integers the server keeps")
    return int(digits)


def _json_float(digits: str) -> float:
    number = float(digits)
    if not math.isfinite(number):
        raise ValueError(f"the number {clipped(digits, 40)} is too large")
    return number


def _json_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class Upload:
    """A multipart form with files; close it to remove the spooled files."""

    fields: dict[str, Any]
    files: dict[str, UploadFile]
    form: FormData

    async def close(self) -> None:
        await self.form.close()


async def read_upload(request: Request) -> Upload:
    """A multipart form with up to two files, read only up to the upload limit plus room for the other fields
    (``LimitBodies``).

    Raises
    ------
    FileTooLarge
        The body declares or carries more bytes than allowed.
    InvalidInput
        Not a multipart body, or a malformed one.
    """
    content_type = media_type(request.headers)
    if content_type != "multipart/form-data":
        raise InvalidInput(f"send the file as multipart/form-data, not {shown(content_type or 'an empty body')}")
    form = await _read_form(request, max_files=2)
    files = {key: value for key, value in form.multi_items() if isinstance(value, UploadFile)}
    return Upload(_form_fields(form), files, form)


async def _read_form(request: Request, *, max_files: int) -> FormData:
    try:
        return await request.form(max_files=max_files, max_fields=FORM_FIELDS, max_part_size=FORM_FIELD_LIMIT_BYTES)
    except InvalidInput:  # over the limit (LimitBodies)
        raise
    except HTTPException as error:  # Starlette's refusals: too many fields or files, a field too large
        raise InvalidInput(f"the form cannot be read: {error.detail}") from None
    except Exception as error:  # python-multipart reports malformed bodies with several error types
        raise InvalidInput(f"the form cannot be read: {error}") from None


def _form_fields(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


def check_fields(fields: dict[str, Any], allowed: set[str], what: str) -> None:
    """Raise ``InvalidInput`` naming any field outside ``allowed``."""
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(clipped(name) for name in unknown[:5])} for {what}; "
            f"use {', '.join(sorted(allowed))}"
        )


def to_bool(value: Any, field: str) -> bool:
    """A JSON boolean, or a form value such as ``true``/``false``/``1``/``0``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidInput(f"{field} must be true or false, got {shown(value)}")


def to_optional_reference(value: Any, field: str) -> int | str | None:
    """An id or a name; ``None`` and blank text mean none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_reference(value, field)


def to_reference(value: Any, field: str) -> int | str:
    """An id (a JSON integer or digits) or a name."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an id or a name, got {shown(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        return int(value) if _INTEGER.fullmatch(value.strip()) else value.strip()
    raise InvalidInput(f"{field} must be an id or a name, got {shown(value)}")


def to_optional_text(value: Any, field: str, max_length: int | None = None) -> str | None:
    """Text of at most ``max_length`` characters, or ``None``."""
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {shown(value)}")
    if value is not None and max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{field} has {len(value)} characters; the limit is {max_length}")
    return value


def to_int(value: Any, field: str) -> int:
    """A JSON integer or a form value of digits."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer, got {shown(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise InvalidInput(f"{field} must be an integer, got {shown(value)}")


def to_list(value: Any, field: str) -> list[Any]:
    """A JSON list, repeated form fields, a JSON list in text, or comma-separated text."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            parsed = parse_json(text, field)
            if isinstance(parsed, list):
                return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    raise InvalidInput(f"{field} must be a list, got {shown(value)}")


def to_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object, or text holding one; ``None`` is an empty object."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = parse_json(value, field) if value.strip() else {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object, got {type(value).__name__}")
    return value
