"""Releases in the registry: the data releases (e.g. ``dp1``) products and runs belong to.

A release is visible to admins, to everyone when it is public, and otherwise to members of its access groups;
its products are shared the same way once Published. It may name its object catalog (a HATS collection and its
photometry columns), which the Training Set Maker matches spec-z catalogs with. Creating and changing releases
is administrative (the CLI); reading them acts for a user. One part of :class:`pzlib.registry.Registry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, insert, select, update

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import AlreadyExists, NotFound
from pzlib.registry.records import Release, User

_releases = schema.releases


class ReleaseRegistry:
    """The registry's releases; works on ``self.engine``."""

    engine: Engine

    def create_release(
        self,
        name: str,
        display_name: str,
        *,
        description: str = "",
        is_public: bool = False,
        access_groups: Iterable[str] = (),
        object_catalog: str | None = None,
        object_column_map: str | dict[str, Any] | None = None,
    ) -> Release:
        """Register a data release.

        Parameters
        ----------
        name : str
            Unique short name, e.g. ``"dp1"``.
        display_name : str
            Name shown to users.
        description : str
            Free text.
        is_public : bool
            Everyone sees the release's products.
        access_groups : iterable of str
            When not public, members of these groups see its products.
        object_catalog : str or None
            The release's object catalog (HATS collection with margin cache), for the Training Set Maker.
        object_column_map : str, dict or None
            Its photometry columns (a ``pzlib.catalog.COLUMN_MAPS`` preset or ColumnMap fields).

        Raises
        ------
        AlreadyExists
            When a release has this name.
        InvalidInput
            When a name is malformed.
        """
        name = checks.release_name(name)
        display_name = checks.display_name(display_name)
        groups = checks.group_names(access_groups)
        with transactions.writing(self.engine, f"release {name!r}") as connection:
            if queries.find_release(connection, name) is not None:
                raise AlreadyExists(f"release {name!r} already exists")
            release_id = connection.execute(
                insert(_releases)
                .values(
                    name=name,
                    display_name=display_name,
                    description=checks.description(description),
                    is_public=bool(is_public),
                    created_at=queries.now(),
                    object_catalog=checks.optional_text(object_catalog, "object_catalog", 4096),
                    object_column_map=checks.column_map(object_column_map),
                )
                .returning(_releases.c.id)
            ).scalar_one()
            queries.replace_release_groups(connection, release_id, groups)
            return queries.find_release(connection, release_id)

    def update_release(
        self,
        release: int | str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        is_public: bool | None = None,
        access_groups: Iterable[str] | None = None,
        object_catalog: str | None | Unset = UNSET,
        object_column_map: str | dict[str, Any] | None | Unset = UNSET,
    ) -> Release:
        """Change a release's names, visibility, access groups or object catalog.

        ``None`` leaves a name, the visibility or the groups as they are; for the object catalog fields
        ``UNSET`` leaves them and ``None`` clears them.

        Raises
        ------
        NotFound
            When there is no such release.
        """
        values: dict[str, Any] = {}
        if display_name is not None:
            values["display_name"] = checks.display_name(display_name)
        if description is not None:
            values["description"] = checks.description(description)
        if is_public is not None:
            values["is_public"] = bool(is_public)
        if object_catalog is not UNSET:
            values["object_catalog"] = checks.optional_text(object_catalog, "object_catalog", 4096)
        if object_column_map is not UNSET:
            values["object_column_map"] = checks.column_map(object_column_map)
        groups = None if access_groups is None else checks.group_names(access_groups)
        with transactions.writing(self.engine, f"release {release!r}") as connection:
            current = queries.find_release(connection, checks.reference(release, "release"))
            if current is None:
                raise NotFound(f"release {release!r} does not exist")
            if values:
                connection.execute(update(_releases).where(_releases.c.id == current.id).values(**values))
            if groups is not None:
                queries.replace_release_groups(connection, current.id, groups)
            return queries.find_release(connection, current.id)

    def get_release(self, user: User, release: int | str) -> Release:
        """The release with this id or name, when ``user`` may see it.

        Raises
        ------
        NotFound
            When there is no such release or ``user`` may not see it.
        """
        with self.engine.connect() as connection:
            found = queries.find_release(connection, checks.reference(release, "release"))
            if found is None or not queries.can_see_release(user, found):
                raise NotFound(f"release {release!r} does not exist or is not visible to you")
            return found

    def list_releases(self, user: User) -> tuple[Release, ...]:
        """Releases ``user`` may see, by name."""
        with self.engine.connect() as connection:
            names = connection.scalars(select(_releases.c.name).order_by(_releases.c.name))
            found = [queries.find_release(connection, name) for name in names]
        return tuple(release for release in found if queries.can_see_release(user, release))
