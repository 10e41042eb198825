"""Server-rendered pages: the Jinja2 templates and what every page gets, static assets, errors shown as pages.

Pages live under ``/ui/`` of the app (``/pzserver/ui/`` in the api-server): plain HTML and a little vanilla
JavaScript that calls the REST API with the Airflow session cookie (same origin). Every page response carries
a Content Security Policy that lets in only this origin's scripts, styles, images and requests, and framing
by this origin only (the Airflow UI shows the pages in an iframe); so templates hold no inline script or style.
A page request without a valid login goes to Airflow's login page, which comes back to it afterwards.
"""

from __future__ import annotations

import hashlib
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from pzlib.registry import NotFound, User

UI_PREFIX = "/ui"
"""Where the pages are, below the app's mount point."""

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'self'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Headers of every page: what the browser may load and run, and no caching of per-user content."""

_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


class StaticAssets:
    """The files of ``static/``, served by name only (no paths), with a content digest for cache busting."""

    def __init__(self, directory: Path):
        self.paths = {path.name: path for path in directory.iterdir() if path.suffix in _STATIC_TYPES}
        self.digests = {
            name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for name, path in self.paths.items()
        }

    def response(self, name: str) -> Response:
        """The asset ``name``; ``NotFound`` for any other name."""
        if name not in self.paths:
            raise NotFound(f"no static file {name!r}")
        path = self.paths[name]
        return FileResponse(
            path,
            media_type=_STATIC_TYPES[path.suffix],
            headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )


STATIC = StaticAssets(STATIC_DIR)


class Links:
    """URLs of the pages, the API and the static files, below wherever the app is mounted."""

    def __init__(self, request: Request):
        self.root = request.scope.get("root_path", "").rstrip("/")
        self.origin = f"{request.url.scheme}://{request.url.netloc}"

    def ui(self, path: str = "", **params: Any) -> str:
        """A page URL; ``params`` that are not None become its query string."""
        query = urlencode({name: value for name, value in params.items() if value is not None})
        return f"{self.root}{UI_PREFIX}/{path}" + (f"?{query}" if query else "")

    def api(self, path: str = "") -> str:
        return f"{self.root}/api/{path}"

    def static(self, name: str) -> str:
        return f"{self.root}{UI_PREFIX}/static/{name}?v={STATIC.digests[name]}"

    def product(self, reference: int | str) -> str:
        return self.ui(f"products/{reference}/")

    def share(self, internal_name: str) -> str:
        """Absolute URL of a product page, to hand to someone else."""
        return f"{self.origin}{self.product(internal_name)}"


def _number(value: Any, digits: int = 4) -> str:
    """A float with ``digits`` decimals; an em dash for missing, non-finite or non-numeric values."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "—"


def _percent(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage; an em dash for anything that is not a finite fraction."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 1e12:
        return f"{100 * value:.{digits}f}%"
    return "—"


def _cell(value: Any) -> str:
    """A table value: floats to 10 significant digits (no binary noise such as 0.12000000000000001)."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _size(value: int | None) -> str:
    """Bytes for people: ``1.5 MiB``."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _moment(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _safe_link(url: str) -> bool:
    """Links a description may carry: http and https only (no javascript:, data:, relative or file links)."""
    try:
        return urlsplit(url.strip()).scheme.lower() in ("http", "https")
    except ValueError:
        return False


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).disable("image")
"""Descriptions are users' Markdown: raw HTML is shown as text, images are not loaded, links only to the web."""
_MARKDOWN.validateLink = _safe_link


def _markdown(text: str | None) -> Markup:
    """A product description's Markdown as HTML, safe to put in a page."""
    return Markup(_MARKDOWN.render(text or ""))


def _duration(seconds: int | None) -> str:
    """Seconds for people: ``2 h 05 min``, ``3 min 07 s``, ``12 s``."""
    if seconds is None:
        return "—"
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _flat_items(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted name, value) of a nested mapping's leaves, in order: a run's parameters as a table."""
    items: list[tuple[str, Any]] = []
    for name, value in values.items():
        if isinstance(value, dict) and value:
            items.extend(_flat_items(value, f"{prefix}{name}."))
        else:
            items.append((f"{prefix}{name}", value))
    return items


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(number=_number, percent=_percent, size=_size, moment=_moment, cell=_cell,
                               duration=_duration, flat_items=_flat_items,
                               markdown=_markdown)
    return environment


templates = Jinja2Templates(env=_environment())


def render(request: Request, template: str, user: User | None, *, status_code: int = 200, **context: Any) -> Response:
    """The page ``template`` with ``context``, the user and the links, with the page headers."""
    return templates.TemplateResponse(
        request,
        template,
        {"user": user, "links": Links(request), "section": None, **context},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def is_page_request(request: Request) -> bool:
    """True for a request to a page (below ``/ui``), which gets HTML errors and the login redirect."""
    path = request.scope["path"]
    root_path = request.scope.get("root_path", "")
    route_path = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    return route_path == UI_PREFIX or route_path.startswith(f"{UI_PREFIX}/")


def airflow_login_url(next_url: str) -> str:
    """Airflow's login page, coming back to ``next_url`` (a path of this site) afterwards.

    The api-server's auth manager names it; outside the api-server (no auth manager initialised, or Airflow's
    app module not even imported) it is Airflow's default, ``/auth/login``.
    """
    airflow_app = sys.modules.get("airflow.api_fastapi.app")
    if airflow_app is not None:
        try:
            return airflow_app.get_auth_manager().get_url_login(next_url=next_url)
        except RuntimeError:  # imported, but no auth manager initialised in this process
            pass
    return f"/auth/login?{urlencode({'next': next_url})}"


def login_redirect(request: Request) -> Response:
    """Send the browser to Airflow's login page, then back to the page it asked for."""
    next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(airflow_login_url(next_url), status_code=307, headers={"Cache-Control": "no-store"})


_ERROR_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Too large",
    416: "Range not satisfiable",
    500: "Server error",
}


def error_page(request: Request, status_code: int, message: str) -> Response:
    """An error as a page; an authentication failure (401) as the login redirect instead."""
    if status_code == 401:
        return login_redirect(request)
    title = _ERROR_TITLES.get(status_code, "Error")
    return render(request, "error.html", None, status_code=status_code, title=title, message=message)
