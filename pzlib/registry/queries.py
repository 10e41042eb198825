"""Reads, conditions and checks shared by the ``Registry`` methods; internal to ``pzlib.registry``.

Every function takes the caller's open ``Connection`` so it runs inside the caller's transaction. Functions
named ``find_*`` return ``None`` for a missing record; ``visible_*`` and ``changeable_*`` apply the visibility
and ownership rules and raise the domain exceptions; ``check_*`` enforce the other rules. ``changeable_*`` lock
the product they return until the transaction ends (Postgres; a SQLite write transaction excludes every other
writer anyway), so a concurrent change or delete of it waits, and what they read stays true until the commit.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import Column, ColumnElement, Connection, Row, and_, delete, func, insert, or_, select, true, update

from pzlib.registry import checks, schema
from pzlib.registry.errors import AlreadyExists, InvalidInput, MissingColumns, NotFound, PermissionDenied
from pzlib.registry.records import (
    COLUMN,
    Process,
    Product,
    ProductContent,
    ProductFile,
    ProductFilter,
    Release,
    Terms,
    User,
)
from pzlib.registry.schema import FileRole, ProcessStatus, ProductStatus

RecordT = TypeVar("RecordT")

_p = schema.products
_types = schema.product_types
_releases = schema.releases
_users = schema.users
_files = schema.product_files
_contents = schema.product_contents
_processes = schema.processes

# Products joined with their type, owner and (optional) release; PRODUCT_COLUMNS names what a Product needs.
PRODUCT_JOIN = (
    _p.join(_types, _p.c.product_type_id == _types.c.id)
    .join(_users, _p.c.user_id == _users.c.id)
    .outerjoin(_releases, _p.c.release_id == _releases.c.id)
)
PRODUCT_COLUMNS = (
    _p,
    _types.c.name.label("product_type_name"),
    _types.c.display_name.label("product_type_display_name"),
    _releases.c.name.label("release_name"),
    _releases.c.display_name.label("release_display_name"),
    _users.c.username.label("owner_username"),
)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def record_from_row(record_type: type[RecordT], row: Row, **values: Any) -> RecordT:
    """A record of ``record_type`` (a dataclass of :mod:`pzlib.registry.records`) from a row.

    Each field not given in ``values`` (what other tables hold: groups, inputs) is read from the row's column
    of its name, or of the name its ``from_column`` gives; an enumeration is made from its stored value, and a
    timestamp is made UTC-aware (SQLite returns naive datetimes; every stored one is UTC).
    """
    columns = row._mapping
    for name, (column, kind) in _columns_of(record_type).items():
        if name not in values:
            values[name] = _stored_value(columns[column], kind)
    return record_type(**values)


@functools.cache
def _columns_of(record_type: type) -> dict[str, tuple[str, Any]]:
    """{field: (column, type)} of a record type."""
    types = typing.get_type_hints(record_type)
    return {field.name: (field.metadata.get(COLUMN, field.name), types[field.name])
            for field in dataclasses.fields(record_type)}


def _stored_value(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _by_id_or_name(
    reference: int | str, id_column: ColumnElement, name_column: ColumnElement
) -> ColumnElement[bool]:
    return id_column == reference if isinstance(reference, int) else name_column == reference


# Product types


def find_product_type(connection: Connection, reference: int | str) -> Row | None:
    """The product-type row with this id or name, or None."""
    return connection.execute(
        select(_types).where(_by_id_or_name(reference, _types.c.id, _types.c.name))
    ).one_or_none()


def unknown_product_type_message(connection: Connection, reference: object) -> str:
    """A message naming ``reference`` and every known product type."""
    known = ", ".join(connection.scalars(select(_types.c.name).order_by(_types.c.display_order)))
    return f"unknown product type {reference!r}; use one of {known}"


# Releases


def find_release(connection: Connection, reference: int | str) -> Release | None:
    """The release with this id or name, with its access groups, or None."""
    row = connection.execute(
        select(_releases).where(_by_id_or_name(reference, _releases.c.id, _releases.c.name))
    ).one_or_none()
    if row is None:
        return None
    return record_from_row(
        Release, row, access_groups=_group_names(connection, schema.release_groups.c.release_id, row.id)
    )


def can_see_release(user: User, release: Release) -> bool:
    """True when ``user`` may see ``release`` and its products."""
    return user.is_admin or release.is_public or bool(set(user.groups) & set(release.access_groups))


def accessible_release(connection: Connection, user: User, reference: int | str) -> Release:
    """The release with this id or name, when ``user`` may put products or runs in it."""
    found = find_release(connection, checks.reference(reference, "release"))
    if found is None:
        raise InvalidInput(f"release {reference!r} does not exist")
    if not can_see_release(user, found):
        raise PermissionDenied(f"release {found.name!r} is restricted to groups you are not in")
    return found


def replace_release_groups(connection: Connection, release_id: int, groups: tuple[str, ...]) -> None:
    """Make ``groups`` the release's access groups."""
    _replace_groups(connection, schema.release_groups.c.release_id, release_id, groups)


def _group_names(connection: Connection, owner_column: Column, owner_id: int) -> tuple[str, ...]:
    """Sorted group names of a release or user, from the group table ``owner_column`` belongs to."""
    names = owner_column.table.c.group_name
    return tuple(connection.scalars(select(names).where(owner_column == owner_id).order_by(names)))


def _replace_groups(connection: Connection, owner_column: Column, owner_id: int, groups: tuple[str, ...]) -> None:
    table = owner_column.table
    connection.execute(delete(table).where(owner_column == owner_id))
    if groups:
        connection.execute(insert(table), [{owner_column.name: owner_id, "group_name": group} for group in groups])


# Products


def visible_to(user: User) -> ColumnElement[bool]:
    """Condition on the product join: products ``user`` may see. Drafts (any status but Published) are their
    owner's and the admins' alone; a Published product is shared by its release's visibility."""
    if user.is_admin:
        return true()
    groups = schema.release_groups
    visible_releases = select(_releases.c.id).where(
        or_(
            _releases.c.is_public.is_(True),
            _releases.c.id.in_(select(groups.c.release_id).where(groups.c.group_name.in_(user.groups))),
        )
    )
    shared = and_(
        _p.c.status == int(ProductStatus.PUBLISHED),
        or_(_p.c.release_id.is_(None), _p.c.release_id.in_(visible_releases)),
    )
    return or_(_p.c.user_id == user.id, shared)


def product_by_id(connection: Connection, product_id: int) -> Product:
    """The product with this id, which must exist."""
    row = connection.execute(
        select(*PRODUCT_COLUMNS).select_from(PRODUCT_JOIN).where(_p.c.id == product_id)
    ).one()
    return record_from_row(Product, row)


def visible_product(connection: Connection, user: User, reference: int | str, *, lock: bool = False) -> Product:
    """The product with this id or internal name, when ``user`` may see it; else ``NotFound``. With ``lock``,
    its row is locked until the transaction ends."""
    reference = checks.reference(reference, "product")
    query = (
        select(*PRODUCT_COLUMNS)
        .select_from(PRODUCT_JOIN)
        .where(_by_id_or_name(reference, _p.c.id, _p.c.internal_name), visible_to(user))
    )
    row = connection.execute(query.with_for_update(of=_p) if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"product {reference!r} does not exist or is not visible to you")
    return record_from_row(Product, row)


def changeable_product(connection: Connection, user: User, reference: int | str) -> Product:
    """The product, locked, when ``user`` may see and change it; else ``NotFound`` or ``PermissionDenied``."""
    found = visible_product(connection, user, reference, lock=True)
    check_changeable(user, found)
    return found


def check_changeable(user: User, product: Product) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may change ``product`` (its owner or an admin)."""
    if not product.can_be_changed_by(user):
        raise PermissionDenied(
            f"product {product.internal_name} belongs to {product.owner_username}; "
            "only its owner or an admin may change it"
        )


def touch_product(connection: Connection, product_id: int) -> None:
    """Stamp the product's ``updated_at``."""
    connection.execute(update(_p).where(_p.c.id == product_id).values(updated_at=now()))


def check_display_name_free(
    connection: Connection, owner_id: int, display_name: str, except_product_id: int | None
) -> None:
    """Raise ``AlreadyExists`` when the owner has another live product of this display name."""
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


def check_pz_code_allowed(pz_code: str | None, product_type_name: str) -> None:
    """Raise ``InvalidInput`` for a ``pz_code`` on a type that takes none."""
    if pz_code is not None and product_type_name in schema.PZ_CODE_FORBIDDEN_TYPES:
        raise InvalidInput(f"pz_code must be empty on {product_type_name} products, got {pz_code!r}")


def check_mandatory_columns(connection: Connection, product: Product) -> None:
    """Raise ``MissingColumns`` unless the product carries its type's mandatory aliases."""
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


def filter_conditions(filters: ProductFilter) -> list[ColumnElement[bool]]:
    """Conditions on ``PRODUCT_JOIN`` selecting the products ``filters`` describe."""
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


def file_by_id(connection: Connection, file_id: int) -> ProductFile | None:
    """The product file with this id, or None."""
    if isinstance(file_id, bool) or not isinstance(file_id, int):
        raise InvalidInput(f"a product file id is an integer, got {file_id!r}")
    row = connection.execute(select(_files).where(_files.c.id == file_id)).one_or_none()
    return None if row is None else record_from_row(ProductFile, row)


def files_of(connection: Connection, product_id: int) -> tuple[ProductFile, ...]:
    """Files of a product, by role then id."""
    rows = connection.execute(
        select(_files).where(_files.c.product_id == product_id).order_by(_files.c.role, _files.c.id)
    )
    return tuple(record_from_row(ProductFile, row) for row in rows)


def check_file_free(product: Product, files: Iterable[ProductFile], names: Collection[str], role: FileRole) -> None:
    """Raise ``AlreadyExists`` when one of the product's ``files`` has one of ``names``, or when a main file would
    be its second."""
    for existing in files:
        if existing.name in names:
            raise AlreadyExists(f"product {product.internal_name} already has a file named {existing.name!r}")
        if role is FileRole.MAIN and existing.role is FileRole.MAIN:
            raise AlreadyExists(
                f"product {product.internal_name} already has a main file ({existing.name!r}); "
                "delete it first or add this one as auxiliary"
            )


def changeable_file(connection: Connection, user: User, file_id: int) -> ProductFile:
    """The file, when ``user`` may change its product (locked); else ``NotFound`` or ``PermissionDenied``."""
    found = file_by_id(connection, file_id)
    if found is not None:
        changeable_product(connection, user, found.product_id)
        # Read again under the lock: a request that held it may have deleted the file.
        found = file_by_id(connection, file_id)
    if found is None:
        raise NotFound(f"product file {file_id!r} does not exist")
    return found


def changeable_content(connection: Connection, user: User, content_id: int) -> tuple[Product, ProductContent]:
    """A column and its product (locked), when ``user`` may change the product; else ``NotFound`` or
    ``PermissionDenied``."""
    found = _content_by_id(connection, content_id)
    if found is not None:
        product = changeable_product(connection, user, found.product_id)
        # Read again under the lock: a request that held it may have replaced the columns.
        found = _content_by_id(connection, content_id)
    if found is None:
        raise NotFound(f"product content {content_id!r} does not exist")
    return product, found


def _content_by_id(connection: Connection, content_id: int) -> ProductContent | None:
    row = connection.execute(select(_contents).where(_contents.c.id == content_id)).one_or_none()
    return None if row is None else record_from_row(ProductContent, row)


def contents_of(connection: Connection, product_id: int) -> tuple[ProductContent, ...]:
    """Columns recorded for a product, in table order."""
    rows = connection.execute(
        select(_contents).where(_contents.c.product_id == product_id).order_by(_contents.c.position)
    )
    return tuple(record_from_row(ProductContent, row) for row in rows)


# Processes


def process_by_id(connection: Connection, process_id: int) -> Process | None:
    """The process with this id and its inputs, or None."""
    if isinstance(process_id, bool) or not isinstance(process_id, int):
        raise InvalidInput(f"a process id is an integer, got {process_id!r}")
    row = connection.execute(select(_processes).where(_processes.c.id == process_id)).one_or_none()
    if row is None:
        return None
    table = schema.process_inputs
    input_ids = connection.scalars(
        select(table.c.product_id).where(table.c.process_id == process_id).order_by(table.c.position)
    )
    return record_from_row(Process, row, inputs=tuple(input_ids))


def status_change(current: Process, new_status: ProcessStatus) -> dict[str, Any]:
    """Column values for moving ``current`` to ``new_status``, with its timestamps."""
    if current.status.is_final:
        raise InvalidInput(
            f"process {current.id} already ended ({current.status.value}); "
            f"it cannot become {new_status.value}"
        )
    values: dict[str, Any] = {"status": new_status.value}
    if new_status is ProcessStatus.RUNNING and current.started_at is None:
        values["started_at"] = now()
    if new_status.is_final:
        values["ended_at"] = now()
    return values


# Users


def find_user(connection: Connection, reference: int | str) -> User | None:
    """The user with this id or username, with groups, or None."""
    row = connection.execute(
        select(_users).where(_by_id_or_name(reference, _users.c.id, _users.c.username))
    ).one_or_none()
    if row is None:
        return None
    return record_from_row(User, row, groups=_group_names(connection, schema.user_groups.c.user_id, row.id))


def replace_user_groups(connection: Connection, user_id: int, groups: tuple[str, ...]) -> None:
    """Make ``groups`` the user's access groups."""
    _replace_groups(connection, schema.user_groups.c.user_id, user_id, groups)
