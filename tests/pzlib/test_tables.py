"""pzlib.tables: a file's format from its suffix or its folder's layout, a CSV file's dialect from its first lines,
and a VOTable referring outside itself refused before any reader opens it."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.hostile_files import votable

from pzlib.tables import CatalogError, CsvDialect, check_votable, csv_column_names, detect_format, sniff_csv


def test_a_format_is_found_by_suffix_or_by_folder_layout(tmp_path):
    names = ("a.parquet", "a.PQ", "a.h5", "a.csv", "a.csv.gz", "a.fit.gz", "a.FITS", "a.vot", "a.xml")
    assert [detect_format(tmp_path / name) for name in names] == [
        "parquet", "parquet", "hdf5", "csv", "csv", "fits", "fits", "votable", "votable"]
    hats = tmp_path / "catalog"
    hats.mkdir()
    (hats / "collection.properties").touch()
    dataset = tmp_path / "dataset" / "part=1"
    dataset.mkdir(parents=True)
    pq.write_table(pa.table({"z": [0.5]}), dataset / "0.parquet")
    assert (detect_format(hats), detect_format(tmp_path / "dataset")) == ("hats", "parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="neither a HATS catalog nor a Parquet dataset"):
        detect_format(tmp_path / "empty")
    with pytest.raises(CatalogError, match="unknown catalog format '.txt'"):
        detect_format(tmp_path / "table.txt")


@pytest.mark.parametrize(
    "content, dialect, names",
    [
        (b"id,ra,z\n1,2.5,0.1\n", CsvDialect(",", True), None),
        (b"1;2.5;0.1\n2;3.5;0.2\n", CsvDialect(";", False), ["column_1", "column_2", "column_3"]),
        (b"\xef\xbb\xbfid\tz\n1\t0.5\n", CsvDialect("\t", True), None),
        (b"z\n0.5\n", CsvDialect(",", True), None),
        (b'"ra"|"dec"\n\n1|"2|3"\n', CsvDialect("|", True), None),
    ],
    ids=["comma", "semicolon-no-header", "tab-bom", "one-column", "pipe-quoted"],
)
def test_a_csv_dialect_is_found_from_the_first_lines(tmp_path, content, dialect, names):
    path = tmp_path / "table.csv"
    path.write_bytes(content)
    assert sniff_csv(path) == dialect
    assert csv_column_names(path, dialect) == names
    packed = tmp_path / "table.csv.gz"
    packed.write_bytes(gzip.compress(content))
    assert sniff_csv(packed) == dialect


@pytest.mark.parametrize("content, problem", [(b"\xff\xfe\x00garbage", "not UTF-8 text"),
                                              (b"\n  \n", "has no lines")])
def test_a_csv_without_text_lines_is_refused_naming_it(tmp_path, content, problem):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(CatalogError, match=problem) as raised:
        sniff_csv(path)
    assert raised.value.path == str(path)


@pytest.mark.parametrize(
    "content, problem",
    [
        (votable('<BINARY><STREAM href="file:///etc/passwd"/></BINARY>'), "refers to 'file:///etc/passwd'"),
        (votable("<TABLEDATA/>", doctype='\n<!DOCTYPE VOTABLE [<!ENTITY e SYSTEM "x">]>'), "declares a DOCTYPE"),
        (votable("<TABLEDATA/>", field_extra='<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="x"/>'),
         "includes other XML"),
        (gzip.compress(votable("<TABLEDATA/>")), "not a readable VOTable"),
    ],
    ids=["stream-href", "doctype", "xinclude", "gzip"],
)
def test_a_votable_referring_outside_itself_is_refused(tmp_path, content, problem):
    path = tmp_path / "specz.xml"
    path.write_bytes(content)
    with pytest.raises(CatalogError, match=problem):
        check_votable(path)
    inline = tmp_path / "inline.xml"
    inline.write_bytes(votable("<TABLEDATA><TR><TD>0.5</TD></TR></TABLEDATA>"))
    check_votable(inline)
