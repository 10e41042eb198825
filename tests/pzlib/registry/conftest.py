"""Fixtures that run every registry test on SQLite and on the real Postgres server.

The Postgres side creates one throwaway database per test session (dropped at the end), migrates one schema
of it once and empties its tables before each test; SQLite gets a new file per test. Without a reachable
Postgres the Postgres cases are skipped, except under ``CI=true``, where they fail: CI must run everything.
Set ``PZ_TEST_POSTGRES_URL`` to use another server than 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from pzlib.registry import Registry, User, create_registry_engine, schema

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "PZ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# Product types keep their seed between tests; every other table is emptied, children first.
_DATA_TABLES = tuple(
    table for table in reversed(schema.metadata.sorted_tables) if table is not schema.product_types
)


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI=true where nothing may be skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true runs every test)")
    pytest.skip(reason)


@dataclass
class PostgresDatabase:
    """The session's throwaway Postgres database."""

    url: sqlalchemy.URL
    """URL of the database."""
    admin_engine: Engine
    """Autocommit engine on the database, for CREATE/DROP SCHEMA."""

    def schema_engine(self, schema_name: str) -> Engine:
        """Engine whose connections work in ``schema_name``, created here."""
        with self.admin_engine.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema_name}"'))
        # Tests need no durability: commits do not wait for the disk.
        options = f"-csearch_path={schema_name} -csynchronous_commit=off"
        return sqlalchemy.create_engine(self.url, connect_args={"options": options})

    def drop_schema(self, engine: Engine, schema_name: str) -> None:
        """Close ``engine``'s connections and drop ``schema_name``."""
        engine.dispose()
        with self.admin_engine.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase | None]:
    """A fresh Postgres database for the session, or None when no server answers."""
    server_url = sqlalchemy.make_url(POSTGRES_ADMIN_URL)
    server_engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    database_name = f"pz_registry_test_{uuid.uuid4().hex[:12]}"
    try:
        with server_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database_name}"'))
    except OperationalError:
        server_engine.dispose()
        yield None
        return
    database_url = server_url.set(database=database_name)
    admin_engine = sqlalchemy.create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        yield PostgresDatabase(database_url, admin_engine)
    finally:
        admin_engine.dispose()
        with server_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{database_name}" WITH (FORCE)'))
        server_engine.dispose()


@pytest.fixture(scope="session")
def postgres_registry(postgres_database: PostgresDatabase | None) -> Iterator[Registry | None]:
    """A registry migrated once in a schema of the session database."""
    if postgres_database is None:
        yield None
        return
    engine = postgres_database.schema_engine("registry")
    yield Registry(engine)
    postgres_database.drop_schema(engine, "registry")


@pytest.fixture(scope="session")
def postgres_reset_sql(postgres_registry: Registry | None) -> str:
    """One round trip that empties the data tables and restarts their id sequences.

    DELETE and a sequence restart take a tenth of the time of TRUNCATE on tables this small.
    """
    if postgres_registry is None:
        return ""
    statements = [f'DELETE FROM "{table.name}"' for table in _DATA_TABLES]
    with postgres_registry.engine.connect() as connection:
        for table in _DATA_TABLES:
            if "id" in table.c:
                sequence = connection.scalar(text(f"SELECT pg_get_serial_sequence('{table.name}', 'id')"))
                statements.append(f"ALTER SEQUENCE {sequence} RESTART")
    return "; ".join(statements)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the database backend of this test case."""
    return request.param


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite registry file that each test copies (migrating costs a sync per table)."""
    template_path = tmp_path_factory.mktemp("registry") / "template.db"
    Registry(f"sqlite:///{template_path}").engine.dispose()
    return template_path


def _sqlite_engine_without_syncs(database_path: Path) -> Engine:
    engine = create_registry_engine(f"sqlite:///{database_path}")
    # Tests need no durability; waiting for the disk on every commit would make them slow.
    event.listen(
        engine, "connect", lambda dbapi_connection, _: dbapi_connection.execute("PRAGMA synchronous=OFF")
    )
    return engine


@pytest.fixture
def registry(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_registry: Registry | None,
    postgres_reset_sql: str,
) -> Iterator[Registry]:
    """An empty, migrated registry on ``backend``."""
    if backend == "sqlite":
        database_path = tmp_path / "registry.db"
        shutil.copyfile(sqlite_template, database_path)
        sqlite_registry = Registry(_sqlite_engine_without_syncs(database_path))
        yield sqlite_registry
        sqlite_registry.engine.dispose()
        return
    if postgres_registry is None:
        unavailable(f"no Postgres server answers at {POSTGRES_ADMIN_URL}")
    with postgres_registry.engine.begin() as connection:
        connection.exec_driver_sql(postgres_reset_sql)
    yield postgres_registry


@pytest.fixture
def empty_engine(
    backend: str, tmp_path: Path, postgres_database: PostgresDatabase | None
) -> Iterator[Engine]:
    """An engine on an empty database (SQLite file or new Postgres schema), never migrated."""
    if backend == "sqlite":
        engine = create_registry_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    if postgres_database is None:
        unavailable(f"no Postgres server answers at {POSTGRES_ADMIN_URL}")
    schema_name = f"empty_{uuid.uuid4().hex[:8]}"
    engine = postgres_database.schema_engine(schema_name)
    yield engine
    postgres_database.drop_schema(engine, schema_name)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, postgres_database: PostgresDatabase | None) -> str:
    """URL of a database nobody opened yet: a SQLite file in a missing directory, or the session database
    written as a bare ``postgresql://`` URL (the registry must pick the psycopg 3 driver)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'missing' / 'dir' / 'registry.db'}"
    if postgres_database is None:
        unavailable(f"no Postgres server answers at {POSTGRES_ADMIN_URL}")
    return postgres_database.url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def admin(registry: Registry) -> User:
    """An admin user."""
    return registry.create_user("admin", is_admin=True)


@pytest.fixture
def alice(registry: Registry) -> User:
    """A user in the access group ``lsst``."""
    return registry.create_user("alice", groups=["lsst"], first_name="Alice", last_name="Liddell")


@pytest.fixture
def bob(registry: Registry) -> User:
    """A user in no access group."""
    return registry.create_user("bob")
