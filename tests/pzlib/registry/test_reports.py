"""pzlib.registry.reports: a validation report folder published as a product and read back, on SQLite and on
Postgres; all or nothing when a file is refused; a rebuilt report replacing the files of its product."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.reports import PLOT_NAMES, PNG_SIGNATURE, REPORT_TITLE, write_report_folder
from sqlalchemy import func, select

from pzlib.registry import FileRole, InvalidInput, NotFound, PermissionDenied, ProductStatus, Registry, schema
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import PLOT_CAPTIONS, publish_report, read_report, replace_report, report_plot
from pzlib.storage import open_storage


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_folder(tmp_path_factory.mktemp("report") / "validation")


@pytest.fixture
def files(registry: Registry, tmp_path: Path) -> ProductFiles:
    return ProductFiles(registry, open_storage(str(tmp_path / "store")), upload_limit_bytes=1 << 20)


def stored_rows(files: ProductFiles) -> tuple[dict[str, int], int]:
    with files.registry.engine.connect() as connection:
        rows = {table.name: connection.scalar(select(func.count()).select_from(table))
                for table in (schema.products, schema.product_files)}
    return rows, len(files.storage.list_objects())


def test_a_report_folder_is_published_and_read_back(files, alice, report_folder):
    product = publish_report(files, alice, report_folder, display_name="DC2 FlexZBoost validation",
                             description="Validation of the DC2 run", pz_code="fzboost")
    assert (product.product_type_name, product.status) == ("validation_results", ProductStatus.PUBLISHED)
    stored = files.registry.list_files(alice, product.id)
    assert [(item.name, item.role) for item in stored][0] == ("metrics.json", FileRole.MAIN)
    assert {item.name for item in stored} == {"metrics.json", "gx_results.json", *PLOT_NAMES}

    report = read_report(files, alice, product.internal_name)
    assert report.product.id == product.id
    assert report.summary == json.loads((report_folder / "metrics.json").read_text())
    assert report.summary["title"] == REPORT_TITLE
    assert [check["suite"] for check in report.checks] == ["photoz_table", "stage1_partition"]
    assert [plot.file.name for plot in report.plots] == list(PLOT_CAPTIONS)
    assert report.plots[2].caption == PLOT_CAPTIONS["pit.png"]

    image = report_plot(files, alice, product.id, "nz.png")
    assert image.startswith(PNG_SIGNATURE) and image == (report_folder / "nz.png").read_bytes()


def test_a_folder_without_metrics_or_with_a_refused_file_stores_nothing(files, alice, report_folder, tmp_path):
    before = stored_rows(files)
    with pytest.raises(InvalidInput, match="holds no metrics.json"):
        publish_report(files, alice, tmp_path, display_name="Empty")
    small = ProductFiles(files.registry, files.storage, upload_limit_bytes=10_000)  # the plots are larger
    with pytest.raises(InvalidInput, match="larger than the upload limit"):
        publish_report(small, alice, report_folder, display_name="Too large")
    assert stored_rows(files) == before


def test_only_a_report_product_has_a_report(files, alice, bob, report_folder):
    catalog = files.registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    with pytest.raises(NotFound, match="not a validation report"):
        read_report(files, alice, catalog.id)
    empty = files.registry.create_product(alice, display_name="No files", product_type="validation_results")
    with pytest.raises(NotFound, match="holds no metrics.json"):
        read_report(files, alice, empty.id)
    report = publish_report(files, alice, report_folder, display_name="Report")
    with pytest.raises(NotFound, match="no plot named 'metrics.json'"):
        report_plot(files, alice, report.id, "metrics.json")


def test_a_report_in_a_restricted_release_is_hidden_from_outsiders(files, admin, alice, bob, report_folder):
    files.registry.create_release("dp1", "Data Preview 1", access_groups=["lsst"])
    report = publish_report(files, admin, report_folder, display_name="DP1 validation", release="dp1", official=True)
    assert read_report(files, alice, report.id).product.official
    with pytest.raises(NotFound):
        read_report(files, bob, report.id)
    with pytest.raises(NotFound):
        report_plot(files, bob, report.id, "pit.png")


def test_a_metrics_file_that_is_not_a_report_is_refused(files, alice, tmp_path):
    (tmp_path / "metrics.json").write_text("[1, 2, 3]")
    product = publish_report(files, alice, tmp_path, display_name="Odd report")
    with pytest.raises(InvalidInput, match="holds a JSON list, not the dict"):
        read_report(files, alice, product.id)


def test_a_rebuilt_report_replaces_the_files_of_its_product(files, alice, bob, report_folder, tmp_path):
    product = publish_report(files, alice, report_folder, display_name="Run validation", provenance={"run": 1})
    rebuilt = write_report_folder(tmp_path / "rebuilt")
    summary = json.loads((rebuilt / "metrics.json").read_text())
    summary["title"] = "rebuilt"
    (rebuilt / "metrics.json").write_text(json.dumps(summary))
    (rebuilt / "nz.png").unlink()
    before = stored_rows(files)

    replaced = replace_report(files, alice, product.internal_name, rebuilt, provenance={"run": 2})
    assert (replaced.id, replaced.internal_name, replaced.status) == (product.id, product.internal_name,
                                                                       ProductStatus.PUBLISHED)
    assert replaced.provenance == {"run": 2}
    report = read_report(files, alice, product.id)
    assert report.summary["title"] == "rebuilt"
    assert "nz.png" not in [plot.file.name for plot in report.plots]
    rows, objects = stored_rows(files)
    assert rows["products"] == before[0]["products"] and rows["product_files"] == before[0]["product_files"] - 1
    assert objects < before[1]  # the old contents are gone from the store, the removed plot with them


def test_only_the_owner_replaces_a_report_and_only_a_report(files, alice, bob, report_folder):
    report = publish_report(files, alice, report_folder, display_name="Run validation")
    with pytest.raises(PermissionDenied):
        replace_report(files, bob, report.id, report_folder)
    catalog = files.registry.create_product(alice, display_name="Spec-z", product_type="redshift_catalog")
    with pytest.raises(InvalidInput, match="not a validation report"):
        replace_report(files, alice, catalog.id, report_folder)
    assert read_report(files, alice, report.id).product.status is ProductStatus.PUBLISHED
