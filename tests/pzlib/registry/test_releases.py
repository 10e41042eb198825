"""Releases in the registry (pzlib.registry.releases), each test run on SQLite and on Postgres."""

from __future__ import annotations

import pytest

from pzlib.registry import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    Registry,
    User,
)


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
