"""The PZ Compute page: each release's photo-z production, as the ``pz_compute`` DAG runs it.

For every recent run: its state, each stage's tasks done of all, per estimator the partitions done, failed and
in all (from the mapped estimate tasks, labelled ``<estimator> <partition>``), and the time it took or has taken;
for a finished run, the photo-z catalogs it published (``photoz_estimates`` products whose provenance names the
run; a rerun's publish takes them over) with stage III's objects/s (the catalogs' rows over stage III's wall time,
from their provenance's timings, else from the estimate tasks' times), and the validation reports it published
(``validation_results`` products) with their headline metrics side by side. Admins can start a reprocessing run
with the DAG's own params (``pzlib.compute.params.RUN_PARAMS_SCHEMA``, which Airflow checks again on the trigger);
others only see.

No forecast of what is left: the runtime model (``pzlib.bench.runtime_model``) needs the objects still to do and
the cores the run gets, and the page knows neither (it counts partitions, not their rows; Slurm decides the
concurrency), nor the model's figures of the cluster (``var/bench/scaling.json`` is a benchmark's output).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from jsonschema import Draft202012Validator
from starlette.concurrency import run_in_threadpool

from pzlib.compute.params import RUN_PARAMS_SCHEMA
from pzlib.compute.publish import CATALOG_PRODUCT_TYPE
from pzlib.registry import InvalidInput, NotFound, PermissionDenied, ProductFilter, User
from pzlib.registry.reports import REPORT_PRODUCT_TYPE, read_report
from pzserver_app.auth import ChangingUser, CurrentUser, current_user
from pzserver_app.bodies import read_fields
from pzserver_app.context import ServerContext, get_context
from pzserver_app.dag_runs import RunSummary, TaskState
from pzserver_app.rendering import Links, render

router = APIRouter(dependencies=[Depends(current_user)])
Context = Annotated[ServerContext, Depends(get_context)]

COMPUTE_DAG_ID = "pz_compute"
"""The DAG of a release's photo-z production (dags/pz_compute.py), the pipeline name its reports record."""
RUNS_SHOWN = 20
"""Latest runs the page shows."""
ESTIMATE_TASKS = ("stage_3_estimate.estimate", "stage_3_estimate.estimate_on_cluster")
_DONE = frozenset({"success", "skipped"})
_FAILED = frozenset({"failed", "upstream_failed"})
_TRIGGER_SCHEMA = {**RUN_PARAMS_SCHEMA, "required": []}
"""A reprocessing run's conf: the DAG's defaults fill in what it leaves out, so no param is required here."""


@router.get("/compute/")
def compute_page(request: Request, user: CurrentUser, context: Context) -> Response:
    """Each release's pz_compute runs, their progress and, once finished, their validation metrics."""
    return _compute(request, user, context)


@router.post("/compute/runs/")
async def start_run(request: Request, user: ChangingUser, context: Context) -> Response:
    """An admin's reprocessing run: the release and the DAG params given as JSON."""
    if not user.is_admin:
        raise PermissionDenied("only an admin starts a pz_compute run")
    fields = await read_fields(request)
    errors: dict[str, str] = {}
    release = str(fields.get("release") or "")
    try:
        context.registry.get_release(user, release)
    except (NotFound, InvalidInput):
        errors["release"] = f"release {release!r} does not exist or is not visible to you"
    params_text = str(fields.get("params") or "{}")
    try:
        params = json.loads(params_text)
        if not isinstance(params, dict):
            raise ValueError("the params must be a JSON object")
    except ValueError as error:
        errors["params"] = f"not a JSON object: {error}"
        params = {}
    if not errors:
        conf = {**params, "release": release}
        problem = next(iter(Draft202012Validator(_TRIGGER_SCHEMA).iter_errors(conf)), None)
        if problem is not None:
            where = ".".join(str(part) for part in problem.absolute_path) or "params"
            errors["params"] = f"{where}: {problem.message}"
    if not errors:
        run_id = f"pzserver_{release}_{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
        try:
            await run_in_threadpool(request.app.state.dag_runs.trigger, COMPUTE_DAG_ID, run_id, conf, user.username)
        except InvalidInput as error:
            errors["params"] = str(error)
        else:
            return RedirectResponse(Links(request).ui("compute/", started=run_id), status_code=303)
    return _compute(request, user, context, status_code=400, errors=errors,
                    values={"release": release, "params": params_text})


def _compute(request: Request, user: User, context: ServerContext, *, status_code: int = 200,
             errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> Response:
    dag_runs = request.app.state.dag_runs
    releases = context.registry.list_releases(user)
    visible = {release.name for release in releases}
    reports = _reports(context, user)
    catalogs = _catalogs(context, user)
    by_release: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in dag_runs.runs(COMPUTE_DAG_ID, RUNS_SHOWN):
        release = run.conf.get("release") or next(
            (report["release"] for report in reports.get(run.run_id, ())), None) or ""
        if release and release not in visible:
            continue
        by_release[release].append(_run_view(run, dag_runs.tasks(COMPUTE_DAG_ID, run.run_id),
                                             reports.get(run.run_id, []), catalogs.get(run.run_id, [])))
    names = {release.name: release.display_name for release in releases}
    sections = [{"name": name, "display_name": names.get(name) or "The DAG's default release", "runs": runs}
                for name, runs in sorted(by_release.items(), key=lambda item: item[0])]
    return render(request, "compute.html", user, section="compute", sections=sections, releases=releases,
                  errors=errors or {}, values=values or {"release": "", "params": "{}"},
                  started=request.query_params.get("started"), status_code=status_code)


def _run_view(run: RunSummary, tasks: list[TaskState], reports: list[dict[str, Any]],
              catalogs: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's stages (tasks done of all), its partitions per estimator, its elapsed time, and once published its
    catalogs with stage III's throughput."""
    stages: dict[str, Counter] = defaultdict(Counter)
    partitions: dict[str, Counter] = defaultdict(Counter)
    for task in tasks:
        stage = task.task_id.split(".", 1)[0] if "." in task.task_id else "other"
        stages[stage]["total"] += 1
        stages[stage]["done"] += task.state in _DONE
        stages[stage]["failed"] += task.state in _FAILED
        # map_index -1: the mapped task before Airflow expanded it into its partitions.
        if task.task_id in ESTIMATE_TASKS and task.map_index >= 0 and task.state != "skipped":
            estimator = (task.label or "").split(" ", 1)[0] or f"map {task.map_index}"
            partitions[estimator]["total"] += 1
            partitions[estimator]["done"] += task.state == "success"
            partitions[estimator]["failed"] += task.state in _FAILED
    elapsed = None
    if run.started_at is not None:
        end = run.ended_at or datetime.now(UTC)
        elapsed = int((_aware(end) - _aware(run.started_at)).total_seconds())
    stage_rows = [{"name": name.replace("_", " "), **dict(counts)} for name, counts in sorted(stages.items())]
    return {"run": run, "stages": stage_rows,
            "partitions": {estimator: dict(counts) for estimator, counts in sorted(partitions.items())},
            "elapsed": elapsed,
            "reports": sorted(reports, key=lambda report: report["estimator"]),
            "catalogs": sorted(catalogs, key=lambda catalog: catalog["estimator"]),
            "stage_3": _stage_3_throughput(tasks, catalogs)}


def _stage_3_throughput(tasks: list[TaskState], catalogs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Objects estimated (every catalog's rows), stage III's wall seconds and objects/s of a run whose catalogs are
    published; the wall time is the provenance's (its timings), else the estimate tasks' first start to last end."""
    objects = sum(catalog["n_rows"] or 0 for catalog in catalogs)
    wall = next((catalog["stage_3_wall_s"] for catalog in catalogs if catalog["stage_3_wall_s"]), None)
    estimates = [task for task in tasks if task.task_id in ESTIMATE_TASKS and task.map_index >= 0
                 and task.state == "success" and task.started_at and task.ended_at]
    if wall is None and estimates:
        wall = (max(_aware(task.ended_at) for task in estimates)
                - min(_aware(task.started_at) for task in estimates)).total_seconds()
    if not objects or not wall:
        return None
    return {"objects": objects, "wall_s": wall, "objects_per_s": objects / wall}


def _catalogs(context: ServerContext, user: User) -> dict[str, list[dict[str, Any]]]:
    """The pz_compute photo-z catalogs ``user`` may see, by the run that published them last, with their rows and
    stage III's wall time from their provenance."""
    found = context.registry.list_products(user, ProductFilter(product_type=(CATALOG_PRODUCT_TYPE,)), page_size=200)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for product in found.results:
        made_by = product.provenance or {}
        run_id = (made_by.get("airflow") or {}).get("run_id") or made_by.get("dag_run_id")
        if made_by.get("pipeline") != COMPUTE_DAG_ID or not run_id:
            continue
        stage_3 = (made_by.get("timings") or {}).get("stage_3_estimate") or {}
        by_run[run_id].append({"product": product, "estimator": made_by.get("estimator") or product.pz_code or "",
                               "n_rows": made_by.get("n_rows"), "stage_3_wall_s": stage_3.get("wall_s")})
    return by_run


def _reports(context: ServerContext, user: User) -> dict[str, list[dict[str, Any]]]:
    """The pz_compute validation reports ``user`` may see, by the run that published them, with their headline
    metrics (the primary point estimate's)."""
    found = context.registry.list_products(user, ProductFilter(product_type=(REPORT_PRODUCT_TYPE,)), page_size=200)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for product in found.results:
        made_by = product.provenance or {}
        if made_by.get("pipeline") != COMPUTE_DAG_ID or not made_by.get("dag_run_id"):
            continue
        try:
            metrics = read_report(context.files, user, product.id).summary.get("metrics") or {}
        except (NotFound, InvalidInput):
            metrics = {}
        point = (metrics.get("point") or {}).get(metrics.get("primary") or "", {})
        by_run[made_by["dag_run_id"]].append({
            "product": product, "estimator": made_by.get("estimator") or product.pz_code or "",
            "release": made_by.get("release"), "primary": metrics.get("primary"),
            "n_objects": point.get("n_objects"), "sigma_nmad": point.get("sigma_nmad"), "bias": point.get("bias"),
            "outlier_rate": point.get("outlier_rate"),
            "pit_outlier_rate": (metrics.get("pit") or {}).get("outlier_rate"),
        })
    return by_run


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
