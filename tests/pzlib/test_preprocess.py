"""pzlib.preprocess (stage I): cleaning rules, flux→mag, dereddening, filters, partitioning, resume."""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures.damage import flip_bit_in_data_page

from pzlib.catalog import CatalogError, write_parquet
from pzlib.preprocess import (
    SFD_EXTINCTION_COEFFICIENTS,
    PreprocessConfig,
    check_partition_photometry,
    clean_batch,
    flux_to_mag,
    preprocess,
)

FLUX_MAP = {"value_template": "{band}_flux", "error_template": "{band}_fluxErr", "kind": "flux",
            "bands": ["g", "i"], "id_column": "objectId", "ra_column": "ra", "dec_column": "dec",
            "ebv_column": "ebv"}


def _flux_table() -> pa.Table:
    return pa.table({
        "objectId": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "ra": [10.0, 10.1, 10.2, 10.3, 10.4],
        "dec": [-5.0, -5.1, -5.2, -5.3, -5.4],
        "g_flux": [1000.0, -3.0, np.nan, np.inf, 3631e9],
        "g_fluxErr": [10.0, 1.0, 1.0, 1.0, 3631e8],
        "i_flux": [2000.0, 500.0, 100.0, 50.0, 10.0],
        "i_fluxErr": [20.0, 5.0, np.nan, 1.0, 1.0],
        "ebv": [0.1, 0.0, 0.0, 0.0, 0.0],
        "detect_isPrimary": [True, True, False, True, None],
    })


def test_flux_to_mag_formula():
    mag, err = flux_to_mag(np.array([1000.0]), np.array([10.0]))
    assert mag[0] == pytest.approx(-2.5 * math.log10(1000.0) + 31.4)
    assert err[0] == pytest.approx(10.0 / (1000.0 * 0.4 * math.log(10)))


def test_nonfinite_negative_and_missing_errors_become_the_sentinel():
    cleaned = clean_batch(_flux_table(), PreprocessConfig(columns=FLUX_MAP))
    g = cleaned.column("mag_g_lsst").to_numpy()
    i_err = cleaned.column("mag_err_i_lsst").to_numpy()
    assert list(g[1:4]) == [99.0, 99.0, 99.0]  # negative flux, NaN, +inf
    assert g[4] == pytest.approx(-2.5 * math.log10(3631e9) + 31.4, abs=1e-5)
    assert i_err[2] == 99.0 and cleaned.column("mag_i_lsst").to_numpy()[2] == 99.0
    assert cleaned.column_names == ["id", "ra", "dec", "mag_g_lsst", "mag_err_g_lsst", "mag_i_lsst",
                                    "mag_err_i_lsst"]
    assert cleaned.column("mag_g_lsst").type == pa.float32()


def test_magnitude_input_keeps_rails_99_and_maps_infinities():
    table = pa.table({"id": [1, 2, 3], "mag_g_lsst": [21.5, 99.0, -np.inf], "mag_err_g_lsst": [0.1, 1.0, 0.2]})
    config = PreprocessConfig(columns={"value_template": "mag_{band}_lsst", "error_template": "mag_err_{band}_lsst",
                                       "bands": ["g"], "ra_column": None, "dec_column": None}, sentinel=-99.0)
    assert clean_batch(table, config).column("mag_g_lsst").to_pylist() == [21.5, -99.0, -99.0]
    default = clean_batch(table, PreprocessConfig(columns=config.columns))
    assert default.column("mag_g_lsst").to_pylist() == [21.5, 99.0, 99.0]


def test_dereddening_and_rounding():
    plain = clean_batch(_flux_table(), PreprocessConfig(columns=FLUX_MAP))
    dereddened = clean_batch(_flux_table(), PreprocessConfig(columns=FLUX_MAP, deredden=True, round_decimals=3))
    shift = plain.column("mag_g_lsst")[0].as_py() - dereddened.column("mag_g_lsst")[0].as_py()
    assert shift == pytest.approx(SFD_EXTINCTION_COEFFICIENTS["g"] * 0.1, abs=1e-3)
    assert dereddened.column("mag_g_lsst")[1].as_py() == 99.0  # non-detections are not dereddened
    value = dereddened.column("mag_i_lsst")[0].as_py()
    assert abs(value * 1000 - round(value * 1000)) < 1e-2


def test_row_filters_boolean_and_magnitude_cut():
    config = PreprocessConfig(columns=FLUX_MAP, filters=["detect_isPrimary", "mag_i_lsst < 25.0"])
    cleaned = clean_batch(_flux_table(), config)
    # row 3 is not primary, row 5's primary flag is null, rows 4 (mag_i 27.15) fail the cut
    assert cleaned.column("id").to_pylist() == [1, 2]
    assert "detect_isPrimary" not in cleaned.column_names


def test_bad_configs_are_rejected_up_front():
    with pytest.raises(ValueError, match="partition_rows must be positive"):
        PreprocessConfig(partition_rows=0)
    with pytest.raises(ValueError, match="cannot parse row filter"):
        PreprocessConfig(filters=["mag_i_lsst <<< 3"])
    with pytest.raises(ValueError, match="deredden needs"):
        PreprocessConfig(deredden=True)


def test_non_numeric_photometry_names_the_column(tmp_path):
    table = _flux_table().set_column(3, "g_flux", pa.array(["a", "b", "c", "d", "e"]))
    with pytest.raises(CatalogError, match="column 'g_flux': expected a numeric column"):
        clean_batch(table, PreprocessConfig(columns=FLUX_MAP), source="survey.parquet")


def test_partitions_of_n_rows_and_resume(dc2_300, tmp_path):
    output = tmp_path / "stage1"
    config = PreprocessConfig(partition_rows=128, keep_columns=["redshift"])
    partitions = preprocess(dc2_300, output, config)
    assert [pq.read_metadata(p).num_rows for p in partitions] == [128, 128, 44]
    ids = pa.concat_tables(pq.read_table(p) for p in partitions).column("id").to_pylist()
    assert ids == pq.read_table(dc2_300).column("id").to_pylist()
    mtimes = [p.stat().st_mtime_ns for p in partitions]
    assert preprocess(dc2_300, output, config) == partitions
    assert [p.stat().st_mtime_ns for p in partitions] == mtimes  # skipped, not rewritten
    fewer = preprocess(dc2_300, output, PreprocessConfig(partition_rows=200, keep_columns=["redshift"]))
    assert [p.name for p in fewer] == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(p.name for p in output.glob("part-*")) == ["part-00000.parquet", "part-00001.parquet"]


def test_missing_column_fails_before_writing(dc2_300, tmp_path):
    table = pq.read_table(dc2_300).drop_columns(["mag_err_r_lsst"])
    source = write_parquet(table, tmp_path / "broken.parquet")
    with pytest.raises(CatalogError, match="broken.parquet, column 'mag_err_r_lsst': column missing"):
        preprocess(source, tmp_path / "stage1", PreprocessConfig())
    assert not any((tmp_path / "stage1").glob("part-*")) if (tmp_path / "stage1").exists() else True


def test_filters_that_remove_every_row(dc2_300, tmp_path):
    with pytest.raises(CatalogError, match="no rows left"):
        preprocess(dc2_300, tmp_path / "s1", PreprocessConfig(filters=["mag_i_lsst < 5"]))


def test_a_damaged_partition_is_found_by_its_checksum_and_stage_one_redone(dc2_300, tmp_path, caplog):
    output = tmp_path / "stage1"
    config = PreprocessConfig(partition_rows=128, keep_columns=["redshift"])
    partitions = preprocess(dc2_300, output, config)
    undamaged = [path.read_bytes() for path in partitions]
    flip_bit_in_data_page(partitions[1], "mag_r_lsst")
    assert pq.read_metadata(partitions[1]).num_rows == 128  # what the rerun used to check

    with caplog.at_level(logging.WARNING, logger="pzlib.preprocess"):
        assert preprocess(dc2_300, output, config) == partitions

    assert f"stage I partition {partitions[1]} failed its checksum" in caplog.text
    assert [path.read_bytes() for path in partitions] == undamaged


def test_stage_three_input_checks_name_the_file_the_column_and_the_problem(dc2_300):
    table = pq.read_table(dc2_300)
    columns = ["mag_g_lsst", "mag_err_g_lsst"]

    def check(changed: pa.Table, source: str) -> None:
        check_partition_photometry(changed.to_batches(max_chunksize=128), columns, source)

    check(table, "part-00000.parquet")
    as_text = table.set_column(table.schema.get_field_index("mag_g_lsst"), "mag_g_lsst",
                               table.column("mag_g_lsst").cast(pa.string()))
    with pytest.raises(CatalogError, match="part-00001.parquet, column 'mag_g_lsst': expected a numeric column, "
                                           "found string"):
        check(as_text, "part-00001.parquet")
    errors = table.column("mag_err_g_lsst").to_numpy().copy()
    errors[[0, 150, 299]] = [np.nan, np.inf, -np.inf]  # in each of the three batches
    some = table.set_column(table.schema.get_field_index("mag_err_g_lsst"), "mag_err_g_lsst", pa.array(errors))
    with pytest.raises(CatalogError, match="part-00002.parquet, column 'mag_err_g_lsst': 3 of 300 values are NaN "
                                           "or infinite; a stage I partition holds the non-detection sentinel"):
        check(some, "part-00002.parquet")
    all_nan = table.set_column(table.schema.get_field_index("mag_g_lsst"), "mag_g_lsst",
                               pa.array(np.full(table.num_rows, np.nan, dtype=np.float32)))
    with pytest.raises(CatalogError, match="part-00003.parquet, column 'mag_g_lsst': all 300 values are NaN"):
        check(all_nan, "part-00003.parquet")
