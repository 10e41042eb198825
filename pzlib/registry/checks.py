"""Checks and normalisation of the values callers hand to the registry.

Each function takes a raw value, returns it cleaned (stripped, converted to the enumeration, …) or raises
``InvalidInput`` with a sentence that names the field, the value and the rule. Nothing here touches the
database, so the HTTP layer can reuse the same checks on form data before calling the registry. Values are
quoted shortened (``shown``): a message never echoes a megabyte a caller sent.
"""

from __future__ import annotations

import json
import re
import reprlib
import unicodedata
from collections.abc import Iterable
from enum import Enum
from typing import Any

from sqlalchemy import BigInteger

from pzlib.registry.errors import InvalidInput
from pzlib.registry.schema import NAME_LENGTH, FileRole, ProcessStatus, ProductStatus, metadata


class Unset(Enum):
    """Type of ``UNSET``, the default of update arguments that leave a field as it is."""

    TOKEN = "UNSET"


UNSET = Unset.TOKEN
"""Marks an update argument that was not given (``None`` is a value for nullable fields)."""

MAX_COUNT = 2**63 - 1
"""Largest count (bytes, rows) a database holds: a signed 64-bit integer in SQLite and Postgres alike."""

MAX_ID = MAX_COUNT if all(
    isinstance(table.c.id.type, BigInteger) for table in metadata.tables.values() if "id" in table.c
) else 2**31 - 1
"""Largest record id every database holds: the id columns are 64-bit (``schema.ID``: ``BIGINT`` on Postgres,
``INTEGER`` on SQLite); were one of them 32-bit, the bound would follow it. A larger id is refused before a query
would overflow."""

MAX_FILE_NAME_BYTES = 200
"""Longest name of an uploaded file, in UTF-8 bytes: file systems allow 255 bytes per name, and storage writes a
file under a temporary name 42 bytes longer (``.<name>.<uuid>.partial``) before renaming it."""

USERNAME_PATTERN = r"^[\w.@+-]{1,150}$"
"""A valid username (``\\w`` in its ASCII sense, as in a JSON schema)."""

_USERNAME = re.compile(USERNAME_PATTERN, re.ASCII)
_RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxdict = 4


def shown(value: object) -> str:
    """``repr(value)`` shortened for a message: long text and long lists are cut in the middle."""
    return _SHOWN.repr(value)


def clipped(text: str, length: int = 80) -> str:
    """``text`` for a message, cut after ``length`` characters."""
    return text if len(text) <= length else f"{text[:length]}…"


def slugify(text: str) -> str:
    """Lower-case ASCII slug of ``text``, words joined by ``_``, as LIneA's internal names use.

    Accents are folded, spaces become ``_`` and other punctuation is dropped.

    Examples
    --------
    >>> slugify("  Spec-z  Catálogo (DR2) ")
    'specz_catalogo_dr2'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    underscored = re.sub(r"\s+", "_", ascii_text.strip())
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9_]", "", underscored)).strip("_")


def display_name(value: object, field: str = "display_name") -> str:
    """A stripped, non-empty name of at most 255 characters that has a letter or a digit."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"{field} is empty; give the product a name")
    if len(cleaned) > NAME_LENGTH:
        raise InvalidInput(f"{field} has {len(cleaned)} characters; the limit is {NAME_LENGTH}")
    if _CONTROL_CHARACTERS.search(cleaned):
        raise InvalidInput(f"{field} {cleaned!r} contains control characters")
    if not slugify(cleaned):
        raise InvalidInput(f"{field} {cleaned!r} needs at least one letter or digit")
    return cleaned


def optional_text(value: object, field: str, max_length: int) -> str | None:
    """Stripped text, or ``None`` for ``None`` and blank text."""
    if value is None:
        return None
    if isinstance(value, str) and len(value.strip()) > max_length:
        raise InvalidInput(f"{field} has {len(value.strip())} characters; the limit is {max_length}")
    return filter_text(value, field).strip() or None


def column_map(value: object) -> str | dict | None:
    """A column map as a release records it: a preset name, an object of ColumnMap fields, or ``None``."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidInput(
        f"object_column_map must be a preset name or an object of column names, got {shown(value)}"
    )


def description(value: object) -> str:
    """Free text; ``None`` becomes empty."""
    return "" if value is None else filter_text(value, "description")


def filter_text(value: object, field: str) -> str:
    """Any text without NUL characters (which Postgres cannot store or compare)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{field} {shown(value)} contains a NUL character")
    return value


def username(value: object) -> str:
    """A Django-style username: 1–150 letters, digits and ``_.@+-``."""
    if not isinstance(value, str) or not _USERNAME.match(value):
        raise InvalidInput(
            f"username {shown(value)} is not valid; use 1-150 letters, digits and the characters _ . @ + -"
        )
    return value


def release_name(value: object) -> str:
    """A release name: a letter or digit, then letters, digits and ``_.-`` (e.g. ``dp1``)."""
    if not isinstance(value, str) or not _RELEASE_NAME.match(value):
        raise InvalidInput(
            f"release name {shown(value)} is not valid; start with a letter or digit and use only letters, "
            "digits and the characters _ . -"
        )
    return value


def group_names(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct, sorted, stripped access-group names."""
    if isinstance(values, str):
        raise InvalidInput(f"groups must be a list of names, got the single text {shown(values)}")
    cleaned = set()
    for value in values:
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > 150:
            raise InvalidInput(f"group name {shown(value)} is not valid; use 1-150 characters")
        cleaned.add(value.strip())
    return tuple(sorted(cleaned))


def file_name(value: object) -> str:
    """A bare file name: no directories, no ``..``, no control characters, at most ``MAX_FILE_NAME_BYTES``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"file name {value!r} is empty; give the name of the uploaded file")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidInput(f"file name {value[:60]!r} is not valid Unicode text; rename the file") from error
    if size > MAX_FILE_NAME_BYTES:
        raise InvalidInput(
            f"file name {value[:60]!r}… takes {size} bytes in UTF-8; the limit is {MAX_FILE_NAME_BYTES} bytes "
            "(file systems allow 255 and storage adds a suffix while writing); rename the file"
        )
    if "/" in value or "\\" in value or value in (".", "..") or _CONTROL_CHARACTERS.search(value):
        raise InvalidInput(
            f"file name {value!r} is not a plain file name; remove directories, '..' and control characters"
        )
    return value


def count(value: object, field: str) -> int:
    """A non-negative integer (bytes, rows) of at most 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidInput(f"{field} must be a non-negative integer up to {MAX_COUNT}, got {shown(value)}")
    return value


def optional_count(value: object, field: str) -> int | None:
    """``None`` or a non-negative integer."""
    return None if value is None else count(value, field)


def release_year(value: object) -> int | None:
    """``None`` or a plausible year (1900–2200)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1900 <= value <= 2200:
        raise InvalidInput(f"release_year must be a year such as 2025, got {shown(value)}")
    return value


def json_object(value: object, field: str) -> dict[str, Any]:
    """A dict that serialises to strict JSON (no NaN, string keys)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except RecursionError as error:
        raise InvalidInput(f"{field} is nested too deeply to be stored as JSON") from error
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{field} is not valid JSON: {error}") from error
    return value


def reference(value: object, what: str) -> int | str:
    """An id (an int up to ``MAX_ID``) or a name (non-empty str) of a record.

    Ids reach the registry from JSON bodies, query strings and other records, not only from checked URL paths;
    an id no database column can hold is refused here, before a query would overflow.
    """
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise InvalidInput(f"{what} must be given by id or name, got {shown(value)}")
    return filter_text(value, what) if isinstance(value, str) else record_id(value, what)


def record_id(value: object, what: str) -> int:
    """An id to look a record up by: an int the database's id columns hold (negative ones find nothing)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} id must be an integer, got {shown(value)}")
    if not -MAX_ID <= value <= MAX_ID:
        raise InvalidInput(f"{what} id {shown(value)} is out of range; ids are integers up to {MAX_ID}")
    return value


def product_status(value: object) -> ProductStatus:
    """A ``ProductStatus`` from the enum, its code (``1``) or its label (``"Published"``)."""
    try:
        if isinstance(value, str):
            return ProductStatus[value.strip().upper()]
        if not isinstance(value, bool):
            return ProductStatus(value)
    except (KeyError, ValueError):
        pass
    known = ", ".join(f"{status.value} {status.label}" for status in ProductStatus)
    raise InvalidInput(f"product status {shown(value)} is unknown; use one of {known}")


def file_role(value: object) -> FileRole:
    """A ``FileRole`` from the enum, its code (``0``) or its label (``"main"``)."""
    try:
        if isinstance(value, str):
            return FileRole[value.strip().upper()]
        if not isinstance(value, bool):
            return FileRole(value)
    except (KeyError, ValueError):
        pass
    known = ", ".join(f"{role.value} {role.label}" for role in FileRole)
    raise InvalidInput(f"file role {shown(value)} is unknown; use one of {known}")


def process_status(value: object) -> ProcessStatus:
    """A ``ProcessStatus`` from the enum or its label (``"Running"``, any case)."""
    if isinstance(value, str):
        for status in ProcessStatus:
            if status.value.lower() == value.strip().lower():
                return status
    known = ", ".join(status.value for status in ProcessStatus)
    raise InvalidInput(f"process status {shown(value)} is unknown; use one of {known}")
