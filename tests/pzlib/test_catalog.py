"""pzlib.catalog: every format reads back the same values; bad files fail with the file and the problem."""

from __future__ import annotations

import gzip
import io
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import tables_io
from astropy.table import Table
from fixtures.damage import flip_bit_in_data_page

from pzlib.catalog import (
    AtomicParquetWriter,
    CatalogError,
    checksum_problem,
    file_sha256,
    open_catalog,
    verify_parquet_pages,
    write_hats,
    write_parquet,
)
from pzlib.column_maps import COLUMN_MAPS, column_map


@pytest.fixture(scope="module")
def sample(dc2_300) -> pa.Table:
    return pq.read_table(dc2_300)


def _written(sample: pa.Table, catalog_format: str, folder):
    if catalog_format == "parquet":
        return write_parquet(sample, folder / "sample.parquet")
    if catalog_format == "parquet-dataset":
        (folder / "ds").mkdir()
        write_parquet(sample.slice(0, 120), folder / "ds" / "a.parquet")
        write_parquet(sample.slice(120), folder / "ds" / "b.parquet")
        return folder / "ds"
    if catalog_format == "hats":
        return write_hats(sample, folder / "sample_hats")
    if catalog_format == "hdf5":
        path = folder / "sample.hdf5"
        tables_io.write({"photometry": {n: sample.column(n).to_numpy() for n in sample.column_names}}, str(path))
        return path
    if catalog_format == "csv":
        path = folder / "sample.csv"
        pacsv.write_csv(sample, path)
        return path
    if catalog_format == "csv-semicolons":
        path = folder / "sample.csv"
        pacsv.write_csv(sample, path, pacsv.WriteOptions(delimiter=";", quoting_style="none"))
        return path
    if catalog_format == "csv-gz":
        sink = io.BytesIO()
        pacsv.write_csv(sample, sink)
        path = folder / "sample.csv.gz"
        path.write_bytes(gzip.compress(sink.getvalue()))
        return path
    if catalog_format == "fits":
        path = folder / "sample.fits"
        Table({n: sample.column(n).to_numpy() for n in sample.column_names}).write(path)
        return path
    if catalog_format == "votable":
        path = folder / "sample.vot"
        Table({n: sample.column(n).to_numpy() for n in sample.column_names}).write(path, format="votable")
        return path
    raise AssertionError(catalog_format)


@pytest.mark.parametrize("catalog_format", ["parquet", "parquet-dataset", "hats", "hdf5", "csv", "csv-semicolons",
                                            "csv-gz", "fits", "votable"])
def test_every_format_reads_back_the_same_values(sample, catalog_format, tmp_path):
    path = _written(sample, catalog_format, tmp_path)
    reader = open_catalog(path)
    assert reader.num_rows == sample.num_rows
    columns = ["id", "mag_i_lsst", "redshift"]
    batches = list(reader.iter_batches(columns, batch_rows=70))
    assert all(batch.num_rows <= 70 for batch in batches)
    table = pa.Table.from_batches(batches).sort_by("id")
    expected = sample.select(columns).sort_by("id")
    assert table.column("id").to_pylist() == expected.column("id").to_pylist()
    np.testing.assert_allclose(table.column("mag_i_lsst").to_numpy(), expected.column("mag_i_lsst").to_numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(table.column("redshift").to_numpy(), expected.column("redshift").to_numpy())


def test_rail_hdf5_photometry_group_is_found(dc2_paths):
    reader = open_catalog(dc2_paths[1])
    assert reader.format == "hdf5"
    assert reader.num_rows == 20_449
    assert "mag_err_u_lsst" in reader.column_names


def test_rubin_dm_example_reads_with_the_gaap_column_map():
    from rail.core.utils import RAILDIR

    path = f"{RAILDIR}/rail/examples_data/testdata/rubin_dm_dc2_example.pq"
    reader = open_catalog(path)
    gaap = COLUMN_MAPS["dm_gaap"]
    reader.require_columns([gaap.id_column, *gaap.position_columns(), *gaap.photometry_columns()])
    assert reader.num_rows == 100


def test_column_map_from_dict_and_bad_templates():
    custom = column_map({"value_template": "{band}_psfFlux", "error_template": "{band}_psfFluxErr",
                         "kind": "flux", "bands": ["g", "r"]})
    assert custom.photometry_columns() == ["g_psfFlux", "g_psfFluxErr", "r_psfFlux", "r_psfFluxErr"]
    with pytest.raises(ValueError, match="must contain"):
        column_map({"value_template": "mag", "error_template": "err_{band}"})
    with pytest.raises(ValueError, match="unknown column map 'nope'"):
        column_map("nope")


def test_missing_empty_corrupt_and_unknown_files_name_the_file(tmp_path):
    with pytest.raises(CatalogError, match="no such file"):
        open_catalog(tmp_path / "absent.parquet")
    empty = tmp_path / "empty.parquet"
    empty.touch()
    with pytest.raises(CatalogError, match=f"{empty}: file is empty"):
        open_catalog(empty)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CatalogError, match=f"{corrupt}: not a readable parquet catalog"):
        open_catalog(corrupt)
    corrupt_hdf5 = tmp_path / "corrupt.hdf5"
    corrupt_hdf5.write_bytes(b"\x89HDF garbage")
    with pytest.raises(CatalogError, match="not a readable hdf5 catalog"):
        open_catalog(corrupt_hdf5)


def test_missing_column_is_named(sample, tmp_path):
    reader = open_catalog(write_parquet(sample, tmp_path / "s.parquet"))
    with pytest.raises(CatalogError, match=r"s.parquet, column 'mag_q_lsst': column missing"):
        list(reader.iter_batches(["id", "mag_q_lsst"]))


def test_a_csv_column_whose_values_change_type_late_is_read_as_text(tmp_path):
    path = tmp_path / "late.csv"
    rows = [f"{index},{index}" for index in range(600_000)] + ["600000,not a number"]
    path.write_text("id,value\n" + "\n".join(rows) + "\n")
    reader = open_catalog(path)
    assert reader.num_rows == 600_001
    assert (reader.schema.field("id").type, reader.schema.field("value").type) == (pa.int64(), pa.string())
    assert reader.read().column("value")[-1].as_py() == "not a number"


def test_table_without_rows_is_rejected(sample, tmp_path):
    path = write_parquet(sample.slice(0, 0), tmp_path / "none.parquet")
    with pytest.raises(CatalogError, match="no rows"):
        open_catalog(path)


def test_atomic_writer_leaves_nothing_under_the_final_name_on_error(sample, tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with AtomicParquetWriter(target, sample.schema) as writer:
            writer.write(sample.slice(0, 10))
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_splits_floats_and_keeps_dictionaries_where_asked(tmp_path):
    table = pa.table({"id": np.arange(1_000), "zmode": np.repeat(np.float32([0.1, 0.2]), 500),
                      "zmean": np.linspace(0, 3, 1_000, dtype=np.float32),
                      "pdf": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3_000, dtype=np.uint8)), 3)})
    with AtomicParquetWriter(tmp_path / "photoz.parquet", table.schema, dictionary_columns=["zmode", "pdf"]) as writer:
        writer.write(table)
    with AtomicParquetWriter(tmp_path / "default.parquet", table.schema) as writer:
        writer.write(table)
    encodings = {}
    for name in ("photoz", "default"):
        row_group = pq.ParquetFile(tmp_path / f"{name}.parquet").metadata.row_group(0)
        encodings[name] = {row_group.column(i).path_in_schema: row_group.column(i).encodings
                           for i in range(row_group.num_columns)}
    photoz = encodings["photoz"]
    assert "RLE_DICTIONARY" in photoz["zmode"] and "RLE_DICTIONARY" in photoz["pdf.list.element"]
    assert "BYTE_STREAM_SPLIT" in encodings["photoz"]["zmean"] and "RLE_DICTIONARY" not in encodings["photoz"]["id"]
    assert "BYTE_STREAM_SPLIT" in encodings["default"]["zmode"] and "RLE_DICTIONARY" in encodings["default"]["id"]
    assert pq.read_table(tmp_path / "photoz.parquet").equals(table)
    with pytest.raises(ValueError, match=r"dictionary columns \['zmodes'\] are not in the table"):
        AtomicParquetWriter(tmp_path / "typo.parquet", table.schema, dictionary_columns=["zmodes"])


def test_unwritable_output_is_reported(sample, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(CatalogError, match="not writable"):
        write_parquet(sample, blocker / "out.parquet")


def test_hats_needs_positions(sample, tmp_path):
    with pytest.raises(CatalogError, match="column 'ra'"):
        write_hats(sample.drop_columns(["ra"]), tmp_path / "h")


def test_commit_checked_validates_the_rows_written_without_reading_the_file_back(tmp_path):
    table = pa.table({"id": np.arange(10), "z": np.linspace(0.0, 1.0, 10)})
    seen = []
    writer = AtomicParquetWriter(tmp_path / "ok.parquet", table.schema, keep_rows=True)
    writer.write(table.slice(0, 4))
    writer.write(table.slice(4).to_batches()[0])
    writer.commit_checked(lambda rows, final: seen.append((rows, final)))
    [(rows, final)] = seen
    assert rows.equals(table) and final == tmp_path / "ok.parquet"
    assert pq.read_table(final).equals(table)

    def refuse(rows, final):
        raise ValueError(f"{final}: bad rows")

    refused = AtomicParquetWriter(tmp_path / "refused.parquet", table.schema, keep_rows=True)
    refused.write(table)
    with pytest.raises(ValueError, match="bad rows"):
        refused.commit_checked(refuse)
    assert list(tmp_path.iterdir()) == [tmp_path / "ok.parquet"]
    with pytest.raises(ValueError, match="keep_rows=True"):
        AtomicParquetWriter(tmp_path / "plain.parquet", table.schema).commit_checked(refuse)
    assert list(tmp_path.iterdir()) == [tmp_path / "ok.parquet"]


WRITER = """
import sys
import numpy as np, pyarrow as pa
from pzlib.catalog import AtomicParquetWriter
table = pa.table({"id": np.arange(1_000)})
writer = AtomicParquetWriter(sys.argv[1], table.schema)
writer.write(table)
print(writer.temporary_path, flush=True)
sys.stdin.readline()  # the half-written file stays until the test says go
writer.commit()
"""


def _start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A writer process of ``target``, stopped mid-write; and its temporary file."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    return process, Path(process.stdout.readline().strip())


def test_a_killed_writers_temporary_file_is_swept_by_the_next_write_and_a_live_writers_is_kept(tmp_path):
    target = tmp_path / "part-00000.parquet"
    live, live_temporary = _start_writer(target)
    killed, killed_temporary = _start_writer(target)  # starting, it sweeps too: the live writer's file stays
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed_temporary.is_file() and live_temporary.is_file()

    write_parquet(pa.table({"id": np.arange(5)}), target)  # the next write of that output

    assert not killed_temporary.exists()
    assert live_temporary.is_file()
    live.communicate("go\n", timeout=120)
    assert live.returncode == 0  # undisturbed: its rename came last, so its rows are the file's
    assert pq.read_table(target).num_rows == 1_000
    assert sorted(path.name for path in tmp_path.iterdir()) == [target.name]


def test_every_page_carries_a_checksum_that_reading_checks(sample, tmp_path):
    target, record = tmp_path / "photoz.parquet", tmp_path / "sums" / "photoz.parquet.sha256"
    with AtomicParquetWriter(target, sample.schema, checksum_path=record) as writer:
        writer.write(sample)
    assert record.read_text() == f"{writer.sha256}  photoz.parquet\n" and writer.sha256 == file_sha256(target)
    verify_parquet_pages(target)
    assert checksum_problem(target, record) is None

    flip_bit_in_data_page(target, "mag_i_lsst")
    assert pq.read_metadata(target).num_rows == sample.num_rows  # the footer still looks fine
    with pytest.raises(CatalogError, match=f"{target}: damaged Parquet file: .*CRC checksum verification failed"):
        verify_parquet_pages(target)
    with pytest.raises(CatalogError, match=f"{target}: cannot read: .*CRC checksum verification failed"):
        open_catalog(target).read()
    assert checksum_problem(target, record).startswith("failed its checksum (SHA-256 ")
    assert checksum_problem(target, tmp_path / "none.sha256").startswith("has no recorded checksum")


FULL_DISK_WRITER = """
import resource, sys
import numpy as np, pyarrow as pa
from pzlib.catalog import CatalogError, write_parquet
resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))  # files stop growing at 64 kB, as on a full disk
try:
    write_parquet(pa.table({"z": np.random.default_rng(1).random(100_000)}), sys.argv[1])
except CatalogError as error:
    sys.exit(str(error))
"""


def test_a_write_that_finds_the_disk_full_names_the_file_and_leaves_nothing(tmp_path):
    # A real full disk needs a mounted filesystem of its own; a file size limit makes the kernel refuse the
    # writes the same way (EFBIG where a full disk gives ENOSPC), in a process of its own.
    target = tmp_path / "big.parquet"
    result = subprocess.run([sys.executable, "-c", FULL_DISK_WRITER, str(target)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{target}: cannot write: File too large"
    assert list(tmp_path.iterdir()) == []
