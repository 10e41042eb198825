"""Users and API tokens in the registry: who acts, in which access groups, and the keys that authenticate them.

Creating users and tokens is administrative (the CLI's ``pz token create``). A token's key is shown once,
when it is made: only its SHA-256 is stored. One part of :class:`pzlib.registry.Registry`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.errors import AlreadyExists, AuthenticationFailed, NotFound
from pzlib.registry.records import User

_users = schema.users


class UserRegistry:
    """The registry's users and API tokens; works on ``self.engine``."""

    engine: Engine

    def create_user(
        self,
        username: str,
        *,
        is_admin: bool = False,
        groups: Iterable[str] = (),
        first_name: str = "",
        last_name: str = "",
    ) -> User:
        """Create a user.

        Raises
        ------
        AlreadyExists
            The username is taken.
        InvalidInput
            Malformed username or group name.
        """
        username = checks.username(username)
        group_names = checks.group_names(groups)
        with transactions.writing(self.engine, f"user {username!r}") as connection:
            if queries.find_user(connection, username) is not None:
                raise AlreadyExists(f"user {username!r} already exists")
            user_id = connection.execute(
                insert(_users)
                .values(
                    username=username,
                    first_name=checks.optional_text(first_name, "first_name", 150) or "",
                    last_name=checks.optional_text(last_name, "last_name", 150) or "",
                    is_admin=bool(is_admin),
                    created_at=queries.now(),
                )
                .returning(_users.c.id)
            ).scalar_one()
            queries.replace_user_groups(connection, user_id, group_names)
            return queries.find_user(connection, user_id)

    def get_user(self, user: int | str) -> User:
        """The user with this id or username.

        Raises
        ------
        NotFound
            No such user.
        """
        with self.engine.connect() as connection:
            found = queries.find_user(connection, checks.reference(user, "user"))
        if found is None:
            raise NotFound(f"user {user!r} does not exist")
        return found

    def list_users(self) -> tuple[User, ...]:
        """Every user, by username."""
        with self.engine.connect() as connection:
            user_ids = connection.scalars(select(_users.c.id).order_by(_users.c.username)).all()
            return tuple(queries.find_user(connection, user_id) for user_id in user_ids)

    def update_user(
        self,
        user: int | str,
        *,
        is_admin: bool | None = None,
        groups: Iterable[str] | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """Change a user's admin flag, access groups or names; ``None`` leaves a field as it is.

        Raises
        ------
        NotFound
            No such user.
        """
        values: dict[str, Any] = {}
        if is_admin is not None:
            values["is_admin"] = bool(is_admin)
        if first_name is not None:
            values["first_name"] = checks.optional_text(first_name, "first_name", 150) or ""
        if last_name is not None:
            values["last_name"] = checks.optional_text(last_name, "last_name", 150) or ""
        group_names = None if groups is None else checks.group_names(groups)
        with transactions.writing(self.engine, f"user {user!r}") as connection:
            current = queries.find_user(connection, checks.reference(user, "user"))
            if current is None:
                raise NotFound(f"user {user!r} does not exist")
            if values:
                connection.execute(update(_users).where(_users.c.id == current.id).values(**values))
            if group_names is not None:
                queries.replace_user_groups(connection, current.id, group_names)
            return queries.find_user(connection, current.id)

    def create_token(self, user: int | str, *, label: str = "") -> str:
        """Create an API token for ``user`` and return its key; only a hash is stored, so show it now.

        Parameters
        ----------
        user : int or str
            User id or username.
        label : str
            What the token is for, e.g. ``"laptop notebook"``.

        Returns
        -------
        str
            The key, sent by clients as ``Authorization: Token <key>``.

        Raises
        ------
        NotFound
            No such user.
        """
        key = secrets.token_hex(20)
        with transactions.writing(self.engine, f"user {user!r}") as connection:
            owner = queries.find_user(connection, checks.reference(user, "user"))
            if owner is None:
                raise NotFound(f"user {user!r} does not exist")
            connection.execute(
                insert(schema.api_tokens).values(
                    user_id=owner.id,
                    key_sha256=_key_hash(key),
                    label=checks.optional_text(label, "label", schema.NAME_LENGTH) or "",
                    created_at=queries.now(),
                )
            )
        return key

    def authenticate(self, key: str) -> User:
        """The user an API token key belongs to.

        Raises
        ------
        AuthenticationFailed
            Unknown or revoked key.
        """
        if not isinstance(key, str) or not key:
            raise AuthenticationFailed("no API token given; send 'Authorization: Token <key>'")
        with self.engine.connect() as connection:
            user_id = connection.scalar(
                select(schema.api_tokens.c.user_id).where(schema.api_tokens.c.key_sha256 == _key_hash(key))
            )
            if user_id is None:
                raise AuthenticationFailed(
                    "the API token is not valid; ask for a new one with 'pz token create'"
                )
            return queries.find_user(connection, user_id)

    def revoke_token(self, key: str) -> None:
        """Make a token key unusable.

        Raises
        ------
        NotFound
            Unknown key.
        """
        with transactions.writing(self.engine, "the API token") as connection:
            removed = connection.execute(
                delete(schema.api_tokens).where(schema.api_tokens.c.key_sha256 == _key_hash(str(key)))
            ).rowcount
        if not removed:
            raise NotFound("no such API token")


def _key_hash(key: str) -> str:
    # Keys are 160 random bits, so an unsalted hash cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
