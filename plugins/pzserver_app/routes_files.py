"""Routes of product files (multipart upload, list, read, delete) and product contents (column association)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from pzlib.registry import UNSET, InvalidInput
from pzserver_app import schemas
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.bodies import check_fields, read_fields, read_upload, to_optional_text, to_reference
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import FILE, ID_OR_NAME, TEXT, described, nullable
from pzserver_app.queries import RecordId, check_params
from pzserver_app.routes_products import product_reference

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

_UPLOAD_FIELDS = {"product": ID_OR_NAME, "role": ID_OR_NAME, "type": TEXT}
_CONTENT_FIELDS = {"ucd": nullable(TEXT), "alias": nullable(TEXT)}


@router.get("/product-files/", openapi_extra=described(query=dict.fromkeys(("product_id", "product", "role"), TEXT)))
def list_files(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    """Files of one product (``?product_id=`` or ``?product=``), main file first."""
    check_params(request.query_params, ("product_id", "product", "role"))
    product = request.query_params.get("product_id") or request.query_params.get("product")
    if not product:
        raise InvalidInput("give the product whose files to list: product-files/?product_id=<id>")
    reference = product_reference(product)
    record = context.registry.get_product(user, reference)
    role = request.query_params.get("role")
    files = context.registry.list_files(user, record.id, to_reference(role, "role") if role else None)
    may_change = record.can_be_changed_by(user)
    return schemas.whole(request, [schemas.product_file(stored, may_change) for stored in files])


@router.post(
    "/product-files/",
    status_code=201,
    openapi_extra=described(fields=_UPLOAD_FIELDS, files={"file": FILE}, required=("product", "file"),
                            multipart_only=True),
)
async def upload_file(request: Request, user: ChangingUser, context: Context) -> dict[str, Any]:
    """Upload one file (field ``file``) to a product as its ``main`` (0), ``description`` (1) or
    ``auxiliary`` (2) file; a main table is inspected on arrival."""
    upload = await read_upload(request)
    try:
        check_fields(upload.fields, set(_UPLOAD_FIELDS), "a file upload")
        if set(upload.files) != {"file"}:
            raise InvalidInput("send exactly one file, in the multipart field 'file'")
        if upload.fields.get("product") in (None, ""):
            raise InvalidInput("product is required: the id of the product the file belongs to")
        sent = upload.files["file"]
        store = partial(
            context.files.upload,
            user,
            to_reference(upload.fields["product"], "product"),
            name=sent.filename or "",
            content=sent.file,
            role=to_reference(upload.fields.get("role", 0), "role"),
            mime_type=to_optional_text(upload.fields.get("type"), "type") or sent.content_type,
        )
        stored = await run_in_threadpool(store)
    finally:
        await upload.close()
    return schemas.product_file(stored, may_change=True)


@router.get("/product-files/{file_id}/")
def get_file(file_id: RecordId, user: CurrentUser, context: Context) -> dict[str, Any]:
    stored = context.registry.get_file(user, file_id)
    record = context.registry.get_product(user, stored.product_id)
    return schemas.product_file(stored, record.can_be_changed_by(user))


@router.delete("/product-files/{file_id}/", status_code=204)
def delete_file(file_id: RecordId, user: ChangingUser, context: Context) -> Response:
    context.files.delete_file(user, file_id)
    return Response(status_code=204)


@router.get("/product-contents/", openapi_extra=described(query=dict.fromkeys(("product", "product_id"), TEXT)))
def list_contents(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    """Columns of one product (``?product=``), in table order, with their associations."""
    check_params(request.query_params, ("product", "product_id"))
    product = request.query_params.get("product") or request.query_params.get("product_id")
    if not product:
        raise InvalidInput("give the product whose columns to list: product-contents/?product=<id>")
    columns = context.registry.list_contents(user, product_reference(product))
    return schemas.whole(request, [schemas.content(column) for column in columns])


@router.patch("/product-contents/{content_id}/", openapi_extra=described(fields=_CONTENT_FIELDS))
async def associate_column(
    content_id: RecordId, request: Request, user: ChangingUser, context: Context
) -> dict[str, Any]:
    """Associate a column with a UCD and a system column (alias); blank values clear them."""
    fields = await read_fields(request)
    check_fields(fields, set(_CONTENT_FIELDS), "a product column")
    change = partial(
        context.registry.update_content,
        user,
        content_id,
        ucd=to_optional_text(fields["ucd"], "ucd") if "ucd" in fields else UNSET,
        alias=to_optional_text(fields["alias"], "alias") if "alias" in fields else UNSET,
    )
    return schemas.content(await run_in_threadpool(change))
