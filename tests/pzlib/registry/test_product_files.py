"""Product files and contents in the registry (pzlib.registry.product_files), each test run on SQLite and on
Postgres."""

from __future__ import annotations

import pytest
from fixtures.registry import SPECZ_COLUMNS, create_specz, publish

from pzlib.registry import (
    AlreadyExists,
    ColumnSpec,
    FileRole,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Registry,
    User,
)

# Product files


def test_files_are_added_listed_updated_and_deleted(registry: Registry, alice: User, bob: User) -> None:
    product = publish(registry, alice, create_specz(registry, alice))
    main = registry.add_file(
        alice,
        product.id,
        name="SpecZ.CSV",
        storage_key="redshift_catalog/1/specz.csv",
        size=2048,
        mime_type="text/csv",
        checksum="ab" * 32,
    )
    readme = registry.add_file(
        alice, product.id, name="README.md", storage_key="k/readme", size=5, role="description"
    )
    hats = registry.add_file(
        alice,
        product.id,
        name="specz_hats",
        storage_key="k/hats",
        size=9,
        role=FileRole.AUXILIARY,
        is_directory=True,
    )

    assert (main.role, main.extension, main.n_rows, main.is_directory) == (FileRole.MAIN, ".csv", None, False)
    assert (hats.extension, hats.is_directory) == ("", True)
    assert registry.list_files(bob, product.id) == (main, readme, hats)
    assert registry.list_files(alice, product.id, role="auxiliary") == (hats,)
    assert registry.get_file(bob, main.id) == main

    counted = registry.update_file(alice, main.id, n_rows=120)
    assert (counted.n_rows, counted.size, counted.checksum) == (120, 2048, "ab" * 32)
    assert registry.delete_file(alice, readme.id) == readme
    assert registry.list_files(alice, product.id) == (counted, hats)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "../../etc/passwd"}, "not a plain file name"),
        ({"name": "dir/specz.csv"}, "not a plain file name"),
        ({"name": "..\\specz.csv"}, "not a plain file name"),
        ({"name": ".."}, "not a plain file name"),
        ({"name": ""}, "file name '' is empty"),
        ({"name": "a\nb.csv"}, "control characters"),
        ({"size": -1}, "size must be a non-negative integer"),
        ({"n_rows": 1.5}, "n_rows must be a non-negative integer"),
        ({"role": "thumbnail"}, "file role 'thumbnail' is unknown"),
        ({"storage_key": " "}, "storage_key"),
    ],
)
def test_add_file_refuses_bad_input(registry: Registry, alice: User, fields: dict, message: str) -> None:
    product = create_specz(registry, alice)
    arguments = {"name": "specz.csv", "storage_key": "k", "size": 1, **fields}

    with pytest.raises(InvalidInput, match=message):
        registry.add_file(alice, product.id, **arguments)

    assert registry.list_files(alice, product.id) == ()


def test_add_file_refuses_a_second_main_file_a_repeated_name_and_other_users(
    registry: Registry, alice: User, bob: User
) -> None:
    product = publish(registry, alice, create_specz(registry, alice))
    registry.add_file(alice, product.id, name="specz.csv", storage_key="k/1", size=1)

    with pytest.raises(AlreadyExists, match="already has a main file"):
        registry.add_file(alice, product.id, name="other.csv", storage_key="k/2", size=1)
    with pytest.raises(AlreadyExists, match="already has a file named 'specz.csv'"):
        registry.add_file(alice, product.id, name="specz.csv", storage_key="k/3", size=1, role="auxiliary")
    with pytest.raises(PermissionDenied):
        registry.add_file(bob, product.id, name="bob.csv", storage_key="k/4", size=1, role="auxiliary")
    with pytest.raises(NotFound):
        registry.get_file(alice, 999)
    assert len(registry.list_files(alice, product.id)) == 1


def test_files_of_products_a_user_may_not_see_or_change_are_out_of_reach(
    registry: Registry, alice: User, bob: User
) -> None:
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    product = create_specz(registry, alice, release="dp2")
    main = registry.add_file(alice, product.id, name="specz.csv", storage_key="k", size=1)

    with pytest.raises(NotFound):
        registry.get_file(bob, main.id)
    with pytest.raises(NotFound):
        registry.delete_file(bob, main.id)
    with pytest.raises(NotFound):
        registry.list_files(bob, product.id)


# Product contents


def test_contents_record_columns_in_order_and_are_replaced(registry: Registry, alice: User) -> None:
    product = create_specz(registry, alice)
    registry.set_contents(alice, product.id, ["a", "b"])

    contents = registry.set_contents(alice, product.id, SPECZ_COLUMNS)

    assert [(content.column_name, content.alias, content.order) for content in contents] == [
        ("id", "ID", 0),
        ("ra", "RA", 1),
        ("dec", "Dec", 2),
        ("z", "z", 3),
        ("survey", None, 4),
    ]
    assert contents[1].ucd == "pos.eq.ra;meta.main"
    assert registry.list_contents(alice, product.internal_name) == contents


def test_set_contents_refuses_repeated_columns_and_aliases(
    registry: Registry, alice: User, bob: User
) -> None:
    product = publish(registry, alice, create_specz(registry, alice))
    registry.set_contents(alice, product.id, ["ra"])

    with pytest.raises(InvalidInput, match="column 'ra' is listed twice"):
        registry.set_contents(alice, product.id, ["ra", "ra"])
    with pytest.raises(InvalidInput, match="alias 'Z' is given to both 'zspec' and 'zbest'"):
        registry.set_contents(
            alice, product.id, [ColumnSpec("zspec", alias="z"), ColumnSpec("zbest", alias="Z")]
        )
    with pytest.raises(InvalidInput, match="column 0 has no name"):
        registry.set_contents(alice, product.id, [" "])
    with pytest.raises(PermissionDenied):
        registry.set_contents(bob, product.id, ["x"])
    assert [content.column_name for content in registry.list_contents(alice, product.id)] == ["ra"]


def test_update_content_associates_a_column(registry: Registry, alice: User, bob: User) -> None:
    product = publish(registry, alice, create_specz(registry, alice))
    ra, dec = registry.set_contents(alice, product.id, ["ra", "dec"])

    associated = registry.update_content(alice, ra.id, ucd="pos.eq.ra;meta.main", alias="RA")
    cleared = registry.update_content(alice, associated.id, ucd="")

    assert (associated.ucd, associated.alias) == ("pos.eq.ra;meta.main", "RA")
    assert (cleared.ucd, cleared.alias) == (None, "RA")
    with pytest.raises(InvalidInput, match="alias 'ra' is already given to column 'ra'"):
        registry.update_content(alice, dec.id, alias="ra")
    with pytest.raises(PermissionDenied):
        registry.update_content(bob, dec.id, alias="Dec")
    with pytest.raises(NotFound):
        registry.update_content(alice, 999, alias="Dec")
