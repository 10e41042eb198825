"""Registry records as the JSON of LIneA's PZ Server, field for field what the ``pzserver`` client reads.

As on LIneA's server, ``product_type_name`` and ``release_name`` carry display names and
``product_type_internal_name`` the type's name; ``uploaded_by`` is the owner's username. Listings are pages of
``{count, next, previous, results}``. URLs handed to clients (downloads) are relative to the API root, which
the client resolves against its base URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from pzlib.registry import (
    Process,
    Product,
    ProductContent,
    ProductFile,
    ProductType,
    Release,
    User,
)
from pzlib.registry.archives import Archive
from pzlib.registry.pipelines import Pipeline
from pzlib.registry.registration import MainFileInfo


def timestamp(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return None if moment is None else moment.isoformat()


def page(request: Request, count: int, results: list[Any], page_number: int, page_size: int) -> dict[str, Any]:
    """One page of a listing with links to its neighbours."""
    last_page = max((count + page_size - 1) // page_size, 1)
    return {
        "count": count,
        "next": str(request.url.include_query_params(page=page_number + 1)) if page_number < last_page else None,
        "previous": str(request.url.include_query_params(page=page_number - 1)) if page_number > 1 else None,
        "results": results,
    }


def whole(request: Request, results: list[Any]) -> dict[str, Any]:
    """A listing that fits one page."""
    return page(request, len(results), results, 1, max(len(results), 1))


def product(record: Product, user: User) -> dict[str, Any]:
    may_change = record.can_be_changed_by(user)
    return {
        "id": record.id,
        "internal_name": record.internal_name,
        "display_name": record.display_name,
        "product_type": record.product_type_id,
        "product_type_name": record.product_type_display_name,
        "product_type_internal_name": record.product_type_name,
        "release": record.release_id,
        "release_name": record.release_display_name,
        "release_internal_name": record.release_name,
        "uploaded_by": record.owner_username,
        "official_product": record.official,
        "pz_code": record.pz_code,
        "description": record.description,
        "status": int(record.status),
        "status_name": record.status.label,
        "release_year": record.release_year,
        "provenance": record.provenance,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "is_owner": record.owner_id == user.id,
        "can_update": may_change,
        "can_delete": may_change,
    }


def product_file(record: ProductFile, may_change: bool) -> dict[str, Any]:
    return {
        "id": record.id,
        "product": record.product_id,
        "file": f"product-files/{record.id}/download/",
        "role": int(record.role),
        "role_name": record.role.label,
        "name": record.name,
        "type": record.mime_type,
        "size": record.size,
        "n_rows": record.n_rows,
        "extension": record.extension,
        "is_directory": record.is_directory,
        "checksum": record.checksum,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "can_delete": may_change,
    }


def content(record: ProductContent) -> dict[str, Any]:
    return {
        "id": record.id,
        "product": record.product_id,
        "column_name": record.column_name,
        "ucd": record.ucd,
        "alias": record.alias,
        "order": record.order,
    }


def main_file(info: MainFileInfo | None, columns: tuple[ProductContent, ...]) -> dict[str, Any]:
    """The ``main_file`` object of ``main_file_info/``; empty when the product has no main file."""
    if info is None:
        return {}
    stored = info.file
    described: dict[str, Any] = {
        "id": stored.id,
        "name": stored.name,
        "type": stored.mime_type,
        "extension": stored.extension,
        "size": stored.size,
        "n_rows": stored.n_rows,
        "is_directory": stored.is_directory,
        "associated_columns": [content(column) for column in columns],
    }
    if info.table is not None:
        described["format"] = info.table.format
        described["preview"] = list(info.table.preview)
        if info.table.format == "csv":
            described.update(
                delimiter=info.table.delimiter, has_header=info.table.has_header, columns=list(info.table.columns)
            )
    return described


def product_type(record: ProductType) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "display_name": record.display_name,
        "description": record.description,
        "order": record.order,
    }


def release(record: Release) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "display_name": record.display_name,
        "description": record.description,
        "is_public": record.is_public,
        "created_at": timestamp(record.created_at),
    }


def user(record: User, *, itself: bool = False) -> dict[str, Any]:
    """A user as others see it; ``itself`` adds the admin flag and groups, for ``users/me/``."""
    described = {
        "id": record.id,
        "username": record.username,
        "first_name": record.first_name,
        "last_name": record.last_name,
        "display_name": record.display_name,
    }
    if itself:
        described.update(is_admin=record.is_admin, groups=list(record.groups))
    return described


def pipeline(record: Pipeline, type_ids: dict[str, int]) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "display_name": record.display_name,
        "version": record.version,
        "description": record.description,
        "system_config": {"param": record.parameters},
        "product_types_accepted": [type_ids[name] for name in record.product_types_accepted],
        "output_product_type": type_ids[record.output_product_type],
    }


def process(record: Process, owner: User, viewer: User, chosen: Pipeline) -> dict[str, Any]:
    return {
        "id": record.id,
        "pipeline": chosen.id,
        "pipeline_name": chosen.name,
        "pipeline_version": chosen.version,
        "display_name": record.display_name,
        "used_config": record.used_config,
        "inputs": list(record.inputs),
        "release": record.release_id,
        "upload": record.output_product_id,
        "status": record.status.value,
        "owned_by": owner.username,
        "is_owner": record.owner_id == viewer.id,
        "can_stop": not record.status.is_final,
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "error": record.error,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
        "started_at": timestamp(record.started_at),
        "ended_at": timestamp(record.ended_at),
    }


def archive(record: Archive, download_url: str) -> dict[str, Any]:
    """A ready download, as ``download/prepare`` and ``download/status`` answer."""
    return {
        "id": record.product_id,
        "task_id": record.fingerprint,
        "status": "ready",
        "filename": record.filename,
        "size": record.size,
        "checksum": record.checksum,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.created_at),
        "download_url": download_url,
        "expired_time": None,
        "error_message": None,
    }
