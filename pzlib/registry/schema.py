"""Tables, enumerations and seed data of the PZ Server registry (SQLAlchemy Core).

The tables describe the current schema; ``pzlib.registry.migrations`` brings a database to it. Integer
codes of product statuses and file roles, and the product-type seed, are LIneA's PZ Server's, so the
``pzserver`` client reads them unchanged. Foreign keys carry no ``ON DELETE`` actions: the registry deletes
children explicitly, which behaves the same on SQLite (where enforcement is a per-connection pragma) and on
Postgres.

Ids are never given twice: Postgres sequences never go back, and on SQLite every table with an ``id`` is
``AUTOINCREMENT`` (without it SQLite gives the id of the last row deleted to the next row), so a link to a
deleted product never opens another one. A product has at most one main file, held by a partial unique index
that both databases enforce, whatever the requests racing to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)


class ProductStatus(IntEnum):
    """Life cycle of a product; the values are the codes of LIneA's API."""

    REGISTERING = 0
    PUBLISHED = 1
    DELETED = 2
    PROCESSING = 3
    FAILED = 9

    @property
    def label(self) -> str:
        """Display name, e.g. ``"Published"``."""
        return self.name.capitalize()


class FileRole(IntEnum):
    """Role of a file within its product; the values are the codes of LIneA's API."""

    MAIN = 0
    DESCRIPTION = 1
    AUXILIARY = 2

    @property
    def label(self) -> str:
        """Display name, e.g. ``"Main"``."""
        return self.name.capitalize()


class ProcessStatus(StrEnum):
    """State of a pipeline run, spelled as the ``pzserver`` client expects."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"

    @property
    def is_final(self) -> bool:
        """True once the run can no longer change state."""
        return self in (ProcessStatus.STOPPED, ProcessStatus.SUCCESSFUL, ProcessStatus.FAILED)


@dataclass(frozen=True)
class ProductTypeSeed:
    """A product type every registry starts with."""

    name: str
    """Internal name used by the API, e.g. ``"redshift_catalog"``."""
    display_name: str
    """Name shown to users."""
    order: int
    """Position in listings."""
    description: str
    """What products of this type hold."""


PRODUCT_TYPE_SEEDS: tuple[ProductTypeSeed, ...] = (
    ProductTypeSeed(
        "redshift_catalog",
        "Reference Redshift Catalog",
        1,
        "Catalog of reference redshifts and positions of galaxies (usually spectroscopic redshifts and "
        "equatorial coordinates).",
    ),
    ProductTypeSeed(
        "training_set",
        "Training Set",
        2,
        "Training set for photo-z algorithms (tabular data). It usually contains magnitudes, errors, and "
        "reference redshifts.",
    ),
    ProductTypeSeed(
        "training_results",
        "Training Results",
        3,
        "Any file(s) resulting from the training of machine learning algorithms (free format). E.g.: output "
        "of RAIL inform module estimator_<algorithm>.pkl.",
    ),
    ProductTypeSeed(
        "validation_results",
        "Validation Results",
        4,
        "Results of a photo-z validation procedure (free format). Usually contains photo-z estimates (single "
        "estimates and/or pdf) of a validation set and photo-z validation metrics.",
    ),
    ProductTypeSeed(
        "photoz_estimates",
        "Photo-z Estimates",
        5,
        "Results of a photo-z estimation procedure (usually the output of RAIL Estimate module). If the data "
        "is larger than the file upload limit, the product entry stores only the metadata (instructions on "
        "accessing the data should be provided in the description field).",
    ),
    ProductTypeSeed("object_catalog", "Objects Catalog", 6, "Catalog of objects."),
    ProductTypeSeed("other", "Other", 7, "Any file(s)."),
)
"""The seven product types of LIneA's PZ Server, in their listing order."""

MANDATORY_ALIASES: dict[str, tuple[str, ...]] = {
    "redshift_catalog": ("RA", "Dec", "z"),
    "object_catalog": ("RA", "Dec"),
    "training_set": ("z",),
}
"""Column aliases a product of each type must carry before it can be published."""

@dataclass(frozen=True)
class SystemColumn:
    """A column the platform knows by name: what a product's column can be associated with."""

    alias: str
    """System column name, as stored in a product content's ``alias``."""
    ucd: str
    """IVOA unified content descriptor stored with it."""
    description: str
    """What the column holds, for people."""
    usual_names: tuple[str, ...]
    """Lower-case column names that usually hold it, to suggest the association."""


SYSTEM_COLUMNS: tuple[SystemColumn, ...] = (
    SystemColumn("ID", "meta.id;meta.main", "Object identifier", ("id", "objid", "object_id", "objectid", "source_id")),
    SystemColumn("RA", "pos.eq.ra;meta.main", "Right ascension (degrees)", ("ra", "ra_deg", "raj2000", "coord_ra")),
    SystemColumn("Dec", "pos.eq.dec;meta.main", "Declination (degrees)", ("dec", "dec_deg", "dej2000", "coord_dec")),
    SystemColumn("z", "src.redshift", "Redshift", ("z", "redshift", "zspec", "z_spec", "specz", "redshift_true")),
    SystemColumn("z_err", "stat.error;src.redshift", "Redshift error", ("z_err", "zerr", "z_error", "redshift_err")),
    SystemColumn("z_flag", "stat.rank", "Redshift quality flag", ("z_flag", "zflag", "z_quality", "zwarning")),
    SystemColumn("survey", "meta.curation", "Survey the redshift comes from", ("survey",)),
)
"""System columns with their UCDs, as LIneA's ``pzserver`` client associates them."""

PZ_CODE_FORBIDDEN_TYPES = frozenset({"redshift_catalog", "training_set"})
"""Product types that hold no photo-z code's output, so LIneA's server refuses a ``pz_code`` on them."""

NAME_LENGTH = 255
"""Longest display name, file name or pipeline name."""

ID = BigInteger().with_variant(Integer, "sqlite")
"""Type of every id and of every column referring to one: 64-bit on Postgres (``BIGINT``, so ids go up to
2**63 - 1 as on SQLite), ``INTEGER`` on SQLite, whose ``AUTOINCREMENT`` takes only that spelling (and is 64-bit)."""

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("first_name", String(150), nullable=False, default=""),
    Column("last_name", String(150), nullable=False, default=""),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

user_groups = Table(
    "user_groups",
    metadata,
    Column("user_id", ID, ForeignKey("users.id"), primary_key=True),
    Column("group_name", String(150), primary_key=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("label", String(NAME_LENGTH), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

product_types = Table(
    "product_types",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("display_order", Integer, nullable=False, default=0),
    sqlite_autoincrement=True,
)

releases = Table(
    "releases",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False, unique=True),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("is_public", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The release's object catalog (a HATS collection with its margin cache) and its photometry columns: what
    # the Training Set Maker cross-matches spec-z catalogs with.
    Column("object_catalog", Text),
    Column("object_column_map", JSON),
    sqlite_autoincrement=True,
)

release_groups = Table(
    "release_groups",
    metadata,
    Column("release_id", ID, ForeignKey("releases.id"), primary_key=True),
    Column("group_name", String(150), primary_key=True),
)

products = Table(
    "products",
    metadata,
    Column("id", ID, primary_key=True),
    # NULL only inside the creating transaction, until the id is known.
    Column("internal_name", String(NAME_LENGTH + 24), unique=True),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("product_type_id", ID, ForeignKey("product_types.id"), nullable=False, index=True),
    Column("release_id", ID, ForeignKey("releases.id"), index=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("official", Boolean, nullable=False, default=False),
    Column("pz_code", String(55)),
    Column("description", Text, nullable=False, default=""),
    Column("status", Integer, nullable=False, default=int(ProductStatus.REGISTERING)),
    Column("release_year", Integer),
    Column("provenance", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)

product_files = Table(
    "product_files",
    metadata,
    Column("id", ID, primary_key=True),
    Column("product_id", ID, ForeignKey("products.id"), nullable=False, index=True),
    Column("role", Integer, nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("mime_type", String(128)),
    Column("size", BigInteger, nullable=False),
    Column("n_rows", BigInteger),
    Column("extension", String(NAME_LENGTH), nullable=False, default=""),
    Column("is_directory", Boolean, nullable=False, default=False),
    Column("checksum", String(128)),
    Column("storage_key", String(1024), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("product_id", "name", name="uq_product_files_product_name"),
    sqlite_autoincrement=True,
)

ONE_MAIN_FILE_INDEX = Index(
    "uq_product_files_one_main",
    product_files.c.product_id,
    unique=True,
    sqlite_where=product_files.c.role == int(FileRole.MAIN),
    postgresql_where=product_files.c.role == int(FileRole.MAIN),
)
"""At most one main file per product: the database refuses a second one even when two uploads race."""

product_contents = Table(
    "product_contents",
    metadata,
    Column("id", ID, primary_key=True),
    Column("product_id", ID, ForeignKey("products.id"), nullable=False),
    Column("column_name", String(NAME_LENGTH), nullable=False),
    Column("ucd", String(128)),
    Column("alias", String(NAME_LENGTH)),
    Column("position", Integer, nullable=False),
    UniqueConstraint("product_id", "column_name", name="uq_product_contents_product_column"),
    sqlite_autoincrement=True,
)

processes = Table(
    "processes",
    metadata,
    Column("id", ID, primary_key=True),
    Column("pipeline", String(NAME_LENGTH), nullable=False),
    Column("display_name", String(NAME_LENGTH), nullable=False),
    Column("used_config", JSON, nullable=False),
    Column("release_id", ID, ForeignKey("releases.id")),
    Column("output_product_id", ID, ForeignKey("products.id"), index=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False, default=ProcessStatus.PENDING.value),
    Column("dag_id", String(NAME_LENGTH)),
    Column("run_id", String(NAME_LENGTH)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    sqlite_autoincrement=True,
)

process_inputs = Table(
    "process_inputs",
    metadata,
    Column("process_id", ID, ForeignKey("processes.id"), primary_key=True),
    Column("product_id", ID, ForeignKey("products.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_process_inputs_product", "product_id"),
)
