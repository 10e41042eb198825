"""Airflow plugin of the PZ Server: mounts its FastAPI app (REST API and pages) at ``/pzserver`` and puts the
pages in the Airflow navigation as ``external_views``.

This module only registers; the app lives in ``pzserver_app`` (beside this file, on the path Airflow gives
the plugins folder) and opens the registry and the object store on its first request, so importing the plugin
in the scheduler or a worker costs nothing. Each external view has a ``url_route``, so the Airflow UI shows the
page inside its own frame (at ``/plugin/<url_route>``), under a "PZ Server" menu of its Plugins entry; the
pages authenticate with the Airflow UI's session cookie.
"""

from __future__ import annotations

from urllib.parse import urlparse

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from pzserver_app.app import create_app
from pzserver_app.rendering import UI_PREFIX

URL_PREFIX = "/pzserver"
"""Where the api-server serves the app; the pzserver client's host is ``<airflow url>/pzserver/api/``."""

NAV_CATEGORY = "PZ Server"
"""Menu of the Airflow navigation that holds the pages."""


def airflow_path(path: str) -> str:
    """``path`` below the path of Airflow's ``[api] base_url`` (non-empty when Airflow is served below a
    prefix), as the browser must ask for it."""
    base_url = conf.get("api", "base_url", fallback="/") or "/"
    base_path = urlparse(base_url).path if base_url.startswith(("http://", "https://")) else base_url
    return base_path.rstrip("/") + path


def page_view(name: str, page: str, url_route: str) -> dict[str, str]:
    """An ``external_views`` entry for a page of the app (``page`` below ``/pzserver/ui/``)."""
    return {
        "name": name,
        "href": airflow_path(f"{URL_PREFIX}{UI_PREFIX}/{page}"),
        "destination": "nav",
        "category": NAV_CATEGORY,
        "url_route": url_route,
        "icon": airflow_path(f"{URL_PREFIX}{UI_PREFIX}/static/icon.svg"),
        "icon_dark_mode": airflow_path(f"{URL_PREFIX}{UI_PREFIX}/static/icon-dark.svg"),
    }


class PzServerPlugin(AirflowPlugin):
    """PZ Server: products registry, storage, LIneA's API for the pzserver client, and its pages."""

    name = "pzserver"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "PZ Server"}]
    external_views = [
        page_view("Rubin products", "products/official/", "pzserver-official"),
        page_view("User products", "products/user/", "pzserver-products"),
        page_view("Upload a product", "upload/", "pzserver-upload"),
        page_view("Pipelines", "pipelines/", "pzserver-pipelines"),
        page_view("Processes", "processes/", "pzserver-processes"),
        page_view("PZ Compute", "compute/", "pzserver-compute"),
    ]
