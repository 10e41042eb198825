"""Product files in object storage: upload with checks, registration of the main table, rows for reading.

``ProductFiles`` joins the registry and the object store. An upload is checked before anything is stored
(plain file name, the owner or an admin acting, the size limit, no second main file) and a product's main file
is inspected on arrival: a table (CSV, Parquet, HDF5, FITS, VOTable, or a HATS catalog uploaded as a ZIP) has
its rows counted, its columns recorded and a 10-row preview kept beside it in storage, with its first 1,000 rows as
a small Parquet file that pages of the product page are read from (never the main file); a file of a table format
that cannot be read is refused, and so is a main file of no table format on the product types that are tables
(spec-z catalogs, training sets, object catalogs). Other product types take any main file. Stored content is
written under a fresh key, so a refused upload never replaces what is already stored, and is removed again when
the registry refuses the record.

Examples
--------
>>> import io
>>> from pzlib.registry import Registry
>>> from pzlib.storage import open_storage
>>> registry = Registry("sqlite://")
>>> alice = registry.create_user("alice")
>>> files = ProductFiles(registry, open_storage("/tmp/pz-doc"), upload_limit_bytes=1 << 20)
>>> product = registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
>>> stored = files.upload(alice, product.id, name="specz.csv", content=io.BytesIO(b"ra,dec,z\\n1,2,0.5\\n"))
>>> stored.n_rows, [column.column_name for column in files.register(alice, product.id)]
(1, ['ra', 'dec', 'z'])
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from pzlib.catalog import CatalogError, CatalogReader, open_catalog
from pzlib.config import Settings
from pzlib.registry import checks, queries
from pzlib.registry.archives import archive_prefix
from pzlib.registry.errors import InvalidInput
from pzlib.registry.file_safety import (
    MAX_ZIP_MEMBERS,
    FileTooLarge,
    check_hats_folder,
    megabytes,
    unpack_hats_archive,
)
from pzlib.registry.records import Product, ProductContent, ProductFile, User
from pzlib.registry.registry import Registry
from pzlib.registry.schema import FileRole
from pzlib.storage import LocalStorage, Storage, open_storage
from pzlib.tables import HATS_PARTITION_COLUMNS, TABLE_FORMATS, CsvDialect, sniff_csv

TABULAR_PRODUCT_TYPES = frozenset({"redshift_catalog", "training_set", "object_catalog"})
"""Product types whose main file must be a table."""

PREVIEW_ROWS = 10
"""Rows kept as a preview of a main table."""

PREVIEW_FILE_ROWS = 1_000
"""Rows of a main table kept as its preview file, read a page at a time."""
PREVIEW_FILE_BYTES = 4 * 1024 * 1024
"""Largest in-memory size of those rows: a wide table's preview file keeps fewer."""

UNZIP_RATIO = 2
"""Without a limit of its own, a zipped HATS catalog may unpack to this many times the upload limit: its Parquet
files are compressed already, and the metadata and point map that compress well need the rest."""

_UNPACKED = "unpacked"  # folder beside an uploaded ZIP that it is unpacked into
# A product's storage folder is named after its internal name (``<id>_<slug>``, past 255 characters for the
# longest display names), cut to fit the 255 bytes a file system allows per name; the upload folder's uuid keeps
# every key unique.
_PRODUCT_FOLDER_CHARS = 100
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class TableSummary:
    """What registration learned about a main table; kept in storage beside the file."""

    format: str
    """``csv``, ``parquet``, ``hdf5``, ``fits``, ``votable`` or ``hats``."""
    n_rows: int
    columns: tuple[str, ...]
    """Column names, in table order."""
    preview: tuple[dict[str, Any], ...]
    """The first rows, as JSON-ready dicts."""
    delimiter: str | None = None
    """Field separator, for CSV."""
    has_header: bool | None = None
    """Whether the first CSV line names the columns."""
    preview_file_rows: int = 0
    """Rows in the preview file beside the summary; 0 when there is none (a table registered before it existed,
    or of types Parquet cannot hold)."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), allow_nan=False).encode("utf-8")

    @property
    def csv_dialect(self) -> CsvDialect | None:
        """How a CSV table is written, as registration found it; None for other formats."""
        if self.format != "csv":
            return None
        return CsvDialect(self.delimiter or ",", bool(self.has_header))

    @classmethod
    def from_json(cls, data: bytes) -> TableSummary:
        values = json.loads(data)
        return cls(**{**values, "columns": tuple(values["columns"]), "preview": tuple(values["preview"])})


@dataclass(frozen=True)
class MainFileInfo:
    """A product's main file and, when it is a table, its summary."""

    file: ProductFile
    table: TableSummary | None


@dataclass(frozen=True)
class Rows:
    """A slice of a product's main table."""

    count: int
    """Rows of the whole table."""
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    """JSON-ready rows of the slice."""


@dataclass(frozen=True)
class PreviewRows:
    """A slice of a main table's preview: its first rows, kept at registration."""

    n_rows: int
    """Rows of the whole table."""
    preview_rows: int
    """Rows the preview holds."""
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    """JSON-ready rows of the slice."""


@dataclass(frozen=True)
class _Prepared:
    """An upload checked and inspected, ready to be stored."""

    local_path: Path
    stored_name: str
    is_directory: bool
    table: TableSummary | None
    preview: bytes | None = None
    """The preview file's Parquet bytes."""


class ProductFiles:
    """Product files kept in object storage and recorded in the registry.

    Parameters
    ----------
    registry : Registry
        Where products and file records are.
    storage : Storage
        Where file contents go.
    upload_limit_bytes : int
        Largest file one upload may carry.
    unzipped_limit_bytes : int, optional
        Most bytes a zipped HATS catalog may unpack to (temporary disk); ``UNZIP_RATIO`` times
        ``upload_limit_bytes`` when not given.
    """

    def __init__(
        self, registry: Registry, storage: Storage, *, upload_limit_bytes: int, unzipped_limit_bytes: int | None = None
    ):
        if unzipped_limit_bytes is None:
            unzipped_limit_bytes = UNZIP_RATIO * upload_limit_bytes
        for setting, limit in (("upload_limit_bytes", upload_limit_bytes),
                               ("unzipped_limit_bytes", unzipped_limit_bytes)):
            if limit <= 0:
                raise ValueError(f"{setting} must be positive, got {limit}")
        self.registry = registry
        self.storage = storage
        self.upload_limit_bytes = upload_limit_bytes
        self.unzipped_limit_bytes = unzipped_limit_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> ProductFiles:
        """The PZ Server's registry and store as the platform settings name them (the database is migrated if
        needed): what the plugin serves and what the pipelines publish into."""
        return cls(
            Registry(settings.resolved_database_url),
            open_storage(settings.resolved_storage_url),
            upload_limit_bytes=settings.upload_limit_bytes,
            unzipped_limit_bytes=settings.unzipped_limit_bytes,
        )

    def upload(
        self,
        user: User,
        product: int | str,
        *,
        name: str,
        content: BinaryIO,
        role: FileRole | int | str = FileRole.MAIN,
        mime_type: str | None = None,
    ) -> ProductFile:
        """Store an uploaded file as part of a product and record it.

        A main file is inspected first (see the module). A ``.zip`` main file holding a HATS catalog is
        unpacked and stored as a directory named after the archive without ``.zip``.

        Parameters
        ----------
        user : User
            The product's owner or an admin.
        product : int or str
            Product id or internal name.
        name : str
            File name as uploaded, without directories.
        content : binary stream
            The file's bytes, read to the end.
        role : FileRole, int or str
            ``main``, ``description`` or ``auxiliary``.
        mime_type : str or None
            Content type the client declared.

        Returns
        -------
        ProductFile

        Raises
        ------
        InvalidInput
            Path-like or over-long name, unsupported format, unreadable table, or a file that refers outside
            its own bytes (see :mod:`pzlib.registry.file_safety`); the message never names a server path.
        FileTooLarge
            More bytes than ``upload_limit_bytes``, or a ZIP unpacking to more than ``unzipped_limit_bytes``.
        AlreadyExists
            A file of this name, or a second main file.
        NotFound, PermissionDenied
            The product is not visible, or not ``user``'s to change.
        """
        name = checks.file_name(name)
        file_role = checks.file_role(role)
        target = self._changeable_product(user, product)
        self._check_free(user, target, name, file_role)
        with tempfile.TemporaryDirectory(prefix="pz-upload-") as work_dir:
            upload_path = Path(work_dir) / name
            self._receive(content, upload_path)
            if file_role is FileRole.MAIN:
                with _server_paths_cut(upload_path.parent / _UNPACKED, upload_path.parent):
                    prepared = _prepare_main_file(upload_path, target.product_type_name, self.unzipped_limit_bytes)
            else:
                prepared = _Prepared(upload_path, name, is_directory=False, table=None)
            return self._store(user, target, prepared, file_role, mime_type)

    def delete_file(self, user: User, file_id: int) -> ProductFile:
        """Remove a file's record and content; removing the main file forgets the product's columns (in the same
        transaction, so a delete of the product racing this one leaves nothing behind).

        Raises
        ------
        NotFound, PermissionDenied
            As ``Registry.delete_file``.
        """
        removed = self.registry.delete_file(user, file_id)
        self._remove_content(removed)
        return removed

    def delete_product(self, user: User, product: int | str) -> Product:
        """Remove a product, its records and every stored object of it (files and download archives).

        Raises
        ------
        NotFound, PermissionDenied
            As ``Registry.delete_product``.
        """
        target = self.registry.get_product(user, product)
        for removed in self.registry.delete_product(user, target.id):
            self._remove_content(removed)
        self.storage.delete_tree(archive_prefix(target.id))
        return target

    def main_file(self, user: User, product: int | str) -> MainFileInfo | None:
        """The product's main file with its table summary, or None when it has no main file.

        Raises
        ------
        NotFound
            The product is not visible to ``user``.
        """
        main_files = self.registry.list_files(user, product, FileRole.MAIN)
        if not main_files:
            return None
        main = main_files[0]
        summary_key = _summary_key(main)
        table = TableSummary.from_json(self.storage.get(summary_key)) if self.storage.exists(summary_key) else None
        return MainFileInfo(main, table)

    def register(self, user: User, product: int | str) -> tuple[ProductContent, ...]:
        """Record the main table's columns as the product's contents, keeping associations already made.

        Raises
        ------
        InvalidInput
            The product has no main file.
        NotFound, PermissionDenied
            The product is not visible, or not ``user``'s to change.
        """
        target = self._changeable_product(user, product)
        info = self.main_file(user, target.id)
        if info is None:
            raise InvalidInput(f"product {target.internal_name} has no main file; upload one before registering")
        columns = info.table.columns if info.table else ()
        existing = self.registry.list_contents(user, target.id)
        if tuple(content.column_name for content in existing) == columns:
            return existing
        return self.registry.set_contents(user, target.id, list(columns))

    def read_rows(self, user: User, product: int | str, *, offset: int, limit: int) -> Rows:
        """Rows ``[offset, offset + limit)`` of the product's main table.

        Raises
        ------
        InvalidInput
            Negative offset, non-positive limit, no main file, or a main file that is not a table.
        NotFound
            The product is not visible to ``user``.
        """
        if offset < 0 or limit <= 0:
            raise InvalidInput(f"cannot read {limit} rows from row {offset}; give offset >= 0 and limit > 0")
        target = self.registry.get_product(user, product)
        info = self.main_file(user, target.id)
        if info is None or info.table is None:
            raise InvalidInput(f"product {target.internal_name} has no main table to read")
        with self.local_path(info.file) as path, _server_paths_cut(path.parent):
            rows = _read_rows(path, info.table, offset, limit)
        return Rows(count=info.table.n_rows, columns=info.table.columns, rows=rows)

    def preview_rows(self, user: User, product: int | str, *, offset: int, limit: int) -> PreviewRows | None:
        """Rows ``[offset, offset + limit)`` of the main table's preview, read from the preview file (the summary's
        first rows for a table registered before preview files); None when the product has no main table.

        Raises
        ------
        InvalidInput
            Negative offset or non-positive limit.
        NotFound
            The product is not visible to ``user``.
        """
        if offset < 0 or limit <= 0:
            raise InvalidInput(f"cannot read {limit} rows from row {offset}; give offset >= 0 and limit > 0")
        info = self.main_file(user, product)
        if info is None or info.table is None:
            return None
        summary = info.table
        if not summary.preview_file_rows:
            kept = summary.preview
            return PreviewRows(summary.n_rows, len(kept), summary.columns, tuple(kept[offset:offset + limit]))
        preview = pq.read_table(pa.BufferReader(self.storage.get(_preview_key_of(info.file.storage_key))))
        rows = _json_rows(preview.slice(offset, limit)) if offset < preview.num_rows else []
        return PreviewRows(summary.n_rows, preview.num_rows, summary.columns, tuple(rows))

    @contextmanager
    def local_path(self, stored: ProductFile) -> Iterator[Path]:
        """A local path of a stored file or directory: in place on local storage, else a temporary copy."""
        if isinstance(self.storage, LocalStorage):
            yield self.storage.root / stored.storage_key
            return
        with tempfile.TemporaryDirectory(prefix="pz-read-") as work_dir:
            destination = Path(work_dir) / stored.name
            if stored.is_directory:
                self.storage.get_directory(stored.storage_key, destination)
            else:
                self.storage.download(stored.storage_key, destination)
            yield destination

    def _changeable_product(self, user: User, product: int | str) -> Product:
        target = self.registry.get_product(user, product)
        queries.check_changeable(user, target)
        return target

    def _check_free(self, user: User, target: Product, name: str, role: FileRole) -> None:
        # The registry checks again when recording; checking here refuses before any byte is stored.
        stored_name = _directory_name(name) if role is FileRole.MAIN and _is_zip(name) else name
        queries.check_file_free(target, self.registry.list_files(user, target.id), {name, stored_name}, role)

    def _receive(self, content: BinaryIO, destination: Path) -> None:
        received = 0
        with open(destination, "wb") as writer:
            while chunk := content.read(_COPY_CHUNK):
                received += len(chunk)
                if received > self.upload_limit_bytes:
                    raise FileTooLarge(
                        f"file {destination.name!r} is larger than the upload limit of "
                        f"{megabytes(self.upload_limit_bytes)}; share a smaller file or describe where the "
                        "data is in the product's description",
                        self.upload_limit_bytes,
                    )
                writer.write(chunk)

    def _store(
        self, user: User, target: Product, prepared: _Prepared, role: FileRole, mime_type: str | None
    ) -> ProductFile:
        product_folder = target.internal_name[:_PRODUCT_FOLDER_CHARS]
        storage_key = f"products/{product_folder}/{uuid.uuid4().hex}/{prepared.stored_name}"
        try:
            if prepared.is_directory:
                stored_objects = self.storage.put_directory(prepared.local_path, storage_key)
                size, checksum = sum(item.size for item in stored_objects), None
            else:
                stored = self.storage.put(storage_key, prepared.local_path)
                size, checksum = stored.size, stored.sha256
            if prepared.table is not None:
                self.storage.put(_summary_key_of(storage_key), prepared.table.to_json())
            if prepared.preview is not None:
                self.storage.put(_preview_key_of(storage_key), prepared.preview)
            return self.registry.add_file(
                user,
                target.id,
                name=prepared.stored_name,
                storage_key=storage_key,
                size=size,
                role=role,
                n_rows=prepared.table.n_rows if prepared.table else None,
                mime_type="application/x-hats" if prepared.is_directory else mime_type,
                is_directory=prepared.is_directory,
                checksum=checksum,
            )
        except BaseException:
            self._remove_keys(storage_key, prepared.is_directory)
            raise

    def _remove_content(self, stored: ProductFile) -> None:
        self._remove_keys(stored.storage_key, stored.is_directory)

    def _remove_keys(self, storage_key: str, is_directory: bool) -> None:
        if is_directory:
            self.storage.delete_tree(storage_key)
        else:
            self.storage.delete(storage_key)
        self.storage.delete(_summary_key_of(storage_key))
        self.storage.delete(_preview_key_of(storage_key))


@contextmanager
def _server_paths_cut(*folders: Path) -> Iterator[None]:
    """Cut the server folders holding a file out of the messages of the errors raised inside.

    pyarrow, h5py, astropy and hats put full paths into their messages, which reach the user: cut here, in the
    one place registration and reading pass through, a message names the file as uploaded (or a path inside
    the uploaded archive), never a server path. ``folders`` are cut in order: give the innermost first.
    """
    try:
        yield
    except InvalidInput as error:
        message = str(error)
        for folder in folders:
            for spelling in dict.fromkeys((str(folder), os.path.realpath(folder))):
                message = message.replace(spelling + os.sep, "").replace(spelling, "the upload")
        error.args = (message,)
        raise


def _summary_key(stored: ProductFile) -> str:
    return _summary_key_of(stored.storage_key)


def _summary_key_of(storage_key: str) -> str:
    # Files live at products/<internal name>/<upload id>/<name>; the summary sits beside the upload folder.
    return f"{storage_key.rsplit('/', 1)[0]}.table.json"


def _preview_key_of(storage_key: str) -> str:
    return f"{storage_key.rsplit('/', 1)[0]}.preview.parquet"


def _is_zip(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() == ".zip"


def _directory_name(zip_name: str) -> str:
    return zip_name[: -len(".zip")] or zip_name


def _prepare_main_file(upload_path: Path, product_type: str, max_unzipped_bytes: int) -> _Prepared:
    """Inspect a main file: a table is summarised, a zipped HATS catalog unpacked, anything else checked."""
    name = upload_path.name
    suffix = upload_path.suffix.lower()
    if suffix in TABLE_FORMATS:
        table, preview = _inspect(upload_path, TABLE_FORMATS[suffix])
        return _Prepared(upload_path, name, is_directory=False, table=table, preview=preview)
    if suffix == ".zip":
        unpacked = upload_path.parent / _UNPACKED
        catalog_root = unpack_hats_archive(upload_path, unpacked, max_unzipped_bytes)
        if catalog_root is not None:
            try:
                table, preview = _inspect(catalog_root, "hats")
            except InvalidInput as error:
                raise InvalidInput(f"{name}: {error}") from error  # the message names the folder inside
            return _Prepared(catalog_root, _directory_name(name), is_directory=True, table=table, preview=preview)
        shutil.rmtree(unpacked, ignore_errors=True)
    if product_type in TABULAR_PRODUCT_TYPES:
        known = ", ".join(sorted({*TABLE_FORMATS, ".zip (a HATS catalog)"}))
        raise InvalidInput(
            f"main file {name!r} of a {product_type} product must be a table; its format "
            f"{suffix or '(no suffix)'!r} is not supported (use one of {known})"
        )
    return _Prepared(upload_path, name, is_directory=False, table=None)


def inspect_table(path: Path, table_format: str) -> TableSummary:
    """Count the rows of a table, name its columns and keep its first rows, reading it whole.

    Parameters
    ----------
    path : Path
        A table file, or a HATS catalog folder.
    table_format : str
        ``csv``, ``parquet``, ``hdf5``, ``fits``, ``votable`` or ``hats``.

    Returns
    -------
    TableSummary

    Raises
    ------
    InvalidInput
        The table cannot be read, has no columns or no rows; the message names the file.
    """
    return _inspect(path, table_format)[0]


def _inspect(path: Path, table_format: str) -> tuple[TableSummary, bytes | None]:
    """:func:`inspect_table` and the preview file's bytes (None when Parquet cannot hold the table's types)."""
    try:
        dialect = sniff_csv(path) if table_format == "csv" else None
        reader = _open_table(path, table_format, dialect)
        n_rows = 0
        preview: list[dict[str, Any]] = []
        head: list[pa.RecordBatch] = []
        for batch in reader.iter_batches(batch_rows=65_536):
            if len(preview) < PREVIEW_ROWS:
                preview.extend(_json_rows(batch.slice(0, PREVIEW_ROWS - len(preview))))
            if n_rows < PREVIEW_FILE_ROWS:
                head.append(batch.slice(0, PREVIEW_FILE_ROWS - n_rows))
            n_rows += batch.num_rows
    except CatalogError as error:
        raise InvalidInput(f"{path.name}: {_problem(error)}") from error
    except InvalidInput:
        raise  # a check's own message already names the file and the problem
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path.name}: not a readable {table_format} table: {error}") from error
    hidden = HATS_PARTITION_COLUMNS if table_format == "hats" else frozenset()
    columns = tuple(name for name in reader.column_names if name not in hidden)
    if not columns:
        raise InvalidInput(f"{path.name}: the table has no columns")
    if n_rows == 0:
        raise InvalidInput(f"{path.name}: the table has no rows")
    delimiter, has_header = (dialect.delimiter, dialect.has_header) if dialect else (None, None)
    preview_file, preview_file_rows = _preview_file(pa.Table.from_batches(head).select(list(columns)))
    summary = TableSummary(table_format, n_rows, columns, tuple(preview), delimiter, has_header, preview_file_rows)
    return summary, preview_file


def _preview_file(head: pa.Table) -> tuple[bytes | None, int]:
    """(Parquet bytes, rows) of a table's first rows, cut to :data:`PREVIEW_FILE_BYTES`; (None, 0) when Parquet
    cannot hold its types."""
    if head.nbytes > PREVIEW_FILE_BYTES:
        head = head.slice(0, max(1, head.num_rows * PREVIEW_FILE_BYTES // head.nbytes))
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(head, sink, compression="zstd")
    except (pa.ArrowException, ValueError, TypeError):
        return None, 0
    return sink.getvalue().to_pybytes(), head.num_rows


def _problem(error: CatalogError) -> str:
    # CatalogError messages start with the (temporary) path; the caller names the file itself.
    return str(error).removeprefix(f"{error.path}: ").removeprefix(f"{error.path}, ")


def _read_rows(path: Path, table: TableSummary, offset: int, limit: int) -> tuple[dict[str, Any], ...]:
    rows: list[dict[str, Any]] = []
    skipped = 0
    try:
        reader = _open_table(path, table.format, table.csv_dialect)
        for batch in reader.iter_batches(list(table.columns), batch_rows=65_536):
            if skipped + batch.num_rows <= offset:
                skipped += batch.num_rows
                continue
            start = max(offset - skipped, 0)
            skipped += start
            rows.extend(_json_rows(batch.slice(start, limit - len(rows))))
            skipped += batch.num_rows - start
            if len(rows) >= limit:
                break
    except CatalogError as error:
        raise InvalidInput(f"{path.name}: {_problem(error)}") from error
    return tuple(rows)


def _open_table(path: Path, table_format: str, dialect: CsvDialect | None) -> CatalogReader:
    """``open_catalog``, once a HATS catalog is known to name nothing outside itself (VOTable, HDF5 and FITS
    files are checked by their readers)."""
    if table_format == "hats":
        check_hats_folder(path, path.name)
    return open_catalog(path, csv_dialect=dialect)


def _json_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    return [{name: _json_value(value) for name, value in row.items()} for row in batch.to_pylist()]


def _json_value(value: Any) -> Any:
    """A value strict JSON can carry: NaN and infinities become None, bytes text, times ISO strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _json_value(float(value))
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return str(value)


__all__ = [
    "MAX_ZIP_MEMBERS",
    "PREVIEW_FILE_BYTES",
    "PREVIEW_FILE_ROWS",
    "PREVIEW_ROWS",
    "TABULAR_PRODUCT_TYPES",
    "UNZIP_RATIO",
    "FileTooLarge",
    "MainFileInfo",
    "PreviewRows",
    "ProductFiles",
    "Rows",
    "TableSummary",
    "inspect_table",
]
