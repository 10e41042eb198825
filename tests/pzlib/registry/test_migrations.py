"""Schema migrations on SQLite and Postgres: from empty to latest, idempotent, refusing newer databases, and each
step on a database of the version before it, keeping every row."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Connection, Engine, Integer, MetaData, delete, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from pzlib.registry import LATEST_VERSION, FileRole, Registry, RegistryError, current_version, migrate, schema
from pzlib.registry.migrations import MIGRATIONS, schema_version


def _product_type_names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(schema.product_types.c.name).order_by(schema.product_types.c.display_order)
            )
        )


def test_migrate_brings_an_empty_database_to_the_latest_version(empty_engine: Engine) -> None:
    assert current_version(empty_engine) == 0

    assert migrate(empty_engine) == LATEST_VERSION

    assert current_version(empty_engine) == LATEST_VERSION
    assert set(schema.metadata.tables) <= set(inspect(empty_engine).get_table_names())
    assert _product_type_names(empty_engine) == [
        "redshift_catalog",
        "training_set",
        "training_results",
        "validation_results",
        "photoz_estimates",
        "object_catalog",
        "other",
    ]


def test_migrate_twice_changes_nothing(empty_engine: Engine) -> None:
    migrate(empty_engine)
    migrate(empty_engine)

    with empty_engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(schema_version)) == LATEST_VERSION
    assert len(_product_type_names(empty_engine)) == 7


def test_steps_are_idempotent_on_a_database_that_already_has_their_changes(empty_engine: Engine) -> None:
    migrate(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(delete(schema_version))
        connection.execute(delete(schema.product_types).where(schema.product_types.c.name == "other"))

    assert migrate(empty_engine) == LATEST_VERSION

    assert _product_type_names(empty_engine)[-1] == "other"
    assert len(_product_type_names(empty_engine)) == 7


def test_migrate_refuses_a_database_of_a_newer_schema(empty_engine: Engine) -> None:
    migrate(empty_engine)
    with empty_engine.begin() as connection:
        connection.execute(
            insert(schema_version).values(
                version=LATEST_VERSION + 1, description="from the future", applied_at=func.now()
            )
        )

    with pytest.raises(RegistryError, match="upgrade pz-platform"):
        migrate(empty_engine)


def test_registry_migrates_on_opening_unless_told_not_to(empty_engine: Engine) -> None:
    Registry(empty_engine, migrate_schema=False)
    assert current_version(empty_engine) == 0

    registry = Registry(empty_engine)

    assert current_version(empty_engine) == LATEST_VERSION
    assert registry.get_product_type("other").display_name == "Other"


def test_step_2_adds_the_release_object_catalog_to_a_version_1_database(empty_engine: Engine) -> None:
    migrate(empty_engine)
    registry = Registry(empty_engine)
    registry.create_release("dp1", "Data Preview 1")
    with empty_engine.begin() as connection:
        for column in ("object_catalog", "object_column_map"):
            connection.exec_driver_sql(f"ALTER TABLE releases DROP COLUMN {column}")
        connection.execute(delete(schema_version).where(schema_version.c.version >= 2))
    assert current_version(empty_engine) == 1

    assert migrate(empty_engine) == LATEST_VERSION

    columns = {column["name"] for column in inspect(empty_engine).get_columns("releases")}
    assert {"object_catalog", "object_column_map"} <= columns
    updated = registry.update_release("dp1", object_catalog="/data/dp1/objects", object_column_map="dm_gaap")
    assert (updated.name, updated.object_catalog, updated.object_column_map) == ("dp1", "/data/dp1/objects", "dm_gaap")


def test_step_3_keeps_the_first_main_file_of_a_product_and_adds_the_one_main_file_index(
    empty_engine: Engine,
) -> None:
    migrate(empty_engine)
    registry = Registry(empty_engine)
    alice = registry.create_user("alice")
    product = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    first = registry.add_file(alice, product.id, name="first.csv", storage_key="k/1", size=1)
    with empty_engine.begin() as connection:
        connection.exec_driver_sql(f"DROP INDEX {schema.ONE_MAIN_FILE_INDEX.name}")
        # What two racing uploads could leave behind before the index.
        connection.execute(insert(schema.product_files).values(_file_row(product.id, "second.csv", first.created_at)))
        connection.execute(delete(schema_version).where(schema_version.c.version >= 3))

    assert migrate(empty_engine) == LATEST_VERSION

    indexes = {index["name"] for index in inspect(empty_engine).get_indexes("product_files")}
    assert schema.ONE_MAIN_FILE_INDEX.name in indexes
    files = [(stored.name, stored.role) for stored in registry.list_files(alice, product.id)]
    assert files == [("first.csv", FileRole.MAIN), ("second.csv", FileRole.AUXILIARY)]
    with pytest.raises(IntegrityError), empty_engine.begin() as connection:
        connection.execute(insert(schema.product_files).values(_file_row(product.id, "third.csv", first.created_at)))


def test_step_4_keeps_every_row_and_makes_ids_never_reused(backend: str, empty_engine: Engine) -> None:
    _version_2_database(empty_engine)
    registry = Registry(empty_engine, migrate_schema=False)
    alice = registry.create_user("alice", groups=["lsst"])
    registry.create_token("alice", label="laptop")
    registry.create_release("dp1", "Data Preview 1", access_groups=["lsst"], object_column_map="dm_gaap")
    kept = registry.create_product(alice, display_name="Kept", product_type="other", release="dp1", provenance={"a": 1})
    last = registry.create_product(alice, display_name="Last", product_type="other")
    registry.add_file(alice, kept.id, name="kept.csv", storage_key="k/1", size=1)
    registry.set_contents(alice, kept.id, ["ra", "dec"])
    registry.create_process(alice, pipeline="p", display_name="run", inputs=[kept.id], output_product=last.id)
    before = _rows(empty_engine)

    assert migrate(empty_engine) == LATEST_VERSION

    assert _rows(empty_engine) == before
    if backend == "sqlite":
        with empty_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
            for table in schema.metadata.sorted_tables:
                definition = connection.scalar(select(text("sql")).select_from(text("sqlite_master")).where(
                    text("name = :name")), {"name": table.name})
                assert ("AUTOINCREMENT" in definition) == ("id" in table.c), table.name
    for table in schema.metadata.sorted_tables:
        present = {index["name"] for index in inspect(empty_engine).get_indexes(table.name)}
        assert {index.name for index in table.indexes} <= present, table.name
    registry.delete_product(alice, last.id)
    assert registry.create_product(alice, display_name="Next", product_type="other").id > last.id


def test_step_5_makes_ids_and_references_64_bit_keeping_every_row(backend: str, empty_engine: Engine) -> None:
    _version_4_database_with_32_bit_ids(empty_engine)
    registry = Registry(empty_engine, migrate_schema=False)
    alice = registry.create_user("alice", groups=["lsst"])
    registry.create_release("dp1", "Data Preview 1", access_groups=["lsst"])
    kept = registry.create_product(alice, display_name="Kept", product_type="other", release="dp1")
    registry.add_file(alice, kept.id, name="kept.csv", storage_key="k/1", size=1)
    before = _rows(empty_engine)

    assert migrate(empty_engine) == LATEST_VERSION

    assert _rows(empty_engine) == before
    with empty_engine.begin() as connection:
        if backend == "sqlite":
            connection.execute(text("UPDATE sqlite_sequence SET seq = :last WHERE name = 'products'"), {"last": 2**62})
        else:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('products', 'id'), :last)"), {"last": 2**62})
    huge = registry.create_product(alice, display_name="Huge", product_type="other", release="dp1")
    assert huge.id == 2**62 + 1
    registry.add_file(alice, huge.id, name="huge.csv", storage_key="k/2", size=1)
    registry.create_process(alice, pipeline="p", display_name="run", inputs=[huge.id], output_product=kept.id)
    assert [stored.name for stored in registry.list_files(alice, huge.id)] == ["huge.csv"]
    assert registry.get_product(alice, huge.id).display_name == "Huge"


def _file_row(product_id: int, name: str, moment: datetime) -> dict:
    """A main file row written past the registry's checks."""
    return {
        "product_id": product_id,
        "role": int(FileRole.MAIN),
        "name": name,
        "size": 1,
        "extension": ".csv",
        "is_directory": False,
        "storage_key": f"k/{name}",
        "created_at": moment,
        "updated_at": moment,
    }


def _version_2_database(engine: Engine) -> None:
    """A database as the code of schema version 2 made it: SQLite ids without AUTOINCREMENT, no index holding
    one main file per product."""
    old = MetaData()
    for table in schema.metadata.sorted_tables:
        copy = table.to_metadata(old)
        copy.dialect_kwargs["sqlite_autoincrement"] = False
        copy.indexes = {index for index in copy.indexes if index.name != schema.ONE_MAIN_FILE_INDEX.name}
    with engine.begin() as connection:
        old.create_all(connection)
        _apply_steps_up_to(2, connection)


def _rows(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every registry table, in primary-key order."""
    with engine.connect() as connection:
        return {
            table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
            for table in schema.metadata.sorted_tables
        }


def _version_4_database_with_32_bit_ids(engine: Engine) -> None:
    """A database as the code of schema version 4 made it: ids and references ``INTEGER`` (32-bit on Postgres)."""
    old = MetaData()
    for table in schema.metadata.sorted_tables:
        copy = table.to_metadata(old)
        for column in copy.c:
            if column.name == "id" or column.foreign_keys:
                column.type = Integer()
    with engine.begin() as connection:
        old.create_all(connection)
        _apply_steps_up_to(4, connection)


def _apply_steps_up_to(version: int, connection: Connection) -> None:
    """Bring a database whose tables are made to ``version``, recording each step as ``migrate`` does."""
    schema_version.create(connection)
    for step in MIGRATIONS[:version]:
        step.apply(connection)
        connection.execute(
            insert(schema_version).values(version=step.version, description=step.description, applied_at=func.now())
        )
