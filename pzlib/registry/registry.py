"""The PZ Server domain: products, their files and columns, releases, pipeline runs, users and API tokens.

``Registry`` owns every rule of the domain so an HTTP layer only translates: who may see a product and who may
change it, what a publish needs, how internal names are made (see :mod:`pzlib.registry.products`). A product
that exists but is not visible to the acting user is reported as ``NotFound``, so its existence does not leak;
one that is visible but not the user's to change is ``PermissionDenied``.

Methods that act for a user take the ``User`` returned by ``authenticate`` (or ``get_user``) first. Methods
without one (releases, users, tokens, process state) are administrative: the CLI and the Airflow tasks call
them. Every method runs in its own transaction; on failure nothing is changed. Changes run in
``transactions.writing``, so concurrent requests on one product end in a result, ``NotFound`` or
``AlreadyExists``, never in a database error.

The methods live by resource, one module each: :mod:`~pzlib.registry.releases`, :mod:`~pzlib.registry.products`
(and product types), :mod:`~pzlib.registry.product_files` (files and the columns of the main table),
:mod:`~pzlib.registry.processes`, :mod:`~pzlib.registry.users` (and API tokens). ``Registry`` is their union, a
class that inherits each part: the plugin, the CLI and the pipelines call one flat API
(``registry.create_product(...)``) on one object over one engine, and every part needs that engine and nothing
else. Holding per-resource objects instead would either change that API (``registry.products.create(...)``) or
repeat every method's signature in a forwarding method. A part keeps no state and calls no method of another
part; what parts share is in :mod:`~pzlib.registry.queries` (reads, visibility, locks) and
:mod:`~pzlib.registry.transactions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from pzlib.registry.migrations import migrate
from pzlib.registry.processes import ProcessRegistry
from pzlib.registry.product_files import ProductFileRegistry
from pzlib.registry.products import ProductRegistry
from pzlib.registry.releases import ReleaseRegistry
from pzlib.registry.users import UserRegistry


def create_registry_engine(url: str) -> Engine:
    """SQLAlchemy engine for a registry URL, set up for the registry's needs.

    ``postgresql://`` URLs are given the psycopg 3 driver; a SQLite file's directory is created; SQLite
    connections enforce foreign keys.

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/registry.db`` (the embedded default) or ``postgresql+psycopg://user@host/db``.

    Returns
    -------
    sqlalchemy.Engine
    """
    parsed_url = make_url(url)
    if parsed_url.drivername == "postgresql":
        parsed_url = parsed_url.set(drivername="postgresql+psycopg")
    if parsed_url.get_backend_name() == "sqlite" and parsed_url.database not in (None, "", ":memory:"):
        Path(parsed_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enforce_sqlite_foreign_keys)
    return engine


class Registry(ReleaseRegistry, ProductRegistry, ProductFileRegistry, ProcessRegistry, UserRegistry):
    """The PZ Server registry over one database.

    Parameters
    ----------
    database : str or sqlalchemy.Engine
        Database URL, or an engine (for SQLite, one from ``create_registry_engine``, which turns foreign-key
        enforcement on).
    migrate_schema : bool
        Bring the database to the latest schema first (idempotent and cheap when it is already there).

    Examples
    --------
    >>> registry = Registry("sqlite://")
    >>> alice = registry.create_user("alice")
    >>> product = registry.create_product(alice, display_name="My spec-z", product_type="redshift_catalog")
    >>> product.internal_name
    '1_my_specz'
    """

    def __init__(self, database: str | Engine, *, migrate_schema: bool = True):
        self.engine = database if isinstance(database, Engine) else create_registry_engine(database)
        """Engine of the registry database."""
        if migrate_schema:
            migrate(self.engine)


def _enforce_sqlite_foreign_keys(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
