"""PZ Server registry: products, product types, releases, files, columns, processes, users and API tokens.

SQLAlchemy Core over SQLite (the embedded default) or Postgres through psycopg 3. ``Registry`` holds the
domain rules; ``migrate`` brings a database to the current schema; the exceptions map one-to-one to HTTP
statuses.

Examples
--------
>>> from pzlib.registry import Registry
>>> registry = Registry("sqlite://")
>>> admin = registry.create_user("admin", is_admin=True)
>>> key = registry.create_token("admin")
>>> registry.authenticate(key).username
'admin'
"""

from pzlib.registry.checks import UNSET, Unset, slugify
from pzlib.registry.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    MissingColumns,
    NotFound,
    PermissionDenied,
    RegistryError,
)
from pzlib.registry.migrations import LATEST_VERSION, current_version, migrate
from pzlib.registry.products import MAX_PAGE_SIZE, PRODUCT_ORDERINGS
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
from pzlib.registry.registry import Registry, create_registry_engine
from pzlib.registry.schema import (
    MANDATORY_ALIASES,
    SYSTEM_COLUMNS,
    FileRole,
    ProcessStatus,
    ProductStatus,
    SystemColumn,
)

__all__ = [
    "LATEST_VERSION",
    "MANDATORY_ALIASES",
    "MAX_PAGE_SIZE",
    "PRODUCT_ORDERINGS",
    "SYSTEM_COLUMNS",
    "UNSET",
    "AlreadyExists",
    "AuthenticationFailed",
    "ColumnSpec",
    "FileRole",
    "InvalidInput",
    "MissingColumns",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Process",
    "ProcessStatus",
    "Product",
    "ProductContent",
    "ProductFile",
    "ProductFilter",
    "ProductStatus",
    "ProductType",
    "Registry",
    "RegistryError",
    "Release",
    "SystemColumn",
    "Terms",
    "Unset",
    "User",
    "create_registry_engine",
    "current_version",
    "migrate",
    "slugify",
]
