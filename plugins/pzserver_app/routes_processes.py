"""Routes of processes (pipeline runs): start one, follow it, stop it.

Starting a run records the process and its output product; the Airflow DAG of the pipeline carries it out.
A Combine Redshift Catalogs request may come as a multipart form with a ``flags_translation_file``, which is
kept as an auxiliary file of the output product.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from pzlib.registry import FileRole, InvalidInput, Process, User
from pzlib.registry.pipelines import get_pipeline, start_process
from pzserver_app import schemas
from pzserver_app.auth import CurrentUser, current_user
from pzserver_app.bodies import (
    check_fields,
    read_fields,
    read_upload,
    to_json_object,
    to_list,
    to_optional_reference,
    to_reference,
)
from pzserver_app.context import ServerContext, get_context

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

_PROCESS_FIELDS = {"pipeline", "used_config", "display_name", "inputs", "release"}
_FLAGS_FILE = "flags_translation_file"


@router.post("/processes/", status_code=201)
async def create_process(request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    """Start a pipeline run; the answer's ``upload`` is the id of the product the run will fill."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    upload = None
    if content_type == "multipart/form-data":
        upload = await read_upload(request, context.files.upload_limit_bytes)
        fields = upload.fields
    else:
        fields = await read_fields(request)
    try:
        check_fields(fields, _PROCESS_FIELDS, "a process")
        for required in ("pipeline", "display_name"):
            if fields.get(required) in (None, ""):
                raise InvalidInput(f"{required} is required to start a process")
        if upload is not None and set(upload.files) - {_FLAGS_FILE}:
            raise InvalidInput(f"a process takes one file only, in the field {_FLAGS_FILE!r}")
        start = partial(
            start_process,
            context.registry,
            user,
            to_reference(fields["pipeline"], "pipeline"),
            display_name=fields["display_name"],
            used_config=to_json_object(fields.get("used_config"), "used_config"),
            inputs=[to_reference(item, "inputs") for item in to_list(fields.get("inputs"), "inputs")],
            release=to_optional_reference(fields.get("release"), "release"),
        )
        process = await run_in_threadpool(start)
        if upload is not None and _FLAGS_FILE in upload.files:
            sent = upload.files[_FLAGS_FILE]
            keep = partial(
                context.files.upload,
                user,
                process.output_product_id,
                name=sent.filename or "flags_translation.yaml",
                content=sent.file,
                role=FileRole.AUXILIARY,
                mime_type=sent.content_type,
            )
            await run_in_threadpool(keep)
    finally:
        if upload is not None:
            await upload.close()
    return _process_json(context, process, user)


@router.get("/processes/{process_id}/")
def get_process(process_id: int, user: CurrentUser, context: Context) -> dict[str, Any]:
    return _process_json(context, context.registry.get_process(user, process_id), user)


@router.get("/processes/{process_id}/stop/")
def stop_process(process_id: int, user: CurrentUser, context: Context) -> dict[str, Any]:
    """Ask the run to stop: one not started yet stops at once, a running one goes ``Stopping``."""
    return _process_json(context, context.registry.stop_process(user, process_id), user)


def _process_json(context: ServerContext, process: Process, viewer: User) -> dict[str, Any]:
    owner = viewer if process.owner_id == viewer.id else context.registry.get_user(process.owner_id)
    return schemas.process(process, owner, viewer, get_pipeline(process.pipeline))
