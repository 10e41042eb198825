"""What an uploaded file may refer to, and how far an uploaded archive may expand.

Uploaded files are hostile. Several table formats can tell their reader to open something else: a VOTable
``STREAM`` with an ``href`` makes astropy open a local file or fetch a URL; a HATS catalog's properties name the
folders of its tables, margins, indexes and extensions, and hats and lsdb follow an absolute path, a ``../``
path or a URL there; a Parquet summary file (``_metadata``) names the files of its row groups; a ``.fits``
member that is really gzip or zip data is inflated by astropy. A ZIP declares sizes it need not keep. The
checks here read such references *without following them* and refuse the file with a message naming it and
the reference, before any reader opens it: the ZIP from its directory and its small metadata members before
anything is written, and then unpacked under a byte budget, and a HATS catalog's metadata again whenever it is
read. VOTables (read as plain XML first, with no DOCTYPE, entities or network: :func:`pzlib.tables.check_votable`),
HDF5 (external storage, virtual datasets, external links) and FITS are refused by their readers in
:mod:`pzlib.catalog`, which every caller shares.

Examples
--------
>>> root = unpack_hats_archive(Path("catalog.zip"), Path("unpacked"), max_bytes=1 << 30)  # doctest: +SKIP
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from pzlib.registry.errors import InvalidInput
from pzlib.tables import FITS_SIGNATURE, HATS_MARKERS

MAX_ZIP_MEMBERS = 100_000
"""Most entries a zipped HATS catalog may hold."""

MAX_PROPERTIES_BYTES = 1024 * 1024
"""Largest HATS properties file read (real ones hold a few hundred bytes)."""

HATS_LOCATION_KEYS = frozenset({
    "hats_primary_table_url",
    "hats_assn_join_table_url",
    "all_margins",
    "default_margin",
    "all_indexes",
    "all_extensions",
})
"""Properties whose values hats and lsdb open as locations (relative to the catalog, absolute, or URLs)."""

_COPY_CHUNK = 1024 * 1024
_LIST_SEPARATORS = re.compile(r"[\s;,]+")  # hats splits list-valued properties on these
_URL = re.compile(r"://|::|^file:", re.IGNORECASE)
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class FileTooLarge(InvalidInput):
    """An upload, or what it unpacks to, is larger than the configured limit (HTTP 413)."""

    def __init__(self, message: str, limit_bytes: int):
        super().__init__(message)
        self.limit_bytes = limit_bytes
        """The limit in force."""


def megabytes(size: int) -> str:
    """A size for messages: MiB from 1 MiB up, else bytes."""
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def unpack_hats_archive(zip_path: Path, destination: Path, max_bytes: int) -> Path | None:
    """Unpack a ZIP holding a HATS catalog; return the catalog folder, or None when it holds none.

    Everything is checked before a byte is written: the entries (relative names without ``..``, drive letters
    or links), their number, their declared sizes one by one and in total against ``max_bytes``, and the
    catalog's references (:func:`check_hats_references`). Unpacking then counts the bytes it writes against
    ``max_bytes`` too, whatever the headers declared (CPython's zipfile stops an entry at its declared size, and
    its checksum then fails: a corrupt archive). A ZIP without a HATS catalog is not unpacked (it is stored as
    uploaded, so its sizes do not matter). On failure
    ``destination`` may hold a part of the archive; the caller removes its temporary folder.

    Raises
    ------
    InvalidInput
        Not a ZIP, an unsafe or duplicate entry, a reference outside the catalog, or corrupt data.
    FileTooLarge
        The archive declares or unpacks to more than ``max_bytes``.
    """
    name = zip_path.name
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InvalidInput(f"main file {name!r} is not a readable ZIP archive: {_reason(error)}") from error
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise InvalidInput(f"{name!r} holds {len(members)} entries; the limit is {MAX_ZIP_MEMBERS}")
        for member in members:
            _check_member(name, member)
        files = [member for member in members if not member.is_dir()]
        markers = [path for path in (PurePosixPath(member.filename) for member in files) if path.name in HATS_MARKERS]
        if not markers:
            return None
        for member in files:
            if member.file_size > max_bytes:
                raise _too_large(name, f"its entry {member.filename!r} unpacks to {megabytes(member.file_size)}, "
                                 "more than", max_bytes)
        declared_bytes = sum(member.file_size for member in files)
        if declared_bytes > max_bytes:
            raise _too_large(name, f"it unpacks to {megabytes(declared_bytes)}, more than", max_bytes)
        try:
            check_hats_references(name, ((PurePosixPath(member.filename), partial(archive.open, member))
                                         for member in files))
            _extract(archive, members, destination, name, max_bytes)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
            raise InvalidInput(f"main file {name!r} is a corrupt ZIP archive: {_reason(error)}") from error
    shallowest = min(markers, key=lambda marker: len(marker.parts))
    return destination.joinpath(*shallowest.parent.parts)


def check_hats_folder(folder: Path, name: str) -> None:
    """:func:`check_hats_references` on a HATS catalog already unpacked (a stored one is read again).

    Raises
    ------
    InvalidInput
        As :func:`check_hats_references`; ``name`` is how messages call the catalog.
    """
    check_hats_references(name, ((PurePosixPath(*path.relative_to(folder).parts), partial(path.open, "rb"))
                                 for path in folder.rglob("*") if path.is_file()))


def check_hats_references(name: str, files: Iterable[tuple[PurePosixPath, Callable[[], BinaryIO]]]) -> None:
    """Refuse a HATS catalog whose metadata names anything outside it.

    ``files`` are the catalog's files as (path inside the catalog, opener); only the metadata is opened. In
    every properties file (parsed as hats parses it, ``\\u`` escapes and continuations included) the locations
    hats and lsdb open (``hats_primary_table_url``, ``all_margins``, ``default_margin``, ``all_indexes``,
    ``all_extensions``, ``hats_assn_join_table_url``) must be relative paths without ``..``, and no other value,
    bar the descriptive ones (``obs_copyright_url``…), may be a URL, an absolute path or hold ``..``. Every
    ``_metadata`` summary must name its row groups' files the same way, and every ``.fits`` member (the point map
    hats reads) must be plain FITS, not compressed data astropy would inflate.

    Raises
    ------
    InvalidInput
        Naming ``name``, the file inside it, the property and its value.
    """
    from hats.catalog.dataset.hats_properties import KNOWN_PROVENANCE_FIELDS  # hats takes seconds to import

    descriptive = frozenset(KNOWN_PROVENANCE_FIELDS)
    for inner_path, opener in files:
        if inner_path.name in HATS_MARKERS or inner_path.suffix == ".properties":
            for key, value in _read_properties(name, inner_path, opener).items():
                if key in HATS_LOCATION_KEYS:
                    problem = next(filter(None, map(_location_problem, _LIST_SEPARATORS.split(value))), None)
                elif key not in descriptive:
                    problem = next(filter(None, map(_value_problem, _LIST_SEPARATORS.split(value))), None)
                else:
                    problem = None
                if problem:
                    raise InvalidInput(
                        f"{name}: {inner_path} sets {key}={value!r}, {problem}; a catalog may refer only to "
                        "folders inside it (relative paths without '..')"
                    )
        elif inner_path.name == "_metadata":
            for file_path in _summary_file_paths(name, inner_path, opener):
                problem = _location_problem(file_path)
                if problem:
                    raise InvalidInput(
                        f"{name}: {inner_path} names the data file {file_path!r}, {problem}; a catalog may refer "
                        "only to files inside it"
                    )
        elif inner_path.suffix.lower() == ".fits":
            with opener() as reader:
                if reader.read(len(FITS_SIGNATURE)) != FITS_SIGNATURE:
                    raise InvalidInput(
                        f"{name}: {inner_path} is not a plain FITS file (compressed or other data); "
                        "store it uncompressed"
                    )


def _location_problem(location: str) -> str | None:
    """Why ``location`` may lead outside the catalog, or None for a plain relative path inside it."""
    if ":" in location:
        return "a URL (or a drive), which would be fetched"
    if location.startswith(("/", "~")) or "\\" in location:
        return "an absolute path outside the catalog"
    if ".." in location.split("/"):
        return "a path that leaves the catalog ('..')"
    return None


def _value_problem(token: str) -> str | None:
    """Why a word of a non-location property looks like a reference outside the catalog, or None."""
    if _URL.search(token):
        return "a URL"
    if (token.startswith("/") and token != "/") or token.startswith("~") or _WINDOWS_DRIVE.match(token):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", token):
        return "a path that leaves the catalog ('..')"
    return None


def _read_properties(name: str, inner_path: PurePosixPath, opener: Callable[[], BinaryIO]) -> dict[str, str]:
    from jproperties import Properties  # hats' own properties parser, so escapes read the same

    with opener() as reader:
        content = reader.read(MAX_PROPERTIES_BYTES + 1)
    if len(content) > MAX_PROPERTIES_BYTES:
        raise InvalidInput(f"{name}: {inner_path} is larger than {megabytes(MAX_PROPERTIES_BYTES)}; "
                           "a HATS properties file holds a few lines")
    properties = Properties()
    try:
        properties.load(content, "utf-8")
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"{name}: {inner_path} is not a readable properties file: {_reason(error)}") from error
    return dict(properties.properties)


def _summary_file_paths(name: str, inner_path: PurePosixPath, opener: Callable[[], BinaryIO]) -> Iterator[str]:
    """The data files a Parquet summary's row groups name (pyarrow's parquet_dataset would open them)."""
    try:
        with opener() as reader:
            metadata = pq.read_metadata(reader)
    except (pa.ArrowException, OSError) as error:
        raise InvalidInput(f"{name}: {inner_path} is not a readable Parquet summary: {_reason(error)}") from error
    for row_group in range(metadata.num_row_groups):
        group = metadata.row_group(row_group)
        for column in range(group.num_columns):
            yield group.column(column).file_path


def _check_member(zip_name: str, member: zipfile.ZipInfo) -> None:
    path = member.filename
    is_symlink = (member.external_attr >> 16) & 0o170000 == 0o120000
    if path.startswith("/") or "\\" in path or ".." in PurePosixPath(path).parts or ":" in path or is_symlink:
        raise InvalidInput(
            f"{zip_name!r} holds the unsafe entry {path!r}; an archive may only hold relative paths without "
            "'..', drive letters or links"
        )


def _extract(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], destination: Path, zip_name: str,
             max_bytes: int) -> None:
    """Write the entries (each once: a second entry of the same name is refused), counting the bytes written."""
    written_bytes = 0
    for member in members:
        target = destination.joinpath(*PurePosixPath(member.filename).parts)
        if member.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as reader, open(target, "xb") as writer:
            while chunk := reader.read(_COPY_CHUNK):
                written_bytes += len(chunk)
                if written_bytes > max_bytes:
                    raise _too_large(zip_name, "it unpacks to more than", max_bytes)
                writer.write(chunk)


def _too_large(zip_name: str, what: str, max_bytes: int) -> FileTooLarge:
    return FileTooLarge(
        f"{zip_name!r}: {what} the {megabytes(max_bytes)} allowed for a zipped catalog (setting "
        "unzipped_limit_bytes); nothing was stored",
        max_bytes,
    )


def _reason(error: BaseException) -> str:
    """An error's reason without the file name the library may add (it can be a server path)."""
    return getattr(error, "strerror", None) or str(error)


__all__ = [
    "HATS_LOCATION_KEYS",
    "MAX_PROPERTIES_BYTES",
    "MAX_ZIP_MEMBERS",
    "FileTooLarge",
    "check_hats_folder",
    "check_hats_references",
    "megabytes",
    "unpack_hats_archive",
]
