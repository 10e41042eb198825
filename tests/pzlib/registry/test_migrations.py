"""Schema migrations on SQLite and Postgres: from empty to latest, idempotent, refusing newer databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, func, insert, inspect, select

from pzlib.registry import LATEST_VERSION, Registry, RegistryError, current_version, migrate, schema
from pzlib.registry.migrations import schema_version


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
        connection.execute(delete(schema_version).where(schema_version.c.version == 2))
    assert current_version(empty_engine) == 1

    assert migrate(empty_engine) == LATEST_VERSION

    columns = {column["name"] for column in inspect(empty_engine).get_columns("releases")}
    assert {"object_catalog", "object_column_map"} <= columns
    updated = registry.update_release("dp1", object_catalog="/data/dp1/objects", object_column_map="dm_gaap")
    assert (updated.name, updated.object_catalog, updated.object_column_map) == ("dp1", "/data/dp1/objects", "dm_gaap")
