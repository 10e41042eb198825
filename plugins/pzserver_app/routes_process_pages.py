"""Routes of the pages that start and follow pipeline runs: the Pipelines page (a form per pipeline), the list
of processes and a process's page (its params as run, the live states of its DAG run's tasks, a failed task's
log excerpt, a stop button).

A form posts to this app, as forms do: the pipeline form and the stop button take ``ChangingUser`` (a
cookie-authenticated post must come from a page of this site) and do what ``POST processes/`` and
``processes/<id>/stop/`` do, through the same ``ProcessRuns``; a refused request shows the form again with the
message next to the field and nothing stored. A user sees their own processes, an admin every one, as in the
API.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from pzlib.registry import AlreadyExists, InvalidInput, NotFound, Process, ProductFilter, ProductStatus, User
from pzlib.registry.pipelines import PIPELINES, Pipeline, get_pipeline
from pzlib.registry.process_runs import without_server_paths
from pzlib.storage import LocalStorage
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.bodies import read_upload
from pzserver_app.context import ServerContext, get_context
from pzserver_app.dag_runs import TaskState, log_excerpt
from pzserver_app.openapi import INTEGER, described
from pzserver_app.pipeline_forms import (
    FORM_ERROR,
    REQUEST_FIELDS,
    error_field,
    form_fields,
    read_param,
    takes_flags_file,
)
from pzserver_app.queries import RecordId
from pzserver_app.rendering import Links, render
from pzserver_app.routes_processes import process_runs

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]
_LOG = logging.getLogger(__name__)

PROCESSES_PAGE_SIZE = 25
"""Processes per page of the list."""
PICKER_SIZE = 200
"""Products each input picker lists per kind (official, own), newest first."""


@router.get("/processes/", openapi_extra=described(query={"page": INTEGER}))
def processes_page(request: Request, user: CurrentUser, context: Context) -> Response:
    """The user's processes (an admin's: every one), newest first."""
    page = request.query_params.get("page", "1")
    found = context.registry.list_processes(
        user, page=int(page) if page.isdigit() and 0 < len(page) < 7 else 1, page_size=PROCESSES_PAGE_SIZE)
    runs = process_runs(request, context)
    processes = [runs.follow(process) for process in found.results]
    last_page = max((found.count + found.page_size - 1) // found.page_size, 1)
    links = Links(request)
    return render(
        request, "processes.html", user, section="processes", found=found,
        rows=[_row(context, user, process) for process in processes],
        previous_page=links.ui("processes/", page=found.page - 1) if found.page > 1 else None,
        next_page=links.ui("processes/", page=found.page + 1) if found.page < last_page else None,
        last_page=last_page,
    )


@router.get("/processes/{process_id}/")
def process_page(process_id: RecordId, request: Request, user: CurrentUser, context: Context) -> Response:
    """A process: its params as run, the states of its DAG run's tasks, a failed task's log, stop, its output."""
    process = process_runs(request, context).follow(context.registry.get_process(user, process_id))
    tasks, log, log_task = _run_details(request, process)
    log = [without_server_paths(line, _server_folders(context)) for line in log]
    return render(
        request, "process.html", user, section="processes", process=process, row=_row(context, user, process),
        param=process.used_config.get("param", {}), tasks=tasks, log=log, log_task=log_task,
    )


@router.post("/processes/{process_id}/stop/")
def stop_process(process_id: RecordId, request: Request, user: ChangingUser, context: Context) -> Response:
    """The stop button: the run is failed in Airflow and the process ends Stopped; back to its page."""
    process_runs(request, context).stop(user, process_id)
    return RedirectResponse(Links(request).ui(f"processes/{process_id}/"), status_code=303)


@router.get("/pipelines/")
def pipelines_page(request: Request, user: CurrentUser, context: Context) -> Response:
    """A form per pipeline: release, input products, parameters, and for Combine Redshift Catalogs a flag
    translation file."""
    return _pipelines(request, user, context)


@router.post("/pipelines/{pipeline}/")
async def request_run(pipeline: str, request: Request, user: ChangingUser, context: Context) -> Response:
    """A submitted pipeline form: the process starts as ``POST processes/`` starts it, and its page opens; a
    refused request shows the form again with the message next to the field."""
    chosen = get_pipeline(pipeline)
    upload = await read_upload(request)
    try:
        form = {name: str(value) for name, value in upload.form.multi_items() if not isinstance(value, UploadFile)}
        inputs = [str(value) for value in upload.form.getlist("inputs") if str(value).strip()]
        param, errors = read_param(chosen, form)
        display_name = form.get("display_name", "").strip()
        if not display_name:
            errors["display_name"] = "Give the run a name: its output product gets it."
        if not inputs:
            errors["inputs"] = "Choose at least one input product."
        sent = upload.files.get("flags_translation_file")
        flags_file = (sent.filename, sent.file) if sent is not None and sent.filename else None
        if flags_file is not None:
            if not takes_flags_file(chosen):
                raise InvalidInput(f"pipeline {chosen.name} takes no flag translation file")
            param["flags_translation_file"] = sent.filename
        if not errors:
            try:
                process = await run_in_threadpool(
                    process_runs(request, context).request, user, chosen.name, display_name=display_name,
                    used_config={"param": param}, inputs=[int(item) if item.isdigit() else item for item in inputs],
                    release=form.get("release") or None, flags_file=flags_file)
            except AlreadyExists as error:
                errors["display_name"] = str(error)
            except (InvalidInput, NotFound) as error:
                errors[error_field(chosen, str(error))] = str(error)
            else:
                return RedirectResponse(Links(request).ui(f"processes/{process.id}/"), status_code=303)
    finally:
        await upload.close()
    return _pipelines(request, user, context, status_code=400, submitted=chosen.name, values=form,
                      chosen_inputs=inputs, errors=errors)


def _pipelines(request: Request, user: User, context: ServerContext, *, status_code: int = 200,
               submitted: str | None = None, values: dict[str, str] | None = None,
               chosen_inputs: list[str] | None = None, errors: dict[str, str] | None = None) -> Response:
    forms = []
    for pipeline in PIPELINES:
        mine = pipeline.name == submitted
        forms.append({
            "pipeline": pipeline,
            "fields": form_fields(pipeline),
            "flags_file": takes_flags_file(pipeline),
            "products": _pickable(context, user, pipeline),
            "values": values if mine else {},
            "inputs": set(chosen_inputs or ()) if mine else set(),
            "errors": errors if mine else {},
        })
    return render(request, "pipelines.html", user, section="pipelines", forms=forms,
                  releases=context.registry.list_releases(user), form_error=FORM_ERROR,
                  request_fields=REQUEST_FIELDS, status_code=status_code)


def _pickable(context: ServerContext, user: User, pipeline: Pipeline) -> list[dict[str, Any]]:
    """Published products of the types ``pipeline`` reads: official ones and the user's own."""
    picked: dict[int, dict[str, Any]] = {}
    for kind, filters in (
        ("official", ProductFilter(official=True)),
        ("own", ProductFilter(owner=(user.id,))),
    ):
        filters = replace(filters, product_type=pipeline.product_types_accepted, status=(ProductStatus.PUBLISHED,))
        for product in context.registry.list_products(user, filters, page_size=PICKER_SIZE).results:
            picked.setdefault(product.id, {"product": product, "kind": kind})
    return sorted(picked.values(), key=lambda item: (item["kind"] != "official", item["product"].display_name.lower()))


def _row(context: ServerContext, viewer: User, process: Process) -> dict[str, Any]:
    """What the list and the page show of a process besides its record: names of its pipeline, owner, release,
    inputs and output, and its duration."""
    registry = context.registry
    owner = viewer if process.owner_id == viewer.id else registry.get_user(process.owner_id)
    inputs = []
    for product_id in process.inputs:
        try:
            inputs.append({"id": product_id, "name": registry.get_product(viewer, product_id).display_name})
        except NotFound:
            inputs.append({"id": None, "name": f"product {product_id} (deleted or not visible)"})
    output = None
    if process.output_product_id is not None:
        try:
            output = registry.get_product(viewer, process.output_product_id)
        except NotFound:
            output = None
    release = None
    if process.release_id is not None:
        try:
            release = registry.get_release(viewer, process.release_id)
        except NotFound:
            release = None
    duration = None
    if process.started_at is not None:
        duration = int((_aware(process.ended_at or datetime.now(UTC)) - _aware(process.started_at)).total_seconds())
    return {"pipeline": get_pipeline(process.pipeline), "owner": owner.username, "inputs": inputs,
            "output": output, "release": release, "duration": duration}


def _server_folders(context: ServerContext) -> list[Any]:
    """This server's folders, which a task's log names and a user must not see."""
    folders: list[Any] = [context.settings.state_dir]
    if isinstance(context.storage, LocalStorage):
        folders.append(context.storage.root)
    return folders


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; the registry stores UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run_details(request: Request, process: Process) -> tuple[list[TaskState], list[str], TaskState | None]:
    """The run's task states and, when a task failed, its log excerpt; empty when Airflow cannot tell."""
    if not process.run_id:
        return [], [], None
    dag_runs = request.app.state.dag_runs
    try:
        tasks = dag_runs.tasks(process.dag_id, process.run_id)
        failed = next((task for task in tasks if task.state == "failed"), None)
        log = [] if failed is None else log_excerpt(
            dag_runs.task_log(process.dag_id, process.run_id, failed.task_id, failed.map_index, failed.try_number))
    except Exception:  # the page still shows the process; the trace goes to the log
        _LOG.exception("reading DAG run %s of process %s", process.run_id, process.id)
        return [], [], None
    return tasks, log, failed
