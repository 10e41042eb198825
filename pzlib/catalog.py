"""Reading and writing catalogs, streamed as pyarrow record batches.

One entry point per direction: :func:`open_catalog` reads Parquet (file or dataset folder), HATS (hats/lsdb),
HDF5 (tables_io layout, including RAIL's ``photometry`` group), CSV (any delimiter, with or without a header),
FITS and VOTable — local, or a Parquet file, dataset or HATS catalog at an ``s3://`` or ``http(s)://`` URL — and
gives the schema, the row count and an iterator of record batches, so a billion-row catalog
never has to fit in memory; what a file is, and the checks that keep a reader inside its bytes, come from
:mod:`pzlib.tables`.
:func:`write_parquet` and :func:`write_hats` write atomically. :class:`~pzlib.column_maps.ColumnMap` (from
:mod:`pzlib.column_maps`) says which columns hold the id, the position and the photometry of a survey's catalog.
Every problem raises :class:`CatalogError`
naming the file, the column and what is wrong.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pzlib.storage.remote_catalogs import (
    CatalogUnreachable,
    RemoteCatalog,
    is_url,
    locate_catalog,
    remote_identity,
)
from pzlib.storage.s3_access import S3Access
from pzlib.tables import (
    FITS_SIGNATURE,
    CatalogError,
    CsvDialect,
    check_votable,
    csv_column_names,
    detect_format,
    sniff_csv,
)

log = logging.getLogger(__name__)

@dataclass
class CatalogReader:
    """An opened catalog: its schema, row count and a stream of record batches."""

    path: Path | str
    """The file or folder, or the URL (``s3://``, ``https://``) the catalog was opened from."""
    format: str
    schema: pa.Schema
    num_rows: int
    _batches: object = field(repr=False)

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    def require_columns(self, columns: list[str]) -> None:
        """Raise :class:`CatalogError` naming the first of ``columns`` the catalog lacks."""
        for column in columns:
            if column not in self.schema.names:
                raise CatalogError(self.path, f"column missing (has: {', '.join(self.schema.names)})", column)

    def iter_batches(self, columns: list[str] | None = None, batch_rows: int = 100_000) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_rows`` rows holding ``columns`` (all when None)."""
        if columns is not None:
            self.require_columns(columns)
        try:
            for batch in self._batches(columns, batch_rows):
                if batch.num_rows:
                    yield batch
        except CatalogError:
            raise
        except (OSError, pa.ArrowException, KeyError, ValueError) as error:
            raise CatalogError(self.path, f"cannot read: {error}") from error

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole catalog (or ``columns`` of it) in memory."""
        batches = list(self.iter_batches(columns))
        if not batches:
            schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
            return schema.empty_table()
        return pa.Table.from_batches(batches).replace_schema_metadata(self.schema.metadata)


def open_catalog(
    path: str | os.PathLike, hdf5_group: str | None = None, csv_dialect: CsvDialect | None = None,
    s3: S3Access | None = None,
) -> CatalogReader:
    """Open a catalog for streaming reads.

    Parameters
    ----------
    path : path-like or str
        A Parquet file or dataset folder, a HATS catalog folder, an HDF5, CSV, FITS or VOTable file; or a URL:
        ``s3://bucket/key.parquet``, ``s3://bucket/prefix/`` (a Parquet dataset or a HATS catalog), or the
        ``https://`` (``http://``) URL of a HATS catalog (:mod:`pzlib.storage.remote_catalogs`).
    hdf5_group : str, optional
        HDF5 group holding the columns; by default RAIL's ``photometry`` group when present, else the root.
    csv_dialect : CsvDialect, optional
        How a CSV file is written; by default :func:`pzlib.tables.sniff_csv` finds out.
    s3 : S3Access, optional
        How ``s3://`` URLs are reached; by default the platform's settings (``PZ_S3_*``).

    Returns
    -------
    CatalogReader

    Raises
    ------
    CatalogError
        When the file is missing, empty, corrupt or of an unknown format; a URL of an unsupported scheme, a missing
        bucket, key or prefix, refused credentials, no catalog at the URL.
    CatalogUnreachable
        The URL's endpoint or server cannot be reached (an OSError: a later try may succeed).

    Examples
    --------
    >>> reader = open_catalog("test_dc2_validation_9816.hdf5")  # doctest: +SKIP
    >>> reader.num_rows, reader.column_names[:2]  # doctest: +SKIP
    (20449, ['id', 'mag_err_g_lsst'])
    """
    if is_url(path):
        return _open_remote(locate_catalog(path, s3))
    path = Path(path)
    if not path.exists():
        raise CatalogError(path, "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise CatalogError(path, "file is empty")
    catalog_format = detect_format(path)
    opener = {
        "parquet": _open_parquet,
        "hats": _open_hats,
        "hdf5": lambda p: _open_hdf5(p, hdf5_group),
        "csv": lambda p: _open_csv(p, csv_dialect or sniff_csv(p)),
        "fits": _open_fits,
        "votable": _open_votable,
    }[catalog_format]
    try:
        schema, num_rows, batches = opener(path)
    except CatalogError:
        raise
    except Exception as error:  # any parser's own error means the file is corrupt for us
        raise CatalogError(path, f"not a readable {catalog_format} catalog: {error}") from error
    if num_rows == 0:
        raise CatalogError(path, "the table has no rows")
    return CatalogReader(path, catalog_format, schema, num_rows, batches)


def input_identity(source: str | os.PathLike, s3: S3Access | None = None) -> dict:
    """What a run records of its input, so that a rerun on a changed input does not reuse what was made from the
    old one: a local file's or folder's resolved path, size and modification time; for a URL, the size and ETag of
    every object under it (:func:`~pzlib.storage.remote_catalogs.remote_identity`).

    Raises
    ------
    CatalogError, CatalogUnreachable
        As :func:`open_catalog` for a missing input or a bad URL.
    """
    if is_url(source):
        return remote_identity(source, s3)
    path = Path(source)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise CatalogError(path, "no such file or folder") from None
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _open_remote(remote: RemoteCatalog) -> CatalogReader:
    """A catalog at a URL, its Parquet files streamed through pyarrow's dataset scanner (several read at once)."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(remote.paths, filesystem=remote.filesystem, format=_page_checked_parquet())
        schema = dataset.schema.with_metadata(remote.schema_metadata) if remote.schema_metadata else dataset.schema
        num_rows = remote.total_rows or dataset.count_rows()
    except (CatalogError, CatalogUnreachable):
        raise
    except Exception as error:  # any reader's own error means a file is corrupt for us
        raise CatalogError(remote.url, f"not a readable {remote.format} catalog: {error}") from error
    if num_rows == 0:
        raise CatalogError(remote.url, "the table has no rows")

    def batches(columns, batch_rows):
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)

    return CatalogReader(remote.url, remote.format, schema, num_rows, batches)


def _page_checked_parquet():
    """Parquet as a dataset format whose reads check the CRC of every page that carries one (ours all do)."""
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True))


def _open_parquet(path: Path):
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format=_page_checked_parquet())
    schema = dataset.schema
    num_rows = dataset.count_rows()

    def batches(columns, batch_rows):
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)

    return schema, num_rows, batches


def _open_hats(path: Path):
    import hats
    import pyarrow.dataset as ds

    catalog = hats.read_hats(path, read_moc=False)  # the coverage map is not needed to read rows
    if isinstance(catalog, hats.catalog.CatalogCollection):  # lsdb writes a collection: catalog + margin cache
        catalog = catalog.main_catalog
    dataset = ds.dataset(Path(catalog.catalog_base_dir) / "dataset", format=_page_checked_parquet(),
                         exclude_invalid_files=True)
    # HATS adds Norder/Dir/Npix as hive partition columns; the catalog's own columns are what users see. The
    # table's schema metadata is the catalog's (_common_metadata), which partitions written by lsdb lack.
    schema = dataset.schema.with_metadata(catalog.schema.metadata) if catalog.schema.metadata else dataset.schema
    num_rows = int(catalog.catalog_info.total_rows or dataset.count_rows())

    def batches(columns, batch_rows):
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)

    return schema, num_rows, batches


def _open_hdf5(path: Path, group_name: str | None):
    import h5py

    with h5py.File(path, "r") as h5file:
        _check_hdf5_self_contained(path, h5file)
        if group_name is None:
            group_name = "photometry" if "photometry" in h5file else "/"
        if group_name not in h5file:
            raise CatalogError(path, f"HDF5 group '{group_name}' not found (has: {', '.join(h5file)})")
        group = h5file[group_name]
        datasets = {name: item for name, item in group.items() if isinstance(item, h5py.Dataset)}
        if not datasets:
            raise CatalogError(path, f"HDF5 group '{group_name}' holds no columns")
        lengths = {name: item.shape[0] if item.shape else 0 for name, item in datasets.items()}
        if len(set(lengths.values())) != 1:
            raise CatalogError(path, f"HDF5 columns have different lengths: {lengths}")
        schema = pa.schema([(name, pa.from_numpy_dtype(item.dtype)) for name, item in datasets.items()])
        num_rows = next(iter(lengths.values()))

    def batches(columns, batch_rows):
        names = columns or schema.names
        with h5py.File(path, "r") as h5file:
            group = h5file[group_name]
            for start in range(0, num_rows, batch_rows):
                stop = min(start + batch_rows, num_rows)
                yield pa.record_batch({name: group[name][start:stop] for name in names})

    return schema, num_rows, batches


def _check_hdf5_self_contained(path: Path, h5file) -> None:
    """Refuse an HDF5 file whose data lives elsewhere: reading it would open another file of this disk (or of
    the network, through HDF5's drivers). Every link is inspected, none is followed."""
    import h5py

    def outside_reference(name: str, link) -> str | None:
        if isinstance(link, h5py.ExternalLink):
            return f"'{name}' is an external link to '{link.path}' in the file '{link.filename}'"
        if isinstance(link, h5py.SoftLink):
            return None  # a path inside this file: what it names is checked at its hard link
        if not isinstance(link, h5py.HardLink):
            return f"'{name}' is a user-defined link, which may lead anywhere"
        item = h5file.get(name)
        if isinstance(item, h5py.Dataset) and item.is_virtual:
            return f"'{name}' is a virtual dataset mapping other files"
        if isinstance(item, h5py.Dataset) and item.external:
            files = ", ".join(repr(str(entry[0])) for entry in item.external)
            return f"'{name}' stores its data in the external file(s) {files}"
        return None

    problem = h5file.visititems_links(outside_reference)
    if problem:
        raise CatalogError(path, f"{problem}; an HDF5 table must hold its data in the file itself")


def _open_csv(path: Path, dialect: CsvDialect):
    import pyarrow.csv as pacsv

    read_options = pacsv.ReadOptions(block_size=1 << 22, column_names=csv_column_names(path, dialect))
    parse_options = pacsv.ParseOptions(delimiter=dialect.delimiter)
    text_columns: dict[str, pa.DataType] = {}

    def reader():
        return pacsv.open_csv(path, read_options=read_options, parse_options=parse_options,
                              convert_options=pacsv.ConvertOptions(column_types=text_columns))

    # CSV has no row count in a header: count once by streaming (cheap next to estimating). Column types are
    # guessed from the first block; a column with a later value of another type is read as text.
    schema = reader().schema
    while True:
        try:
            num_rows = sum(batch.num_rows for batch in reader())
            break
        except pa.ArrowInvalid as error:
            changed = _columns_of_another_type(error, schema.names) - text_columns.keys()
            if not changed:
                raise
            text_columns.update(dict.fromkeys(changed, pa.string()))
            schema = reader().schema

    def batches(columns, batch_rows):
        for batch in reader():
            if columns is not None:
                batch = batch.select(columns)
            for offset in range(0, batch.num_rows, batch_rows):
                yield batch.slice(offset, batch_rows)

    return schema, num_rows, batches


def _columns_of_another_type(error: pa.ArrowInvalid, names: list[str]) -> set[str]:
    """The CSV columns a conversion error is about (pyarrow names one, ``In CSV column #1: ...``); every column
    when it names none, none when the error is not about a conversion."""
    if "conversion error" not in str(error).lower():
        return set()
    found = re.search(r"CSV column #(\d+)", str(error))
    return {names[int(found.group(1))]} if found and int(found.group(1)) < len(names) else set(names)


def _open_votable(path: Path):
    import warnings

    from astropy.io.votable import parse_single_table

    check_votable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse_single_table(str(path)).to_table()
    except Exception as error:  # astropy raises many kinds of errors for malformed XML
        raise CatalogError(path, f"not a readable VOTable: {error}") from error
    arrays = {}
    for name in table.colnames:
        column = table[name]
        if column.ndim > 1:  # an array per row: a list column
            arrays[name] = pa.array(column.tolist())
            continue
        mask = getattr(column, "mask", None)
        values = column.filled() if mask is not None and hasattr(column, "filled") else column
        data = values.value if hasattr(values, "value") else values
        arrays[name] = pa.array(list(data) if data.dtype.kind in "OSU" else data, mask=mask)
    votable = pa.table(arrays)

    def batches(columns, batch_rows):
        yield from (votable.select(columns) if columns else votable).to_batches(max_chunksize=batch_rows)

    return votable.schema, votable.num_rows, batches


def _open_fits(path: Path):
    from astropy.table import Table

    if path.suffix.lower() != ".gz":
        with open(path, "rb") as fits_file:
            if fits_file.read(len(FITS_SIGNATURE)) != FITS_SIGNATURE:
                raise CatalogError(path, "not a FITS file: it does not start with the SIMPLE card (a compressed "
                                         "FITS file must be named .fits.gz)")
    # The format is given: guessing from the content would let a VOTable or HDF5 file named .fit through.
    table = Table.read(path, format="fits", memmap=True)
    if len(table.colnames) == 0:
        raise CatalogError(path, "FITS file holds no table")
    schema = pa.schema(
        [(name, pa.from_numpy_dtype(table[name].dtype.newbyteorder("="))) for name in table.colnames]
    )
    num_rows = len(table)

    def batches(columns, batch_rows):
        names = columns or schema.names
        for start in range(0, num_rows, batch_rows):
            chunk = table[start : start + batch_rows]
            yield pa.record_batch(
                {name: np.asarray(chunk[name]).astype(chunk[name].dtype.newbyteorder("=")) for name in names}
            )

    return schema, num_rows, batches


TEMPORARY_MARK = ".tmp-"
"""What marks a writer's temporary name: ``.<name>.tmp-<hex>`` next to the final ``<name>``."""


def _lock_new(path: Path, make: Callable[[Path], None]) -> int | None:
    """Make ``path`` with ``make`` and lock it for this process: the open descriptor, or None when a sweeper
    took the new name between its creation and the lock (the caller tries another name)."""
    make(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
            return descriptor
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(descriptor)
    return None


def _temporary_sibling(path: Path, folder: bool = False) -> tuple[Path, int]:
    """A new temporary name next to ``path`` (a file, or a folder with ``folder``), made and locked by this process;
    returns it with the descriptor holding the lock (close it once the name is renamed or removed).

    The lock (``fcntl.flock``) lives exactly as long as the writer's process, however that ends, so
    :func:`sweep_stale_temporaries` tells a dead writer's file from a live one's with no pid to check (pids are
    reused, and another host's cannot be checked). flock is honoured across NFS clients, and on Lustre mounted
    with ``-o flock`` (not ``localflock``).
    """

    def make(candidate: Path) -> None:
        if folder:
            candidate.mkdir()
        else:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644))

    while True:
        candidate = path.with_name(f".{path.name}{TEMPORARY_MARK}{uuid.uuid4().hex[:8]}")
        descriptor = _lock_new(candidate, make)
        if descriptor is not None:
            return candidate, descriptor


def sweep_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files (or folders) that writers of ``path`` killed mid-write left behind; returns them.

    Only those of a dead writer go: a live writer holds a lock on its temporary name for its whole life (see
    :func:`_temporary_sibling`), so two runs writing into one folder never remove each other's files.
    """
    path = Path(path)
    swept = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}{TEMPORARY_MARK}*"):
        try:
            descriptor = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # its writer finished (renamed it) or another sweeper was first
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live writer
            os.close(descriptor)
            continue
        try:
            if candidate.is_dir():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
        except FileNotFoundError:  # its writer finished and renamed it just now
            continue
        finally:
            os.close(descriptor)
        log.info("removed %s, left by a writer of %s that was killed", candidate, path)
        swept.append(candidate)
    return swept


def _write_problem(error: OSError) -> str:
    """The cause of a failed write in words: 'No space left on device', 'File too large', ..."""
    return os.strerror(error.errno) if error.errno else str(error)


def copy_folder_atomically(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a folder (a HATS catalog) to ``destination``, replacing what is there only once the copy is whole.
    Copies, never links: later damage to one cannot reach the other."""
    destination = Path(destination)
    check_writable(destination)
    sweep_stale_temporaries(destination)
    temporary_path, lock = _temporary_sibling(destination, folder=True)
    try:
        shutil.copytree(source, temporary_path, dirs_exist_ok=True)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(temporary_path, destination)
    except OSError as error:
        raise CatalogError(destination, _write_problem(error)) from error
    finally:
        shutil.rmtree(temporary_path, ignore_errors=True)
        os.close(lock)
    return destination


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file (a manifest, a checksum record) under a temporary name and rename it.

    Raises
    ------
    CatalogError
        The file cannot be written (full disk, read-only folder); names it.
    """
    path = Path(path)
    check_writable(path)
    sweep_stale_temporaries(path)
    temporary_path, lock = _temporary_sibling(path)
    try:
        temporary_path.write_text(text)
        os.replace(temporary_path, path)
    except OSError as error:
        temporary_path.unlink(missing_ok=True)
        raise CatalogError(path, f"cannot write: {_write_problem(error)}") from error
    finally:
        os.close(lock)
    return path


def read_json_record(path: str | os.PathLike) -> dict | None:
    """A small JSON record (a manifest, a sidecar), or None when it is missing or unreadable: what it records is
    then redone."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum_record(record_path: str | os.PathLike, file_name: str, sha256: str) -> Path:
    """Record the SHA-256 of a file called ``file_name`` in ``record_path``, atomically, in ``sha256sum``'s format
    (``sha256sum -c RECORD`` checks it from the file's folder)."""
    return write_text_atomically(record_path, f"{sha256}  {file_name}\n")


def checksum_problem(path: str | os.PathLike, record_path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` does not match the SHA-256 recorded in ``record_path`` (no record, another file's
    record, different bytes), or None when it matches."""
    path = Path(path)
    try:
        recorded, _, name = Path(record_path).read_text().strip().partition("  ")
    except (FileNotFoundError, UnicodeDecodeError):
        return f"has no recorded checksum ({record_path} is missing or unreadable)"
    if name != path.name:
        return f"has no recorded checksum ({record_path} is the record of '{name}')"
    actual = file_sha256(path)
    if actual != recorded:
        return f"failed its checksum (SHA-256 {actual[:12]}…, {record_path} records {recorded[:12]}…)"
    return None


def verify_parquet_pages(path: str | os.PathLike) -> None:
    """Read every page of a Parquet file, checking the CRC each page carries (as our writers write them).

    Raises
    ------
    CatalogError
        A page whose bytes differ from their checksum, or a file that does not decode; names the file.
    """
    try:
        parquet_file = pq.ParquetFile(path, page_checksum_verification=True)
        for row_group in range(parquet_file.num_row_groups):
            parquet_file.read_row_group(row_group)
    except (OSError, pa.ArrowException) as error:
        raise CatalogError(path, f"damaged Parquet file: {error}") from error


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`CatalogError` unless ``path``'s folder can be created and written."""
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".pz-write-check-"):
            pass
    except OSError as error:
        raise CatalogError(path, f"output location is not writable: {error.strerror or error}") from error


ZSTD_LEVEL = 3
"""zstd level of the Parquet files we write: levels 3 to 9 differ by ~5% in size on photo-z tables, while
level 9 costs ~40% more encoding time."""


def _leaf_paths(schema_field: pa.Field) -> list[str]:
    """Parquet column paths of an Arrow field (a list column's values are ``name.list.element``, the
    compliant nested layout pyarrow writes)."""
    field_type = schema_field.type
    if pa.types.is_list(field_type) or pa.types.is_large_list(field_type) or pa.types.is_fixed_size_list(field_type):
        return [f"{schema_field.name}.list.{path}" for path in _leaf_paths(field_type.value_field.with_name("element"))]
    if pa.types.is_struct(field_type):
        return [f"{schema_field.name}.{path}" for child in field_type for path in _leaf_paths(child)]
    return [schema_field.name]


class AtomicParquetWriter:
    """Writes a Parquet file under a temporary name and renames it on success, so a crash or an error
    never leaves a partial file under the final name.

    ``dictionary_columns`` are dictionary-encoded (by default every column that is not floating point);
    the other floating-point columns are byte-stream-split. Everything is zstd-compressed, and every page
    carries a CRC checksum that readers check (:func:`verify_parquet_pages`, :func:`open_catalog`). With
    ``keep_rows``, the rows written stay in memory too, so that :meth:`commit_checked` validates them
    without reading the file back. The SHA-256 of the finished file is :attr:`sha256` after the commit; with
    ``checksum_path`` it is also recorded there (:func:`write_checksum_record`) just before the rename, so a
    file under the final name never lacks the record of its bytes. Temporary files that killed writers of the
    same path left behind are swept first (:func:`sweep_stale_temporaries`).

    Examples
    --------
    >>> with AtomicParquetWriter("out.parquet", schema) as writer:  # doctest: +SKIP
    ...     writer.write(batch)
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, dictionary_columns: list[str] | None = None,
                 compression_level: int = ZSTD_LEVEL, keep_rows: bool = False,
                 checksum_path: str | os.PathLike | None = None):
        self.path = Path(path)
        self.checksum_path = Path(checksum_path) if checksum_path is not None else None
        self._kept: list[pa.RecordBatch | pa.Table] | None = [] if keep_rows else None
        self.schema = schema
        self.num_rows = 0
        self.sha256: str | None = None
        """SHA-256 of the file as committed."""
        if dictionary_columns is None:
            dictionary_columns = [f.name for f in schema if not pa.types.is_floating(f.type)]
        unknown = [name for name in dictionary_columns if name not in schema.names]
        if unknown:
            raise ValueError(f"{self.path}: dictionary columns {unknown} are not in the table "
                             f"(columns: {', '.join(schema.names)})")
        check_writable(self.path)
        sweep_stale_temporaries(self.path)
        self.temporary_path, self._lock = _temporary_sibling(self.path)
        # Floats outside the dictionary columns are byte-stream-split before zstd: measured values (magnitudes,
        # point estimates) take ~40% less room that way than dictionary-encoded, which Parquet would otherwise
        # try first (and which keeps byte-stream-split from applying at all).
        split = [f.name for f in schema if pa.types.is_floating(f.type) and f.name not in dictionary_columns]
        try:
            self._writer = pq.ParquetWriter(self.temporary_path, schema, compression="zstd",
                                            compression_level=compression_level, write_page_checksum=True,
                                            use_dictionary=[path for name in dictionary_columns
                                                            for path in _leaf_paths(schema.field(name))] or False,
                                            use_byte_stream_split=split or False)
        except BaseException:
            self._remove_temporary()
            raise

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        try:
            self._writer.write(data)
        except OSError as error:
            raise CatalogError(self.path, f"cannot write: {_write_problem(error)}") from error
        self.num_rows += data.num_rows
        if self._kept is not None:
            self._kept.append(data)

    def commit_checked(self, check: Callable[[pa.Table, Path], None]) -> Path:
        """:meth:`commit`, once ``check(table, final_path)`` accepts the rows written (kept in memory:
        ``keep_rows``) and the file's footer counts them all."""
        if self._kept is None:
            self.abort()
            raise ValueError(f"{self.path}: commit_checked needs a writer made with keep_rows=True")
        table = pa.Table.from_batches([batch for part in self._kept for batch in (
            part.to_batches() if isinstance(part, pa.Table) else [part])], schema=self.schema)
        self._kept = []

        def check_as_written(temporary: Path, final: Path) -> None:
            stored_rows = pq.read_metadata(temporary).num_rows
            if stored_rows != table.num_rows:
                raise CatalogError(final, f"the file holds {stored_rows} rows, {table.num_rows} were written")
            check(table, final)

        return self.commit(check_as_written)

    def commit(self, check: Callable[[Path, Path], None] | None = None) -> Path:
        """Close the file and give it its final name; ``check(temporary_path, final_path)`` may veto by raising.

        Raises
        ------
        CatalogError
            The file cannot be finished or renamed (full disk, a folder under the final name); names it.
        """
        try:
            try:
                self._writer.close()
                # Hashed once closed: one sequential read of a file the page cache still holds.
                self.sha256 = file_sha256(self.temporary_path)
            except OSError as error:
                raise CatalogError(self.path, f"cannot write: {_write_problem(error)}") from error
            if check is not None:
                check(self.temporary_path, self.path)
            if self.checksum_path is not None:
                write_checksum_record(self.checksum_path, self.path.name, self.sha256)
            try:
                os.replace(self.temporary_path, self.path)
            except OSError as error:
                raise CatalogError(self.path, f"cannot write: {_write_problem(error)}") from error
        except BaseException:
            self._remove_temporary()
            raise
        self._release()
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; the final name is left as it was."""
        try:
            self._writer.close()
        except OSError:
            pass  # the write failed already (e.g. a full disk); removing the file is what is left to do
        self._remove_temporary()

    def _remove_temporary(self) -> None:
        self.temporary_path.unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        """Let go of the temporary name's lock, once: the descriptor's number may belong to another file later."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_parquet(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` to a Parquet file atomically; returns the path."""
    with AtomicParquetWriter(path, table.schema) as writer:
        writer.write(table)
    return Path(path)


def _keep_schema_metadata(catalog_path: Path, metadata: dict[bytes, bytes] | None) -> None:
    """Record the table's schema metadata (a photo-z table's qp PDF description) in every ``_common_metadata``
    of a catalog lsdb wrote: lsdb writes the partitions from pandas, which drops it."""
    if not metadata:
        return
    for common in catalog_path.rglob("_common_metadata"):
        schema = pq.read_schema(common)
        pq.write_metadata(schema.with_metadata({**(schema.metadata or {}), **metadata}), common)


def write_hats(
    table: pa.Table,
    path: str | os.PathLike,
    catalog_name: str | None = None,
    ra_column: str = "ra",
    dec_column: str = "dec",
) -> Path:
    """Write ``table`` as a HATS catalog folder (via lsdb), atomically: built aside, then renamed."""
    import lsdb
    import pandas as pd

    path = Path(path)
    for column in (ra_column, dec_column):
        if column not in table.column_names:
            raise CatalogError(path, "HATS needs sky positions: column missing", column)
    check_writable(path)
    sweep_stale_temporaries(path)
    temporary_path, lock = _temporary_sibling(path, folder=True)
    try:
        catalog = lsdb.from_dataframe(
            # A fixed-size binary column (a photo-z table's ``pdf``) stays fixed-size, not Python bytes.
            table.to_pandas(types_mapper=lambda kind: pd.ArrowDtype(kind) if pa.types.is_fixed_size_binary(kind)
                            else None),
            catalog_name=catalog_name or path.name,
            ra_column=ra_column,
            dec_column=dec_column,
        )
        catalog.write_catalog(temporary_path, write_table_kwargs={"write_page_checksum": True})
        _keep_schema_metadata(temporary_path, table.schema.metadata)
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary_path, path)
    finally:
        shutil.rmtree(temporary_path, ignore_errors=True)
        os.close(lock)
    return path
