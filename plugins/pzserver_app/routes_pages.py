"""Routes of the pages: official (Rubin) and user products, a product, the upload wizard, a validation report.

Every page depends on ``current_user`` like the API; for a page, a failed login becomes a redirect to Airflow's
login and other errors become error pages (``app``'s handlers ask ``rendering.is_page_request``). These pages
only read: the JavaScript they load makes changes through the REST API. The pipeline and process pages are in
``routes_process_pages``, whose two forms (a pipeline request, the stop button) post to the pages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import QueryParams

from pzlib.registry import (
    MANDATORY_ALIASES,
    SYSTEM_COLUMNS,
    FileRole,
    PermissionDenied,
    User,
)
from pzlib.registry.reports import METRICS_FILE, REPORT_PRODUCT_TYPE, read_report, report_plot
from pzlib.registry.schema import PZ_CODE_FORBIDDEN_TYPES
from pzserver_app.auth import CurrentUser, current_user
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import INTEGER, TEXT, described
from pzserver_app.queries import listing_query
from pzserver_app.rendering import STATIC, Links, render
from pzserver_app.routes_products import product_reference

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

LISTING_PAGE_SIZE = 25
"""Products per page of a listing."""
PREVIEW_PAGE_ROWS = 25
"""Rows per page of a product's table preview."""

_STATUS_CHOICES = [("1", "Published"), ("0", "Registering"), ("3", "Processing"), ("9", "Failed"), ("", "Any")]
_LISTING_QUERY = described(query={
    **dict.fromkeys(("search", "product_type", "release", "user", "status", "deleted"), TEXT),
    "page": INTEGER,
    "page_size": INTEGER,
})


@router.get("/")
def home(request: Request, user: CurrentUser) -> Response:
    return RedirectResponse(Links(request).ui("products/official/"), status_code=307)


@router.get("/products/official/", openapi_extra=_LISTING_QUERY)
def official_products(request: Request, user: CurrentUser, context: Context) -> Response:
    """Official products (Rubin's), with search and filters."""
    return _listing(request, user, context, official=True)


@router.get("/products/user/", openapi_extra=_LISTING_QUERY)
def user_products(request: Request, user: CurrentUser, context: Context) -> Response:
    """Products shared by users, with search and filters."""
    return _listing(request, user, context, official=False)


@router.get("/products/{product}/", openapi_extra=described(query={"preview_page": INTEGER}))
def product_page(product: str, request: Request, user: CurrentUser, context: Context) -> Response:
    """A product: metadata, files, columns and their associations, a page of its table preview, download, share,
    delete."""
    record = context.registry.get_product(user, product_reference(product))
    files = context.registry.list_files(user, record.id)
    return render(
        request,
        "product.html",
        user,
        section="official" if record.official else "user",
        product=record,
        files=files,
        columns=context.registry.list_contents(user, record.id),
        main=context.files.main_file(user, record.id),
        system_columns={column.alias.lower(): column for column in SYSTEM_COLUMNS},
        may_change=record.can_be_changed_by(user),
        has_report=record.product_type_name == REPORT_PRODUCT_TYPE
        and any(stored.name == METRICS_FILE for stored in files),
        preview=_preview_page(request, user, context, record.id),
    )


@router.get("/products/{product}/report/")
def report_page(product: str, request: Request, user: CurrentUser, context: Context) -> Response:
    """The validation report of a ``validation_results`` product: metrics tables and plots."""
    report = read_report(context.files, user, product_reference(product))
    return render(
        request, "report.html", user, section="official" if report.product.official else "user", report=report
    )


@router.get("/products/{product}/report/{plot}")
def report_plot_image(product: str, plot: str, user: CurrentUser, context: Context) -> Response:
    """One PNG plot of a validation report, shown inline."""
    content = report_plot(context.files, user, product_reference(product), plot)
    return Response(
        content,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/upload/", openapi_extra=described(query={"product": TEXT}))
def upload_wizard(request: Request, user: CurrentUser, context: Context) -> Response:
    """The upload wizard: describe, upload the files, associate columns, publish. ``?product=`` resumes an
    upload of the user's."""
    resumed = None
    if request.query_params.get("product"):
        record = context.registry.get_product(user, product_reference(request.query_params["product"]))
        if not record.can_be_changed_by(user):
            raise PermissionDenied(f"product {record.internal_name} belongs to {record.owner_username}")
        resumed = {
            "id": record.id,
            "display_name": record.display_name,
            "product_type": record.product_type_name,
            "release": record.release_id,
            "pz_code": record.pz_code,
            "description": record.description,
            "official": record.official,
            "has_main_file": bool(context.registry.list_files(user, record.id, FileRole.MAIN)),
        }
    product_types = context.registry.list_product_types()
    wizard = {
        "upload_limit_bytes": context.files.upload_limit_bytes,
        "mandatory_aliases": MANDATORY_ALIASES,
        "pz_code_forbidden_types": sorted(PZ_CODE_FORBIDDEN_TYPES),
        "system_columns": [
            {"alias": column.alias, "ucd": column.ucd, "usual_names": list(column.usual_names)}
            for column in SYSTEM_COLUMNS
        ],
        "product": resumed,
    }
    return render(
        request,
        "upload.html",
        user,
        section="upload",
        product_types=product_types,
        releases=context.registry.list_releases(user),
        system_columns=SYSTEM_COLUMNS,
        wizard=wizard,
    )


@router.get("/static/{name}")
def static_file(name: str, user: CurrentUser) -> Response:
    """Stylesheet, scripts and icons of the pages."""
    return STATIC.response(name)


def _preview_page(request: Request, user: User, context: ServerContext, product_id: int) -> dict[str, Any] | None:
    """The preview page ``?preview_page=`` asks for, read from the preview file; a page past the last (or not a
    page number) shows the nearest page, saying so. None when the product has no main table."""
    asked = request.query_params.get("preview_page")
    page = int(asked) if asked is not None and asked.isdigit() and len(asked) < 7 else 1
    found = context.files.preview_rows(user, product_id, offset=(max(page, 1) - 1) * PREVIEW_PAGE_ROWS,
                                       limit=PREVIEW_PAGE_ROWS)
    if found is None:
        return None
    last_page = max((found.preview_rows + PREVIEW_PAGE_ROWS - 1) // PREVIEW_PAGE_ROWS, 1)
    shown = min(max(page, 1), last_page)
    if shown != max(page, 1):  # past the last page: read the last
        found = context.files.preview_rows(user, product_id, offset=(shown - 1) * PREVIEW_PAGE_ROWS,
                                           limit=PREVIEW_PAGE_ROWS)
    links = Links(request)
    first_row = (shown - 1) * PREVIEW_PAGE_ROWS + 1

    def page_link(number: int) -> str:
        return links.ui(f"products/{product_id}/", preview_page=number) + "#preview-section"

    return {
        "rows": found,
        "page": shown,
        "last_page": last_page,
        "first_row": first_row,
        "last_row": first_row + len(found.rows) - 1,
        "notice": None if asked is None or str(shown) == asked
        else f"There is no preview page {asked[:20]!r}; showing page {shown} of {last_page}.",
        "previous": page_link(shown - 1) if shown > 1 else None,
        "next": page_link(shown + 1) if shown < last_page else None,
    }


def _listing(request: Request, user: User, context: ServerContext, *, official: bool) -> Response:
    # ``deleted`` names the product the product page just deleted, for the notice.
    params = QueryParams([(name, value) for name, value in request.query_params.multi_items() if name != "deleted"])
    query = listing_query(
        params, official=official, page_size=LISTING_PAGE_SIZE, max_terms=context.settings.search_terms_limit
    )
    found = context.registry.list_products(
        user, query.filters, page=query.page, page_size=query.page_size, order_by=query.ordering
    )
    form = {name: params.get(name, "") for name in ("search", "product_type", "release", "user")}
    last_page = max((found.count + found.page_size - 1) // found.page_size, 1)
    links = Links(request)
    section = "official" if official else "user"
    # Blank fields stay out of the page links, except the status, where blank means any status.
    page_params: dict[str, Any] = {name: value or None for name, value in form.items()}
    page_params.update(status=params.get("status", "1"), page_size=params.get("page_size"))
    return render(
        request,
        "products.html",
        user,
        section=section,
        official=official,
        found=found,
        form={**form, "status": page_params["status"]},
        status_choices=_STATUS_CHOICES,
        product_types=context.registry.list_product_types(),
        releases=context.registry.list_releases(user),
        previous_page=links.ui(f"products/{section}/", **page_params, page=found.page - 1)
        if found.page > 1 else None,
        next_page=links.ui(f"products/{section}/", **page_params, page=found.page + 1)
        if found.page < last_page else None,
        last_page=last_page,
        deleted=request.query_params.get("deleted"),
    )

