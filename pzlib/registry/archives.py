"""Download archives of products: one ZIP of every file of a product, or of its main file alone.

An archive is made once per version of a product and kept in object storage under
``downloads/<product id>/<scope>/<fingerprint>.zip``; the fingerprint covers the product's last change and its
files, so any change (a new file, a new description) makes the next request build a fresh archive and the
stale one is removed. A small JSON record written after the ZIP says the archive is complete. A main file that
is a single file needs no archive: it is served as stored; a main file that is a directory (a HATS catalog) is
zipped.

Examples
--------
>>> archives = ProductArchives(registry, storage)  # doctest: +SKIP
>>> archive = archives.prepare(alice, product.id)  # doctest: +SKIP
>>> archive.filename  # doctest: +SKIP
'1_specz.zip'
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pzlib.registry.errors import InvalidInput
from pzlib.registry.records import Product, ProductContent, ProductFile, User
from pzlib.registry.registry import Registry
from pzlib.registry.schema import FileRole
from pzlib.storage import Storage

ARCHIVES_PREFIX = "downloads"
"""Key prefix of every download archive."""

PRODUCT_SCOPE = "product"
MAIN_FILE_SCOPE = "main-file"


def archive_prefix(product_id: int) -> str:
    """Key prefix of a product's download archives."""
    return f"{ARCHIVES_PREFIX}/{product_id}"


@dataclass(frozen=True)
class Archive:
    """A download ready to be served."""

    product_id: int
    key: str
    """Object key of the content."""
    filename: str
    """Name the client should save it under."""
    size: int
    checksum: str | None
    """SHA-256 hex digest of the content, when known."""
    created_at: datetime
    fingerprint: str
    """Identifies the product version the archive was made from."""


class ProductArchives:
    """Makes and finds the download archives of products.

    Parameters
    ----------
    registry : Registry
        Where products and their files are recorded.
    storage : Storage
        Where file contents and archives are kept.
    """

    def __init__(self, registry: Registry, storage: Storage):
        self.registry = registry
        self.storage = storage

    def prepare(self, user: User, product: int | str, *, main_file_only: bool = False) -> Archive:
        """The archive of a product (or of its main file), made now when the current one is missing.

        Raises
        ------
        NotFound
            The product is not visible to ``user``.
        InvalidInput
            The product has no files (or no main file, with ``main_file_only``).
        """
        target, files = self._contents(user, product, main_file_only)
        if main_file_only and not files[0].is_directory:
            return _plain_file(target, files[0])
        found = self._find(target, files, main_file_only)
        if found is not None:
            return found
        return self._build(target, files, main_file_only, self.registry.list_contents(user, target.id))

    def find(self, user: User, product: int | str, *, main_file_only: bool = False) -> Archive | None:
        """The archive of the product's current version, or None when it has not been prepared.

        Raises
        ------
        NotFound
            The product is not visible to ``user``.
        InvalidInput
            As ``prepare``.
        """
        target, files = self._contents(user, product, main_file_only)
        if main_file_only and not files[0].is_directory:
            return _plain_file(target, files[0])
        return self._find(target, files, main_file_only)

    def _contents(
        self, user: User, product: int | str, main_file_only: bool
    ) -> tuple[Product, tuple[ProductFile, ...]]:
        target = self.registry.get_product(user, product)
        files = self.registry.list_files(user, target.id, FileRole.MAIN if main_file_only else None)
        if not files:
            what = "main file" if main_file_only else "file"
            raise InvalidInput(f"product {target.internal_name} has no {what} to download")
        return target, files

    def _find(self, target: Product, files: tuple[ProductFile, ...], main_file_only: bool) -> Archive | None:
        record_key = f"{_scope_prefix(target.id, main_file_only)}/{_fingerprint(target, files)}.json"
        if not self.storage.exists(record_key):
            return None
        record = json.loads(self.storage.get(record_key))
        return Archive(**{**record, "created_at": datetime.fromisoformat(record["created_at"])})

    def _build(
        self,
        target: Product,
        files: tuple[ProductFile, ...],
        main_file_only: bool,
        columns: tuple[ProductContent, ...],
    ) -> Archive:
        prefix = _scope_prefix(target.id, main_file_only)
        fingerprint = _fingerprint(target, files)
        filename = f"{files[0].name}.zip" if main_file_only else f"{target.internal_name}.zip"
        with tempfile.TemporaryDirectory(prefix="pz-archive-") as work_dir:
            zip_path = Path(work_dir) / filename
            with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                for stored in files:
                    self._add(archive, stored)
                if not main_file_only:
                    archive.writestr(f"{target.internal_name}_metadata.json", _metadata(target, files, columns))
            stored_zip = self.storage.put(f"{prefix}/{fingerprint}.zip", zip_path)
        made = Archive(
            product_id=target.id,
            key=stored_zip.key,
            filename=filename,
            size=stored_zip.size,
            checksum=stored_zip.sha256,
            created_at=datetime.now(UTC),
            fingerprint=fingerprint,
        )
        record = {**asdict(made), "created_at": made.created_at.isoformat()}
        self.storage.put(f"{prefix}/{fingerprint}.json", json.dumps(record).encode("utf-8"))
        for stale in self.storage.list_objects(prefix):
            if not stale.key.rsplit("/", 1)[-1].startswith(f"{fingerprint}."):
                self.storage.delete(stale.key)
        return made

    def _add(self, archive: zipfile.ZipFile, stored: ProductFile) -> None:
        if not stored.is_directory:
            self._copy(archive, stored.storage_key, stored.name)
            return
        for item in self.storage.list_objects(stored.storage_key):
            self._copy(archive, item.key, f"{stored.name}/{item.key[len(stored.storage_key) + 1 :]}")

    def _copy(self, archive: zipfile.ZipFile, key: str, member_name: str) -> None:
        with self.storage.open(key) as reader, archive.open(member_name, "w", force_zip64=True) as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)


def _scope_prefix(product_id: int, main_file_only: bool) -> str:
    return f"{archive_prefix(product_id)}/{MAIN_FILE_SCOPE if main_file_only else PRODUCT_SCOPE}"


def _fingerprint(target: Product, files: tuple[ProductFile, ...]) -> str:
    version = {
        "product": target.id,
        "updated_at": target.updated_at.isoformat(),
        "files": [[item.id, item.storage_key, item.size, item.checksum] for item in files],
    }
    return hashlib.sha256(json.dumps(version, sort_keys=True).encode("utf-8")).hexdigest()[:32]


def _plain_file(target: Product, stored: ProductFile) -> Archive:
    return Archive(
        product_id=target.id,
        key=stored.storage_key,
        filename=stored.name,
        size=stored.size,
        checksum=stored.checksum,
        created_at=stored.created_at,
        fingerprint=_fingerprint(target, (stored,)),
    )


def _metadata(target: Product, files: tuple[ProductFile, ...], columns: tuple[ProductContent, ...]) -> str:
    """What the archive holds, for a reader without access to the server: product, files and columns."""

    def plain(record: Any) -> dict[str, Any]:
        return {key: value for key, value in asdict(record).items() if key != "storage_key"}

    document = {
        "product": plain(target),
        "files": [plain(item) for item in files],
        "columns": [plain(column) for column in columns],
    }
    return json.dumps(document, indent=1, default=str)
