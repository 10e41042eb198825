"""pzlib.validate.expectations: GX suites from include/expectations/ on real stage outputs of production size.

One planted bad value in a 150,000-row partition fails its suite, and the report (and the ValidationError
message an Airflow task logs) names the expectation, the column, the count and the example id and value.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from plant import PARTITION_ROWS, with_pdf_value, with_value

from pzlib import pdf
from pzlib.validate.expectations import (
    PDF_STRUCTURE_EXPECTATION,
    ValidationError,
    available_suites,
    check_file,
    check_table,
    load_suite,
    validate_table,
)

BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
PAIR_ORDERED = "expect_column_pair_values_a_to_be_greater_than_b"


def only_failure(report):
    assert not report.success
    assert len(report.failures) == 1, report.message()
    return report.failures[0]


def test_the_four_suites_are_defined_as_data():
    assert set(available_suites()) >= {"stage1_partition", "photoz_table", "training_set", "specz_catalog"}
    for name in available_suites():
        suite = load_suite(name)
        assert suite.path.parent.name == "expectations" and suite.path.parent.parent.name == "include"
        assert suite.expectations and suite.description


def test_a_good_photoz_partition_passes(photoz_partition):
    report = check_table(photoz_partition, "photoz_table", {"expected_rows": PARTITION_ROWS})
    assert report.success and report.failures == [] and report.n_rows == PARTITION_ROWS
    assert report.evaluated >= 30
    assert not report.skipped  # ra/dec present, expected_rows given: everything ran
    assert "passed" in report.message()


def test_a_good_stage1_partition_passes(stage1_partition):
    report = check_table(stage1_partition, "stage1_partition", {"expected_rows": PARTITION_ROWS})
    assert report.success and report.evaluated >= 50


def test_the_stage1_table_passes_as_a_training_set_and_a_specz_catalog(stage1_300):
    assert check_table(stage1_300, "training_set").success
    report = check_table(stage1_300, "specz_catalog", {"columns": {"z": "redshift"}})
    assert any("z_err" in skipped and "optional" in skipped for skipped in report.skipped)


@pytest.mark.parametrize(
    ("plant", "expectation", "column", "count", "shown"),
    [
        (lambda t: with_pdf_value(t, 4242, 60, -0.25), BETWEEN, "pdf_min", 1, "-0.25"),
        (lambda t: with_value(t, "zmode", 4242, np.nan), NOT_NULL, "zmode", 1, "nan"),
        (lambda t: with_value(t, "zmode", 4242, 7.5), BETWEEN, "zmode", 1, "7.5"),
        (lambda t: with_value(t, "z_p16", 4242, 2.9), PAIR_ORDERED, "zmedian, z_p16", 1, "2.9"),
    ],
    ids=["negative-pdf", "nan-zmode", "zmode-off-grid", "quantiles-unordered"],
)
def test_one_planted_bad_value_fails_and_is_named(photoz_partition, plant, expectation, column, count, shown):
    bad = plant(photoz_partition)
    with pytest.raises(ValidationError) as raised:
        check_table(bad, "photoz_table", {"expected_rows": PARTITION_ROWS}, source="bpz/part-00042.parquet")
    report = raised.value.report
    failing = [f for f in report.failures if f.expectation == expectation and f.column == column]
    assert len(failing) == 1, report.message()
    failure = failing[0]
    planted_id = photoz_partition.column("id")[4242].as_py()
    assert failure.unexpected_count == count and failure.element_count == PARTITION_ROWS
    assert failure.example_ids == [planted_id]
    message = str(raised.value)
    assert message.startswith("photoz_table validation of bpz/part-00042.parquet failed")
    line = next(line for line in message.splitlines() if expectation in line and f"'{column}'" in line)
    assert f"{count} of 150,000 rows unexpected" in line
    assert f"id {planted_id}: " in line and shown in line


def test_a_negative_pdf_value_also_breaks_normalization_but_nothing_else(photoz_partition):
    report = validate_table(with_pdf_value(photoz_partition, 10, 60, -0.25), "photoz_table")
    assert {(f.column, f.description) for f in report.failures} == {
        ("pdf_min", "PDF non-negative"), ("pdf_integral", "PDF normalized")}


def test_a_nan_in_a_pdf_is_reported_as_a_non_finite_pdf(photoz_partition):
    failure = only_failure(validate_table(with_pdf_value(photoz_partition, 10, 60, np.nan), "photoz_table"))
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        "expect_column_values_to_not_be_null", "pdf_min", 1)


def test_a_duplicate_id_is_named_with_its_two_rows(photoz_partition):
    duplicate = photoz_partition.column("id")[9].as_py()
    report = validate_table(with_value(photoz_partition, "id", 77_777, duplicate), "photoz_table")
    failure = only_failure(report)
    assert (failure.expectation, failure.column, failure.unexpected_count) == (
        "expect_column_values_to_be_unique", "id", 2)
    assert failure.examples == [duplicate, duplicate]
    assert f"2 of 150,000 rows unexpected (0.001333%); e.g. {duplicate}, {duplicate}" in failure.describe()


def test_a_row_count_that_is_not_preserved_fails(photoz_partition):
    report = validate_table(photoz_partition, "photoz_table", {"expected_rows": PARTITION_ROWS + 1})
    failure = only_failure(report)
    assert failure.expectation == "expect_table_row_count_to_equal" and failure.observed == PARTITION_ROWS
    assert "[value=150001]: observed 150000" in failure.describe()


@pytest.mark.parametrize(
    ("column", "value", "expectation"),
    [("mag_i_lsst", 55.0, BETWEEN), ("mag_g_lsst", 5.0, BETWEEN), ("mag_err_r_lsst", -0.1, BETWEEN),
     ("mag_z_lsst", np.nan, NOT_NULL)],
    ids=["mag-55", "mag-5", "negative-error", "nan-magnitude"],
)
def test_one_bad_photometry_value_fails_stage1(stage1_partition, column, value, expectation):
    report = validate_table(with_value(stage1_partition, column, 123_456, value), "stage1_partition")
    failure = only_failure(report)
    assert (failure.expectation, failure.column, failure.unexpected_count) == (expectation, column, 1)
    assert failure.example_ids == [stage1_partition.column("id")[123_456].as_py()]


def test_the_non_detection_sentinel_is_a_valid_magnitude(stage1_partition):
    assert validate_table(with_value(stage1_partition, "mag_i_lsst", 5, 99.0), "stage1_partition").success


def test_a_wrong_dtype_is_reported_with_the_observed_one(photoz_partition):
    widened = photoz_partition.set_column(photoz_partition.schema.get_field_index("zmean"), "zmean",
                                          photoz_partition.column("zmean").cast(pa.float64()))
    failure = only_failure(validate_table(widened, "photoz_table"))
    assert (failure.expectation, failure.column, failure.observed) == (
        "expect_column_values_to_be_of_type", "zmean", "float64")


def test_a_missing_column_is_reported_once(photoz_300):
    failure = only_failure(validate_table(photoz_300.drop_columns(["zmedian"]), "photoz_table"))
    assert (failure.expectation, failure.column) == ("expect_column_to_exist", "zmedian")
    assert "column missing (table has: id, ra, dec, zmode" in failure.describe()


def test_a_pdf_column_without_its_grid_is_reported(photoz_300):
    report = validate_table(photoz_300.replace_schema_metadata({}), "photoz_table")
    failure = only_failure(report)
    assert (failure.expectation, failure.column) == (PDF_STRUCTURE_EXPECTATION, "pdf")
    assert "no qp PDF metadata" in failure.error
    assert any("grid_min not given" in skipped for skipped in report.skipped)


def test_a_specz_catalog_is_checked_through_its_column_association():
    catalog = pa.table({"RA_deg": [10.0, 20.0, 30.0], "DEC_deg": [-5.0, 95.0, 0.0], "zspec": [0.1, 0.5, 1.2],
                        "id": [1, 2, 3]})
    association = {"RA": "RA_deg", "Dec": "DEC_deg", "z": "zspec"}
    report = validate_table(catalog, "specz_catalog", {"columns": association})
    failure = only_failure(report)
    assert (failure.column, failure.example_ids, failure.examples) == ("DEC_deg", [2], [95.0])


def test_a_training_set_without_redshifts_fails(stage1_300):
    report = validate_table(with_value(stage1_300, "redshift", 3, np.nan), "training_set")
    failure = only_failure(report)
    assert (failure.expectation, failure.column, failure.description) == (
        "expect_column_values_to_not_be_null", "redshift", "every training object has a true redshift")


def test_check_file_names_the_file(photoz_300, tmp_path):
    path = tmp_path / "part-00007.parquet"
    pq.write_table(with_value(photoz_300, "zmode", 0, np.nan), path)
    with pytest.raises(ValidationError, match=r"photoz_table validation of .*part-00007.parquet failed"):
        check_file(path, "photoz_table", {"expected_rows": photoz_300.num_rows})


def test_the_report_serializes_with_gx_results(photoz_300):
    report = validate_table(with_value(photoz_300, "zmode", 0, np.nan), "photoz_table")
    values = json.loads(json.dumps(report.to_dict(), allow_nan=True))
    assert values["success"] is False and values["failures"][0]["message"].startswith(
        "expect_column_values_to_not_be_null on column 'zmode'")
    run_by_gx = report.evaluated - 1  # the PDF column's structure is checked by our code
    assert values["gx_result"]["statistics"]["evaluated_expectations"] == run_by_gx
    assert len(values["gx_result"]["results"]) == run_by_gx


def test_unknown_suites_and_context_keys_are_refused(photoz_300):
    with pytest.raises(ValueError, match="unknown validation suite 'photoz'.*photoz_table"):
        validate_table(photoz_300, "photoz")
    with pytest.raises(ValueError, match="unknown context key\\(s\\) expected_row .*expected_rows"):
        validate_table(photoz_300, "photoz_table", {"expected_row": 300})


def test_a_malformed_suite_file_is_refused_with_its_entry(photoz_300, tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "name: broken\nexpectations:\n  - type: expect_column_values_to_be_between\n"
        "    kwargs: {column: zmode, min_value: 0, maxvalue: 3}\n")
    with pytest.raises(ValueError, match=r"broken.yaml: expectation 1 \(expect_column_values_to_be_betw"):
        validate_table(photoz_300, "broken", directory=tmp_path)
    (tmp_path / "typo.yaml").write_text("name: typo\nexpectations:\n  - type: expect_column_to_exist\n"
                                        "    kwarg: {column: id}\n")
    with pytest.raises(ValueError, match=r"typo.yaml: expectation 1 .*unknown key\(s\) kwarg"):
        validate_table(photoz_300, "typo", directory=tmp_path)
    (tmp_path / "pair.yaml").write_text(
        "name: pair\nexpectations:\n  - type: expect_column_pair_values_a_to_be_greater_than_b\n"
        "    ignore_values: [99]\n    kwargs: {column_A: zmedian, column_B: z_p16}\n")
    with pytest.raises(ValueError, match=r"pair.yaml: expectation 1 .*ignore_values takes a list of numbers, on an"):
        validate_table(photoz_300, "pair", directory=tmp_path)


def test_a_cdf8_partition_passes_and_a_broken_cdf_is_named(photoz_partition):
    """The default compact representation: a CDF that does not reach 1 fails 'PDF normalized'."""
    grid = pdf.grid_from_schema(photoz_partition.schema)
    values = photoz_partition.column("pdf").combine_chunks().flatten().to_numpy()
    pdfs = values.reshape(photoz_partition.num_rows, -1)
    steps = pdf.stored_values(pa.table({"pdf": pdf.encode(pdfs, grid, "cdf8")})).copy()
    compact = photoz_partition.set_column(photoz_partition.schema.get_field_index("pdf"), "pdf",
                                          pdf.encode(pdfs, grid, "cdf8"))
    compact = compact.replace_schema_metadata(pdf.qp_metadata(grid, "cdf8"))
    assert validate_table(compact, "photoz_table").success
    steps[4242, steps[4242].nonzero()[0][0]] -= 1
    broken = compact.set_column(compact.schema.get_field_index("pdf"), "pdf",
                                pa.FixedSizeListArray.from_arrays(pa.array(steps.ravel()), steps.shape[1]))
    failure = only_failure(validate_table(broken, "photoz_table"))
    assert failure.column == "pdf_integral" and failure.unexpected_count == 1
