"""The registry as one object: it opens from a URL on SQLite and on Postgres."""

from __future__ import annotations

from pzlib.registry import Registry


def test_registry_opens_from_a_url(backend: str, database_url: str) -> None:
    registry = Registry(database_url)

    assert registry.engine.dialect.name == backend
    assert len(registry.list_product_types()) == 7
    if backend == "postgresql":
        assert registry.engine.dialect.driver == "psycopg"
    registry.engine.dispose()
