"""pzlib.compute.publish: the publication of the validation reports in the PZ Server registry."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures.reports import PNG_SIGNATURE

from pzlib.compute.publish import PLATFORM_USER, check_publishing, publish_validation
from pzlib.registry import AlreadyExists, ProductFilter, ProductStatus
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import PLOT_CAPTIONS, read_report, report_plot
from pzlib.storage import open_storage


@pytest.fixture
def files(registry, tmp_path) -> ProductFiles:
    """A PZ Server registry (SQLite and Postgres) and store to publish into."""
    return ProductFiles(registry, open_storage(str(tmp_path / "store")), upload_limit_bytes=1 << 24)


def report_products(files: ProductFiles, owner) -> list:
    filters = ProductFilter(owner=(owner.id,), product_type=("validation_results",))
    return list(files.registry.list_products(owner, filters).results)


def test_stage_four_publishes_each_report_once(dc2_run, files):
    spec, results = dc2_run
    first = publish_validation(spec, "fzboost", files, triggered_by="alice", run_id="manual__1")
    assert first["owner"] == PLATFORM_USER and not first["replaced"]
    owner = files.registry.get_user(PLATFORM_USER)
    product = files.registry.get_product(owner, first["product_id"])
    assert (product.product_type_name, product.status, product.display_name, product.pz_code) == (
        "validation_results", ProductStatus.PUBLISHED, "dc2-test fzboost validation", "fzboost")
    assert product.provenance["params"] == spec.to_params()
    assert product.provenance["triggered_by"] == "alice" and product.provenance["dag_run_id"] == "manual__1"

    report = read_report(files, owner, product.id)
    assert report.summary["metrics"]["point"]["zmode"]["sigma_nmad"] == pytest.approx(
        results["fzboost"]["metrics"]["sigma_nmad"], rel=1e-6)
    assert [check["suite"] for check in report.checks] == ["photoz_table"]
    assert [plot.file.name for plot in report.plots] == list(PLOT_CAPTIONS)
    assert report_plot(files, owner, product.id, "pit.png").startswith(PNG_SIGNATURE)
    files_before = [(stored.name, stored.size) for stored in files.registry.list_files(owner, product.id)]

    # Clearing stage IV (or rerunning the release) replaces the product's files; it never adds a product.
    again = publish_validation(spec, "fzboost", files, run_id="manual__2")
    assert (again["product_id"], again["internal_name"], again["replaced"]) == (product.id, product.internal_name,
                                                                                 True)
    assert [stored.id for stored in report_products(files, owner)] == [product.id]
    republished = files.registry.get_product(owner, product.id)
    assert republished.status is ProductStatus.PUBLISHED and republished.provenance["dag_run_id"] == "manual__2"
    assert [(stored.name, stored.size) for stored in files.registry.list_files(owner, product.id)] == files_before

    bpz = publish_validation(spec, "bpz", files)
    assert bpz["display_name"] == "dc2-test bpz validation" and len(report_products(files, owner)) == 2


def test_publishing_is_optional_and_owned_by_an_existing_user(dc2_run, files, alice):
    spec, _ = dc2_run
    assert publish_validation(dataclasses.replace(spec, publish=False), "bpz", files) is None
    assert check_publishing(dataclasses.replace(spec, publish=False), files) is None
    assert files.registry.list_products(alice).count == 0

    nobody = dataclasses.replace(spec, owner="nobody")
    with pytest.raises(ValueError, match="owner: the PZ Server has no user 'nobody'"):
        check_publishing(nobody, files)
    with pytest.raises(ValueError, match="owner: the PZ Server has no user 'nobody'"):
        publish_validation(nobody, "bpz", files)

    mine = dataclasses.replace(spec, owner="alice")
    assert check_publishing(mine, files) == "alice"
    published = publish_validation(mine, "bpz", files)
    assert published["owner"] == "alice" and [p.id for p in report_products(files, alice)] == [published["product_id"]]


def test_a_product_of_the_same_name_that_the_run_did_not_make_is_kept(dc2_run, files, alice):
    spec, _ = dc2_run
    mine = dataclasses.replace(spec, owner="alice")
    own = files.registry.create_product(alice, display_name="DC2-TEST bpz Validation", product_type="training_set")
    with pytest.raises(AlreadyExists, match=f"named 'DC2-TEST bpz Validation' \\({own.internal_name}\\)"):
        publish_validation(mine, "bpz", files)
    assert [p.id for p in files.registry.list_products(alice).results] == [own.id]
