"""A product's files and the columns of its main table, in the registry.

A file record points at content in object storage (``pzlib.registry.registration`` stores it first); a product
has at most one main file, and file names are unique within it. Contents record the main table's columns in
table order, each with a UCD and a system-column alias (the column association publishing needs); removing the
main file forgets them in the same transaction. Changes take the product's owner or an admin. One part of
:class:`pzlib.registry.Registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import InvalidInput, NotFound
from pzlib.registry.records import ColumnSpec, ProductContent, ProductFile, User
from pzlib.registry.schema import FileRole

_files = schema.product_files
_contents = schema.product_contents


class ProductFileRegistry:
    """The registry's product files and product contents (column association); works on ``self.engine``."""

    engine: Engine

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
            queries.check_file_free(current, queries.files_of(connection, current.id), (name,), file_role)
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
            return queries.record_from_row(ProductContent, updated)
