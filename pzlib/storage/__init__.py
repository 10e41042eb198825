"""Object storage for products and pipeline outputs: the local filesystem and S3 behind one interface.

Writes are atomic and return the size and SHA-256 of what was stored; reads stream byte ranges (for HTTP
Range downloads); a directory such as a HATS catalog is a key prefix copied file by file.

Examples
--------
>>> import tempfile
>>> from pzlib.storage import open_storage
>>> storage = open_storage(f"file://{tempfile.mkdtemp()}")
>>> stored = storage.put("redshift_catalog/1_specz/specz.csv", b"ra,dec,z\\n")
>>> stored.size, stored.sha256[:12]
(9, 'c42acbd29077')
>>> [item.key for item in storage.list_objects("redshift_catalog")]
['redshift_catalog/1_specz/specz.csv']
"""

from pzlib.storage.base import (
    InvalidKey,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    check_key,
)
from pzlib.storage.config import StorageConfig, open_storage
from pzlib.storage.local import LocalStorage
from pzlib.storage.s3 import S3Storage

__all__ = [
    "InvalidKey",
    "InvalidRange",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageConfig",
    "StorageError",
    "check_key",
    "open_storage",
]
