"""Routes of products: list (filters, search, ordering, pages), create, read, change, publish, delete, register
the main table's columns, describe the main file and read the table's rows."""

from __future__ import annotations

import re
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from pzlib.registry import InvalidInput
from pzserver_app import schemas
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.bodies import (
    check_fields,
    read_fields,
    to_bool,
    to_int,
    to_optional_reference,
    to_optional_text,
    to_reference,
)
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import BOOLEAN, ID_OR_NAME, INTEGER, TEXT, described, nullable
from pzserver_app.queries import check_params, page_params, product_filter_names, product_query, products_options

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

_PRODUCT_FIELDS = {
    "display_name": TEXT,
    "product_type": ID_OR_NAME,
    "release": nullable(ID_OR_NAME),
    "official_product": BOOLEAN,
    "pz_code": nullable(TEXT),
    "description": nullable(TEXT),
    "status": INTEGER,
    "release_year": nullable(INTEGER),
}
_CREATE_FIELDS = set(_PRODUCT_FIELDS)
_UPDATE_FIELDS = _CREATE_FIELDS - {"product_type"}
_PAGES = {"page": INTEGER, "page_size": INTEGER}
_UPDATE_ARGUMENTS = {"official_product": "official"}
_ID = re.compile(r"[0-9]{1,18}")


def product_reference(product: str) -> int | str:
    """A product path segment: an id, or an internal name."""
    return int(product) if _ID.fullmatch(product) else product


@router.options("/products/")
def describe_products(user: CurrentUser) -> dict[str, Any]:
    """Filters, search fields and orderings of the listing (the client validates its filters with them)."""
    return products_options()


@router.get(
    "/products/",
    openapi_extra=described(query={**dict.fromkeys([*product_filter_names(), "search", "ordering"], TEXT), **_PAGES}),
)
def list_products(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    query = product_query(request.query_params, context.settings.search_terms_limit)
    found = context.registry.list_products(
        user, query.filters, page=query.page, page_size=query.page_size, order_by=query.ordering
    )
    results = [schemas.product(record, user) for record in found.results]
    return schemas.page(request, found.count, results, found.page, found.page_size)


@router.post(
    "/products/",
    status_code=201,
    openapi_extra=described(fields=_PRODUCT_FIELDS, required=("display_name", "product_type")),
)
async def create_product(request: Request, user: ChangingUser, context: Context) -> dict[str, Any]:
    """A new product, ``Registering`` until its owner publishes it."""
    fields = await read_fields(request)
    check_fields(fields, _CREATE_FIELDS, "a new product")
    for required in ("display_name", "product_type"):
        if fields.get(required) in (None, ""):
            raise InvalidInput(f"{required} is required to create a product")
    if "status" in fields and to_int(fields["status"], "status") != 0:
        raise InvalidInput("a new product starts with status 0 (Registering); publish it afterwards with status 1")
    create = partial(
        context.registry.create_product,
        user,
        display_name=fields["display_name"],
        product_type=to_reference(fields["product_type"], "product_type"),
        release=to_optional_reference(fields.get("release"), "release"),
        official=to_bool(fields.get("official_product", False), "official_product"),
        pz_code=to_optional_text(fields.get("pz_code"), "pz_code"),
        description=to_optional_text(
            fields.get("description"), "description", context.settings.description_limit_chars
        ) or "",
        release_year=_optional_year(fields.get("release_year")),
    )
    return schemas.product(await run_in_threadpool(create), user)


@router.get("/products/{product}/")
def get_product(product: str, user: CurrentUser, context: Context) -> dict[str, Any]:
    return schemas.product(context.registry.get_product(user, product_reference(product)), user)


@router.patch(
    "/products/{product}/",
    openapi_extra=described(fields={name: _PRODUCT_FIELDS[name] for name in sorted(_UPDATE_FIELDS)}),
)
async def update_product(product: str, request: Request, user: ChangingUser, context: Context) -> dict[str, Any]:
    """Change fields; ``status=1`` publishes (406 naming the mandatory columns not associated yet)."""
    fields = await read_fields(request)
    check_fields(fields, _UPDATE_FIELDS, "a product")
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        argument = _UPDATE_ARGUMENTS.get(name, name)
        if name == "official_product":
            changes[argument] = to_bool(value, name)
        elif name == "status":
            changes[argument] = to_int(value, name)
        elif name == "release":
            changes[argument] = to_optional_reference(value, name)
        elif name == "release_year":
            changes[argument] = _optional_year(value)
        elif name == "description":
            changes[argument] = to_optional_text(value, name, context.settings.description_limit_chars)
        else:
            changes[argument] = to_optional_text(value, name)
    update = partial(context.registry.update_product, user, product_reference(product), **changes)
    return schemas.product(await run_in_threadpool(update), user)


@router.delete("/products/{product}/", status_code=204)
def delete_product(product: str, user: ChangingUser, context: Context) -> Response:
    """Remove the product with its files, columns and download archives."""
    context.files.delete_product(user, product_reference(product))
    return Response(status_code=204)


@router.get("/products/{product}/registry/")
def register_product(product: str, user: ChangingUser, context: Context) -> dict[str, Any]:
    """Record the main table's columns as the product's contents (associations already made are kept)."""
    reference = product_reference(product)
    columns = context.files.register(user, reference)
    info = context.files.main_file(user, reference)
    return {
        "product": context.registry.get_product(user, reference).id,
        "n_rows": info.file.n_rows if info else None,
        "columns": [schemas.content(column) for column in columns],
    }


@router.get("/products/{product}/main_file_info/")
def main_file_info(product: str, user: CurrentUser, context: Context) -> dict[str, Any]:
    """The product and its main file: name, type, size, rows, columns and their associations, preview."""
    reference = product_reference(product)
    record = context.registry.get_product(user, reference)
    info = context.files.main_file(user, record.id)
    columns = context.registry.list_contents(user, record.id)
    return {**schemas.product(record, user), "main_file": schemas.main_file(info, columns)}


@router.get("/products/{product}/read_data/", openapi_extra=described(query=_PAGES))
def read_data(product: str, request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    """A page of the main table's rows, as JSON objects."""
    check_params(request.query_params, ("page", "page_size"))
    page_number, page_size = page_params(request.query_params)
    rows = context.files.read_rows(
        user, product_reference(product), offset=(page_number - 1) * page_size, limit=page_size
    )
    return {**schemas.page(request, rows.count, list(rows.rows), page_number, page_size), "columns": list(rows.columns)}


def _optional_year(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_int(value, "release_year")
