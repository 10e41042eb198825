"""Request bodies: JSON or form fields as one dict, uploads read under the size limit, and value coercion.

The ``pzserver`` client sends JSON to create products and processes, form fields to change products and
columns, and multipart forms to upload files; the handlers read all of them the same way. Bodies are read in
the handlers (never as FastAPI body parameters) so that authentication always runs first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.types import Message

from pzlib.registry import InvalidInput
from pzlib.registry.registration import FileTooLarge

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for form fields and part headers around an uploaded file, on top of the upload limit."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_INTEGER = re.compile(r"-?[0-9]{1,18}")


async def read_fields(request: Request) -> dict[str, Any]:
    """The fields of a JSON object, url-encoded or multipart body (repeated form fields become lists).

    Raises
    ------
    InvalidInput
        Malformed JSON, a JSON body that is not an object, or another content type.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("", "application/json") or content_type.endswith("+json"):
        body = await request.body()
        if not body.strip():
            return {}
        try:
            fields = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidInput(f"the request body is not valid JSON: {error}") from error
        if not isinstance(fields, dict):
            raise InvalidInput(f"the request body must be a JSON object, got {type(fields).__name__}")
        return fields
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        async with request.form(max_files=0, max_fields=100) as form:
            return _form_fields(form)
    raise InvalidInput(f"unsupported content type {content_type!r}; send JSON or form data")


@dataclass
class Upload:
    """A multipart form with files; close it to remove the spooled files."""

    fields: dict[str, Any]
    files: dict[str, UploadFile]
    form: FormData

    async def close(self) -> None:
        await self.form.close()


async def read_upload(request: Request, limit_bytes: int) -> Upload:
    """A multipart form whose body is read only up to the upload limit (plus room for the other fields).

    Raises
    ------
    FileTooLarge
        The body declares or carries more bytes than allowed.
    InvalidInput
        Not a multipart body, or a malformed one.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise InvalidInput(f"send the file as multipart/form-data, not {content_type or 'an empty body'!r}")
    allowed = limit_bytes + MULTIPART_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    too_large = FileTooLarge(
        f"the upload is larger than the limit of {limit_bytes} bytes; nothing was stored", limit_bytes
    )
    if declared is not None and declared.isdigit() and int(declared) > allowed:
        raise too_large
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > allowed:
                raise too_large
        return message

    limited = Request(request.scope, limited_receive)
    try:
        form = await limited.form(max_files=2, max_fields=100)
    except FileTooLarge:
        raise
    except Exception as error:  # python-multipart reports malformed bodies with several error types
        raise InvalidInput(f"the multipart body cannot be read: {error}") from error
    files = {key: value for key, value in form.multi_items() if isinstance(value, UploadFile)}
    return Upload(_form_fields(form), files, form)


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
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)} for {what}; use {', '.join(sorted(allowed))}")


def to_bool(value: Any, field: str) -> bool:
    """A JSON boolean, or a form value such as ``true``/``false``/``1``/``0``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidInput(f"{field} must be true or false, got {value!r}")


def to_optional_reference(value: Any, field: str) -> int | str | None:
    """An id or a name; ``None`` and blank text mean none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_reference(value, field)


def to_reference(value: Any, field: str) -> int | str:
    """An id (a JSON integer or digits) or a name."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an id or a name, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        return int(value) if _INTEGER.fullmatch(value.strip()) else value.strip()
    raise InvalidInput(f"{field} must be an id or a name, got {value!r}")


def to_optional_text(value: Any, field: str) -> str | None:
    """Text, or ``None``."""
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"{field} must be text, got {value!r}")


def to_int(value: Any, field: str) -> int:
    """A JSON integer or a form value of digits."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise InvalidInput(f"{field} must be an integer, got {value!r}")


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
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as error:
                raise InvalidInput(f"{field} is not a valid JSON list: {error}") from error
            if isinstance(parsed, list):
                return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    raise InvalidInput(f"{field} must be a list, got {value!r}")


def to_json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object, or text holding one; ``None`` is an empty object."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise InvalidInput(f"{field} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object, got {type(value).__name__}")
    return value
