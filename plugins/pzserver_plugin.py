"""Airflow plugin of the PZ Server: mounts its FastAPI app (REST API, later the pages) at ``/pzserver``.

This module only registers; the app lives in ``pzserver_app`` (beside this file, on the path Airflow gives
the plugins folder) and opens the registry and the object store on its first request, so importing the plugin
in the scheduler or a worker costs nothing. The pages will be added as ``external_views`` entries here.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from pzserver_app.app import create_app

URL_PREFIX = "/pzserver"
"""Where the api-server serves the app; the pzserver client's host is ``<airflow url>/pzserver/api/``."""


class PzServerPlugin(AirflowPlugin):
    """PZ Server: products registry, storage and LIneA's API for the pzserver client."""

    name = "pzserver"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "PZ Server"}]
