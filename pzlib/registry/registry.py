"""The PZ Server domain: products, their files and columns, releases, pipeline runs, users and API tokens.

``Registry`` owns every rule of the domain so an HTTP layer only translates: who may see a product (admins;
its owner; everyone when it has no release or its release is public; members of the release's access groups),
who may change it (its owner or an admin), who may mark it official (admins), what a publish needs (the
mandatory columns of its type), how internal names are made (``<id>_<slug>``, as LIneA's PZ Server). A product
that exists but is not visible to the acting user is reported as ``NotFound``, so its existence does not leak;
one that is visible but not the user's to change is ``PermissionDenied``.

Methods that act for a user take the ``User`` returned by ``authenticate`` (or ``get_user``) first. Methods
without one (releases, users, tokens, process state) are administrative: the CLI and the Airflow tasks call
them. Every method runs in its own transaction; on failure nothing is changed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import make_url

from pzlib.registry import checks, schema
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    MissingColumns,
    NotFound,
    PermissionDenied,
)
from pzlib.registry.migrations import migrate
from pzlib.registry.records import (
    ColumnSpec,
    Page,
    Process,
    Product,
    ProductContent,
    ProductFile,
    ProductFilter,
    ProductType,
    Release,
    Terms,
    User,
)
from pzlib.registry.schema import FileRole, ProcessStatus, ProductStatus

MAX_PAGE_SIZE = 1000
"""Largest page ``list_products`` returns, as LIneA's API."""

PRODUCT_ORDERINGS = ("id", "display_name", "product_type", "created_at", "updated_at", "internal_name")
"""Fields ``list_products`` sorts by; prefix one with ``-`` for descending order."""

_p = schema.products
_types = schema.product_types
_releases = schema.releases
_users = schema.users
_files = schema.product_files
_contents = schema.product_contents
_processes = schema.processes

_PRODUCT_JOIN = (
    _p.join(_types, _p.c.product_type_id == _types.c.id)
    .join(_users, _p.c.user_id == _users.c.id)
    .outerjoin(_releases, _p.c.release_id == _releases.c.id)
)
_PRODUCT_COLUMNS = (
    _p,
    _types.c.name.label("product_type_name"),
    _types.c.display_name.label("product_type_display_name"),
    _releases.c.name.label("release_name"),
    _releases.c.display_name.label("release_display_name"),
    _users.c.username.label("owner_username"),
)
_ORDER_COLUMNS = {
    "id": _p.c.id,
    "display_name": _p.c.display_name,
    "product_type": _p.c.product_type_id,
    "created_at": _p.c.created_at,
    "updated_at": _p.c.updated_at,
    "internal_name": _p.c.internal_name,
}


def create_registry_engine(url: str) -> Engine:
    """SQLAlchemy engine for a registry URL, set up for the registry's needs.

    ``postgresql://`` URLs are given the psycopg 3 driver; a SQLite file's directory is created; SQLite
    connections enforce foreign keys.

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/registry.db`` (the embedded default) or ``postgresql+psycopg://user@host/db``.

    Returns
    -------
    sqlalchemy.Engine
    """
    parsed_url = make_url(url)
    if parsed_url.drivername == "postgresql":
        parsed_url = parsed_url.set(drivername="postgresql+psycopg")
    if parsed_url.get_backend_name() == "sqlite" and parsed_url.database not in (None, "", ":memory:"):
        Path(parsed_url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enforce_sqlite_foreign_keys)
    return engine


class Registry:
    """The PZ Server registry over one database.

    Parameters
    ----------
    database : str or sqlalchemy.Engine
        Database URL (see ``create_registry_engine``) or an engine.
    migrate_schema : bool
        Bring the database to the latest schema first (idempotent and cheap when it is already there).

    Examples
    --------
    >>> registry = Registry("sqlite://")
    >>> alice = registry.create_user("alice")
    >>> product = registry.create_product(alice, display_name="My spec-z", product_type="redshift_catalog")
    >>> product.internal_name
    '1_my_specz'
    """

    def __init__(self, database: str | Engine, *, migrate_schema: bool = True):
        self.engine = database if isinstance(database, Engine) else create_registry_engine(database)
        """Engine of the registry database."""
        if migrate_schema:
            migrate(self.engine)

    # Product types

    def list_product_types(self) -> tuple[ProductType, ...]:
        """Every product type, in listing order."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(_types).order_by(_types.c.display_order, _types.c.id))
            return tuple(_product_type_from_row(row) for row in rows)

    def get_product_type(self, product_type: int | str) -> ProductType:
        """The product type with this id or name.

        Raises
        ------
        NotFound
            When there is no such type.
        """
        with self.engine.connect() as connection:
            row = _find_product_type(connection, product_type)
            if row is None:
                raise NotFound(f"product type {product_type!r} does not exist")
            return _product_type_from_row(row)

    # Releases

    def create_release(
        self,
        name: str,
        display_name: str,
        *,
        description: str = "",
        is_public: bool = False,
        access_groups: Iterable[str] = (),
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
        with self.engine.begin() as connection:
            if _find_release(connection, name) is not None:
                raise AlreadyExists(f"release {name!r} already exists")
            release_id = connection.execute(
                insert(_releases)
                .values(
                    name=name,
                    display_name=display_name,
                    description=checks.description(description),
                    is_public=bool(is_public),
                    created_at=_now(),
                )
                .returning(_releases.c.id)
            ).scalar_one()
            _replace_release_groups(connection, release_id, groups)
            return _find_release(connection, release_id)

    def update_release(
        self,
        release: int | str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        is_public: bool | None = None,
        access_groups: Iterable[str] | None = None,
    ) -> Release:
        """Change a release's names, visibility or access groups; ``None`` leaves a field as it is.

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
        groups = None if access_groups is None else checks.group_names(access_groups)
        with self.engine.begin() as connection:
            current = _find_release(connection, checks.reference(release, "release"))
            if current is None:
                raise NotFound(f"release {release!r} does not exist")
            if values:
                connection.execute(update(_releases).where(_releases.c.id == current.id).values(**values))
            if groups is not None:
                _replace_release_groups(connection, current.id, groups)
            return _find_release(connection, current.id)

    def get_release(self, user: User, release: int | str) -> Release:
        """The release with this id or name, when ``user`` may see it.

        Raises
        ------
        NotFound
            When there is no such release or ``user`` may not see it.
        """
        with self.engine.connect() as connection:
            found = _find_release(connection, checks.reference(release, "release"))
            if found is None or not _can_see_release(user, found):
                raise NotFound(f"release {release!r} does not exist or is not visible to you")
            return found

    def list_releases(self, user: User) -> tuple[Release, ...]:
        """Releases ``user`` may see, by name."""
        with self.engine.connect() as connection:
            names = connection.scalars(select(_releases.c.name).order_by(_releases.c.name))
            found = [_find_release(connection, name) for name in names]
        return tuple(release for release in found if _can_see_release(user, release))

    # Products

    def create_product(
        self,
        user: User,
        *,
        display_name: str,
        product_type: int | str,
        release: int | str | None = None,
        official: bool = False,
        pz_code: str | None = None,
        description: str = "",
        release_year: int | None = None,
        provenance: dict[str, Any] | None = None,
        status: ProductStatus | int | str = ProductStatus.REGISTERING,
    ) -> Product:
        """Register a product owned by ``user``; its internal name becomes ``<id>_<slug of display_name>``.

        Parameters
        ----------
        user : User
            Owner.
        display_name : str
            Name shown to users; unique among the owner's products that are not deleted.
        product_type : int or str
            Type id or name, e.g. ``"training_set"``.
        release : int, str or None
            Release id or name, for products of a data release.
        official : bool
            Official (e.g. Rubin) product; admins only.
        pz_code : str or None
            Photo-z code that made the product; not allowed on redshift catalogs and training sets.
        description : str
            Free text.
        release_year : int or None
            Year of the data release the product belongs to.
        provenance : dict or None
            How the product was made, as a JSON object.
        status : ProductStatus, int or str
            Initial status; products start ``Registering`` and are published with ``update_product``.

        Returns
        -------
        Product

        Raises
        ------
        InvalidInput
            Unknown type or release, malformed value, ``pz_code`` on a type that takes none.
        AlreadyExists
            The owner has a live product of the same display name.
        PermissionDenied
            A non-admin asks for an official product, or the release is not visible to ``user``.
        """
        display_name = checks.display_name(display_name)
        slug = checks.slugify(display_name)
        pz_code = checks.optional_text(pz_code, "pz_code", 55)
        initial_status = checks.product_status(status)
        release_year = checks.release_year(release_year)
        if provenance is not None:
            provenance = checks.json_object(provenance, "provenance")
        if official and not user.is_admin:
            raise PermissionDenied("only admins may create official products")
        with self.engine.begin() as connection:
            type_row = _find_product_type(connection, checks.reference(product_type, "product_type"))
            if type_row is None:
                raise InvalidInput(_unknown_product_type_message(connection, product_type))
            _check_pz_code_allowed(pz_code, type_row.name)
            release_id = None if release is None else _accessible_release(connection, user, release).id
            _check_display_name_free(connection, user.id, display_name, except_product_id=None)
            now = _now()
            product_id = connection.execute(
                insert(_p)
                .values(
                    display_name=display_name,
                    product_type_id=type_row.id,
                    release_id=release_id,
                    user_id=user.id,
                    official=bool(official),
                    pz_code=pz_code,
                    description=checks.description(description),
                    status=int(initial_status),
                    release_year=release_year,
                    provenance=provenance,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_p.c.id)
            ).scalar_one()
            connection.execute(
                update(_p).where(_p.c.id == product_id).values(internal_name=f"{product_id}_{slug}")
            )
            return _product_by_id(connection, product_id)

    def get_product(self, user: User, product: int | str) -> Product:
        """The product with this id or internal name.

        Raises
        ------
        NotFound
            When there is no such product or ``user`` may not see it.
        """
        with self.engine.connect() as connection:
            return _visible_product(connection, user, product)

    def list_products(
        self,
        user: User,
        filters: ProductFilter | None = None,
        *,
        page: int = 1,
        page_size: int = 100,
        order_by: str = "-created_at",
    ) -> Page[Product]:
        """One page of the products ``user`` may see that match ``filters``.

        Parameters
        ----------
        user : User
            Acting user.
        filters : ProductFilter or None
            Which products; all visible ones when ``None``.
        page : int
            Page number, from 1; past the last page the results are empty.
        page_size : int
            Products per page, 1 to ``MAX_PAGE_SIZE``.
        order_by : str
            One of ``PRODUCT_ORDERINGS``, ``-`` first for descending; ties go by id.

        Returns
        -------
        Page[Product]

        Raises
        ------
        InvalidInput
            Bad page, page size, ordering or filter value.
        """
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            raise InvalidInput(f"page must be a positive integer, got {page!r}")
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size!r}")
        order_key = order_by.removeprefix("-") if isinstance(order_by, str) else None
        if order_key not in _ORDER_COLUMNS:
            raise InvalidInput(
                f"cannot order products by {order_by!r}; use one of {', '.join(PRODUCT_ORDERINGS)} "
                "(prefix '-' for descending)"
            )
        descending = order_by.startswith("-")
        order_column = _ORDER_COLUMNS[order_key]
        conditions = [_visible_to(user), *_filter_conditions(filters or ProductFilter())]
        query = select(*_PRODUCT_COLUMNS).select_from(_PRODUCT_JOIN).where(*conditions)
        with self.engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(_PRODUCT_JOIN).where(*conditions))
            rows = connection.execute(
                query.order_by(
                    order_column.desc() if descending else order_column.asc(),
                    _p.c.id.desc() if descending else _p.c.id.asc(),
                )
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
            results = tuple(_product_from_row(row) for row in rows)
        return Page(count=total, results=results, page=page, page_size=page_size)

    def update_product(
        self,
        user: User,
        product: int | str,
        *,
        display_name: str | Unset = UNSET,
        description: str | None | Unset = UNSET,
        status: ProductStatus | int | str | Unset = UNSET,
        official: bool | Unset = UNSET,
        pz_code: str | None | Unset = UNSET,
        release: int | str | None | Unset = UNSET,
        release_year: int | None | Unset = UNSET,
        provenance: dict[str, Any] | None | Unset = UNSET,
    ) -> Product:
        """Change fields of a product; arguments left ``UNSET`` keep their value.

        The internal name never changes. Publishing (``status=ProductStatus.PUBLISHED``) requires the
        mandatory column aliases of the product's type (``MANDATORY_ALIASES``).

        Returns
        -------
        Product
            The product as stored after the change.

        Raises
        ------
        NotFound
            No such product visible to ``user``.
        PermissionDenied
            ``user`` is neither the owner nor an admin, or a non-admin changes ``official``.
        MissingColumns
            Publishing without the mandatory columns associated.
        AlreadyExists, InvalidInput
            As ``create_product``.
        """
        with self.engine.begin() as connection:
            current = _changeable_product(connection, user, product)
            values: dict[str, Any] = {}
            if display_name is not UNSET:
                new_name = checks.display_name(display_name)
                if new_name.lower() != current.display_name.lower():
                    _check_display_name_free(connection, current.owner_id, new_name, current.id)
                values["display_name"] = new_name
            if description is not UNSET:
                values["description"] = checks.description(description)
            if official is not UNSET and bool(official) != current.official:
                if not user.is_admin:
                    raise PermissionDenied("only admins may mark a product official or unofficial")
                values["official"] = bool(official)
            if pz_code is not UNSET:
                values["pz_code"] = checks.optional_text(pz_code, "pz_code", 55)
                _check_pz_code_allowed(values["pz_code"], current.product_type_name)
            if release is not UNSET:
                values["release_id"] = (
                    None if release is None else _accessible_release(connection, user, release).id
                )
            if release_year is not UNSET:
                values["release_year"] = checks.release_year(release_year)
            if provenance is not UNSET:
                values["provenance"] = (
                    None if provenance is None else checks.json_object(provenance, "provenance")
                )
            if status is not UNSET:
                new_status = checks.product_status(status)
                if new_status is ProductStatus.PUBLISHED and current.status is not ProductStatus.PUBLISHED:
                    _check_mandatory_columns(connection, current)
                values["status"] = int(new_status)
            if values:
                connection.execute(
                    update(_p).where(_p.c.id == current.id).values(updated_at=_now(), **values)
                )
            return _product_by_id(connection, current.id)

    def delete_product(self, user: User, product: int | str) -> tuple[ProductFile, ...]:
        """Remove a product with its files' records and its columns.

        Processes that used it as input forget it; a process whose output it was keeps running without one.

        Returns
        -------
        tuple of ProductFile
            The removed file records: the caller deletes their ``storage_key`` objects.

        Raises
        ------
        NotFound, PermissionDenied
            As ``update_product``.
        """
        with self.engine.begin() as connection:
            current = _changeable_product(connection, user, product)
            removed_files = _files_of(connection, current.id)
            connection.execute(delete(_contents).where(_contents.c.product_id == current.id))
            connection.execute(delete(_files).where(_files.c.product_id == current.id))
            connection.execute(
                delete(schema.process_inputs).where(schema.process_inputs.c.product_id == current.id)
            )
            connection.execute(
                update(_processes)
                .where(_processes.c.output_product_id == current.id)
                .values(output_product_id=None, updated_at=_now())
            )
            connection.execute(delete(_p).where(_p.c.id == current.id))
            return removed_files

    # Product files

    def add_file(
        self,
        user: User,
        product: int | str,
        *,
        name: str,
        storage_key: str,
        size: int,
        role: FileRole | int | str = FileRole.MAIN,
        n_rows: int | None = None,
        mime_type: str | None = None,
        is_directory: bool = False,
        checksum: str | None = None,
    ) -> ProductFile:
        """Record a file already written to object storage as part of a product.

        Parameters
        ----------
        user : User
            Acting user; owner of the product or an admin.
        product : int or str
            Product id or internal name.
        name : str
            File name as uploaded, without directories; unique within the product.
        storage_key : str
            Where the content is in object storage.
        size : int
            Bytes.
        role : FileRole, int or str
            ``main`` (one per product), ``description`` or ``auxiliary``.
        n_rows : int or None
            Rows, for a table already counted.
        mime_type : str or None
            Content type as uploaded.
        is_directory : bool
            The file is a directory, e.g. a HATS catalog.
        checksum : str or None
            SHA-256 hex digest of the content.

        Raises
        ------
        InvalidInput
            Path-like or empty name, negative size, unknown role.
        AlreadyExists
            A second main file, or a file of the same name.
        NotFound, PermissionDenied
            As ``update_product``.
        """
        name = checks.file_name(name)
        file_role = checks.file_role(role)
        size = checks.count(size, "size")
        n_rows = checks.optional_count(n_rows, "n_rows")
        if not isinstance(storage_key, str) or not storage_key.strip():
            raise InvalidInput(f"storage_key {storage_key!r} is empty; store the file first")
        with self.engine.begin() as connection:
            current = _changeable_product(connection, user, product)
            for existing in _files_of(connection, current.id):
                if existing.name == name:
                    raise AlreadyExists(f"product {current.internal_name} already has a file named {name!r}")
                if file_role is FileRole.MAIN and existing.role is FileRole.MAIN:
                    raise AlreadyExists(
                        f"product {current.internal_name} already has a main file ({existing.name!r}); "
                        "delete it first or add this one as auxiliary"
                    )
            now = _now()
            file_id = connection.execute(
                insert(_files)
                .values(
                    product_id=current.id,
                    role=int(file_role),
                    name=name,
                    mime_type=checks.optional_text(mime_type, "mime_type", 128),
                    size=size,
                    n_rows=n_rows,
                    extension=PurePosixPath(name).suffix.lower(),
                    is_directory=bool(is_directory),
                    checksum=checks.optional_text(checksum, "checksum", 128),
                    storage_key=storage_key,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_files.c.id)
            ).scalar_one()
            _touch_product(connection, current.id)
            return _file_by_id(connection, file_id)

    def get_file(self, user: User, file_id: int) -> ProductFile:
        """The file record with this id.

        Raises
        ------
        NotFound
            No such file, or its product is not visible to ``user``.
        """
        with self.engine.connect() as connection:
            found = _file_by_id(connection, file_id)
            if found is None:
                raise NotFound(f"product file {file_id!r} does not exist")
            _visible_product(connection, user, found.product_id)
            return found

    def list_files(
        self, user: User, product: int | str, role: FileRole | int | str | None = None
    ) -> tuple[ProductFile, ...]:
        """Files of a product (of one role when given), main file first.

        Raises
        ------
        NotFound
            No such product visible to ``user``.
        """
        wanted_role = None if role is None else checks.file_role(role)
        with self.engine.connect() as connection:
            current = _visible_product(connection, user, product)
            files = _files_of(connection, current.id)
        return tuple(found for found in files if wanted_role is None or found.role is wanted_role)

    def update_file(
        self,
        user: User,
        file_id: int,
        *,
        size: int | Unset = UNSET,
        n_rows: int | None | Unset = UNSET,
        checksum: str | None | Unset = UNSET,
    ) -> ProductFile:
        """Record what registration learned about a file (rows, size, checksum).

        Raises
        ------
        NotFound, PermissionDenied
            As ``update_product``, for the file's product.
        """
        values: dict[str, Any] = {}
        if size is not UNSET:
            values["size"] = checks.count(size, "size")
        if n_rows is not UNSET:
            values["n_rows"] = checks.optional_count(n_rows, "n_rows")
        if checksum is not UNSET:
            values["checksum"] = checks.optional_text(checksum, "checksum", 128)
        with self.engine.begin() as connection:
            current = _changeable_file(connection, user, file_id)
            if values:
                connection.execute(
                    update(_files).where(_files.c.id == current.id).values(updated_at=_now(), **values)
                )
                _touch_product(connection, current.product_id)
            return _file_by_id(connection, current.id)

    def delete_file(self, user: User, file_id: int) -> ProductFile:
        """Remove a file record; the caller deletes the returned record's ``storage_key`` object.

        Raises
        ------
        NotFound, PermissionDenied
            As ``update_product``, for the file's product.
        """
        with self.engine.begin() as connection:
            current = _changeable_file(connection, user, file_id)
            connection.execute(delete(_files).where(_files.c.id == current.id))
            _touch_product(connection, current.product_id)
            return current

    # Product contents (column association)

    def set_contents(
        self, user: User, product: int | str, columns: Sequence[str | ColumnSpec]
    ) -> tuple[ProductContent, ...]:
        """Replace the columns recorded for a product's main table, in table order.

        Parameters
        ----------
        user : User
            Owner of the product or an admin.
        product : int or str
            Product id or internal name.
        columns : sequence of str or ColumnSpec
            Column names, or specs that also carry a UCD and an alias.

        Raises
        ------
        InvalidInput
            Empty or repeated column names, or an alias given to two columns.
        NotFound, PermissionDenied
            As ``update_product``.
        """
        specs = [column if isinstance(column, ColumnSpec) else ColumnSpec(column) for column in columns]
        cleaned: list[dict[str, Any]] = []
        seen_columns: set[str] = set()
        alias_owner: dict[str, str] = {}
        for position, spec in enumerate(specs):
            column_name = checks.optional_text(spec.column_name, "column_name", schema.NAME_LENGTH)
            if column_name is None:
                raise InvalidInput(f"column {position} has no name")
            if column_name in seen_columns:
                raise InvalidInput(f"column {column_name!r} is listed twice")
            seen_columns.add(column_name)
            alias = checks.optional_text(spec.alias, "alias", schema.NAME_LENGTH)
            if alias is not None:
                if alias.lower() in alias_owner:
                    raise InvalidInput(
                        f"alias {alias!r} is given to both {alias_owner[alias.lower()]!r} and {column_name!r}"
                    )
                alias_owner[alias.lower()] = column_name
            cleaned.append(
                {
                    "column_name": column_name,
                    "ucd": checks.optional_text(spec.ucd, "ucd", 128),
                    "alias": alias,
                    "position": position,
                }
            )
        with self.engine.begin() as connection:
            current = _changeable_product(connection, user, product)
            connection.execute(delete(_contents).where(_contents.c.product_id == current.id))
            if cleaned:
                connection.execute(insert(_contents), [{"product_id": current.id, **row} for row in cleaned])
            _touch_product(connection, current.id)
            return _contents_of(connection, current.id)

    def list_contents(self, user: User, product: int | str) -> tuple[ProductContent, ...]:
        """Columns recorded for a product, in table order.

        Raises
        ------
        NotFound
            No such product visible to ``user``.
        """
        with self.engine.connect() as connection:
            return _contents_of(connection, _visible_product(connection, user, product).id)

    def update_content(
        self,
        user: User,
        content_id: int,
        *,
        ucd: str | None | Unset = UNSET,
        alias: str | None | Unset = UNSET,
    ) -> ProductContent:
        """Associate one column with a UCD and a system-column alias; blank text clears a field.

        Raises
        ------
        InvalidInput
            The alias is already given to another column of the product.
        NotFound, PermissionDenied
            As ``update_product``, for the column's product.
        """
        values: dict[str, Any] = {}
        if ucd is not UNSET:
            values["ucd"] = checks.optional_text(ucd, "ucd", 128)
        if alias is not UNSET:
            values["alias"] = checks.optional_text(alias, "alias", schema.NAME_LENGTH)
        with self.engine.begin() as connection:
            row = connection.execute(select(_contents).where(_contents.c.id == content_id)).one_or_none()
            if row is None:
                raise NotFound(f"product content {content_id!r} does not exist")
            current = _changeable_product(connection, user, row.product_id)
            if values.get("alias") is not None:
                clash = connection.execute(
                    select(_contents.c.column_name).where(
                        _contents.c.product_id == current.id,
                        _contents.c.id != content_id,
                        func.lower(_contents.c.alias) == values["alias"].lower(),
                    )
                ).first()
                if clash is not None:
                    raise InvalidInput(
                        f"alias {values['alias']!r} is already given to column {clash.column_name!r} of "
                        f"product {current.internal_name}; clear it there first"
                    )
            if values:
                connection.execute(update(_contents).where(_contents.c.id == content_id).values(**values))
                _touch_product(connection, current.id)
            updated = connection.execute(select(_contents).where(_contents.c.id == content_id)).one()
            return _content_from_row(updated)

    # Processes

    def create_process(
        self,
        user: User,
        *,
        pipeline: str,
        display_name: str,
        used_config: dict[str, Any] | None = None,
        inputs: Sequence[int | str] = (),
        release: int | str | None = None,
        output_product: int | str | None = None,
    ) -> Process:
        """Record a pipeline run requested by ``user``, in state ``Pending``.

        Parameters
        ----------
        user : User
            Requester.
        pipeline : str
            Pipeline name, e.g. ``"training_set_maker"``.
        display_name : str
            Name of the run (and usually of its output product).
        used_config : dict or None
            Configuration of the run, as a JSON object.
        inputs : sequence of int or str
            Input product ids or internal names, each visible to ``user``.
        release : int, str or None
            Release the run reads, visible to ``user``.
        output_product : int, str or None
            Product (owned by ``user``) the run fills.

        Raises
        ------
        InvalidInput
            Malformed value, input or output product not found, an input listed twice.
        PermissionDenied
            Release not visible, or output product not ``user``'s to change.
        """
        pipeline = checks.display_name(pipeline, "pipeline")
        display_name = checks.display_name(display_name)
        used_config = checks.json_object({} if used_config is None else used_config, "used_config")
        with self.engine.begin() as connection:
            input_ids: list[int] = []
            for reference in inputs:
                try:
                    input_ids.append(_visible_product(connection, user, reference).id)
                except NotFound as error:
                    raise InvalidInput(
                        f"input product {reference!r} does not exist or is not visible to you"
                    ) from error
            if len(set(input_ids)) != len(input_ids):
                raise InvalidInput(f"an input product is listed twice in {list(inputs)!r}")
            release_id = None if release is None else _accessible_release(connection, user, release).id
            output_id = None
            if output_product is not None:
                try:
                    output_id = _changeable_product(connection, user, output_product).id
                except NotFound as error:
                    raise InvalidInput(
                        f"output product {output_product!r} does not exist or is not visible to you"
                    ) from error
            now = _now()
            process_id = connection.execute(
                insert(_processes)
                .values(
                    pipeline=pipeline,
                    display_name=display_name,
                    used_config=used_config,
                    release_id=release_id,
                    output_product_id=output_id,
                    user_id=user.id,
                    status=ProcessStatus.PENDING.value,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_processes.c.id)
            ).scalar_one()
            if input_ids:
                connection.execute(
                    insert(schema.process_inputs),
                    [
                        {"process_id": process_id, "product_id": product_id, "position": position}
                        for position, product_id in enumerate(input_ids)
                    ],
                )
            return _process_by_id(connection, process_id)

    def get_process(self, user: User, process_id: int) -> Process:
        """The process with this id, for its requester or an admin.

        Raises
        ------
        NotFound
            No such process, or ``user`` is neither its requester nor an admin.
        """
        with self.engine.connect() as connection:
            found = _process_by_id(connection, process_id)
        if found is None or not (user.is_admin or found.owner_id == user.id):
            raise NotFound(f"process {process_id!r} does not exist or is not yours")
        return found

    def update_process(
        self,
        process_id: int,
        *,
        status: ProcessStatus | str | Unset = UNSET,
        dag_id: str | None | Unset = UNSET,
        run_id: str | None | Unset = UNSET,
        error: str | None | Unset = UNSET,
    ) -> Process:
        """Record the progress of a run, as its Airflow DAG run reports it.

        Entering ``Running`` stamps ``started_at``; entering a final state (``Successful``, ``Failed``,
        ``Stopped``) stamps ``ended_at``.

        Raises
        ------
        NotFound
            No such process.
        InvalidInput
            Unknown status, or a change of state after a final one.
        """
        new_status = None if status is UNSET else checks.process_status(status)
        values: dict[str, Any] = {}
        if dag_id is not UNSET:
            values["dag_id"] = checks.optional_text(dag_id, "dag_id", schema.NAME_LENGTH)
        if run_id is not UNSET:
            values["run_id"] = checks.optional_text(run_id, "run_id", schema.NAME_LENGTH)
        if error is not UNSET:
            values["error"] = error or None
        with self.engine.begin() as connection:
            current = _process_by_id(connection, process_id)
            if current is None:
                raise NotFound(f"process {process_id!r} does not exist")
            if new_status is not None and new_status is not current.status:
                values.update(_status_change(current, new_status))
            if values:
                connection.execute(
                    update(_processes)
                    .where(_processes.c.id == current.id)
                    .values(updated_at=_now(), **values)
                )
            return _process_by_id(connection, current.id)

    def stop_process(self, user: User, process_id: int) -> Process:
        """Ask a run to stop: a run not started yet is ``Stopped`` at once, a running one goes ``Stopping``.

        Raises
        ------
        NotFound
            As ``get_process``.
        InvalidInput
            The run already ended.
        """
        current = self.get_process(user, process_id)
        if current.status.is_final:
            raise InvalidInput(
                f"process {process_id} already ended ({current.status.value}); nothing to stop"
            )
        if current.status in (ProcessStatus.PENDING, ProcessStatus.QUEUED):
            return self.update_process(process_id, status=ProcessStatus.STOPPED)
        return self.update_process(process_id, status=ProcessStatus.STOPPING)

    # Users and tokens

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
        with self.engine.begin() as connection:
            if _find_user(connection, username) is not None:
                raise AlreadyExists(f"user {username!r} already exists")
            user_id = connection.execute(
                insert(_users)
                .values(
                    username=username,
                    first_name=checks.optional_text(first_name, "first_name", 150) or "",
                    last_name=checks.optional_text(last_name, "last_name", 150) or "",
                    is_admin=bool(is_admin),
                    created_at=_now(),
                )
                .returning(_users.c.id)
            ).scalar_one()
            _replace_user_groups(connection, user_id, group_names)
            return _find_user(connection, user_id)

    def get_user(self, user: int | str) -> User:
        """The user with this id or username.

        Raises
        ------
        NotFound
            No such user.
        """
        with self.engine.connect() as connection:
            found = _find_user(connection, checks.reference(user, "user"))
        if found is None:
            raise NotFound(f"user {user!r} does not exist")
        return found

    def list_users(self) -> tuple[User, ...]:
        """Every user, by username."""
        with self.engine.connect() as connection:
            user_ids = connection.scalars(select(_users.c.id).order_by(_users.c.username)).all()
            return tuple(_find_user(connection, user_id) for user_id in user_ids)

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
        with self.engine.begin() as connection:
            current = _find_user(connection, checks.reference(user, "user"))
            if current is None:
                raise NotFound(f"user {user!r} does not exist")
            if values:
                connection.execute(update(_users).where(_users.c.id == current.id).values(**values))
            if group_names is not None:
                _replace_user_groups(connection, current.id, group_names)
            return _find_user(connection, current.id)

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
        with self.engine.begin() as connection:
            owner = _find_user(connection, checks.reference(user, "user"))
            if owner is None:
                raise NotFound(f"user {user!r} does not exist")
            connection.execute(
                insert(schema.api_tokens).values(
                    user_id=owner.id,
                    key_sha256=_key_hash(key),
                    label=checks.optional_text(label, "label", schema.NAME_LENGTH) or "",
                    created_at=_now(),
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
            return _find_user(connection, user_id)

    def revoke_token(self, key: str) -> None:
        """Make a token key unusable.

        Raises
        ------
        NotFound
            Unknown key.
        """
        with self.engine.begin() as connection:
            removed = connection.execute(
                delete(schema.api_tokens).where(schema.api_tokens.c.key_sha256 == _key_hash(str(key)))
            ).rowcount
        if not removed:
            raise NotFound("no such API token")


def _enforce_sqlite_foreign_keys(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored one is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _key_hash(key: str) -> str:
    # Keys are 160 random bits, so an unsalted hash cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _by_id_or_name(
    reference: int | str, id_column: ColumnElement, name_column: ColumnElement
) -> ColumnElement[bool]:
    return id_column == reference if isinstance(reference, int) else name_column == reference


# Product types


def _find_product_type(connection: Connection, reference: int | str) -> Row | None:
    return connection.execute(
        select(_types).where(_by_id_or_name(reference, _types.c.id, _types.c.name))
    ).one_or_none()


def _product_type_from_row(row: Row) -> ProductType:
    return ProductType(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description,
        order=row.display_order,
    )


def _unknown_product_type_message(connection: Connection, reference: object) -> str:
    known = ", ".join(connection.scalars(select(_types.c.name).order_by(_types.c.display_order)))
    return f"unknown product type {reference!r}; use one of {known}"


# Releases


def _find_release(connection: Connection, reference: int | str) -> Release | None:
    row = connection.execute(
        select(_releases).where(_by_id_or_name(reference, _releases.c.id, _releases.c.name))
    ).one_or_none()
    if row is None:
        return None
    groups = connection.scalars(
        select(schema.release_groups.c.group_name)
        .where(schema.release_groups.c.release_id == row.id)
        .order_by(schema.release_groups.c.group_name)
    )
    return Release(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        description=row.description,
        is_public=row.is_public,
        access_groups=tuple(groups),
        created_at=_utc(row.created_at),
    )


def _can_see_release(user: User, release: Release) -> bool:
    return user.is_admin or release.is_public or bool(set(user.groups) & set(release.access_groups))


def _accessible_release(connection: Connection, user: User, reference: int | str) -> Release:
    found = _find_release(connection, checks.reference(reference, "release"))
    if found is None:
        raise InvalidInput(f"release {reference!r} does not exist")
    if not _can_see_release(user, found):
        raise PermissionDenied(f"release {found.name!r} is restricted to groups you are not in")
    return found


def _replace_release_groups(connection: Connection, release_id: int, groups: tuple[str, ...]) -> None:
    table = schema.release_groups
    connection.execute(delete(table).where(table.c.release_id == release_id))
    if groups:
        connection.execute(
            insert(table), [{"release_id": release_id, "group_name": group} for group in groups]
        )


# Products


def _visible_to(user: User) -> ColumnElement[bool]:
    """Condition on the product join: products ``user`` may see."""
    if user.is_admin:
        return true()
    groups = schema.release_groups
    visible_releases = select(_releases.c.id).where(
        or_(
            _releases.c.is_public.is_(True),
            _releases.c.id.in_(select(groups.c.release_id).where(groups.c.group_name.in_(user.groups))),
        )
    )
    return or_(_p.c.user_id == user.id, _p.c.release_id.is_(None), _p.c.release_id.in_(visible_releases))


def _product_from_row(row: Row) -> Product:
    return Product(
        id=row.id,
        internal_name=row.internal_name,
        display_name=row.display_name,
        product_type_id=row.product_type_id,
        product_type_name=row.product_type_name,
        product_type_display_name=row.product_type_display_name,
        release_id=row.release_id,
        release_name=row.release_name,
        release_display_name=row.release_display_name,
        owner_id=row.user_id,
        owner_username=row.owner_username,
        official=row.official,
        pz_code=row.pz_code,
        description=row.description,
        status=ProductStatus(row.status),
        release_year=row.release_year,
        provenance=row.provenance,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _product_by_id(connection: Connection, product_id: int) -> Product:
    row = connection.execute(
        select(*_PRODUCT_COLUMNS).select_from(_PRODUCT_JOIN).where(_p.c.id == product_id)
    ).one()
    return _product_from_row(row)


def _visible_product(connection: Connection, user: User, reference: int | str) -> Product:
    reference = checks.reference(reference, "product")
    row = connection.execute(
        select(*_PRODUCT_COLUMNS)
        .select_from(_PRODUCT_JOIN)
        .where(_by_id_or_name(reference, _p.c.id, _p.c.internal_name), _visible_to(user))
    ).one_or_none()
    if row is None:
        raise NotFound(f"product {reference!r} does not exist or is not visible to you")
    return _product_from_row(row)


def _changeable_product(connection: Connection, user: User, reference: int | str) -> Product:
    found = _visible_product(connection, user, reference)
    if not found.can_be_changed_by(user):
        raise PermissionDenied(
            f"product {found.internal_name} belongs to {found.owner_username}; "
            "only its owner or an admin may change it"
        )
    return found


def _touch_product(connection: Connection, product_id: int) -> None:
    connection.execute(update(_p).where(_p.c.id == product_id).values(updated_at=_now()))


def _check_display_name_free(
    connection: Connection, owner_id: int, display_name: str, except_product_id: int | None
) -> None:
    conditions = [
        _p.c.user_id == owner_id,
        _p.c.status != int(ProductStatus.DELETED),
        func.lower(_p.c.display_name) == display_name.lower(),
    ]
    if except_product_id is not None:
        conditions.append(_p.c.id != except_product_id)
    clash = connection.execute(select(_p.c.internal_name).where(*conditions)).first()
    if clash is not None:
        raise AlreadyExists(
            f"you already have a product named {display_name!r} ({clash.internal_name}); choose another name "
            "or delete that product"
        )


def _check_pz_code_allowed(pz_code: str | None, product_type_name: str) -> None:
    if pz_code is not None and product_type_name in schema.PZ_CODE_FORBIDDEN_TYPES:
        raise InvalidInput(f"pz_code must be empty on {product_type_name} products, got {pz_code!r}")


def _check_mandatory_columns(connection: Connection, product: Product) -> None:
    required = schema.MANDATORY_ALIASES.get(product.product_type_name, ())
    aliases = connection.scalars(
        select(_contents.c.alias).where(_contents.c.product_id == product.id, _contents.c.alias.is_not(None))
    )
    present = {alias.lower() for alias in aliases}
    missing = tuple(alias for alias in required if alias.lower() not in present)
    if missing:
        raise MissingColumns(
            f"product {product.internal_name} cannot be published: no column is associated with "
            f"{', '.join(missing)}; associate them first",
            missing,
        )


def _terms_condition(terms: Terms, columns: Sequence[ColumnElement], field: str) -> ColumnElement[bool]:
    patterns = [f"%{_escape_like(checks.filter_text(value, field))}%" for value in terms.values]
    per_value = [or_(*(column.ilike(pattern, escape="\\") for column in columns)) for pattern in patterns]
    return or_(*per_value) if terms.any_of else and_(*per_value)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _references_condition(
    references: tuple[int | str, ...], what: str, id_column: ColumnElement, name_column: ColumnElement
) -> ColumnElement[bool]:
    checked = [checks.reference(reference, what) for reference in references]
    return or_(*(_by_id_or_name(reference, id_column, name_column) for reference in checked))


def _filter_conditions(filters: ProductFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.ids:
        conditions.append(_p.c.id.in_([checks.count(product_id, "product id") for product_id in filters.ids]))
    if filters.internal_name:
        names = [checks.filter_text(name, "internal_name") for name in filters.internal_name]
        conditions.append(_p.c.internal_name.in_(names))
    if filters.display_name:
        names = [checks.filter_text(name, "display_name") for name in filters.display_name]
        conditions.append(_p.c.display_name.in_(names))
    if filters.product_type:
        conditions.append(
            _references_condition(filters.product_type, "product_type", _p.c.product_type_id, _types.c.name)
        )
    if filters.release:
        conditions.append(
            _references_condition(filters.release, "release", _p.c.release_id, _releases.c.name)
        )
    if filters.without_release is not None:
        conditions.append(
            _p.c.release_id.is_(None) if filters.without_release else _p.c.release_id.is_not(None)
        )
    if filters.status:
        conditions.append(_p.c.status.in_([int(checks.product_status(status)) for status in filters.status]))
    if filters.official is not None:
        conditions.append(_p.c.official.is_(bool(filters.official)))
    if filters.owner:
        conditions.append(_references_condition(filters.owner, "owner", _p.c.user_id, _users.c.username))
    owner_names = (_users.c.username, _users.c.first_name, _users.c.last_name)
    text_filters = (
        ("product_name", filters.product_name, (_p.c.display_name,)),
        ("product_type_name", filters.product_type_name, (_types.c.name, _types.c.display_name)),
        ("release_name", filters.release_name, (_releases.c.name, _releases.c.display_name)),
        ("uploaded_by", filters.uploaded_by, owner_names),
    )
    for field, terms, columns in text_filters:
        if terms is not None and terms.values:
            conditions.append(_terms_condition(terms, columns, field))
    if filters.search:
        conditions.append(
            _terms_condition(Terms((filters.search,)), (_p.c.display_name, *owner_names), "search")
        )
    return conditions


# Files and contents


def _file_from_row(row: Row) -> ProductFile:
    return ProductFile(
        id=row.id,
        product_id=row.product_id,
        role=FileRole(row.role),
        name=row.name,
        mime_type=row.mime_type,
        size=row.size,
        n_rows=row.n_rows,
        extension=row.extension,
        is_directory=row.is_directory,
        checksum=row.checksum,
        storage_key=row.storage_key,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _file_by_id(connection: Connection, file_id: int) -> ProductFile | None:
    if isinstance(file_id, bool) or not isinstance(file_id, int):
        raise InvalidInput(f"a product file id is an integer, got {file_id!r}")
    row = connection.execute(select(_files).where(_files.c.id == file_id)).one_or_none()
    return None if row is None else _file_from_row(row)


def _files_of(connection: Connection, product_id: int) -> tuple[ProductFile, ...]:
    rows = connection.execute(
        select(_files).where(_files.c.product_id == product_id).order_by(_files.c.role, _files.c.id)
    )
    return tuple(_file_from_row(row) for row in rows)


def _changeable_file(connection: Connection, user: User, file_id: int) -> ProductFile:
    found = _file_by_id(connection, file_id)
    if found is None:
        raise NotFound(f"product file {file_id!r} does not exist")
    _changeable_product(connection, user, found.product_id)
    return found


def _content_from_row(row: Row) -> ProductContent:
    return ProductContent(
        id=row.id,
        product_id=row.product_id,
        column_name=row.column_name,
        ucd=row.ucd,
        alias=row.alias,
        order=row.position,
    )


def _contents_of(connection: Connection, product_id: int) -> tuple[ProductContent, ...]:
    rows = connection.execute(
        select(_contents).where(_contents.c.product_id == product_id).order_by(_contents.c.position)
    )
    return tuple(_content_from_row(row) for row in rows)


# Processes


def _process_by_id(connection: Connection, process_id: int) -> Process | None:
    if isinstance(process_id, bool) or not isinstance(process_id, int):
        raise InvalidInput(f"a process id is an integer, got {process_id!r}")
    row = connection.execute(select(_processes).where(_processes.c.id == process_id)).one_or_none()
    if row is None:
        return None
    table = schema.process_inputs
    input_ids = connection.scalars(
        select(table.c.product_id).where(table.c.process_id == process_id).order_by(table.c.position)
    )
    return Process(
        id=row.id,
        pipeline=row.pipeline,
        display_name=row.display_name,
        used_config=row.used_config,
        inputs=tuple(input_ids),
        release_id=row.release_id,
        output_product_id=row.output_product_id,
        owner_id=row.user_id,
        status=ProcessStatus(row.status),
        dag_id=row.dag_id,
        run_id=row.run_id,
        error=row.error,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        started_at=_utc(row.started_at),
        ended_at=_utc(row.ended_at),
    )


def _status_change(current: Process, new_status: ProcessStatus) -> dict[str, Any]:
    if current.status.is_final:
        raise InvalidInput(
            f"process {current.id} already ended ({current.status.value}); "
            f"it cannot become {new_status.value}"
        )
    values: dict[str, Any] = {"status": new_status.value}
    if new_status is ProcessStatus.RUNNING and current.started_at is None:
        values["started_at"] = _now()
    if new_status.is_final:
        values["ended_at"] = _now()
    return values


# Users


def _find_user(connection: Connection, reference: int | str) -> User | None:
    row = connection.execute(
        select(_users).where(_by_id_or_name(reference, _users.c.id, _users.c.username))
    ).one_or_none()
    if row is None:
        return None
    groups = connection.scalars(
        select(schema.user_groups.c.group_name)
        .where(schema.user_groups.c.user_id == row.id)
        .order_by(schema.user_groups.c.group_name)
    )
    return User(
        id=row.id,
        username=row.username,
        first_name=row.first_name,
        last_name=row.last_name,
        is_admin=row.is_admin,
        groups=tuple(groups),
        created_at=_utc(row.created_at),
    )


def _replace_user_groups(connection: Connection, user_id: int, groups: tuple[str, ...]) -> None:
    table = schema.user_groups
    connection.execute(delete(table).where(table.c.user_id == user_id))
    if groups:
        connection.execute(insert(table), [{"user_id": user_id, "group_name": group} for group in groups])
