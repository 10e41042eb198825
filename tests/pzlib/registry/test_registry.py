"""The registry's domain rules, each test run on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, select

from pzlib.registry import (
    AlreadyExists,
    AuthenticationFailed,
    ColumnSpec,
    FileRole,
    InvalidInput,
    MissingColumns,
    NotFound,
    PermissionDenied,
    ProcessStatus,
    Product,
    ProductFilter,
    ProductStatus,
    Registry,
    Terms,
    User,
    schema,
)

SPECZ_COLUMNS = (
    ColumnSpec("id", "meta.id;meta.main", "ID"),
    ColumnSpec("ra", "pos.eq.ra;meta.main", "RA"),
    ColumnSpec("dec", "pos.eq.dec;meta.main", "Dec"),
    ColumnSpec("z", "src.redshift", "z"),
    ColumnSpec("survey"),
)


def _specz(registry: Registry, user: User, name: str = "Spec-z DR2", **fields) -> Product:
    return registry.create_product(user, display_name=name, product_type="redshift_catalog", **fields)


def _publish(registry: Registry, user: User, product: Product) -> Product:
    """Associate the spec-z columns (they cover every mandatory alias) and publish: others see it now."""
    registry.set_contents(user, product.id, SPECZ_COLUMNS)
    return registry.update_product(user, product.id, status=ProductStatus.PUBLISHED)


# Opening


def test_registry_opens_from_a_url(backend: str, database_url: str) -> None:
    registry = Registry(database_url)

    assert registry.engine.dialect.name == backend
    assert len(registry.list_product_types()) == 7
    if backend == "postgresql":
        assert registry.engine.dialect.driver == "psycopg"
    registry.engine.dispose()


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


# Users and tokens


def test_users_are_created_listed_and_updated(registry: Registry) -> None:
    registry.create_user("zoe")
    alice = registry.create_user("alice", groups=["lsst", "des", "lsst"], first_name="Alice")

    assert alice.groups == ("des", "lsst")
    assert alice.display_name == "Alice"
    assert alice.created_at.tzinfo is UTC
    assert [user.username for user in registry.list_users()] == ["alice", "zoe"]

    updated = registry.update_user("alice", is_admin=True, groups=["rubin"])

    assert (updated.is_admin, updated.groups) == (True, ("rubin",))
    assert registry.get_user(alice.id) == updated


def test_bad_users_are_refused(registry: Registry) -> None:
    registry.create_user("alice")

    with pytest.raises(AlreadyExists, match="'alice'"):
        registry.create_user("alice")
    with pytest.raises(InvalidInput, match="username"):
        registry.create_user("alice smith")
    with pytest.raises(InvalidInput, match="group name"):
        registry.create_user("carol", groups=[""])
    with pytest.raises(NotFound, match="'nobody'"):
        registry.get_user("nobody")
    with pytest.raises(NotFound):
        registry.update_user("nobody", is_admin=True)


def test_a_token_authenticates_its_user_and_only_its_hash_is_stored(registry: Registry, alice: User) -> None:
    key = registry.create_token("alice", label="notebook")

    assert registry.authenticate(key) == alice
    with registry.engine.connect() as connection:
        stored = connection.execute(select(schema.api_tokens)).one()
    assert key not in str(tuple(stored))
    assert stored.label == "notebook"


def test_bad_or_revoked_tokens_do_not_authenticate(registry: Registry, alice: User) -> None:
    key = registry.create_token(alice.id)
    registry.revoke_token(key)

    for bad_key in (key, "", "not-a-token"):
        with pytest.raises(AuthenticationFailed):
            registry.authenticate(bad_key)
    with pytest.raises(NotFound):
        registry.revoke_token(key)
    with pytest.raises(NotFound, match="'nobody'"):
        registry.create_token("nobody")


# Releases


def test_releases_are_visible_to_admins_their_groups_or_everyone_when_public(
    registry: Registry, admin: User, alice: User, bob: User
) -> None:
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    registry.create_release("dr1", "Data Release 1")

    def visible(user: User) -> list[str]:
        return [release.name for release in registry.list_releases(user)]

    assert visible(admin) == ["dp1", "dp2", "dr1"]
    assert visible(alice) == ["dp1", "dp2"]
    assert visible(bob) == ["dp1"]
    assert registry.get_release(alice, "dp2").access_groups == ("lsst",)
    with pytest.raises(NotFound, match="'dp2'"):
        registry.get_release(bob, "dp2")


def test_releases_are_updated_and_bad_ones_refused(registry: Registry, bob: User) -> None:
    release = registry.create_release("dp1", "Data Preview 1")

    updated = registry.update_release("dp1", display_name="DP1", is_public=True, access_groups=["des"])

    assert (updated.id, updated.display_name, updated.is_public, updated.access_groups) == (
        release.id,
        "DP1",
        True,
        ("des",),
    )
    assert registry.get_release(bob, release.id) == updated
    with pytest.raises(AlreadyExists, match="'dp1'"):
        registry.create_release("dp1", "Again")
    with pytest.raises(InvalidInput, match="release name"):
        registry.create_release("../dp1", "Bad")
    with pytest.raises(NotFound):
        registry.update_release("dr9", is_public=True)


def test_a_release_records_its_object_catalog_for_the_training_set_maker(registry: Registry) -> None:
    column_map = {"value_template": "mag_{band}", "error_template": "magerr_{band}"}
    release = registry.create_release("dp1", "Data Preview 1", object_catalog=" /data/dp1/objects ",
                                      object_column_map=column_map)
    assert (release.object_catalog, release.object_column_map) == ("/data/dp1/objects", column_map)

    renamed = registry.update_release("dp1", display_name="DP1")
    assert (renamed.object_catalog, renamed.object_column_map) == ("/data/dp1/objects", column_map)
    assert registry.update_release("dp1", object_column_map="dm_gaap").object_column_map == "dm_gaap"
    cleared = registry.update_release("dp1", object_catalog=None, object_column_map=None)
    assert (cleared.object_catalog, cleared.object_column_map) == (None, None)
    with pytest.raises(InvalidInput, match="object_column_map"):
        registry.update_release("dp1", object_column_map=["mag_g"])


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
    first = _specz(registry, alice, "Spec-z DR2")

    with pytest.raises(AlreadyExists, match=first.internal_name):
        _specz(registry, alice, "spec-z dr2")
    assert _specz(registry, bob, "Spec-z DR2").owner_id == bob.id

    registry.update_product(alice, first.id, status=ProductStatus.DELETED)
    assert _specz(registry, alice, "Spec-z DR2").id != first.id


def test_only_admins_make_official_products(registry: Registry, admin: User, alice: User) -> None:
    with pytest.raises(PermissionDenied, match="only admins"):
        _specz(registry, alice, official=True)

    assert _specz(registry, admin, official=True).official
    mine = _specz(registry, alice)
    with pytest.raises(PermissionDenied, match="only admins"):
        registry.update_product(alice, mine.id, official=True)
    assert registry.update_product(admin, mine.id, official=True).official


def test_products_go_only_into_releases_the_user_may_see(registry: Registry, alice: User, bob: User) -> None:
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])

    with pytest.raises(PermissionDenied, match="'dp2'"):
        _specz(registry, bob, release="dp2")
    assert _specz(registry, alice, release="dp2").release_name == "dp2"


# Products: visibility and listing


def test_products_are_visible_by_owner_release_and_groups(
    registry: Registry, admin: User, alice: User, bob: User
) -> None:
    carol = registry.create_user("carol", groups=["lsst"])
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    no_release = _publish(registry, carol, _specz(registry, carol, "No release"))
    public = _publish(registry, carol, _specz(registry, carol, "Public", release="dp1"))
    restricted = _publish(registry, carol, _specz(registry, carol, "Restricted", release="dp2"))
    bobs_own = _specz(registry, bob, "Bob's", release="dp1")
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
        _specz(registry, alice, "Draft", status=status),
        _specz(registry, alice, "Public draft", release="dp1", status=status),
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
    specz = _specz(registry, alice, "DESI spec-z", release="dp1")
    training = registry.create_product(alice, display_name="DESI training", product_type="training_set")
    official = registry.create_product(
        admin, display_name="Rubin objects", product_type="object_catalog", official=True, release="dp1"
    )
    official = _publish(registry, admin, official)
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
    _specz(registry, alice, "Spec-z DR2")

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
    product = _publish(registry, alice, _specz(registry, alice))

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
    product = _specz(registry, alice)
    _specz(registry, alice, "Other name")

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
    specz = _specz(registry, alice)
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
    product = _publish(registry, alice, _specz(registry, alice))
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


# Product files


def test_files_are_added_listed_updated_and_deleted(registry: Registry, alice: User, bob: User) -> None:
    product = _publish(registry, alice, _specz(registry, alice))
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
    product = _specz(registry, alice)
    arguments = {"name": "specz.csv", "storage_key": "k", "size": 1, **fields}

    with pytest.raises(InvalidInput, match=message):
        registry.add_file(alice, product.id, **arguments)

    assert registry.list_files(alice, product.id) == ()


def test_add_file_refuses_a_second_main_file_a_repeated_name_and_other_users(
    registry: Registry, alice: User, bob: User
) -> None:
    product = _publish(registry, alice, _specz(registry, alice))
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
    product = _specz(registry, alice, release="dp2")
    main = registry.add_file(alice, product.id, name="specz.csv", storage_key="k", size=1)

    with pytest.raises(NotFound):
        registry.get_file(bob, main.id)
    with pytest.raises(NotFound):
        registry.delete_file(bob, main.id)
    with pytest.raises(NotFound):
        registry.list_files(bob, product.id)


# Product contents


def test_contents_record_columns_in_order_and_are_replaced(registry: Registry, alice: User) -> None:
    product = _specz(registry, alice)
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
    product = _publish(registry, alice, _specz(registry, alice))
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
    product = _publish(registry, alice, _specz(registry, alice))
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


# Processes


def test_process_records_a_pipeline_run(registry: Registry, alice: User) -> None:
    registry.create_release("dp1", "Data Preview 1", is_public=True)
    first = _specz(registry, alice, "First")
    second = _specz(registry, alice, "Second")
    output = registry.create_product(alice, display_name="TSM output", product_type="training_set", status=3)

    process = registry.create_process(
        alice,
        pipeline="training_set_maker",
        display_name="My TSM run",
        used_config={"param": {"crossmatch": {"radius_arcsec": 1.0}}},
        inputs=[second.id, first.internal_name],
        release="dp1",
        output_product=output.id,
    )

    assert process.status is ProcessStatus.PENDING
    assert process.inputs == (second.id, first.id)
    assert process.used_config == {"param": {"crossmatch": {"radius_arcsec": 1.0}}}
    assert (process.output_product_id, process.owner_id) == (output.id, alice.id)
    assert (process.started_at, process.ended_at, process.dag_id) == (None, None, None)
    assert registry.get_process(alice, process.id) == process


def test_process_moves_through_its_states(registry: Registry, alice: User) -> None:
    process = registry.create_process(alice, pipeline="combine_redshift", display_name="CRC")

    queued = registry.update_process(process.id, status="queued", dag_id="pz_crc", run_id="manual__1")
    running = registry.update_process(process.id, status=ProcessStatus.RUNNING)
    failed = registry.update_process(process.id, status="Failed", error="radius must be positive")

    assert (queued.status, queued.dag_id, queued.run_id) == (ProcessStatus.QUEUED, "pz_crc", "manual__1")
    assert running.started_at is not None and running.ended_at is None
    assert failed.ended_at >= failed.started_at
    assert failed.error == "radius must be positive"
    with pytest.raises(InvalidInput, match="already ended \\(Failed\\)"):
        registry.update_process(process.id, status="Running")
    with pytest.raises(InvalidInput, match="process status 'Exploded' is unknown"):
        registry.update_process(process.id, status="Exploded")
    with pytest.raises(NotFound):
        registry.update_process(999, status="Running")


def test_stop_process(registry: Registry, admin: User, alice: User, bob: User) -> None:
    pending = registry.create_process(alice, pipeline="p", display_name="pending")
    running = registry.create_process(alice, pipeline="p", display_name="running")
    registry.update_process(running.id, status="Running")

    assert registry.stop_process(alice, pending.id).status is ProcessStatus.STOPPED
    assert registry.stop_process(admin, running.id).status is ProcessStatus.STOPPING
    with pytest.raises(InvalidInput, match="nothing to stop"):
        registry.stop_process(alice, pending.id)
    with pytest.raises(NotFound):
        registry.stop_process(bob, running.id)


def test_create_process_refuses_bad_inputs_and_outputs(registry: Registry, alice: User, bob: User) -> None:
    registry.create_release("dp2", "Data Preview 2", access_groups=["lsst"])
    hidden = _specz(registry, alice, "Hidden", release="dp2")
    alices_output = _publish(
        registry, alice, registry.create_product(alice, display_name="Out", product_type="training_set")
    )
    bobs_input = _specz(registry, bob)

    with pytest.raises(InvalidInput, match=f"input product {hidden.id} does not exist or is not visible"):
        registry.create_process(bob, pipeline="p", display_name="x", inputs=[hidden.id])
    with pytest.raises(InvalidInput, match="listed twice"):
        registry.create_process(
            bob, pipeline="p", display_name="x", inputs=[bobs_input.id, bobs_input.internal_name]
        )
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        registry.create_process(bob, pipeline="p", display_name="x", output_product=alices_output.id)
    with pytest.raises(PermissionDenied, match="'dp2'"):
        registry.create_process(bob, pipeline="p", display_name="x", release="dp2")
    with pytest.raises(InvalidInput, match="used_config must be a JSON object"):
        registry.create_process(bob, pipeline="p", display_name="x", used_config=["radius"])
    with pytest.raises(NotFound):
        registry.get_process(bob, 1)
    with registry.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(schema.processes)) == 0
