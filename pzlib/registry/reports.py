"""Validation reports as products: the folder ``pzlib.validate.report.build_report`` writes, published as a
``validation_results`` product, and read back for display.

Layout of a report product: ``metrics.json`` (the science metrics, the GX summary and the provenance) is its
main file; ``gx_results.json`` and the PNG plots are auxiliary files under their own names. ``read_report``
finds them by name, whatever their role, so a report uploaded by hand with the same file names reads the same.
``replace_report`` puts a rebuilt report into the product it was published as (same id and names), as a
rerun of a pipeline does.

Examples
--------
>>> from pzlib.registry import Registry
>>> from pzlib.registry.registration import ProductFiles
>>> from pzlib.storage import open_storage
>>> registry = Registry("sqlite://")
>>> alice = registry.create_user("alice")
>>> files = ProductFiles(registry, open_storage("/tmp/pz-doc"), upload_limit_bytes=1 << 24)
>>> report_folder = "runs/dc2/fzboost/validation"
>>> product = publish_report(files, alice, report_folder, display_name="DC2 FlexZBoost")  # doctest: +SKIP
>>> read_report(files, alice, product.id).summary["metrics"]["point"]["zmode"]["sigma_nmad"]  # doctest: +SKIP
0.0196
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pzlib.registry.checks import UNSET, Unset
from pzlib.registry.errors import InvalidInput, NotFound
from pzlib.registry.records import Product, ProductFile, User
from pzlib.registry.registration import ProductFiles
from pzlib.registry.schema import FileRole, ProductStatus

REPORT_PRODUCT_TYPE = "validation_results"
"""Product type of a validation report."""

METRICS_FILE = "metrics.json"
"""Main file of a report: title, science metrics, GX summary and provenance."""

CHECKS_FILE = "gx_results.json"
"""The GX validation reports, one per checked table."""

PLOT_CAPTIONS = {
    "zphot_vs_zspec.png": "Photo-z against spec-z: density of the primary point estimate against the true redshift",
    "nz.png": "Stacked N(z) of the PDFs against the true N(z)",
    "pit.png": "PIT histogram with its KS, CvM and AD statistics",
    "metrics_vs_magnitude.png": "σ_NMAD, σ_IQR, bias and outlier rates per magnitude bin",
    "metrics_vs_redshift.png": "σ_NMAD, σ_IQR, bias and outlier rates per true-redshift bin",
}
"""Captions of the plots a report holds, in the order they are shown; other PNG files follow by name."""

_REPORT_SUFFIXES = (".json", ".png")


@dataclass(frozen=True)
class ReportPlot:
    """A plot of a report product."""

    file: ProductFile
    caption: str


@dataclass(frozen=True)
class StoredReport:
    """A validation report product, read back from storage."""

    product: Product
    summary: dict[str, Any]
    """``metrics.json``: ``title``, ``metrics`` (``ScienceMetrics.as_dict()``), ``validation``, ``provenance``."""
    checks: list[dict[str, Any]]
    """``gx_results.json``: one ``ValidationReport.to_dict()`` per checked table; empty when the file is absent."""
    plots: tuple[ReportPlot, ...]


def publish_report(
    files: ProductFiles,
    user: User,
    folder: str | os.PathLike,
    *,
    display_name: str,
    release: int | str | None = None,
    description: str = "",
    official: bool = False,
    pz_code: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> Product:
    """Publish a report folder as a ``validation_results`` product (all or nothing).

    Parameters
    ----------
    files : ProductFiles
        The registry and store to publish into.
    user : User
        The product's owner (an admin, for an official product).
    folder : path-like
        A folder written by ``pzlib.validate.report.build_report``; its JSON and PNG files are uploaded.
    display_name, release, description, official, pz_code, provenance
        As ``Registry.create_product``.

    Returns
    -------
    Product
        The published product.

    Raises
    ------
    InvalidInput
        The folder holds no ``metrics.json``, or the registry refuses a field; nothing is stored then.
    AlreadyExists
        ``user`` has a product named ``display_name``: see ``replace_report``.
    """
    report_files = _report_files(Path(folder))
    product = files.registry.create_product(
        user, display_name=display_name, product_type=REPORT_PRODUCT_TYPE, release=release,
        description=description, official=official, pz_code=pz_code, provenance=provenance,
    )
    try:
        _upload(files, user, product.id, report_files)
        return files.registry.update_product(user, product.id, status=ProductStatus.PUBLISHED)
    except BaseException:
        files.delete_product(user, product.id)
        raise


def replace_report(
    files: ProductFiles,
    user: User,
    product: int | str,
    folder: str | os.PathLike,
    *,
    description: str | Unset = UNSET,
    pz_code: str | None | Unset = UNSET,
    provenance: dict[str, Any] | None | Unset = UNSET,
) -> Product:
    """Replace the files of a report product by those of a report folder, keeping its id and names.

    What a pipeline does when it rebuilds the report of a run it published before: links to the product stay
    valid. The product is ``Registering`` while its files change and ``Published`` again at the end; when an
    upload fails it stays ``Registering`` (never shown published with half its files), and replacing again
    repairs it.

    Parameters
    ----------
    files, user, folder
        As ``publish_report``; ``user`` must be the product's owner or an admin.
    product : int or str
        Id or internal name of a ``validation_results`` product.
    description, pz_code, provenance
        New values; left ``UNSET``, they keep theirs.

    Returns
    -------
    Product
        The published product.

    Raises
    ------
    InvalidInput
        The folder holds no ``metrics.json``, or the product is not a validation report; nothing is changed then.
    NotFound, PermissionDenied
        The product is not visible to ``user``, or not ``user``'s to change.
    """
    report_files = _report_files(Path(folder))
    record = files.registry.get_product(user, product)
    if record.product_type_name != REPORT_PRODUCT_TYPE:
        raise InvalidInput(
            f"product {record.internal_name} is a {record.product_type_name} product, not a validation report"
        )
    files.registry.update_product(user, record.id, status=ProductStatus.REGISTERING, description=description,
                                  pz_code=pz_code, provenance=provenance)
    for stored in files.registry.list_files(user, record.id):
        files.delete_file(user, stored.id)
    _upload(files, user, record.id, report_files)
    return files.registry.update_product(user, record.id, status=ProductStatus.PUBLISHED)


def read_report(files: ProductFiles, user: User, product: int | str) -> StoredReport:
    """The metrics, GX results and plots of a validation report product.

    Raises
    ------
    NotFound
        No such product visible to ``user``, a product of another type, or one without ``metrics.json``.
    InvalidInput
        ``metrics.json`` or ``gx_results.json`` is not a JSON object (list) of the report's shape.
    """
    record = files.registry.get_product(user, product)
    if record.product_type_name != REPORT_PRODUCT_TYPE:
        raise NotFound(
            f"product {record.internal_name} is a {record.product_type_name} product, not a validation report"
        )
    by_name = {stored.name: stored for stored in files.registry.list_files(user, record.id)}
    if METRICS_FILE not in by_name:
        raise NotFound(f"product {record.internal_name} holds no {METRICS_FILE}, so it has no report to show")
    summary = _json_file(files, record, by_name[METRICS_FILE], dict)
    checks = _json_file(files, record, by_name[CHECKS_FILE], list) if CHECKS_FILE in by_name else []
    plots = tuple(
        ReportPlot(stored, PLOT_CAPTIONS.get(name, name))
        for name, stored in sorted(by_name.items(), key=lambda item: _plot_position(item[0]))
        if _is_plot(stored)
    )
    return StoredReport(record, summary, checks, plots)


def report_plot(files: ProductFiles, user: User, product: int | str, name: str) -> bytes:
    """The PNG bytes of the plot ``name`` of a report product.

    Raises
    ------
    NotFound
        No such product visible to ``user``, or no PNG file of that name in it.
    """
    record = files.registry.get_product(user, product)
    for stored in files.registry.list_files(user, record.id):
        if stored.name == name and _is_plot(stored):
            return files.storage.get(stored.storage_key)
    raise NotFound(f"product {record.internal_name} has no plot named {name!r}")


def _report_files(folder: Path) -> list[tuple[Path, FileRole]]:
    """The files of a report folder to upload: ``metrics.json`` (main) first, then the others in display order."""
    if not (folder / METRICS_FILE).is_file():
        raise InvalidInput(f"{folder} holds no {METRICS_FILE}: give the folder build_report wrote")
    auxiliary = sorted(
        (path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in _REPORT_SUFFIXES
         and path.name != METRICS_FILE),
        key=lambda path: _plot_position(path.name),
    )
    return [(folder / METRICS_FILE, FileRole.MAIN), *((path, FileRole.AUXILIARY) for path in auxiliary)]


def _upload(files: ProductFiles, user: User, product_id: int, report_files: list[tuple[Path, FileRole]]) -> None:
    for path, role in report_files:
        with open(path, "rb") as content:
            files.upload(user, product_id, name=path.name, content=content, role=role,
                         mime_type="image/png" if path.suffix.lower() == ".png" else "application/json")


def _is_plot(stored: ProductFile) -> bool:
    return not stored.is_directory and stored.name.lower().endswith(".png")


def _plot_position(name: str) -> tuple[int, str]:
    order = list(PLOT_CAPTIONS)
    return (order.index(name) if name in order else len(order), name)


def _json_file(files: ProductFiles, record: Product, stored: ProductFile, expected: type) -> Any:
    try:
        value = json.loads(files.storage.get(stored.storage_key))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(f"{stored.name} of product {record.internal_name} is not valid JSON: {error}") from error
    if not isinstance(value, expected):
        raise InvalidInput(
            f"{stored.name} of product {record.internal_name} holds a JSON {type(value).__name__}, "
            f"not the {expected.__name__} a validation report writes there"
        )
    return value


__all__ = [
    "CHECKS_FILE",
    "METRICS_FILE",
    "PLOT_CAPTIONS",
    "REPORT_PRODUCT_TYPE",
    "ReportPlot",
    "StoredReport",
    "publish_report",
    "read_report",
    "replace_report",
    "report_plot",
]
