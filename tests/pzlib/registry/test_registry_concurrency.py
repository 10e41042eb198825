"""Races on one product in real threads, on SQLite and on Postgres: one main file per product whatever uploads
race, changes racing deletes end in a result or a domain error (never a database error), ids never given twice.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from pzlib.registry import (
    AlreadyExists,
    ColumnSpec,
    FileRole,
    NotFound,
    Product,
    ProductFile,
    Registry,
    User,
    schema,
)
from pzlib.registry.registration import ProductFiles
from pzlib.storage import open_storage

RACERS = 8
"""Threads released together on one product."""

ROUNDS = 6
"""Races of each pair of operations: enough for the losing interleavings to happen on the old code."""

SPECZ_CSV = b"ra,dec,z\n10.5,-3.25,0.5\n10.6,-3.5,0.75\n"


def _race(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call in its own thread, released together; each call's result or the exception it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return call()
        except Exception as error:  # the outcome under test
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _unexpected(outcomes: list[object]) -> list[object]:
    """Outcomes that are neither a result nor a domain error a client is told as a 404 or a 409."""
    return [outcome for outcome in outcomes if isinstance(outcome, Exception)
            and not isinstance(outcome, NotFound | AlreadyExists)]


@pytest.fixture
def files(registry: Registry, tmp_path: Path) -> ProductFiles:
    """Product files over ``registry`` and a local store."""
    return ProductFiles(registry, open_storage(str(tmp_path / "store")), upload_limit_bytes=1 << 20)


def _specz(files: ProductFiles, owner: User, name: str) -> Product:
    return files.registry.create_product(owner, display_name=name, product_type="redshift_catalog")


def _upload(files: ProductFiles, owner: User, product: Product, name: str) -> ProductFile:
    return files.upload(owner, product.id, name=name, content=io.BytesIO(SPECZ_CSV))


def _stored_keys(files: ProductFiles) -> set[str]:
    return {item.key for item in files.storage.list_objects()}


def test_the_database_refuses_a_second_main_file_of_a_product(registry: Registry, alice: User) -> None:
    product = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    main = registry.add_file(alice, product.id, name="specz.csv", storage_key="k/1", size=1)
    row = {
        "product_id": product.id,
        "size": 1,
        "extension": ".csv",
        "is_directory": False,
        "created_at": main.created_at,
        "updated_at": main.created_at,
    }

    with pytest.raises(IntegrityError), registry.engine.begin() as connection:
        connection.execute(
            insert(schema.product_files).values(role=int(FileRole.MAIN), name="second.csv", storage_key="k/2", **row)
        )
    with registry.engine.begin() as connection:
        connection.execute(
            insert(schema.product_files).values(role=int(FileRole.AUXILIARY), name="aux.csv", storage_key="k/3", **row)
        )

    assert [stored.name for stored in registry.list_files(alice, product.id, FileRole.MAIN)] == ["specz.csv"]


def test_concurrent_main_file_uploads_leave_exactly_one(files: ProductFiles, alice: User) -> None:
    for round_number in range(3):
        product = _specz(files, alice, f"Spec-z {round_number}")

        outcomes = _race([
            partial(_upload, files, alice, product, f"specz_{racer}.csv") for racer in range(RACERS)
        ])

        stored = [outcome for outcome in outcomes if isinstance(outcome, ProductFile)]
        refused = [outcome for outcome in outcomes if isinstance(outcome, AlreadyExists)]
        assert (len(stored), len(refused)) == (1, RACERS - 1), outcomes
        assert files.registry.list_files(alice, product.id) == (stored[0],)
        assert "already has a main file" in str(refused[0])
    # The losers' bytes (and table summaries) were removed: only the winners' uploads remain.
    products = files.registry.list_products(alice).results
    winners = [files.registry.list_files(alice, product.id)[0] for product in products]
    upload_folders = tuple(winner.storage_key.rsplit("/", 1)[0] for winner in winners)
    assert all(key.startswith(upload_folders) for key in _stored_keys(files)), _stored_keys(files)


def test_concurrent_deletes_of_one_product_delete_it_once(files: ProductFiles, alice: User) -> None:
    product = _specz(files, alice, "Spec-z")
    _upload(files, alice, product, "specz.csv")

    outcomes = _race([lambda: files.delete_product(alice, product.id) for _ in range(RACERS)])

    deleted = [outcome for outcome in outcomes if isinstance(outcome, Product)]
    not_found = [outcome for outcome in outcomes if isinstance(outcome, NotFound)]
    assert (len(deleted), len(not_found)) == (1, RACERS - 1), outcomes
    assert _stored_keys(files) == set()


def _change(files: ProductFiles, user: User, product: Product) -> Callable[[], object]:
    return lambda: files.registry.update_product(user, product.id, description="changed while deleted")


def _delete(files: ProductFiles, user: User, product: Product) -> Callable[[], object]:
    return lambda: files.delete_product(user, product.id)


def _set_columns(files: ProductFiles, user: User, product: Product) -> Callable[[], object]:
    return lambda: files.registry.set_contents(user, product.id, [ColumnSpec("ra", alias="RA"), "dec", "z"])


def _upload_auxiliary(files: ProductFiles, user: User, product: Product) -> Callable[[], object]:
    return lambda: files.upload(user, product.id, name="notes.txt", content=io.BytesIO(b"notes"), role="auxiliary")


def _delete_main_file(files: ProductFiles, user: User, product: Product) -> Callable[[], object]:
    main = files.registry.list_files(user, product.id, FileRole.MAIN)[0]
    return lambda: files.delete_file(user, main.id)


@pytest.mark.parametrize(
    "operation",
    [_change, _set_columns, _upload_auxiliary, _delete_main_file],
    ids=["patch", "set_contents", "upload", "delete_file"],
)
def test_an_operation_racing_a_delete_of_its_product_ends_in_a_result_or_a_domain_error(
    files: ProductFiles, alice: User, operation: Callable[[ProductFiles, User, Product], Callable[[], object]]
) -> None:
    outcomes: list[object] = []
    for round_number in range(ROUNDS):
        products = [_specz(files, alice, f"Spec-z {round_number}.{pair}") for pair in range(RACERS // 2)]
        for product in products:
            _upload(files, alice, product, "specz.csv")
        calls = [
            call for product in products for call in (operation(files, alice, product), _delete(files, alice, product))
        ]

        outcomes += _race(calls)

        assert files.registry.list_products(alice).count == 0
        assert _stored_keys(files) == set()
    assert _unexpected(outcomes) == []


def test_ids_of_deleted_records_are_never_given_again(registry: Registry, alice: User) -> None:
    first = registry.create_product(alice, display_name="First", product_type="other")
    last = registry.create_product(alice, display_name="Last", product_type="other")
    registry.delete_product(alice, last.id)
    main = registry.add_file(alice, first.id, name="a.csv", storage_key="k/a", size=1)
    registry.delete_file(alice, main.id)
    columns = registry.set_contents(alice, first.id, ["ra", "dec"])

    after_delete = registry.create_product(alice, display_name="Last", product_type="other")
    new_main = registry.add_file(alice, first.id, name="a.csv", storage_key="k/a", size=1)
    new_columns = registry.set_contents(alice, first.id, ["ra", "dec"])

    assert after_delete.id > last.id
    assert after_delete.internal_name != last.internal_name
    assert new_main.id > main.id
    assert min(column.id for column in new_columns) > max(column.id for column in columns)
