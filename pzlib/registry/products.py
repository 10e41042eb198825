"""Products in the registry, and the product types they are of.

Who may see a product: admins; its owner; once it is Published, everyone when it has no release or its release
is public, and members of the release's access groups (a draft, any other status, only its owner and admins:
``queries.visible_to``, behind every read). Who may change it: its owner or an admin; who may mark it official:
admins. Publishing needs the mandatory columns of its type. Internal names are ``<id>_<slug>``, as LIneA's PZ
Server makes them, and never change. One part of :class:`pzlib.registry.Registry`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from pzlib.registry import checks, queries, schema, transactions
from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import InvalidInput, NotFound, PermissionDenied
from pzlib.registry.records import Page, Product, ProductFile, ProductFilter, ProductType, User
from pzlib.registry.schema import ProductStatus

MAX_PAGE_SIZE = 1000
"""Largest page ``list_products`` returns, as LIneA's API."""

PRODUCT_ORDERINGS = ("id", "display_name", "product_type", "created_at", "updated_at", "internal_name")
"""Fields ``list_products`` sorts by; prefix one with ``-`` for descending order."""

_p = schema.products
_types = schema.product_types
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


class ProductRegistry:
    """The registry's product types and products; works on ``self.engine``."""

    engine: Engine

    # Product types

    def list_product_types(self) -> tuple[ProductType, ...]:
        """Every product type, in listing order."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(_types).order_by(_types.c.display_order, _types.c.id))
            return tuple(queries.record_from_row(ProductType, row) for row in rows)

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
            return queries.record_from_row(ProductType, row)

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
            results = tuple(queries.record_from_row(Product, row) for row in rows)
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
