"""pzlib.validate.felis_schema: the Felis schema of a real delivered photo-z catalog, checked by Felis itself.

The catalog is what ``pz run`` delivers: the 300-galaxy DC2 fixture through stages I–IV with BPZ (trained once
here, in a second or two), assembled as HATS. Its schema must pass Felis' data model and the ``felis validate``
command with every optional check on; a schema with a bad UCD, a missing description or a wrong primary key
is refused with the column named.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pzlib import pdf
from pzlib.catalog import open_catalog
from pzlib.compute.run import run
from pzlib.compute.spec import RunSpec
from pzlib.estimate import PHOTOZ_COLUMNS, EstimateConfig, PartitionEstimator, estimate_partition
from pzlib.validate.felis_schema import (
    FELIS_VALIDATE_FLAGS,
    check_felis_schema,
    photoz_felis_schema,
    write_felis_schema,
)

FELIS = Path(sys.executable).parent / "felis"
RELEASE = "dc2-300"


@pytest.fixture(scope="module")
def delivered_run(dc2_300, tmp_path_factory) -> tuple[RunSpec, dict]:
    """The fixture through all four stages with BPZ, as ``pz run`` does it."""
    spec = RunSpec(release=RELEASE, input=str(dc2_300), train=str(dc2_300),
                   output=str(tmp_path_factory.mktemp("felis_run")), estimators=["bpz"])
    return spec, run(spec, workers=1)


@pytest.fixture(scope="module")
def delivered_schema(delivered_run) -> pa.Schema:
    """The Arrow schema (with its PDF metadata) of the delivered HATS photo-z catalog."""
    _, results = delivered_run
    assert results["bpz"]["format"] == "hats"
    return open_catalog(results["bpz"]["catalog"]).schema


@pytest.fixture(scope="module")
def felis_dict(delivered_schema) -> dict:
    return photoz_felis_schema(RELEASE, "bpz", delivered_schema)


def run_felis_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FELIS, "validate", *FELIS_VALIDATE_FLAGS, str(path)], capture_output=True, text=True,
                          timeout=120)


def column(schema: dict, name: str) -> dict:
    [found] = [item for item in schema["tables"][0]["columns"] if item["name"] == name]
    return found


def test_the_delivered_catalog_is_described_column_for_column_and_felis_accepts_it(delivered_schema, felis_dict):
    validated = check_felis_schema(felis_dict)
    [table] = validated.tables
    assert validated.name == "pz_dc2_300" and RELEASE in validated.description
    assert table.name == "photoz_bpz" and table.primary_key == "#photoz_bpz.id"
    # every column of the real table, in its order, and nothing else (the HATS spatial index included)
    assert [item.name for item in table.columns] == delivered_schema.names
    assert "_healpix_29" in delivered_schema.names
    for item in table.columns:
        assert item.description == PHOTOZ_COLUMNS[item.name].description or item.name == "pdf"
        assert item.ivoa_ucd == PHOTOZ_COLUMNS[item.name].ucd
        assert item.ivoa_unit == PHOTOZ_COLUMNS[item.name].unit
    assert [item.nullable for item in table.columns if item.name == "id"] == [False]
    assert {item.name: item.datatype for item in table.columns if item.name != "pdf"} == {
        "id": "long", "ra": "double", "dec": "double", "zmode": "float", "zmean": "float", "zmedian": "float",
        "z_p16": "float", "z_p84": "float", "_healpix_29": "long"}


def test_the_pdf_column_is_fixed_size_binary_with_its_encoding_and_grid_described(delivered_schema, felis_dict):
    grid = pdf.grid_from_schema(delivered_schema)
    stored = column(felis_dict, "pdf")
    width = delivered_schema.field("pdf").type.byte_width
    assert width == grid.size
    assert (stored["datatype"], stored["length"], stored["votable:arraysize"]) == ("binary", width, str(width))
    assert stored["description"].startswith(PHOTOZ_COLUMNS["pdf"].description)
    assert "Stored as cdf8" in stored["description"]
    assert f"{grid.size} redshifts from {grid[0]:g} to {grid[-1]:g} in steps of 0.01" in stored["description"]


def test_the_written_yaml_passes_felis_validate_with_every_check(felis_dict, tmp_path):
    path = write_felis_schema(tmp_path / "photoz_bpz.yaml", felis_dict)
    assert yaml.safe_load(path.read_text()) == felis_dict
    assert check_felis_schema(path).tables[0].name == "photoz_bpz"
    result = run_felis_validate(path)
    assert result.returncode == 0, result.stderr
    assert "Successfully validated" in result.stderr


def test_an_interp32_table_stores_its_float32_pdfs_as_binary(delivered_run, tmp_path):
    spec, _ = delivered_run
    [partition] = sorted((spec.output_path / "stage1").glob("*.parquet"))
    config = EstimateConfig("bpz", pdf_storage="interp32")
    output = estimate_partition(partition, tmp_path / "interp32.parquet",
                                PartitionEstimator(spec.output_path / "models" / "bpz.pkl", config))
    arrow_schema = pq.read_schema(output)
    schema = photoz_felis_schema(RELEASE, "bpz", arrow_schema)
    check_felis_schema(schema)
    stored = column(schema, "pdf")
    grid_size = arrow_schema.field("pdf").type.list_size
    assert (stored["datatype"], stored["length"]) == ("binary", 4 * grid_size)
    assert f"{grid_size} little-endian float32 values" in stored["description"]
    assert [item["name"] for item in schema["tables"][0]["columns"]] == arrow_schema.names


def broken(felis_dict: dict, change) -> dict:
    schema = copy.deepcopy(felis_dict)
    change(schema["tables"][0])
    return schema


def set_column_field(name: str, key: str, value):
    def change(table):
        column_found = next(item for item in table["columns"] if item["name"] == name)
        if value is None:
            del column_found[key]
        else:
            column_found[key] = value
    return change


def primary_key_on(name: str):
    def change(table):
        table["primaryKey"] = f"#photoz_bpz.{name}"
        for item in table["columns"]:
            if item["name"] == name:
                item["nullable"] = False
    return change


@pytest.mark.parametrize(("change", "expected"), [
    (set_column_field("zmode", "ivoa:ucd", "src.redshift.photometric"),
     "column 'zmode', ivoa:ucd: Invalid IVOA UCD: Unknown word 'src.redshift.photometric'"),
    (set_column_field("z_p84", "description", None), "column 'z_p84': Description is required"),
    (set_column_field("zmean", "ivoa:ucd", None), "column 'zmean': no IVOA UCD"),
    (set_column_field("ra", "ivoa:unit", "degrees of arc"), "column 'ra': Invalid unit"),
    (primary_key_on("objectId"), "primary key '#photoz_bpz.objectId' is not a column of the table"),
    (primary_key_on("zmode"), "column 'zmode': the primary key must be an identifier"),
    (set_column_field("id", "nullable", True), "column 'id': a primary key column must be 'nullable: false'"),
], ids=["bad-ucd", "no-description", "no-ucd", "bad-unit", "key-not-a-column", "key-not-an-id", "key-nullable"])
def test_a_broken_schema_is_refused_naming_the_column(felis_dict, change, expected):
    with pytest.raises(ValueError, match="Felis schema is not valid") as refused:
        check_felis_schema(broken(felis_dict, change))
    assert expected in str(refused.value)


def test_felis_validate_itself_refuses_a_bad_ucd_and_a_missing_description(felis_dict, tmp_path):
    for change, expected in [(set_column_field("zmode", "ivoa:ucd", "src.redshift.photometric"),
                              "Unknown word 'src.redshift.photometric'"),
                             (set_column_field("z_p84", "description", None), "Description is required")]:
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken(felis_dict, change), sort_keys=False))
        result = run_felis_validate(path)
        assert result.returncode == 1 and expected in result.stderr, result.stderr
        with pytest.raises(ValueError, match="broken.yaml is not valid"):
            check_felis_schema(path)


def test_an_invalid_schema_is_never_written(felis_dict, tmp_path):
    with pytest.raises(ValueError, match="column 'zmode'"):
        write_felis_schema(tmp_path / "bad.yaml", broken(felis_dict, set_column_field("zmode", "ivoa:ucd", "z")))
    assert not (tmp_path / "bad.yaml").exists()


def test_a_column_that_is_not_a_photoz_tables_is_refused_by_name(delivered_schema):
    with_partition_key = delivered_schema.append(pa.field("Norder", pa.int8()))
    with pytest.raises(ValueError, match="Norder are not columns of a photo-z table"):
        photoz_felis_schema(RELEASE, "bpz", with_partition_key)
    with pytest.raises(ValueError, match="no qp PDF metadata"):
        photoz_felis_schema(RELEASE, "bpz", delivered_schema.remove_metadata())
    with pytest.raises(ValueError, match="no 'id' column"):
        photoz_felis_schema(RELEASE, "bpz", delivered_schema.remove(0))


def test_an_unreadable_file_is_named_without_its_folder(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("tables: [unclosed")
    with pytest.raises(ValueError, match=r"^Felis schema schema.yaml: not YAML") as refused:
        check_felis_schema(path)
    assert str(tmp_path) not in str(refused.value)
