"""What the OpenAPI description of the app says of the query strings and bodies the handlers read themselves.

Handlers read their query strings (``queries``) and bodies (``bodies``) by hand, so that authentication runs
first and every error names the field; FastAPI cannot see them. ``described`` writes them into a route's
``openapi_extra``, so that ``app.openapi()`` describes every input of every route: the fuzz tests
(tests/plugins/test_api_fuzz.py) generate their requests from it. The app serves no OpenAPI page (it would be
a route without authentication).

Examples
--------
>>> described(query={"page": INTEGER})["parameters"][0]["name"]
'page'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TEXT: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
ID_OR_NAME: dict[str, Any] = {"anyOf": [INTEGER, TEXT]}
"""A record given by id or by name."""
FILE: dict[str, Any] = {"type": "string", "format": "binary"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def described(
    *,
    query: Mapping[str, dict[str, Any]] | None = None,
    headers: Mapping[str, dict[str, Any]] | None = None,
    fields: Mapping[str, dict[str, Any]] | None = None,
    required: Sequence[str] = (),
    files: Mapping[str, dict[str, Any]] | None = None,
    multipart_only: bool = False,
) -> dict[str, Any]:
    """The ``openapi_extra`` of a route: optional query parameters and headers, and a body.

    Parameters
    ----------
    query, headers : mapping or None
        Name and JSON schema of each optional query parameter and request header.
    fields : mapping or None
        Name and JSON schema of each body field: a JSON object, or the same fields as a form.
    required : sequence of str
        Body fields (or files) that must be given.
    files : mapping or None
        Name and schema of each multipart part that is a file.
    multipart_only : bool
        The body is a multipart form only (an upload), not JSON or a url-encoded form.
    """
    parameters = [
        {"name": name, "in": location, "required": False, "schema": schema}
        for location, described_parameters in (("query", query), ("header", headers))
        for name, schema in (described_parameters or {}).items()
    ]
    extra: dict[str, Any] = {"parameters": parameters} if parameters else {}
    if fields is None and files is None:
        return extra
    content = {"multipart/form-data": {"schema": _object({**(fields or {}), **(files or {})}, required)}}
    if not multipart_only:
        body = {"schema": _object(dict(fields or {}), [name for name in required if name not in (files or {})])}
        content = {"application/json": body, "application/x-www-form-urlencoded": body, **content}
    extra["requestBody"] = {"required": bool(required), "content": content}
    return extra


def _object(properties: dict[str, dict[str, Any]], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}
