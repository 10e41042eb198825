"""Routes of the reference data: the API root, product types, releases, users and pipelines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from pzlib.registry import InvalidInput
from pzlib.registry.pipelines import get_pipeline, list_pipelines
from pzserver_app import schemas
from pzserver_app.auth import CurrentUser, current_user
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import TEXT, described
from pzserver_app.queries import RecordId, check_params

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

ENTITIES = (
    "product-types",
    "releases",
    "users",
    "products",
    "product-files",
    "product-contents",
    "pipelines",
    "processes",
)

_TYPE_ORDERINGS = {"order": "order", "name": "name", "display_name": "display_name", "id": "id"}


@router.get("/")
def api_root(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The entities of the API (the client checks its token with this call)."""
    check_params(request.query_params, ())
    return {entity: f"{request.url}{entity}/" for entity in ENTITIES}


@router.get("/product-types/", openapi_extra=described(query={"name": TEXT, "ordering": TEXT}))
def product_types(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    check_params(request.query_params, ("name", "ordering"))
    records = list(context.registry.list_product_types())
    if "name" in request.query_params:
        records = [record for record in records if record.name == request.query_params["name"]]
    ordering = request.query_params.get("ordering", "order")
    key = _TYPE_ORDERINGS.get(ordering.removeprefix("-"))
    if key is None:
        raise InvalidInput(f"cannot order product types by {ordering!r}; use one of {', '.join(_TYPE_ORDERINGS)}")
    records.sort(key=lambda record: getattr(record, key), reverse=ordering.startswith("-"))
    return schemas.whole(request, [schemas.product_type(record) for record in records])


@router.get("/product-types/{type_id}/")
def product_type(type_id: RecordId, user: CurrentUser, context: Context) -> dict[str, Any]:
    return schemas.product_type(context.registry.get_product_type(type_id))


@router.get("/releases/", openapi_extra=described(query={"name": TEXT}))
def releases(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    check_params(request.query_params, ("name",))
    records = context.registry.list_releases(user)
    if "name" in request.query_params:
        records = tuple(record for record in records if record.name == request.query_params["name"])
    return schemas.whole(request, [schemas.release(record) for record in records])


@router.get("/releases/{release_id}/")
def release(release_id: RecordId, user: CurrentUser, context: Context) -> dict[str, Any]:
    return schemas.release(context.registry.get_release(user, release_id))


@router.get("/users/", openapi_extra=described(query={"username": TEXT}))
def users(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    check_params(request.query_params, ("username",))
    records = context.registry.list_users()
    if "username" in request.query_params:
        records = tuple(record for record in records if record.username == request.query_params["username"])
    return schemas.whole(request, [schemas.user(record) for record in records])


@router.get("/users/me/")
def myself(user: CurrentUser) -> dict[str, Any]:
    """The authenticated user, with the admin flag and access groups."""
    return schemas.user(user, itself=True)


@router.get("/users/{user_id}/")
def user_by_id(user_id: RecordId, user: CurrentUser, context: Context) -> dict[str, Any]:
    return schemas.user(context.registry.get_user(user_id))


@router.get("/pipelines/", openapi_extra=described(query={"name": TEXT}))
def pipelines(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    check_params(request.query_params, ("name",))
    type_ids = _type_ids(context)
    found = list_pipelines(request.query_params.get("name"))
    return schemas.whole(request, [schemas.pipeline(record, type_ids) for record in found])


@router.get("/pipelines/{pipeline_id}/")
def pipeline(pipeline_id: RecordId, user: CurrentUser, context: Context) -> dict[str, Any]:
    return schemas.pipeline(get_pipeline(pipeline_id), _type_ids(context))


def _type_ids(context: ServerContext) -> dict[str, int]:
    return {record.name: record.id for record in context.registry.list_product_types()}
