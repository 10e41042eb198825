"""Users and API tokens in the registry (pzlib.registry.users), each test run on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import select

from pzlib.registry import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    Registry,
    User,
    schema,
)


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
