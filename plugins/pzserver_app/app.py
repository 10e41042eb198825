"""The PZ Server FastAPI app: LIneA's PZ Server API under ``/api/`` and its pages under ``/ui/``, every route
authenticated.

``create_app`` builds the app the Airflow plugin mounts at ``/pzserver``. Domain errors of ``pzlib.registry``
become the statuses LIneA's server answers (``NotFound`` 404, ``PermissionDenied`` 403,
``AuthenticationFailed`` 401, ``MissingColumns`` 406, ``AlreadyExists`` 409, an upload or a body over its
limit 413, any other ``InvalidInput`` 400, an unsatisfiable byte range 416), each as ``{"detail": message}``
from the API and as an error page from the pages, where a failed login is a redirect to Airflow's login
instead. Any other error is a bug: its trace goes to the log and the caller gets a plain 500 that shows
nothing of the server. Paths are normalised before routing: repeated slashes collapse (the ``pzserver`` client
asks for ``api//products/``) and API paths get their trailing slash (older clients ask for ``download`` and
``product-contents?...``); request bodies are read only up to their limits (``bodies.LimitBodies``). There is
no OpenAPI page: it would be a route without authentication (``openapi.py`` says why it is described all the
same).

Examples
--------
>>> from pzlib.config import Settings
>>> app = create_app(Settings(database_url="sqlite:////tmp/pz/registry.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from pzlib.config import Settings
from pzlib.registry import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    MissingColumns,
    NotFound,
    PermissionDenied,
)
from pzlib.registry.process_runs import DagRuns
from pzlib.registry.registration import FileTooLarge
from pzlib.storage import InvalidKey, InvalidRange, ObjectNotFound
from pzserver_app import (
    routes_compute_page,
    routes_downloads,
    routes_files,
    routes_pages,
    routes_process_pages,
    routes_processes,
    routes_products,
    routes_reference,
)
from pzserver_app.auth import AirflowTokenResolver, airflow_identity
from pzserver_app.bodies import BodyTooLarge, LimitBodies
from pzserver_app.context import LazyContext, ServerContext, settings_context
from pzserver_app.dag_runs import AirflowDagRuns
from pzserver_app.rendering import UI_PREFIX, error_page, is_page_request

API_PREFIX = "/api"

_REPEATED_SLASHES = re.compile(r"/{2,}")
_LOG = logging.getLogger(__name__)


class NormalizePaths:
    """ASGI middleware: collapse repeated slashes and end API paths with a slash, before routing."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = _REPEATED_SLASHES.sub("/", scope["path"])
            root_path = scope.get("root_path", "")
            route_path = path[len(root_path) :] if root_path and path.startswith(root_path) else path
            if (route_path.startswith(f"{API_PREFIX}/") and not path.endswith("/")) or route_path == API_PREFIX:
                path += "/"
            if path != scope["path"]:
                scope = {**scope, "path": path, "raw_path": path.encode("utf-8")}
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    context: ServerContext | None = None,
    airflow_token_resolver: AirflowTokenResolver = airflow_identity,
    dag_runs: DagRuns | None = None,
    process_dir: Path | None = None,
) -> FastAPI:
    """The PZ Server app.

    Parameters
    ----------
    settings : Settings or None
        Where the registry and the products are, and the limits of requests; ``None`` reads
        ``pzlib.config.load_settings()`` on the first request.
    context : ServerContext or None
        An opened registry and store with their settings, to use instead of ``settings`` (tests).
    airflow_token_resolver : callable
        Checks Airflow JWTs; the default asks the api-server's auth manager.
    dag_runs : DagRuns or None
        Where processes run; the default is this api-server's Airflow.
    process_dir : Path or None
        Folder of the processes' inputs and outputs, read by the Airflow workers; the default is
        ``<state_dir>/processes`` of the settings.

    Returns
    -------
    fastapi.FastAPI
    """
    app = FastAPI(
        title="PZ Server",
        description="LIneA's PZ Server API for the pzserver client, inside Airflow.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    if context is not None:
        app.state.pz_context = LazyContext(lambda: context)
    elif settings is not None:
        app.state.pz_context = LazyContext(lambda: ServerContext.from_settings(settings))
    else:
        app.state.pz_context = LazyContext(settings_context)
    app.state.airflow_identity = airflow_token_resolver
    app.state.dag_runs = dag_runs or AirflowDagRuns()
    app.state.process_dir = (lambda: process_dir) if process_dir else (
        lambda: app.state.pz_context.get().settings.state_dir / "processes")
    for router in (
        routes_reference.router,
        routes_products.router,
        routes_files.router,
        routes_downloads.router,
        routes_processes.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(routes_pages.router, prefix=UI_PREFIX)
    app.include_router(routes_process_pages.router, prefix=UI_PREFIX)
    app.include_router(routes_compute_page.router, prefix=UI_PREFIX)
    _add_error_handlers(app)
    app.add_middleware(LimitBodies, settings=lambda: app.state.pz_context.get().settings)
    app.add_middleware(NormalizePaths)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status_code: int, headers: dict[str, str] | None = None, **extra):
        def handler(request: Request, error: Exception) -> Response:
            if is_page_request(request):
                return error_page(request, status_code, str(error))
            fields = {name: getter(error) for name, getter in extra.items()}
            return JSONResponse({"detail": str(error), **fields}, status_code=status_code, headers=headers)

        return handler

    # Most specific first: Starlette picks the handler of the nearest class in the exception's MRO anyway.
    app.add_exception_handler(MissingColumns, answer(406, missing_columns=lambda error: list(error.missing)))
    app.add_exception_handler(AlreadyExists, answer(409))
    app.add_exception_handler(FileTooLarge, answer(413, limit_bytes=lambda error: error.limit_bytes))
    app.add_exception_handler(BodyTooLarge, answer(413, limit_bytes=lambda error: error.limit_bytes))
    app.add_exception_handler(InvalidInput, answer(400))
    app.add_exception_handler(InvalidKey, answer(400))
    app.add_exception_handler(NotFound, answer(404))
    app.add_exception_handler(ObjectNotFound, answer(404))
    app.add_exception_handler(PermissionDenied, answer(403))
    app.add_exception_handler(AuthenticationFailed, answer(401, headers={"WWW-Authenticate": "Token"}))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(InvalidRange, _unsatisfiable_range)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
    )
    if is_page_request(request):
        return error_page(request, 400, f"invalid request: {problems}")
    return JSONResponse({"detail": f"invalid request: {problems}"}, status_code=400)


async def _http_error(request: Request, error: HTTPException) -> Response:
    """Routing errors (no such path, method not allowed): a page for a page path, else FastAPI's JSON."""
    if is_page_request(request) and error.status_code >= 400:
        message = "There is no such page." if error.status_code == 404 else str(error.detail)
        return error_page(request, error.status_code, message)
    return await http_exception_handler(request, error)


def _unexpected_error(request: Request, error: Exception) -> Response:
    """A bug: the trace goes to the log, the caller learns nothing of the server (no path, SQL or trace)."""
    _LOG.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=error)
    message = "the server failed to answer this request; the error is in its log"
    if is_page_request(request):
        return error_page(request, 500, message)
    return JSONResponse({"detail": message}, status_code=500)


def _unsatisfiable_range(request: Request, error: InvalidRange) -> JSONResponse:
    return JSONResponse(
        {"detail": str(error)}, status_code=416, headers={"Content-Range": f"bytes */{error.size}"}
    )
