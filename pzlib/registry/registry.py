"""The PZ Server domain: products, their files and columns, releases, pipeline runs, users and API tokens.

``Registry`` owns every rule of the domain so an HTTP layer only translates: who may see a product (admins;
its owner; once it is Published, everyone when it has no release or its release is public, and members of the
release's access groups; a draft, any other status, only its owner and admins),
who may change it (its owner or an admin), who may mark it official (admins), what a publish needs (the
mandatory columns of its type), how internal names are made (``<id>_<slug>``, as LIneA's PZ Server). A product
that exists but is not visible to the acting user is reported as ``NotFound``, so its existence does not leak;
one that is visible but not the user's to change is ``PermissionDenied``.

Methods that act for a user take the ``User`` returned by ``authenticate`` (or ``get_user``) first. Methods
without one (releases, users, tokens, process state) are administrative: the CLI and the Airflow tasks call
them. Every method runs in its own transaction; on failure nothing is changed. Changes run in
``transactions.writing``, so concurrent requests on one product end in a result, ``NotFound`` or
``AlreadyExists``, never in a database error.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
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
        Database URL, or an engine (for SQLite, one from ``create_registry_engine``, which turns foreign-key
        enforcement on).
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
            return tuple(queries.product_type_from_row(row) for row in rows)

    def get_product_type(self, product_type: int | str) -> ProductType:
        """The product type with this id or name.

        Raises
        ------
        NotFound
            When there is no such type.
        """
        with self.engine.connect() as connection:
            row = queries.find_product_type(connection, product_type)
            if row is None:
                raise NotFound(f"product type {product_type!r} does not exist")
            return queries.product_type_from_row(row)

    # Releases

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
        with transactions.writing(self.engine, f"product {display_name!r}") as connection:
            type_row = queries.find_product_type(connection, checks.reference(product_type, "product_type"))
            if type_row is None:
                raise InvalidInput(queries.unknown_product_type_message(connection, product_type))
            queries.check_pz_code_allowed(pz_code, type_row.name)
            release_id = None if release is None else queries.accessible_release(connection, user, release).id
            queries.check_display_name_free(connection, user.id, display_name, except_product_id=None)
            now = queries.now()
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
            return queries.product_by_id(connection, product_id)

    def get_product(self, user: User, product: int | str) -> Product:
        """The product with this id or internal name.

        Raises
        ------
        NotFound
            When there is no such product or ``user`` may not see it.
        """
        with self.engine.connect() as connection:
            return queries.visible_product(connection, user, product)

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
        conditions = [queries.visible_to(user), *queries.filter_conditions(filters or ProductFilter())]
        query = select(*queries.PRODUCT_COLUMNS).select_from(queries.PRODUCT_JOIN).where(*conditions)
        with self.engine.connect() as connection:
            total = connection.scalar(
                select(func.count()).select_from(queries.PRODUCT_JOIN).where(*conditions)
            )
            rows = connection.execute(
                query.order_by(
                    order_column.desc() if descending else order_column.asc(),
                    _p.c.id.desc() if descending else _p.c.id.asc(),
                )
                .limit(page_size)
                .offset((page - 1) * page_size)
            )
            results = tuple(queries.product_from_row(row) for row in rows)
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
        with transactions.writing(self.engine, f"product {product!r}") as connection:
            current = queries.changeable_product(connection, user, product)
            values: dict[str, Any] = {}
            if display_name is not UNSET:
                new_name = checks.display_name(display_name)
                if new_name.lower() != current.display_name.lower():
                    queries.check_display_name_free(connection, current.owner_id, new_name, current.id)
                values["display_name"] = new_name
            if description is not UNSET:
                values["description"] = checks.description(description)
            if official is not UNSET and bool(official) != current.official:
                if not user.is_admin:
                    raise PermissionDenied("only admins may mark a product official or unofficial")
                values["official"] = bool(official)
            if pz_code is not UNSET:
                values["pz_code"] = checks.optional_text(pz_code, "pz_code", 55)
                queries.check_pz_code_allowed(values["pz_code"], current.product_type_name)
            if release is not UNSET:
                values["release_id"] = (
                    None if release is None else queries.accessible_release(connection, user, release).id
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
                    queries.check_mandatory_columns(connection, current)
                values["status"] = int(new_status)
            if values:
                connection.execute(
                    update(_p).where(_p.c.id == current.id).values(updated_at=queries.now(), **values)
                )
            return queries.product_by_id(connection, current.id)

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
        with transactions.writing(self.engine, f"product {product!r}") as connection:
            current = queries.changeable_product(connection, user, product)
            removed_files = queries.files_of(connection, current.id)
            connection.execute(delete(_contents).where(_contents.c.product_id == current.id))
            connection.execute(delete(_files).where(_files.c.product_id == current.id))
            connection.execute(
                delete(schema.process_inputs).where(schema.process_inputs.c.product_id == current.id)
            )
            connection.execute(
                update(_processes)
                .where(_processes.c.output_product_id == current.id)
                .values(output_product_id=None, updated_at=queries.now())
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
        with transactions.writing(self.engine, f"product {product!r}") as connection:
            current = queries.changeable_product(connection, user, product)
            for existing in queries.files_of(connection, current.id):
                if existing.name == name:
                    raise AlreadyExists(f"product {current.internal_name} already has a file named {name!r}")
                if file_role is FileRole.MAIN and existing.role is FileRole.MAIN:
                    raise AlreadyExists(
                        f"product {current.internal_name} already has a main file ({existing.name!r}); "
                        "delete it first or add this one as auxiliary"
                    )
            now = queries.now()
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
            queries.touch_product(connection, current.id)
            return queries.file_by_id(connection, file_id)

    def get_file(self, user: User, file_id: int) -> ProductFile:
        """The file record with this id.

        Raises
        ------
        NotFound
            No such file, or its product is not visible to ``user``.
        """
        with self.engine.connect() as connection:
            found = queries.file_by_id(connection, file_id)
            if found is None:
                raise NotFound(f"product file {file_id!r} does not exist")
            queries.visible_product(connection, user, found.product_id)
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
            current = queries.visible_product(connection, user, product)
            files = queries.files_of(connection, current.id)
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
        with transactions.writing(self.engine, f"product file {file_id!r}") as connection:
            current = queries.changeable_file(connection, user, file_id)
            if values:
                connection.execute(
                    update(_files).where(_files.c.id == current.id).values(updated_at=queries.now(), **values)
                )
                queries.touch_product(connection, current.product_id)
            return queries.file_by_id(connection, current.id)

    def delete_file(self, user: User, file_id: int) -> ProductFile:
        """Remove a file record; removing the main file forgets the product's columns. The caller deletes the
        returned record's ``storage_key`` object.

        Raises
        ------
        NotFound, PermissionDenied
            As ``update_product``, for the file's product.
        """
        with transactions.writing(self.engine, f"product file {file_id!r}") as connection:
            current = queries.changeable_file(connection, user, file_id)
            connection.execute(delete(_files).where(_files.c.id == current.id))
            if current.role is FileRole.MAIN:
                connection.execute(delete(_contents).where(_contents.c.product_id == current.product_id))
            queries.touch_product(connection, current.product_id)
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
        with transactions.writing(self.engine, f"product {product!r}") as connection:
            current = queries.changeable_product(connection, user, product)
            connection.execute(delete(_contents).where(_contents.c.product_id == current.id))
            if cleaned:
                connection.execute(insert(_contents), [{"product_id": current.id, **row} for row in cleaned])
            queries.touch_product(connection, current.id)
            return queries.contents_of(connection, current.id)

    def list_contents(self, user: User, product: int | str) -> tuple[ProductContent, ...]:
        """Columns recorded for a product, in table order.

        Raises
        ------
        NotFound
            No such product visible to ``user``.
        """
        with self.engine.connect() as connection:
            return queries.contents_of(connection, queries.visible_product(connection, user, product).id)

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
        with transactions.writing(self.engine, f"product content {content_id!r}") as connection:
            product, column = queries.changeable_content(connection, user, content_id)
            if values.get("alias") is not None:
                clash = connection.execute(
                    select(_contents.c.column_name).where(
                        _contents.c.product_id == product.id,
                        _contents.c.id != column.id,
                        func.lower(_contents.c.alias) == values["alias"].lower(),
                    )
                ).first()
                if clash is not None:
                    raise InvalidInput(
                        f"alias {values['alias']!r} is already given to column {clash.column_name!r} of "
                        f"product {product.internal_name}; clear it there first"
                    )
            if values:
                connection.execute(update(_contents).where(_contents.c.id == column.id).values(**values))
                queries.touch_product(connection, product.id)
            updated = connection.execute(select(_contents).where(_contents.c.id == column.id)).one()
            return queries.content_from_row(updated)

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
        with transactions.writing(self.engine, "an input or output product of the process") as connection:
            input_ids: list[int] = []
            for reference in inputs:
                try:
                    input_ids.append(queries.visible_product(connection, user, reference).id)
                except NotFound as error:
                    raise InvalidInput(
                        f"input product {reference!r} does not exist or is not visible to you"
                    ) from error
            if len(set(input_ids)) != len(input_ids):
                raise InvalidInput(f"an input product is listed twice in {list(inputs)!r}")
            release_id = None if release is None else queries.accessible_release(connection, user, release).id
            output_id = None
            if output_product is not None:
                try:
                    output_id = queries.changeable_product(connection, user, output_product).id
                except NotFound as error:
                    raise InvalidInput(
                        f"output product {output_product!r} does not exist or is not visible to you"
                    ) from error
            now = queries.now()
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
            return queries.process_by_id(connection, process_id)

    def get_process(self, user: User, process_id: int) -> Process:
        """The process with this id, for its requester or an admin.

        Raises
        ------
        NotFound
            No such process, or ``user`` is neither its requester nor an admin.
        """
        with self.engine.connect() as connection:
            found = queries.process_by_id(connection, process_id)
        if found is None or not (user.is_admin or found.owner_id == user.id):
            raise NotFound(f"process {process_id!r} does not exist or is not yours")
        return found

    def find_process(self, process_id: int) -> Process:
        """The process with this id, whoever requested it (for the platform's own tasks).

        Raises
        ------
        NotFound
            No such process.
        """
        with self.engine.connect() as connection:
            found = queries.process_by_id(connection, process_id)
        if found is None:
            raise NotFound(f"process {process_id!r} does not exist")
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
        with transactions.writing(self.engine, f"process {process_id!r}") as connection:
            current = queries.process_by_id(connection, process_id)
            if current is None:
                raise NotFound(f"process {process_id!r} does not exist")
            if new_status is not None and new_status is not current.status:
                values.update(queries.status_change(current, new_status))
            if values:
                connection.execute(
                    update(_processes)
                    .where(_processes.c.id == current.id)
                    .values(updated_at=queries.now(), **values)
                )
            return queries.process_by_id(connection, current.id)

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


def _enforce_sqlite_foreign_keys(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _key_hash(key: str) -> str:
    # Keys are 160 random bits, so an unsalted hash cannot be reversed by guessing.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
