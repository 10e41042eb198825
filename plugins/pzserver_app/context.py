"""What the handlers work with: the registry, the object store, the product-file services over them and the
settings whose limits the HTTP layer enforces.

Opened on the first request from ``pzlib.config.load_settings()`` (SQLite and local storage under ``var/``
by default; ``PZ_DATABASE_URL`` and ``PZ_STORAGE_URL`` for Postgres and S3), not when the plugin is imported:
every Airflow component imports plugins, and only the api-server serves requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from pzlib.config import Settings, load_settings
from pzlib.registry import Registry
from pzlib.registry.archives import ProductArchives
from pzlib.registry.registration import ProductFiles
from pzlib.storage import Storage


@dataclass(frozen=True)
class ServerContext:
    """The services one PZ Server app uses."""

    registry: Registry
    storage: Storage
    files: ProductFiles
    archives: ProductArchives
    settings: Settings
    """The platform settings: limits of request bodies, texts and queries, and where processes run."""

    @classmethod
    def open(cls, registry: Registry, storage: Storage, settings: Settings) -> ServerContext:
        """A context over an opened registry and store, with the limits of ``settings``."""
        return cls(
            registry=registry,
            storage=storage,
            files=ProductFiles(registry, storage, upload_limit_bytes=settings.upload_limit_bytes),
            archives=ProductArchives(registry, storage),
            settings=settings,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerContext:
        """A context over the database and store the settings name (migrating the database if needed)."""
        files = ProductFiles.from_settings(settings)
        return cls(
            registry=files.registry,
            storage=files.storage,
            files=files,
            archives=ProductArchives(files.registry, files.storage),
            settings=settings,
        )


class LazyContext:
    """Makes the context once, on first use, from a factory."""

    def __init__(self, factory: Callable[[], ServerContext]):
        self._factory = factory
        self._context: ServerContext | None = None
        self._lock = threading.Lock()

    def get(self) -> ServerContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = self._factory()
        return self._context


def settings_context() -> ServerContext:
    """The context of the platform settings of this process."""
    return ServerContext.from_settings(load_settings())


def get_context(request: Request) -> ServerContext:
    """FastAPI dependency: the app's context."""
    return request.app.state.pz_context.get()
