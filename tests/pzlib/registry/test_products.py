"""Product types and products in the registry (pzlib.registry.products), each test run on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC

import pytest
from fixtures.registry import SPECZ_COLUMNS, create_specz, publish
from sqlalchemy import func, select

from pzlib.registry import (
    AlreadyExists,
    InvalidInput,
    MissingColumns,
    NotFound,
    PermissionDenied,
    ProductFilter,
    ProductStatus,
    Registry,
    Terms,
    User,
    schema,
)

# Product types


def test_product_types_are_seeded_in_linea_order(registry: Registry) -> None:
    product_types = registry.list_product_types()

    assert [(kind.name, kind.display_name, kind.order) for kind in product_types] == [
        ("redshift_catalog", "Reference Redshift Catalog", 1),
        ("training_set", "Training Set", 2),
        ("training_results", "Training Results", 3),
        ("validation_results", "Validation Results", 4),
        ("photoz_estimates", "Photo-z Estimates", 5),
        ("object_catalog", "Objects Catalog", 6),
        ("other", "Other", 7),
    ]
    assert all(kind.description for kind in product_types)


def test_product_type_is_found_by_id_or_name(registry: Registry) -> None:
    training_set = registry.get_product_type("training_set")

    assert registry.get_product_type(training_set.id) == training_set
    with pytest.raises(NotFound, match="'galaxies'"):
        registry.get_product_type("galaxies")


# Products: creation


def test_create_product_names_it_after_its_id_and_display_name(registry: Registry, alice: User) -> None:
    product = registry.create_product(
        alice,
        display_name="  My Spec-z Catálogo (DR2)  ",
        product_type="redshift_catalog",
        description="spectra from DESI",
        release_year=2025,
        provenance={"pipeline": "combine_redshift", "inputs": [1, 2]},
    )

    assert product.internal_name == f"{product.id}_my_specz_catalogo_dr2"
    assert product.display_name == "My Spec-z Catálogo (DR2)"
    assert (product.product_type_name, product.owner_username, product.status) == (
        "redshift_catalog",
        "alice",
        ProductStatus.REGISTERING,
    )
    assert (product.official, product.release_id, product.release_year) == (False, None, 2025)
    assert product.provenance == {"pipeline": "combine_redshift", "inputs": [1, 2]}
    assert product.created_at.tzinfo is UTC
    assert registry.get_product(alice, product.internal_name) == product


def test_create_product_in_a_release_and_by_type_id(registry: Registry, alice: User) -> None:
    release = registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    training_set = registry.get_product_type("training_set")

    product = registry.create_product(
        alice, display_name="TS", product_type=training_set.id, release="dp2", status="Processing"
    )

    assert (product.product_type_name, product.release_id, product.release_name) == (
        "training_set",
        release.id,
        "dp2",
    )
    assert product.status is ProductStatus.PROCESSING


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"display_name": "x", "product_type": "galaxies"}, "unknown product type 'galaxies'; use one of"),
        ({"display_name": "x", "product_type": "other", "release": "dr9"}, "release 'dr9' does not exist"),
        ({"display_name": "   ", "product_type": "other"}, "display_name is empty"),
        ({"display_name": "!!!", "product_type": "other"}, "needs at least one letter or digit"),
        ({"display_name": "x" * 256, "product_type": "other"}, "the limit is 255"),
        ({"display_name": "x", "product_type": "training_set", "pz_code": "fzb"}, "pz_code must be empty"),
        ({"display_name": "x", "product_type": "other", "release_year": 99}, "release_year"),
        ({"display_name": "x", "product_type": "other", "provenance": {"bad": float("nan")}}, "JSON"),
        ({"display_name": "x", "product_type": "other", "status": 7}, "product status 7 is unknown"),
    ],
)
def test_create_product_refuses_bad_input(
    registry: Registry, alice: User, fields: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        registry.create_product(alice, **fields)

    assert registry.list_products(alice).count == 0


def test_display_names_are_unique_per_owner_among_live_products(
    registry: Registry, alice: User, bob: User
) -> None:
    first = create_specz(registry, alice, "Spec-z DR2")

    with pytest.raises(AlreadyExists, match=first.internal_name):
        create_specz(registry, alice, "spec-z dr2")
    assert create_specz(registry, bob, "Spec-z DR2").owner_id == bob.id

    registry.update_product(alice, first.id, status=ProductStatus.DELETED)
    assert create_specz(registry, alice, "Spec-z DR2").id != first.id


def test_only_admins_make_official_products(registry: Registry, admin: User, alice: User) -> None:
    with pytest.raises(PermissionDenied, match="only admins"):
        create_specz(registry, alice, official=True)

    assert create_specz(registry, admin, official=True).official
    mine = create_specz(registry, alice)
    with pytest.raises(PermissionDenied, match="only admins"):
        registry.update_product(alice, mine.id, official=True)
    assert registry.update_product(admin, mine.id, official=True).official


def test_products_go_only_into_releases_the_user_may_see(registry: Registry, alice: User, bob: User) -> None:
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])

    with pytest.raises(PermissionDenied, match="'dp2'"):
        create_specz(registry, bob, release="dp2")
    assert create_specz(registry, alice, release="dp2").release_name == "dp2"


# Products: visibility and listing


def test_products_are_visible_by_owner_release_and_groups(
    registry: Registry, admin: User, alice: User, bob: User
) -> None:
    carol = registry.create_user("carol", groups=["lsst"])
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    no_release = publish(registry, carol, create_specz(registry, carol, "No release"))
    public = publish(registry, carol, create_specz(registry, carol, "Public", release="dp1"))
    restricted = publish(registry, carol, create_specz(registry, carol, "Restricted", release="dp2"))
    bobs_own = create_specz(registry, bob, "Bob's", release="dp1")
    registry.update_release("dp1", is_public=False)
    carol = registry.update_user("carol", groups=[])

    def visible(user: User) -> set[int]:
        return {product.id for product in registry.list_products(user).results}

    assert visible(admin) == {no_release.id, public.id, restricted.id, bobs_own.id}
    assert visible(carol) == {no_release.id, public.id, restricted.id}
    assert visible(alice) == {no_release.id, restricted.id}
    assert visible(bob) == {no_release.id, bobs_own.id}
    assert registry.get_product(alice, restricted.id) == restricted
    with pytest.raises(NotFound, match=f"product {restricted.id} does not exist or is not visible"):
        registry.get_product(bob, restricted.id)
    with pytest.raises(NotFound):
        registry.get_product(bob, restricted.internal_name)


@pytest.mark.parametrize("status", [ProductStatus.REGISTERING, ProductStatus.PROCESSING, ProductStatus.FAILED])
def test_drafts_are_visible_only_to_their_owner_and_admins(
    registry: Registry, admin: User, alice: User, bob: User, status: ProductStatus
) -> None:
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    drafts = [
        create_specz(registry, alice, "Draft", status=status),
        create_specz(registry, alice, "Public draft", release="dp1", status=status),
    ]
    main_files = [
        registry.add_file(alice, draft.id, name="specz.csv", storage_key=f"k/{draft.id}", size=1) for draft in drafts
    ]
    for draft in drafts:
        registry.set_contents(alice, draft.id, SPECZ_COLUMNS)

    for user in (alice, admin):
        assert {product.id for product in registry.list_products(user).results} == {draft.id for draft in drafts}
        for draft in drafts:
            assert registry.get_product(user, draft.internal_name).id == draft.id
    assert registry.list_products(bob).count == 0
    assert registry.list_products(bob, ProductFilter(status=(status,), owner=("alice",))).count == 0
    for draft, main in zip(drafts, main_files, strict=True):
        for read, reference in (
            (registry.get_product, draft.id),
            (registry.get_product, draft.internal_name),
            (registry.list_files, draft.id),
            (registry.get_file, main.id),
            (registry.list_contents, draft.id),
        ):
            with pytest.raises(NotFound, match="does not exist"):
                read(bob, reference)
        with pytest.raises(InvalidInput, match="not visible to you"):
            registry.create_process(bob, pipeline="p", display_name="x", inputs=[draft.id])

    published = registry.update_product(alice, drafts[1].id, status=ProductStatus.PUBLISHED)
    assert [product.id for product in registry.list_products(bob).results] == [published.id]
    assert registry.list_files(bob, published.id) == (main_files[1],)


def test_missing_products_are_not_found(registry: Registry, admin: User) -> None:
    for reference in (12345, "12345_nothing"):
        with pytest.raises(NotFound, match="does not exist"):
            registry.get_product(admin, reference)
    with pytest.raises(InvalidInput):
        registry.get_product(admin, True)


def test_list_products_filters_like_lineas_api(
    registry: Registry, admin: User, alice: User, bob: User
) -> None:
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    specz = create_specz(registry, alice, "DESI spec-z", release="dp1")
    training = registry.create_product(alice, display_name="DESI training", product_type="training_set")
    official = registry.create_product(
        admin, display_name="Rubin objects", product_type="object_catalog", official=True, release="dp1"
    )
    official = publish(registry, admin, official)
    other = registry.create_product(bob, display_name="Bob notes", product_type="other")
    registry.update_product(bob, other.id, status=ProductStatus.PUBLISHED)

    def ids(**filters) -> list[int]:
        page = registry.list_products(alice, ProductFilter(**filters), order_by="id")
        return [product.id for product in page.results]

    assert ids(product_type=("redshift_catalog", training.product_type_id)) == [specz.id, training.id]
    assert ids(release=("dp1",)) == [specz.id, official.id]
    assert ids(without_release=True) == [training.id, other.id]
    assert ids(without_release=False) == [specz.id, official.id]
    assert ids(status=(ProductStatus.PUBLISHED,)) == [official.id, other.id]
    assert ids(official=True) == [official.id]
    assert ids(owner=("bob", admin.id)) == [official.id, other.id]
    assert ids(internal_name=(specz.internal_name,)) == [specz.id]
    assert ids(display_name=("Bob notes",)) == [other.id]
    assert ids(ids=(training.id, other.id)) == [training.id, other.id]
    assert ids(product_name=Terms(("desi", "spec"))) == [specz.id]
    assert ids(product_name=Terms(("spec", "notes"), any_of=True)) == [specz.id, other.id]
    assert ids(product_type_name=Terms(("training",))) == [training.id]
    assert ids(release_name=Terms(("preview",))) == [specz.id, official.id]
    assert ids(uploaded_by=Terms(("liddell",))) == [specz.id, training.id]
    assert ids(search="ALICE") == [specz.id, training.id]


def test_hostile_filter_values_match_nothing_and_change_nothing(registry: Registry, alice: User) -> None:
    create_specz(registry, alice, "Spec-z DR2")

    hostile_values = ("%", "_", "\\", "'; DROP TABLE products; --", "' OR '1'='1")
    for value in hostile_values:
        for filters in (
            ProductFilter(product_name=Terms((value,))),
            ProductFilter(uploaded_by=Terms(("alice", value), any_of=False)),
            ProductFilter(internal_name=(value,)),
            ProductFilter(search=value),
        ):
            assert registry.list_products(alice, filters).count == 0, (value, filters)
    assert registry.list_products(alice).count == 1
    with pytest.raises(InvalidInput, match="product_type must be given by id or name"):
        registry.list_products(alice, ProductFilter(product_type=(None,)))
    with pytest.raises(InvalidInput, match="NUL"):
        registry.list_products(alice, ProductFilter(search="spec\x00"))


def test_list_products_pages_and_orders(registry: Registry, alice: User) -> None:
    names = ["delta", "Alpha", "charlie", "bravo", "echo"]
    for name in names:
        registry.create_product(alice, display_name=name, product_type="other")

    first = registry.list_products(alice, page_size=2, order_by="display_name")
    third = registry.list_products(alice, page=3, page_size=2, order_by="display_name")
    beyond = registry.list_products(alice, page=4, page_size=2)
    newest_first = registry.list_products(alice)

    assert first.count == third.count == beyond.count == 5
    assert [product.display_name for product in first.results] == ["Alpha", "bravo"]
    assert [product.display_name for product in third.results] == ["echo"]
    assert beyond.results == ()
    assert [product.display_name for product in newest_first.results] == names[::-1]
    descending = registry.list_products(alice, order_by="-id")
    assert [product.id for product in descending.results] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"page": 0}, "page must be a positive integer"),
        ({"page_size": 1001}, "page_size must be between 1 and 1000"),
        ({"order_by": "password"}, "cannot order products by 'password'"),
        ({"order_by": "-display_name; DROP TABLE products"}, "cannot order products by"),
    ],
)
def test_list_products_refuses_bad_paging(
    registry: Registry, alice: User, arguments: dict, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        registry.list_products(alice, **arguments)


# Products: changes


def test_owners_and_admins_update_products_others_may_not(
    registry: Registry, admin: User, alice: User, bob: User
) -> None:
    product = publish(registry, alice, create_specz(registry, alice))

    renamed = registry.update_product(alice, product.id, display_name="Spec-z v2", description="new")
    by_admin = registry.update_product(admin, product.internal_name, pz_code=None, release_year=2026)

    assert (renamed.display_name, renamed.description) == ("Spec-z v2", "new")
    assert renamed.internal_name == product.internal_name
    assert renamed.updated_at >= product.updated_at
    assert by_admin.release_year == 2026
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        registry.update_product(bob, product.id, description="mine now")
    assert registry.get_product(alice, product.id).description == "new"


def test_update_product_refuses_bad_changes(registry: Registry, alice: User) -> None:
    product = create_specz(registry, alice)
    create_specz(registry, alice, "Other name")

    with pytest.raises(AlreadyExists):
        registry.update_product(alice, product.id, display_name="other NAME")
    with pytest.raises(InvalidInput, match="pz_code must be empty"):
        registry.update_product(alice, product.id, pz_code="bpz")
    with pytest.raises(InvalidInput, match="release 'dr9'"):
        registry.update_product(alice, product.id, release="dr9")
    with pytest.raises(NotFound):
        registry.update_product(alice, 999, description="x")
    assert registry.get_product(alice, product.id) == product


def test_publishing_needs_the_mandatory_columns_of_the_type(registry: Registry, alice: User) -> None:
    specz = create_specz(registry, alice)
    registry.set_contents(alice, specz.id, ["ra", "dec", "z"])

    with pytest.raises(MissingColumns, match="RA, Dec, z") as refused:
        registry.update_product(alice, specz.id, status=ProductStatus.PUBLISHED)
    assert refused.value.missing == ("RA", "Dec", "z")

    registry.set_contents(alice, specz.id, SPECZ_COLUMNS)
    published = registry.update_product(alice, specz.id, status=1)
    free_format = registry.create_product(alice, display_name="Model", product_type="training_results")

    assert published.status is ProductStatus.PUBLISHED
    assert (
        registry.update_product(alice, free_format.id, status="published").status is ProductStatus.PUBLISHED
    )


def test_delete_product_removes_it_with_its_files_and_columns(
    registry: Registry, alice: User, bob: User
) -> None:
    product = publish(registry, alice, create_specz(registry, alice))
    main = registry.add_file(alice, product.id, name="specz.csv", storage_key="k/specz.csv", size=10)
    used_by = registry.create_process(
        alice, pipeline="training_set_maker", display_name="TSM", inputs=[product.id]
    )
    filled_by = registry.create_process(
        alice, pipeline="combine_redshift", display_name="CRC", output_product=product.id
    )

    with pytest.raises(PermissionDenied):
        registry.delete_product(bob, product.id)
    removed = registry.delete_product(alice, product.id)

    assert removed == (main,)
    with pytest.raises(NotFound):
        registry.get_product(alice, product.id)
    with registry.engine.connect() as connection:
        for table in (schema.product_files, schema.product_contents):
            assert connection.scalar(select(func.count()).select_from(table)) == 0
    assert registry.get_process(alice, used_by.id).inputs == ()
    assert registry.get_process(alice, filled_by.id).output_product_id is None
