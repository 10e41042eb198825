"""Table inspection: what a file or folder holds, found before a reader opens it.

Its format, by suffix for a file (:data:`TABLE_FORMATS`) and by layout for a folder (a HATS catalog has one of
:data:`HATS_MARKERS`; a Parquet dataset holds ``.parquet`` files); a CSV file's dialect (delimiter, and whether the
first line names the columns); whether a VOTable refers outside its own bytes, read as plain XML; how a FITS file
starts; the partition columns HATS adds to a catalog's own. :func:`pzlib.catalog.open_catalog` (every reader of the
platform, compute stages and PZ Server uploads alike) decides with these, and
:mod:`pzlib.registry.registration` picks an upload's format with the same table. Every problem raises
:class:`CatalogError` naming the file and the problem.

Examples
--------
>>> detect_format("specz.votable"), detect_format("objects.csv.gz")
('votable', 'csv')
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import pyarrow as pa

TABLE_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".hdf5": "hdf5",
    ".h5": "hdf5",
    ".hdf": "hdf5",
    ".csv": "csv",
    ".fits": "fits",
    ".fit": "fits",
    ".xml": "votable",
    ".vot": "votable",
    ".votable": "votable",
}
"""Table format of a file, by its (lower-case) suffix."""

COMPRESSED_TABLE_FORMATS = {".csv.gz": "csv", ".fits.gz": "fits", ".fit.gz": "fits"}
"""Compressed tables a reader inflates as it reads, by their last two suffixes: the compute stages read them, the
PZ Server takes no upload it would have to inflate (:mod:`pzlib.registry.file_safety`)."""

FORMATS = ("parquet", "hats", "hdf5", "csv", "fits", "votable")
"""Every format :func:`pzlib.catalog.open_catalog` reads."""

HATS_MARKERS = ("collection.properties", "hats.properties", "properties")
"""Files that make a folder a HATS catalog or collection."""

HATS_PARTITION_COLUMNS = frozenset({"Norder", "Dir", "Npix"})
"""Columns HATS adds to every leaf file of a catalog; they are not columns of the catalog itself."""

FITS_SIGNATURE = b"SIMPLE  ="
"""How every FITS file starts (its first header card); gzip, zip or bzip2 data does not, and astropy would
inflate those."""

CSV_DELIMITERS = ",;\t|"
"""Field separators a CSV file may use."""

_CSV_SNIFF_BYTES = 64 * 1024
_XML_CHUNK = 1024 * 1024
_STREAM_TAGS = frozenset({"stream"})
_INCLUDE_TAGS = frozenset({"include"})  # XInclude; astropy does not process it, a later reader might


class CatalogError(ValueError):
    """A catalog cannot be read or written; the message names the file, the column and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str, column: str | None = None):
        self.path = str(path)
        self.column = column
        where = f"{self.path}, column '{column}'" if column else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written."""

    delimiter: str = ","
    """Field separator, one of :data:`CSV_DELIMITERS`."""
    has_header: bool = True
    """Whether the first line names the columns; without one they are called ``column_1``, ``column_2``, …"""


def detect_format(path: str | os.PathLike) -> str:
    """The table format of ``path``: a HATS catalog or a Parquet dataset for a folder, else by the file's suffix.

    Raises
    ------
    CatalogError
        A folder that is neither, or a suffix of no known format.
    """
    path = Path(path)
    if path.is_dir():
        if any((path / name).exists() for name in HATS_MARKERS):
            return "hats"
        if any(path.rglob("*.parquet")):
            return "parquet"
        raise CatalogError(path, "folder is neither a HATS catalog nor a Parquet dataset")
    suffix = path.suffix.lower()
    compressed = "".join(path.suffixes[-2:]).lower()
    if compressed in COMPRESSED_TABLE_FORMATS:
        return COMPRESSED_TABLE_FORMATS[compressed]
    if suffix in TABLE_FORMATS:
        return TABLE_FORMATS[suffix]
    raise CatalogError(path, f"unknown catalog format '{suffix}' (readable: {', '.join(FORMATS)})")


def sniff_csv(path: str | os.PathLike) -> CsvDialect:
    """The dialect of a CSV file, from its first lines (inflated when it is ``.gz``).

    The delimiter is the one of :data:`CSV_DELIMITERS` Python's sniffer finds (a comma when it finds none); the
    first line is a header unless one of its fields is a number.

    Raises
    ------
    CatalogError
        The file is not UTF-8 text, or has no line.
    """
    lines = _head_lines(path)
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines), delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    first_row = next(csv.reader([lines[0]], delimiter=delimiter))
    return CsvDialect(delimiter, not any(_is_number(field) for field in first_row))


def csv_column_names(path: str | os.PathLike, dialect: CsvDialect) -> list[str] | None:
    """Names for the columns of a CSV file without a header (``column_1``, …, as many as its first line has
    fields); None when the file has a header, which names them."""
    if dialect.has_header:
        return None
    first_row = next(csv.reader(_head_lines(path)[:1], delimiter=dialect.delimiter))
    return [f"column_{index + 1}" for index in range(len(first_row))]


def _head_lines(path: str | os.PathLike) -> list[str]:
    """The first non-blank lines of a text file (at most 100), none of them cut."""
    with pa.input_stream(str(path)) as reader:  # inflates a .gz file
        head = reader.read(_CSV_SNIFF_BYTES)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CatalogError(path, "not a CSV table: the file is not UTF-8 text") from error
    lines = text.splitlines()
    if len(head) == _CSV_SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    lines = [line for line in lines[:100] if line.strip()]
    if not lines:
        raise CatalogError(path, "the CSV file has no lines")
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_votable(path: str | os.PathLike) -> None:
    """Refuse a VOTable that refers outside its own bytes, reading it as plain XML first.

    The file is parsed by expat with no DOCTYPE allowed (so no entities, internal or external, and no
    network), and every ``STREAM`` element must carry its data inline: one with an ``href`` (BINARY, BINARY2,
    FITS or PARQUET serialisation) would make astropy open that file or URL. XInclude elements are refused too.
    A compressed file is not XML and is refused here, before astropy would inflate it.

    Raises
    ------
    CatalogError
        The file is not well-formed XML, declares a DOCTYPE, or refers outside itself.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def refuse_doctype(name: str, *_: object) -> None:
        raise CatalogError(
            path, f"the VOTable declares a DOCTYPE ({name!r}); a VOTable needs none, and its entities could name "
                  "other files; remove the <!DOCTYPE ...> line"
        )

    def check_element(tag: str, attributes: dict[str, str]) -> None:
        local_tag = tag.rsplit(":", 1)[-1].lower()
        if local_tag in _INCLUDE_TAGS:
            raise CatalogError(path, f"the VOTable includes other XML (<{tag}>); send one self-contained file")
        if local_tag in _STREAM_TAGS:
            for attribute, value in attributes.items():
                if attribute.rsplit(":", 1)[-1].lower() == "href":
                    raise CatalogError(
                        path, f"the VOTable's <{tag}> refers to {value!r}; the server reads only the uploaded "
                              "file: put the rows inline (TABLEDATA, or a BINARY/BINARY2/FITS STREAM without href)"
                    )

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.StartElementHandler = check_element
    try:
        with open(path, "rb") as reader:
            while chunk := reader.read(_XML_CHUNK):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as error:
        raise CatalogError(
            path, f"not a readable VOTable: {expat.ErrorString(error.code)} at line {error.lineno}, "
                  f"column {error.offset}"
        ) from error
