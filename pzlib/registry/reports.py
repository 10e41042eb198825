"""Validation reports as products: the folder ``pzlib.validate.report.build_report`` writes, published as a
``validation_results`` product, and read back for display.

Layout of a report product: ``metrics.json`` (the science metrics, the GX summary and the provenance) is its
main file; ``gx_results.json`` and the PNG plots are auxiliary files under their own names. ``read_report``
finds them by name, whatever their role, so a report uploaded by hand with the same file names reads the same.
``replace_report`` puts a rebuilt report into the product it was published as (same id and names), as a
rerun of a pipeline does.

Anyone may upload a ``validation_results`` product by hand, so ``read_report`` trusts nothing in its JSON: it
keeps the values of the shapes a report page shows (numbers that are finite, text, lists cut to
``REPORT_ROWS`` rows) and lists what it left out in ``StoredReport.notes``, which the page shows. A
``metrics.json`` that is not a JSON object, or larger than ``REPORT_JSON_LIMIT_BYTES``, is no report.

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
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pzlib.registry.checks import MAX_COUNT, UNSET, Unset, clipped, shown
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

REPORT_JSON_LIMIT_BYTES = 8 * 1024 * 1024
"""Largest ``metrics.json`` or ``gx_results.json`` read for a report page; the ones pzlib writes hold KiBs."""

REPORT_ROWS = 200
"""Most rows of a list (bins, point estimates, checks, failures) a report page shows."""

_REPORT_SUFFIXES = (".json", ".png")
_POINT_FIELDS = ("n_objects", "sigma_nmad", "sigma_iqr", "bias", "outlier_rate", "outlier_rate_rail")
_BIN_FIELDS = ("low", "high", *_POINT_FIELDS)
_PIT_FIELDS = ("ks", "ks_pvalue", "cvm", "cvm_pvalue", "ad", "ad_pvalue", "outlier_rate")
_NZ_FIELDS = ("mean_z_stacked", "mean_z_true", "delta_mean_z", "ks_distance")
_TEXT_LENGTH = 1000
_PROVENANCE_DEPTH = 16
_NOTES = 20


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
    """``metrics.json``: ``title``, ``metrics`` (``ScienceMetrics.as_dict()``), ``validation``, ``provenance``,
    with only the values of the types a report has."""
    checks: list[dict[str, Any]]
    """``gx_results.json``: one ``ValidationReport.to_dict()`` per checked table; empty when the file is absent."""
    plots: tuple[ReportPlot, ...]
    notes: tuple[str, ...] = ()
    """What the JSON files hold that is not of a report's shape and is not shown."""


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

    Values of another type than a report's (text for a number, ``"NaN"``, an object for a list …) are left
    out and named in ``notes``, as is an unreadable ``gx_results.json``.

    Raises
    ------
    NotFound
        No such product visible to ``user``, a product of another type, or one without ``metrics.json``.
    InvalidInput
        ``metrics.json`` is not a JSON object, or larger than ``REPORT_JSON_LIMIT_BYTES``.
    """
    record = files.registry.get_product(user, product)
    if record.product_type_name != REPORT_PRODUCT_TYPE:
        raise NotFound(
            f"product {record.internal_name} is a {record.product_type_name} product, not a validation report"
        )
    by_name = {stored.name: stored for stored in files.registry.list_files(user, record.id)}
    if METRICS_FILE not in by_name:
        raise NotFound(f"product {record.internal_name} holds no {METRICS_FILE}, so it has no report to show")
    reader = _ReportReader()
    summary = reader.summary(_json_file(files, record, by_name[METRICS_FILE], dict))
    checks: list[dict[str, Any]] = []
    if CHECKS_FILE in by_name:
        try:
            checks = reader.checks(_json_file(files, record, by_name[CHECKS_FILE], list), CHECKS_FILE)
        except InvalidInput as error:
            reader.note(CHECKS_FILE, str(error))
    plots = tuple(
        ReportPlot(stored, PLOT_CAPTIONS.get(name, name))
        for name, stored in sorted(by_name.items(), key=lambda item: _plot_position(item[0]))
        if _is_plot(stored)
    )
    return StoredReport(record, summary, checks, plots, reader.shown_notes())


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
    size = files.storage.size(stored.storage_key)
    if size > REPORT_JSON_LIMIT_BYTES:
        raise InvalidInput(
            f"{stored.name} of product {record.internal_name} has {size} bytes; a report's is at most "
            f"{REPORT_JSON_LIMIT_BYTES}"
        )
    try:
        value = json.loads(files.storage.get(stored.storage_key))
    except RecursionError:
        raise InvalidInput(f"{stored.name} of product {record.internal_name} nests too deeply") from None
    except ValueError as error:  # not JSON, not UTF-8, or an integer of thousands of digits
        raise InvalidInput(f"{stored.name} of product {record.internal_name} is not valid JSON: {error}") from None
    if not isinstance(value, expected):
        raise InvalidInput(
            f"{stored.name} of product {record.internal_name} holds a JSON {type(value).__name__}, "
            f"not the {expected.__name__} a validation report writes there"
        )
    return value


@dataclass
class _ReportReader:
    """Keeps what a report's JSON holds in the shapes the page shows, and notes what it leaves out.

    Each value the page shows is replaced by its checked value (``None`` when it is not of its type, a list
    cut to ``REPORT_ROWS`` rows); the values the page does not show are kept as they are, so a report pzlib
    wrote reads back unchanged.
    """

    notes: list[str] = field(default_factory=list)

    def note(self, where: str, problem: str) -> None:
        self.notes.append(f"{where}: {problem}")

    def shown_notes(self) -> tuple[str, ...]:
        if len(self.notes) <= _NOTES:
            return tuple(self.notes)
        return (*self.notes[:_NOTES], f"… and {len(self.notes) - _NOTES} more values that are not shown")

    def summary(self, raw: dict[str, Any]) -> dict[str, Any]:
        """``metrics.json`` as the page reads it."""
        checkers = {"title": self.text, "metrics": self.metrics, "validation": self.checks,
                    "provenance": self.provenance}
        return self.checked(raw, checkers, "")

    def metrics(self, raw: Any, where: str) -> dict[str, Any]:
        """``ScienceMetrics.as_dict()``."""
        return self.checked(self.mapping(raw, where), {
            **dict.fromkeys(("n_objects", "n_photoz", "cde_loss"), self.number),
            **dict.fromkeys(("primary", "magnitude_column"), self.text),
            "point": self.estimates,
            "pit": partial(self.numbers, names=_PIT_FIELDS),
            "nz": partial(self.numbers, names=_NZ_FIELDS),
            **dict.fromkeys(("by_magnitude", "by_redshift"), self.bins),
        }, where)

    def estimates(self, raw: Any, where: str) -> dict[str, Any]:
        """Point metrics by estimate name."""
        estimates = self.cut(list(self.mapping(raw, where).items()), where)
        return {
            self.text(name, where) or "?": self.numbers(values, f"{where}.{clipped(name, 40)}", _POINT_FIELDS)
            for name, values in estimates
        }

    def bins(self, raw: Any, where: str) -> list[dict[str, Any]]:
        """Point metrics per bin."""
        return [self.numbers(row, f"{where}[{index}]", _BIN_FIELDS) for index, row in self.rows(raw, where)]

    def checks(self, raw: Any, where: str) -> list[dict[str, Any]]:
        """GX results: ``gx_results.json``, or the ``validation`` summary of ``metrics.json``."""
        checkers = {"suite": self.text, "source": self.text, "n_rows": self.number, "evaluated": self.number,
                    "success": self.flag, "failures": self.failures}
        return self.each(raw, checkers, where)

    def failures(self, raw: Any, where: str) -> list[dict[str, Any]] | int | float | None:
        """The failures of a check, or their count."""
        if not isinstance(raw, list):
            return self.number(raw, where)
        return self.each(raw, {"message": self.text, "expectation": self.text}, where)

    def numbers(self, raw: Any, where: str, names: tuple[str, ...]) -> dict[str, Any]:
        """An object whose values ``names`` are numbers."""
        return self.checked(self.mapping(raw, where), dict.fromkeys(names, self.number), where)

    def each(self, raw: Any, checkers: dict[str, Callable[[Any, str], Any]], where: str) -> list[dict[str, Any]]:
        """The objects of a list, each ``checked``."""
        return [self.checked(item, checkers, f"{where}[{index}]") for index, item in self.rows(raw, where)]

    def checked(self, values: dict[str, Any], checkers: dict[str, Callable[[Any, str], Any]], where: str) -> dict:
        """``values`` with each value ``checkers`` name replaced by what its checker keeps of it."""
        return {
            **values,
            **{name: check(values[name], f"{where}.{name}" if where else name)
               for name, check in checkers.items() if name in values},
        }

    def number(self, value: Any, where: str) -> int | float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > MAX_COUNT \
                or not math.isfinite(value):
            self.note(where, f"{shown(value)} is not a number")
            return None
        return value

    def text(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.note(where, f"{shown(value)} is not text")
            return None
        if len(value) > _TEXT_LENGTH:
            self.note(where, f"{len(value)} characters, cut to {_TEXT_LENGTH}")
        cut = clipped(value, _TEXT_LENGTH)
        printable = cut.encode("utf-8", "replace").decode("utf-8")
        if printable != cut:
            self.note(where, "holds lone surrogates (such as \"\\ud800\"), which are no text: shown as ?")
        return printable

    def flag(self, value: Any, where: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        self.note(where, f"{shown(value)} is not true or false")
        return None

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None or isinstance(value, dict):
            return value or {}
        self.note(where, f"a JSON {type(value).__name__}, not an object")
        return {}

    def rows(self, value: Any, where: str) -> list[tuple[int, dict[str, Any]]]:
        """The objects of a list (cut to ``REPORT_ROWS``), with their positions."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.note(where, f"a JSON {type(value).__name__}, not a list")
            return []
        rows = []
        for index, row in enumerate(self.cut(value, where)):
            if isinstance(row, dict):
                rows.append((index, row))
            else:
                self.note(f"{where}[{index}]", f"a JSON {type(row).__name__}, not an object")
        return rows

    def cut(self, items: list[Any], where: str) -> list[Any]:
        if len(items) > REPORT_ROWS:
            self.note(where, f"{len(items)} entries; the first {REPORT_ROWS} are shown")
        return items[:REPORT_ROWS]

    def provenance(self, value: Any, where: str) -> Any:
        """Any JSON of a sane depth (the page prints it as JSON)."""
        pending = [(value, 0)]
        while pending:
            item, depth = pending.pop()
            if isinstance(item, dict | list):
                if depth >= _PROVENANCE_DEPTH:
                    self.note(where, f"nests deeper than {_PROVENANCE_DEPTH} levels")
                    return None
                pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
        return value


__all__ = [
    "CHECKS_FILE",
    "METRICS_FILE",
    "PLOT_CAPTIONS",
    "REPORT_JSON_LIMIT_BYTES",
    "REPORT_PRODUCT_TYPE",
    "REPORT_ROWS",
    "ReportPlot",
    "StoredReport",
    "publish_report",
    "read_report",
    "replace_report",
    "report_plot",
]
