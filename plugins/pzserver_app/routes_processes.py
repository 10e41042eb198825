"""Routes of processes (pipeline runs): start one, follow it, stop it.

Starting a run checks the request, records the process and its output product and triggers the pipeline's
Airflow DAG (``pzlib.registry.process_runs``); reading a process brings it up to date with its DAG run. A
Combine Redshift Catalogs request may come as a multipart form with a ``flags_translation_file``, which is kept
as an auxiliary file of the output product and used by the run.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from pzlib.crossmatch.config import FLAGS_FILE_FIELD, PZSERVER_REQUESTS
from pzlib.registry import InvalidInput, Process, User
from pzlib.registry.pipelines import get_pipeline
from pzlib.registry.process_runs import ProcessRuns
from pzserver_app import schemas
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.bodies import (
    check_fields,
    media_type,
    read_fields,
    read_upload,
    to_json_object,
    to_list,
    to_optional_reference,
    to_reference,
)
from pzserver_app.context import ServerContext, get_context
from pzserver_app.openapi import FILE, ID_OR_NAME, TEXT, described, nullable
from pzserver_app.queries import RecordId

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

_PROCESS_FIELDS = {
    "pipeline": ID_OR_NAME,
    "used_config": {"type": "object"},
    "display_name": TEXT,
    "inputs": {"type": "array", "items": ID_OR_NAME},
    "release": nullable(ID_OR_NAME),
}


@router.post(
    "/processes/",
    status_code=201,
    openapi_extra=described(fields=_PROCESS_FIELDS, files={FLAGS_FILE_FIELD: FILE},
                            required=("pipeline", "display_name")),
)
async def create_process(request: Request, user: ChangingUser, context: Context) -> dict[str, Any]:
    """Start a pipeline run; the answer's ``upload`` is the id of the product the run will fill."""
    upload = None
    if media_type(request.headers) == "multipart/form-data":
        upload = await read_upload(request)
        fields = upload.fields
    else:
        fields = await read_fields(request)
    try:
        check_fields(fields, set(_PROCESS_FIELDS), "a process")
        for required in ("pipeline", "display_name"):
            if fields.get(required) in (None, ""):
                raise InvalidInput(f"{required} is required to start a process")
        if upload is not None and set(upload.files) - {FLAGS_FILE_FIELD}:
            raise InvalidInput(f"a process takes one file only, in the field {FLAGS_FILE_FIELD!r}")
        sent = upload.files.get(FLAGS_FILE_FIELD) if upload is not None else None
        start = partial(
            process_runs(request, context).request,
            user,
            to_reference(fields["pipeline"], "pipeline"),
            display_name=fields["display_name"],
            used_config=to_json_object(fields.get("used_config"), "used_config"),
            inputs=[to_reference(item, "inputs") for item in to_list(fields.get("inputs"), "inputs")],
            release=to_optional_reference(fields.get("release"), "release"),
            flags_file=(sent.filename, sent.file) if sent is not None else None,
        )
        process = await run_in_threadpool(start)
    finally:
        if upload is not None:
            await upload.close()
    return _process_json(context, process, user)


@router.get("/processes/{process_id}/")
def get_process(process_id: RecordId, request: Request, user: CurrentUser, context: Context) -> dict[str, Any]:
    """The process, brought up to date with its DAG run."""
    process = process_runs(request, context).follow(context.registry.get_process(user, process_id))
    return _process_json(context, process, user)


@router.get("/processes/{process_id}/stop/")
def stop_process(process_id: RecordId, request: Request, user: ChangingUser, context: Context) -> dict[str, Any]:
    """Stop the run: its DAG run is failed (running tasks killed) and the process ends ``Stopped``."""
    return _process_json(context, process_runs(request, context).stop(user, process_id), user)


def process_runs(request: Request, context: ServerContext) -> ProcessRuns:
    """The app's processes over this context's registry and store, requests checked by the pipelines' configs."""
    return ProcessRuns(context.files, request.app.state.dag_runs, request.app.state.process_dir(), PZSERVER_REQUESTS)


def _process_json(context: ServerContext, process: Process, viewer: User) -> dict[str, Any]:
    owner = viewer if process.owner_id == viewer.id else context.registry.get_user(process.owner_id)
    return schemas.process(process, owner, viewer, get_pipeline(process.pipeline))
