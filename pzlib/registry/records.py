"""Immutable records the registry returns, and the small value types its callers pass in.

Records are plain frozen dataclasses built from rows: an HTTP layer turns them into JSON without touching the
database again. Timestamps are timezone-aware UTC on every backend. One mapping builds them all
(``queries.record_from_row``): a field is read from the column of its name, or from the column ``from_column``
names where the record calls it otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pzlib.registry.schema import FileRole, ProcessStatus, ProductStatus

RecordT = TypeVar("RecordT")

COLUMN = "column"
"""Key of a field's metadata naming the column it is read from."""


def from_column(name: str) -> Any:
    """A record field read from the column ``name`` of its row (the record names it otherwise)."""
    return field(metadata={COLUMN: name})


@dataclass(frozen=True)
class User:
    """A person (or service) who owns products and runs pipelines."""

    id: int
    username: str
    first_name: str
    last_name: str
    is_admin: bool
    """Admins see and change everything and may mark products official."""
    groups: tuple[str, ...]
    """Access groups, sorted; a release restricted to one of them is visible to this user."""
    created_at: datetime

    @property
    def display_name(self) -> str:
        """Full name when known, else the username."""
        return f"{self.first_name} {self.last_name}".strip() or self.username


@dataclass(frozen=True)
class ProductType:
    """A kind of product (``redshift_catalog``, ``training_set``, …)."""

    id: int
    name: str
    display_name: str
    description: str
    order: int = from_column("display_order")
    """Position in listings."""


@dataclass(frozen=True)
class Release:
    """A data release (e.g. ``dp1``) that products may belong to."""

    id: int
    name: str
    display_name: str
    description: str
    is_public: bool
    """Every user sees a public release's products."""
    access_groups: tuple[str, ...]
    """Members of any of these groups see a non-public release's products; sorted."""
    created_at: datetime
    object_catalog: str | None = None
    """The release's object catalog (a HATS collection folder with its margin cache, path or file:// URI), which
    the Training Set Maker cross-matches spec-z catalogs with; None when none is registered."""
    object_column_map: str | dict[str, Any] | None = None
    """Its photometry columns: a ``pzlib.catalog.COLUMN_MAPS`` preset name or ColumnMap fields; None: none."""


@dataclass(frozen=True)
class Product:
    """A registered product with the names of its type, release and owner joined in."""

    id: int
    internal_name: str
    """``<id>_<slug of the display name>``, unique and fixed at creation."""
    display_name: str
    product_type_id: int
    product_type_name: str
    product_type_display_name: str
    release_id: int | None
    release_name: str | None
    release_display_name: str | None
    owner_id: int = from_column("user_id")
    owner_username: str
    official: bool
    """Official (e.g. Rubin) products are marked so by admins only."""
    pz_code: str | None
    """Photo-z code that produced the product, when any."""
    description: str
    status: ProductStatus
    release_year: int | None
    provenance: dict[str, Any] | None
    """How the product was made (pipeline, inputs, versions, parameters), as JSON."""
    created_at: datetime
    updated_at: datetime

    def can_be_changed_by(self, user: User) -> bool:
        """True when ``user`` may update or delete this product, its files and its columns."""
        return user.is_admin or user.id == self.owner_id


@dataclass(frozen=True)
class ProductFile:
    """A file (or a directory such as a HATS catalog) of a product, kept in object storage."""

    id: int
    product_id: int
    role: FileRole
    name: str
    """File name as uploaded, without directories."""
    mime_type: str | None
    size: int
    """Bytes (the total of every file for a directory)."""
    n_rows: int | None
    """Rows of a table, once counted."""
    extension: str
    """Suffix of ``name`` with its dot (``".csv"``), empty for none."""
    is_directory: bool
    checksum: str | None
    """SHA-256 hex digest of the content, when known."""
    storage_key: str
    """Key (or key prefix, for a directory) in the object store."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProductContent:
    """One column of a product's main table and its association with a system column."""

    id: int
    product_id: int
    column_name: str
    ucd: str | None
    """IVOA unified content descriptor, e.g. ``"pos.eq.ra;meta.main"``."""
    alias: str | None
    """System column name, e.g. ``"RA"``."""
    order: int = from_column("position")
    """Position of the column in the table, from 0."""


@dataclass(frozen=True)
class ColumnSpec:
    """A column to record with ``Registry.set_contents``."""

    column_name: str
    ucd: str | None = None
    alias: str | None = None


@dataclass(frozen=True)
class Process:
    """A pipeline run requested by a user and carried out by an Airflow DAG run."""

    id: int
    pipeline: str
    """Pipeline name, e.g. ``"training_set_maker"``."""
    display_name: str
    used_config: dict[str, Any]
    inputs: tuple[int, ...]
    """Input product ids, in the order given."""
    release_id: int | None
    output_product_id: int | None
    owner_id: int = from_column("user_id")
    status: ProcessStatus
    dag_id: str | None
    run_id: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True)
class Terms:
    """Case-insensitive substrings a text filter looks for."""

    values: tuple[str, ...]
    any_of: bool = False
    """Match when any value is found (the API's ``__or`` filters) instead of all of them."""


@dataclass(frozen=True)
class ProductFilter:
    """Which products ``Registry.list_products`` returns; empty fields do not filter.

    Tuple fields match any of their values exactly; ``Terms`` fields look for substrings as LIneA's
    ``product_name``, ``product_type_name``, ``release_name`` and ``uploaded_by`` filters do.
    """

    ids: tuple[int, ...] = ()
    internal_name: tuple[str, ...] = ()
    display_name: tuple[str, ...] = ()
    product_type: tuple[int | str, ...] = ()
    """Type ids or names."""
    release: tuple[int | str, ...] = ()
    """Release ids or names."""
    without_release: bool | None = None
    """True: only products of no release; False: only products of a release."""
    status: tuple[ProductStatus, ...] = ()
    official: bool | None = None
    owner: tuple[int | str, ...] = ()
    """User ids or usernames."""
    product_name: Terms | None = None
    """Searched in the display name."""
    product_type_name: Terms | None = None
    """Searched in the type's name and display name."""
    release_name: Terms | None = None
    """Searched in the release's name and display name."""
    uploaded_by: Terms | None = None
    """Searched in the owner's username, first and last names."""
    search: str | None = None
    """One substring searched in the display name and the owner's names."""


@dataclass(frozen=True)
class Page(Generic[RecordT]):
    """One page of a listing."""

    count: int
    """Records matching the listing's filters, on every page."""
    results: tuple[RecordT, ...] = field(default_factory=tuple)
    page: int = 1
    page_size: int = 100
