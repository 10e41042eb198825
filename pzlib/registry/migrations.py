"""Versioned, idempotent schema migrations of the registry database.

A ``schema_version`` table records every step applied; ``migrate(engine)`` applies the missing ones, in
order, in one transaction (on Postgres under an advisory lock, on SQLite begun ``IMMEDIATE``, so api-server
workers starting together do not race and a step that fails leaves the database as it was). Every step checks
before it acts: the first step creates whatever tables of ``pzlib.registry.schema`` are missing and seeds the
product types, so it is also correct on a database built by later code. A later schema change appends a step
that alters an existing database only where it still differs (``sqlalchemy.inspect`` tells), and leaves a
database that already has the change alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)

from pzlib.registry import schema, transactions
from pzlib.registry.errors import RegistryError
from pzlib.registry.schema import FileRole

schema_version = Table(
    "schema_version",
    MetaData(),
    Column("version", Integer, primary_key=True),
    Column("description", String(255), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

_ADVISORY_LOCK_KEY = 0x707A_7265_6769  # "pzregi": any constant shared by every pz-platform process


@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``."""

    version: int
    """Schema version after this step."""
    description: str
    """What the step changes, recorded in ``schema_version``."""
    apply: Callable[[Connection], None]
    """Makes the change inside the caller's transaction; must be a no-op where it is already made."""


def _create_tables_and_seed_product_types(connection: Connection) -> None:
    schema.metadata.create_all(connection, checkfirst=True)
    known_names = set(connection.scalars(select(schema.product_types.c.name)))
    missing_seeds = [seed for seed in schema.PRODUCT_TYPE_SEEDS if seed.name not in known_names]
    if missing_seeds:
        connection.execute(
            insert(schema.product_types),
            [
                {
                    "name": seed.name,
                    "display_name": seed.display_name,
                    "description": seed.description,
                    "display_order": seed.order,
                }
                for seed in missing_seeds
            ],
        )


def _add_release_object_catalogs(connection: Connection) -> None:
    present = {column["name"] for column in inspect(connection).get_columns(schema.releases.name)}
    for column in (schema.releases.c.object_catalog, schema.releases.c.object_column_map):
        if column.name not in present:
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {schema.releases.name} ADD COLUMN {column.name} {kind}"))


def _one_main_file_per_product(connection: Connection) -> None:
    """Add the index that holds one main file per product. Racing uploads could leave several main files in a
    database of older code: the first one recorded stays the main file and the others become auxiliary files,
    so no file is lost."""
    files = schema.product_files
    index = schema.ONE_MAIN_FILE_INDEX
    if index.name in {found["name"] for found in inspect(connection).get_indexes(files.name)}:
        return
    main = int(FileRole.MAIN)
    first_main_files = select(func.min(files.c.id)).where(files.c.role == main).group_by(files.c.product_id)
    connection.execute(
        update(files)
        .where(files.c.role == main, files.c.id.not_in(first_main_files))
        .values(role=int(FileRole.AUXILIARY))
    )
    index.create(connection)


def _never_reuse_ids(connection: Connection) -> None:
    """Make SQLite tables ``AUTOINCREMENT`` (Postgres sequences never give an id twice)."""
    if connection.dialect.name != "sqlite":
        return
    # The rebuild drops tables that other tables refer to; their rows come back before the commit checks.
    connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    for table in schema.metadata.sorted_tables:
        if table.dialect_options["sqlite"]["autoincrement"] and not _has_autoincrement(connection, table.name):
            _rebuild_sqlite_table(connection, table)


def _has_autoincrement(connection: Connection, table_name: str) -> bool:
    definition = connection.scalar(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"), {"name": table_name}
    )
    return "AUTOINCREMENT" in definition.upper()


def _rebuild_sqlite_table(connection: Connection, table: Table) -> None:
    """Make ``table`` anew as the schema defines it, keeping its rows and ids (SQLite cannot alter a table's
    primary key in place)."""
    kept = [column["name"] for column in inspect(connection).get_columns(table.name) if column["name"] in table.c]
    columns = ", ".join(f'"{name}"' for name in kept)
    aside = f"pz_rebuild_{table.name}"
    # Columns without a type keep every value exactly as stored.
    connection.exec_driver_sql(f'CREATE TEMP TABLE "{aside}" ({columns})')
    connection.exec_driver_sql(f'INSERT INTO temp."{aside}" SELECT {columns} FROM "{table.name}"')
    connection.exec_driver_sql(f'DROP TABLE "{table.name}"')
    table.create(connection)
    connection.exec_driver_sql(f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM temp."{aside}"')
    connection.exec_driver_sql(f'DROP TABLE temp."{aside}"')


def _make_ids_64_bit(connection: Connection) -> None:
    """Make every id and every column referring to one ``BIGINT`` on Postgres, with the sequences giving the ids
    (SQLite's ``INTEGER`` is already 64-bit)."""
    if connection.dialect.name != "postgresql":
        return
    inspector = inspect(connection)
    for table in schema.metadata.sorted_tables:
        id_columns = [column for column in table.c if column.name == "id" or column.foreign_keys]
        stored_types = {column["name"]: column["type"] for column in inspector.get_columns(table.name)}
        for column in id_columns:
            if not isinstance(stored_types[column.name], BigInteger):
                connection.exec_driver_sql(f'ALTER TABLE "{table.name}" ALTER COLUMN "{column.name}" TYPE BIGINT')
        if "id" in table.c:
            sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name})
            # Made by SERIAL as an integer sequence; AS BIGINT raises its maximum to the bigint one.
            connection.exec_driver_sql(f"ALTER SEQUENCE {sequence} AS BIGINT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "registry tables and the seven product types", _create_tables_and_seed_product_types),
    Migration(2, "object catalog of a release (Training Set Maker)", _add_release_object_catalogs),
    Migration(3, "one main file per product, held by a unique index", _one_main_file_per_product),
    Migration(4, "ids never reused (SQLite AUTOINCREMENT)", _never_reuse_ids),
    Migration(5, "64-bit ids (Postgres BIGINT)", _make_ids_64_bit),
)
"""Every step, ordered by version (1, 2, …)."""

LATEST_VERSION = MIGRATIONS[-1].version
"""Schema version this code reads and writes."""


def current_version(engine: Engine) -> int:
    """Schema version of the database behind ``engine``; 0 when it was never migrated.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Registry database.

    Returns
    -------
    int
        Highest version recorded in ``schema_version``.
    """
    with engine.connect() as connection:
        return _recorded_version(connection)


def migrate(engine: Engine) -> int:
    """Bring the database behind ``engine`` to ``LATEST_VERSION``; safe to call on every start.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Registry database (SQLite or Postgres).

    Returns
    -------
    int
        The schema version now in force.

    Raises
    ------
    RegistryError
        When the database was migrated by newer code than this one.

    Examples
    --------
    >>> from sqlalchemy import create_engine
    >>> migrate(create_engine("sqlite://")) == LATEST_VERSION
    True
    """
    with transactions.writing(engine, "the registry schema") as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        schema_version.create(connection, checkfirst=True)
        version = _recorded_version(connection)
        if version > LATEST_VERSION:
            raise RegistryError(
                f"the registry database is at schema version {version} but this pz-platform knows versions "
                f"up to {LATEST_VERSION}; upgrade pz-platform before opening it"
            )
        for step in MIGRATIONS[version:]:
            step.apply(connection)
            connection.execute(
                insert(schema_version).values(
                    version=step.version, description=step.description, applied_at=datetime.now(UTC)
                )
            )
    return LATEST_VERSION


def _recorded_version(connection: Connection) -> int:
    if not connection.dialect.has_table(connection, schema_version.name):
        return 0
    return connection.scalar(select(func.max(schema_version.c.version))) or 0
