"""Query strings and path ids: pagination and the product filters of LIneA's API, read into ``pzlib.registry``
values.

Filters follow LIneA's PZ Server: exact filters take comma-separated values (any of them matches); the text
filters ``product_name``, ``product_type_name``, ``release_name`` and ``uploaded_by`` take words separated by
commas or spaces that must all be found (any of them with the ``__or`` form), case-insensitively; ``search``
looks in the product and owner names; ``ordering`` sorts. An unknown parameter or a malformed value is a 400
that names it, never an ignored filter. One query filters by at most ``search_terms_limit`` values and words
(a setting), each at most ``TERM_LENGTH`` characters; a page lies within the 64-bit range of the database.
Record ids, in paths (``RecordId``) and in filters, are at most ``MAX_ID``: a larger one is a 400 before any
query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Path
from starlette.datastructures import QueryParams

from pzlib.registry import MAX_PAGE_SIZE, PRODUCT_ORDERINGS, InvalidInput, ProductFilter, Terms
from pzlib.registry.checks import MAX_COUNT, MAX_ID, clipped, shown
from pzlib.registry.schema import NAME_LENGTH

DEFAULT_PAGE_SIZE = 100
"""Records per page when ``page_size`` is not given, as LIneA's API."""

TERM_LENGTH = NAME_LENGTH
"""Longest filter value or search word: no name the filters look in is longer."""

RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="Id of the record.")]
"""A path parameter that is a record id: a positive integer up to ``MAX_ID``, which the database holds."""

_EXACT_FILTERS = {
    "id": ("ids", "product ids, comma-separated"),
    "internal_name": ("internal_name", "internal names, comma-separated"),
    "display_name": ("display_name", "display names, comma-separated"),
    "product_type": ("product_type", "product type ids or names, comma-separated"),
    "release": ("release", "release ids or names, comma-separated"),
    "status": ("status", "status codes (0 Registering, 1 Published, 2 Deleted, 3 Processing, 9 Failed)"),
    "user": ("owner", "owner ids or usernames, comma-separated"),
}
_TEXT_FILTERS = {
    "product_name": "words searched in the product name",
    "product_type_name": "words searched in the product type's name",
    "release_name": "words searched in the release's name",
    "uploaded_by": "words searched in the owner's username and names",
}
_BOOLEAN_FILTERS = {
    "official_product": ("official", "true: official products only; false: user products only"),
    "release__isnull": ("without_release", "true: products of no release; false: products of a release"),
}
_PAGINATION = ("page", "page_size")
_WORD_SEPARATORS = re.compile(r"[,\s]+")
_DIGITS = re.compile(r"[0-9]{1,18}")
_ALL_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ProductQuery:
    """A products listing request."""

    filters: ProductFilter
    page: int
    page_size: int
    ordering: str


def product_filter_names() -> list[str]:
    """Every filter parameter of ``GET products/`` (without ``search``, ``ordering`` and pagination)."""
    text = [name for base in _TEXT_FILTERS for name in (base, f"{base}__or")]
    return [*_EXACT_FILTERS, *text, *_BOOLEAN_FILTERS]


def products_options() -> dict[str, Any]:
    """The ``OPTIONS products/`` metadata: filters, search fields and orderings, as the client reads them."""
    filter_classes = [
        {"name": name, "type": "exact", "help_text": help_text} for name, (_, help_text) in _EXACT_FILTERS.items()
    ]
    for base, help_text in _TEXT_FILTERS.items():
        filter_classes.append({"name": base, "type": "all words", "help_text": help_text})
        filter_classes.append({"name": f"{base}__or", "type": "any word", "help_text": help_text})
    filter_classes += [
        {"name": name, "type": "boolean", "help_text": help_text}
        for name, (_, help_text) in _BOOLEAN_FILTERS.items()
    ]
    return {
        "name": "Product List",
        "description": "Products visible to you; every filter is optional.",
        "renders": ["application/json"],
        "parses": ["application/json", "multipart/form-data", "application/x-www-form-urlencoded"],
        "filter_classes": filter_classes,
        "filterset": product_filter_names(),
        "search": ["display_name", "uploaded_by"],
        "ordering": [*PRODUCT_ORDERINGS, *(f"-{field}" for field in PRODUCT_ORDERINGS)],
        "pagination": {"page_size": DEFAULT_PAGE_SIZE, "max_page_size": MAX_PAGE_SIZE},
    }


def product_query(params: QueryParams, max_terms: int) -> ProductQuery:
    """Filters, page and ordering of a ``GET products/`` request.

    Parameters
    ----------
    params : QueryParams
        The query string.
    max_terms : int
        Most filter values and words, all filters together (``Settings.search_terms_limit``).

    Raises
    ------
    InvalidInput
        Unknown parameter, malformed value, or more or longer terms than allowed.
    """
    allowed = {*product_filter_names(), "search", "ordering", *_PAGINATION}
    check_params(params, allowed)
    _check_terms(params, max_terms)
    values: dict[str, Any] = {}
    for name, (field, _) in _EXACT_FILTERS.items():
        if name in params:
            items = _items(params, name)
            if name == "id":
                values[field] = tuple(_record_id(item, name) for item in items)
            elif name == "status":
                values[field] = tuple(_integer(item, name) for item in items)
            elif name in ("product_type", "release", "user"):
                values[field] = tuple(_record_id(item, name) if _ALL_DIGITS.fullmatch(item) else item for item in items)
            else:
                values[field] = tuple(items)
    for base in _TEXT_FILTERS:
        for name, any_of in ((base, False), (f"{base}__or", True)):
            if name in params:
                words = tuple(word for word in _WORD_SEPARATORS.split(params[name]) if word)
                values[base] = Terms(words, any_of=any_of)
    for name, (field, _) in _BOOLEAN_FILTERS.items():
        if name in params:
            values[field] = _boolean(params[name], name)
    if params.get("search", "").strip():
        values["search"] = params["search"].strip()
    page, page_size = page_params(params)
    ordering = params.get("ordering", "").strip() or "-created_at"
    return ProductQuery(ProductFilter(**values), page, page_size, ordering)


def listing_query(params: QueryParams, *, official: bool, page_size: int, max_terms: int) -> ProductQuery:
    """The products a listing page asks for: the API's filters from its search form, on official or on user
    products only.

    Blank form fields do not filter; ``official_product`` is the page's own, not the form's; without a
    ``status`` field the page shows published products (an empty ``status`` shows every status).

    Raises
    ------
    InvalidInput
        As ``product_query``.
    """
    values = [
        (name, value) for name, value in params.multi_items() if value.strip() and name != "official_product"
    ]
    if "status" not in params:
        values.append(("status", "1"))
    if "page_size" not in params:
        values.append(("page_size", str(page_size)))
    query = product_query(QueryParams(values), max_terms)
    return replace(query, filters=replace(query.filters, official=official))


def page_params(params: QueryParams) -> tuple[int, int]:
    """(page, page_size) of a listing request.

    Raises
    ------
    InvalidInput
        A value that is not a positive integer, a page size over the maximum, or a page past any listing.
    """
    page = _integer(params.get("page", "1"), "page")
    page_size = _integer(params.get("page_size", str(DEFAULT_PAGE_SIZE)), "page_size")
    if page < 1:
        raise InvalidInput(f"page must be 1 or more, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    if (page - 1) * page_size > MAX_COUNT:
        raise InvalidInput(f"page {page} of {page_size} records lies past the end of any listing")
    return page, page_size


def check_params(params: QueryParams, allowed: set[str] | tuple[str, ...]) -> None:
    """Raise ``InvalidInput`` naming a query parameter outside ``allowed``."""
    unknown = sorted(set(params.keys()) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"unknown query parameter(s) {', '.join(clipped(name) for name in unknown[:5])}; "
            f"use {', '.join(sorted(allowed)) or 'none'}"
        )


def _check_terms(params: QueryParams, max_terms: int) -> None:
    """Refuse a query with more filter values and words than ``max_terms``, or a longer one than ``TERM_LENGTH``
    (each is a condition of the database query)."""
    terms = 0
    for name, value in params.multi_items():
        if name in ("ordering", *_PAGINATION):
            continue
        if name == "search":
            words = [value.strip()]
        elif name.removesuffix("__or") in _TEXT_FILTERS:
            words = [word for word in _WORD_SEPARATORS.split(value) if word]
        else:
            words = [item.strip() for item in value.split(",")]
        terms += len(words)
        if terms > max_terms:
            raise InvalidInput(
                f"the query filters by more than {max_terms} values and words; narrow it down "
                "(the limit is PZ_SEARCH_TERMS_LIMIT)"
            )
        for word in words:
            if len(word) > TERM_LENGTH:
                raise InvalidInput(f"{name} holds a term of {len(word)} characters; the limit is {TERM_LENGTH}")


def _items(params: QueryParams, name: str) -> list[str]:
    items = [item.strip() for value in params.getlist(name) for item in value.split(",") if item.strip()]
    if not items:
        raise InvalidInput(f"filter {name} is empty; give at least one value or leave it out")
    return items


def _integer(text: str, name: str) -> int:
    if not _DIGITS.fullmatch(text.strip()):
        raise InvalidInput(f"{name} must be a non-negative integer, got {shown(text)}")
    return int(text.strip())


def _record_id(text: str, name: str) -> int:
    digits = text.strip()
    if _ALL_DIGITS.fullmatch(digits) and (len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID):
        raise InvalidInput(f"{name} {shown(digits)} is out of range; ids are integers up to {MAX_ID}")
    return _integer(digits, name)


def _boolean(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{name} must be true or false, got {shown(text)}")
