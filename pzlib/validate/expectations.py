"""Great Expectations checks of every product and stage output, with the suites kept as data.

A suite is a YAML file in ``include/expectations/`` (one per product type or stage output:
``stage1_partition``, ``photoz_table``, ``training_set``, ``specz_catalog``) listing Great Expectations 1.x
expectations by their snake-case type and kwargs, plus what our code adds: parameters filled from the
caller's context (``$name``), loops over bands or columns (``for_each``), optional columns, values an
expectation leaves unchecked (``ignore_values``, e.g. the non-detection sentinel), a role → column mapping,
and derived columns that numpy computes from list columns (a PDF's minimum and integral) so GX checks them
like any other. :func:`validate_table` expands a suite against one table, runs it with GX
(ephemeral context, pandas data source, one whole-dataframe batch definition, built once per process) and
returns a :class:`ValidationReport` that names, for each failing expectation, its column, unexpected count
and a few example values with their object ids. :func:`check_table` and :func:`check_file` raise
:class:`ValidationError` whose message is that list: it is what a failed Airflow task logs.

Kept fast for production partitions: only the columns a suite uses are converted to pandas (the PDF list
column never is), float32 columns are compared to bounds as float64 (GX's vectorized path; float32 goes
value by value through Python), ignored values are masked as nulls rather than filtered out by a GX row
condition (which filters the whole frame once per metric), the PDF summaries of ``cdf8`` tables are integer
sums, and GX is asked for its basic result (counts and a few values: a third fewer metrics to plan and compute
than a summary), then, only for the expectations that failed, for a summary result, whose row indices give the
example ids (never for a complete result: its per-row id lists cost seconds when many rows fail).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from pzlib.catalog import open_catalog
from pzlib.pdf import (
    PDF_COLUMN,
    QP_METADATA_KEY,
    array_values,
    grid_from_schema,
    is_pdf_type,
    pdf_width,
    storage_metadata,
)
from pzlib.resources import include_path

SUITES_DIR = include_path("expectations")
"""Folder of the suite definitions (``<name>.yaml``)."""

EXAMPLE_COUNT = 5
"""Example values (and their ids) reported per failing expectation."""

PDF_STRUCTURE_EXPECTATION = "expect_pdf_column_on_qp_grid"
"""Name under which a PDF column that cannot be read as qp ``interp`` PDFs on the table's grid is reported."""

_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")
_SUITE_KEYS = {"name", "description", "parameters", "derived_columns", "expectations"}
_EXPECTATION_KEYS = {"type", "kwargs", "description", "for_each", "optional", "ignore_values"}
_DTYPE_EXPECTATIONS = {"expect_column_to_exist", "expect_column_values_to_be_of_type",
                       "expect_column_values_to_be_in_type_list"}
_PDF_BLOCK_ROWS = 16_384
_BACKTICKED = re.compile(r"`([^`]+)`")
_PARAMETER = re.compile(r"^\$(\w+)$")


class ValidationError(ValueError):
    """A table failed its suite; the message lists each failing expectation with counts and examples."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.message())


@dataclass(frozen=True)
class ExpectationFailure:
    """One expectation that did not hold."""

    expectation: str
    """GX expectation type, e.g. ``expect_column_values_to_be_between``."""
    column: str | None
    """Column checked (``"A, B"`` for a column pair); None for a table-level expectation."""
    parameters: dict
    """The expectation's kwargs (bounds, type, row condition…) as run."""
    description: str | None = None
    """What the expectation means, from the suite file."""
    unexpected_count: int | None = None
    """Rows that failed it (None for table-level expectations and errors)."""
    element_count: int | None = None
    """Rows it was evaluated on."""
    examples: list = field(default_factory=list)
    """A few unexpected values."""
    example_ids: list = field(default_factory=list)
    """Object ids of the rows holding ``examples`` (empty when the table has no id column)."""
    observed: object = None
    """Observed value of a table-level or dtype expectation (row count, dtype)."""
    error: str | None = None
    """Why the expectation could not be evaluated (missing column, unreadable PDF column…)."""
    suite_entry: int | None = None
    """Position (from 1) of the expectation's entry in the suite file."""

    def describe(self) -> str:
        """One line: expectation, column, parameters, then counts and examples (or observed value, error)."""
        shown = {name: _condition_text(value) if name == "row_condition" else value
                 for name, value in self.parameters.items()
                 if name not in _COLUMN_KWARGS and name != "condition_parser"}
        parameters = ", ".join(f"{name}={_short(value)}" for name, value in shown.items())
        head = self.expectation
        if self.description:
            head += f" ({self.description})"
        if self.column:
            head += f" on column '{self.column}'"
        if parameters:
            head += f" [{parameters}]"
        if self.error:
            return f"{head}: {self.error}"
        if self.unexpected_count is not None:
            total = self.element_count or 0
            share = f" ({100 * self.unexpected_count / total:.4g}%)" if total else ""
            line = f"{head}: {self.unexpected_count:,} of {total:,} rows unexpected{share}"
            if self.examples:
                line += "; e.g. " + ", ".join(self._example_texts())
            return line
        return f"{head}: observed {_short(self.observed)}"

    def _example_texts(self) -> list[str]:
        if not self.example_ids or self.example_ids == self.examples:  # the id column itself
            return [_short(value) for value in self.examples]
        return [f"id {_short(object_id)}: {_short(value)}"
                for object_id, value in zip(self.example_ids, self.examples, strict=False)]


@dataclass
class ValidationReport:
    """Outcome of one suite on one table."""

    suite: str
    """Suite name (``include/expectations/<suite>.yaml``)."""
    success: bool
    """True when every evaluated expectation held."""
    n_rows: int
    """Rows of the table."""
    evaluated: int
    """Expectations evaluated."""
    failures: list[ExpectationFailure]
    """The expectations that failed, in suite order."""
    skipped: list[str]
    """Expectations not evaluated, each with the reason (optional column absent, parameter not given)."""
    seconds: float
    """Wall time of the validation."""
    source: str | None = None
    """File (or other name) the table came from, for messages."""
    gx_result: dict = field(default_factory=dict, repr=False)
    """GX's own suite validation result, as JSON."""

    def message(self) -> str:
        """The failure list as a log: one line per failing expectation with counts and examples."""
        where = f" of {self.source}" if self.source else ""
        if self.success:
            return (f"{self.suite} validation{where} passed: {self.evaluated} expectations "
                    f"on {self.n_rows:,} rows")
        lines = [f"{self.suite} validation{where} failed: {len(self.failures)} of {self.evaluated} "
                 f"expectations on {self.n_rows:,} rows"]
        lines += [f"  - {failure.describe()}" for failure in self.failures]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready form (GX's own result included), as stored in a report's ``gx_results.json``."""
        values = asdict(self)
        values["failures"] = [{**asdict(failure), "message": failure.describe()} for failure in self.failures]
        return json.loads(json.dumps(values, default=_json_default))


@dataclass(frozen=True)
class SuiteDefinition:
    """A suite as written in its YAML file, before expansion against a table."""

    name: str
    path: Path
    description: str
    parameters: dict
    """Default parameter values; None means the caller's context must give it."""
    derived_columns: dict[str, str]
    """Derived column name → what it holds."""
    expectations: list[dict]


def available_suites(directory: str | Path | None = None) -> list[str]:
    """Names of the suites defined in ``directory`` (default :data:`SUITES_DIR`)."""
    return sorted(path.stem for path in Path(directory or SUITES_DIR).glob("*.yaml"))


def load_suite(name: str, directory: str | Path | None = None) -> SuiteDefinition:
    """The suite ``name`` read from ``directory`` (default :data:`SUITES_DIR`).

    Raises
    ------
    ValueError
        Unknown suite, or a suite file that is not well formed (names the file and the entry).
    """
    path = Path(directory or SUITES_DIR) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_suites(directory))
        raise ValueError(f"unknown validation suite {name!r} (known: {known})")
    return _load_suite_file(path, path.stat().st_mtime_ns)


@cache
def _load_suite_file(path: Path, _mtime_ns: int) -> SuiteDefinition:
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ValueError(f"{path}: a suite needs a list of 'expectations'")
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(_SUITE_KEYS))})")
    if raw.get("name", path.stem) != path.stem:
        raise ValueError(f"{path}: name {raw['name']!r} differs from the file name")
    derived = dict(raw.get("derived_columns") or {})
    unknown_derived = set(derived) - set(_DERIVED_COLUMNS)
    if unknown_derived:
        raise ValueError(f"{path}: no derivation for column(s) {', '.join(sorted(unknown_derived))} "
                         f"(derivable: {', '.join(_DERIVED_COLUMNS)})")
    for position, entry in enumerate(raw["expectations"], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise ValueError(f"{path}: expectation {position} needs a 'type'")
        unknown = set(entry) - _EXPECTATION_KEYS
        if unknown:
            raise ValueError(f"{path}: expectation {position} ({entry['type']}) has unknown key(s) "
                             f"{', '.join(sorted(unknown))} (known: {', '.join(sorted(_EXPECTATION_KEYS))})")
    return SuiteDefinition(name=path.stem, path=path, description=str(raw.get("description", "")).strip(),
                           parameters=dict(raw.get("parameters") or {}), derived_columns=derived,
                           expectations=list(raw["expectations"]))


def validate_table(table: pa.Table, suite: str, context: dict | None = None, source: str | None = None,
                   directory: str | Path | None = None) -> ValidationReport:
    """Run suite ``suite`` on ``table`` and report every failing expectation.

    Parameters
    ----------
    table : pyarrow.Table
        The product or stage output (a photo-z table keeps its qp metadata: the PDF grid comes from it).
    suite : str
        Suite name: ``stage1_partition``, ``photoz_table``, ``training_set``, ``specz_catalog``…
    context : dict, optional
        Values of the suite's parameters (``expected_rows``, ``bands``, …) and ``columns``, a mapping from the
        suite's column roles to the table's column names (e.g. ``{"z": "z_spec"}``).
    source : str, optional
        Where the table came from (a file path), named in messages.
    directory : path-like, optional
        Folder of suite files (default :data:`SUITES_DIR`).

    Returns
    -------
    ValidationReport

    Raises
    ------
    ValueError
        Unknown suite or context key, or a suite that does not expand (a bad kwarg for its expectation).

    Examples
    --------
    >>> report = validate_table(pq.read_table("part-00000.parquet"), "photoz_table",  # doctest: +SKIP
    ...                         {"expected_rows": 150_000})
    >>> report.success, [failure.column for failure in report.failures]  # doctest: +SKIP
    (False, ['zmode'])
    """
    started = time.perf_counter()
    definition = load_suite(suite, directory)
    parameters, columns = _context_values(definition, context or {}, table.schema)
    plan = _expand(definition, parameters, columns, set(table.column_names))
    failures: list[ExpectationFailure] = []
    derived: dict[str, np.ndarray] = {}
    wanted_derived = plan.derived_columns_used()
    if wanted_derived:
        try:
            derived = _derive_columns(table, wanted_derived, columns.column(PDF_COLUMN))
        except _PdfColumnProblem as problem:
            failures.append(ExpectationFailure(PDF_STRUCTURE_EXPECTATION, problem.column, {},
                                               "PDFs readable as qp interp on the grid", error=str(problem)))
            plan.skip_columns(wanted_derived, f"column {problem.column!r} unreadable")
    id_column = columns.column("id")
    frame = _pandas_frame(table, plan.columns_used() | {id_column}, derived)
    ids = frame[id_column].to_numpy() if id_column in frame.columns else None
    gx_results = []
    # GX checks dtypes on the frame as converted, but compares only float64 columns to bounds vectorized
    # (float32 ones go value by value through Python): dtype checks see the table's own dtypes, the rest
    # a float64 copy of the float32 columns.
    # Values an expectation ignores are nulls to GX (which checks no null) in a frame of the columns concerned:
    # a row condition would make GX filter the whole frame once per metric.
    dtype_expectations, value_expectations = plan.split(_DTYPE_EXPECTATIONS)
    widened = _widened(frame)
    plain_expectations, masked_groups = plan.masked(value_expectations)
    batches = [(dtype_expectations, frame), (plain_expectations, widened)]
    batches += [(group, _masked(widened, {expectation.column for expectation in group}, ignored))
                for ignored, group in masked_groups.items()]
    for expectations, batch_frame in batches:
        if expectations:
            result = _validate_frame(batch_frame, definition.name, expectations)
            gx_results.append(result.to_json_dict())
            failures += [_failure(item, ids, table.column_names)
                         for item in result.results if not item.success]
    failures.sort(key=lambda failure: failure.suite_entry or 0)
    evaluated = len(plan.configurations) + (1 if wanted_derived else 0)
    return ValidationReport(suite=definition.name, success=not failures, n_rows=table.num_rows,
                            evaluated=evaluated, failures=failures, skipped=plan.skipped,
                            seconds=time.perf_counter() - started, source=source,
                            gx_result=_merged(gx_results))


def check_table(table: pa.Table, suite: str, context: dict | None = None, source: str | None = None,
                directory: str | Path | None = None) -> ValidationReport:
    """:func:`validate_table`, raising :class:`ValidationError` when any expectation fails.

    Examples
    --------
    >>> check_table(photoz, "photoz_table", {"expected_rows": 150_000}, source="part-00000.parquet")
    ... # doctest: +SKIP
    ValidationError: photoz_table validation of part-00000.parquet failed: 1 of 33 expectations on ...
      - expect_column_values_to_not_be_null on column 'zmode': 1 of 150,000 rows unexpected ...
    """
    report = validate_table(table, suite, context, source, directory)
    if not report.success:
        raise ValidationError(report)
    return report


def check_file(path: str | Path, suite: str, context: dict | None = None,
               directory: str | Path | None = None) -> ValidationReport:
    """Read a catalog file (any format :func:`pzlib.catalog.open_catalog` reads) and :func:`check_table` it.

    Raises
    ------
    pzlib.catalog.CatalogError
        The file cannot be read.
    ValidationError
        An expectation failed; the message names the file.
    """
    reader = open_catalog(path)
    table = reader.read()
    if reader.schema.metadata:
        table = table.replace_schema_metadata(reader.schema.metadata)
    return check_table(table, suite, context, str(path), directory)


# --- expansion of a suite definition against one table ----------------------------------------------------


class _MissingParameter(Exception):
    pass


@dataclass
class _Plan:
    """The expectations to run on one table, in GX configuration form, and the ones skipped (with why)."""

    configurations: list = field(default_factory=list)
    expectations: list = field(default_factory=list)
    """GX expectation objects, one per configuration."""
    skipped: list[str] = field(default_factory=list)

    def columns_used(self) -> set[str]:
        return {column for configuration in self.configurations
                for column in _columns_of(configuration.kwargs)}

    def derived_columns_used(self) -> set[str]:
        return self.columns_used() & set(_DERIVED_COLUMNS)

    def skip_columns(self, columns: set[str], reason: str) -> None:
        kept = []
        for configuration, expectation in zip(self.configurations, self.expectations, strict=True):
            if set(_columns_of(configuration.kwargs)) & columns:
                self.skipped.append(f"{_label(configuration.type, configuration.kwargs)}: {reason}")
            else:
                kept.append((configuration, expectation))
        self.configurations = [configuration for configuration, _ in kept]
        self.expectations = [expectation for _, expectation in kept]

    def split(self, types: set[str]) -> tuple[list, list]:
        """(GX expectations whose type is in ``types``, the others)."""
        pairs = list(zip(self.configurations, self.expectations, strict=True))
        return ([e for c, e in pairs if c.type in types], [e for c, e in pairs if c.type not in types])

    def masked(self, expectations: list) -> tuple[list, dict[tuple, list]]:
        """(the ``expectations`` without ``ignore_values``, the others grouped by the values they ignore)."""
        plain, groups = [], {}
        for expectation in expectations:
            ignored = (expectation.meta or {}).get("ignore_values")
            if ignored:
                groups.setdefault(tuple(ignored), []).append(expectation)
            else:
                plain.append(expectation)
        return plain, groups


def _context_values(definition: SuiteDefinition, context: dict, schema: pa.Schema) -> tuple[dict, _RoleMap]:
    """(parameters, role → column mapping) from the suite's defaults, the table and the caller's context."""
    unknown = set(context) - set(definition.parameters) - {"columns"}
    if unknown:
        raise ValueError(f"suite {definition.name}: unknown context key(s) {', '.join(sorted(unknown))} "
                         f"(parameters: {', '.join(definition.parameters) or 'none'}; and 'columns')")
    parameters = {**definition.parameters, **{k: v for k, v in context.items() if k != "columns"}}
    if "grid_min" in parameters and (schema.metadata or {}).get(QP_METADATA_KEY):
        grid = grid_from_schema(schema)
        if parameters["grid_min"] is None:
            parameters["grid_min"] = float(grid[0])
        if parameters.get("grid_max") is None:
            parameters["grid_max"] = float(grid[-1])
    columns = {str(role).lower(): str(name) for role, name in (context.get("columns") or {}).items()}
    return parameters, _RoleMap(columns)


class _RoleMap(dict):
    """Role → column name, case-insensitive on the role; a role not mapped is its own column name."""

    def column(self, role: str) -> str:
        return dict.get(self, str(role).lower(), role)


def _expand(definition: SuiteDefinition, parameters: dict, columns: _RoleMap, present: set[str]) -> _Plan:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    available = present | set(definition.derived_columns)
    plan = _Plan()
    entries = []
    for position, entry in enumerate(definition.expectations, start=1):
        for variables in _loop_values(definition, entry, parameters, position):
            try:
                names = {**_scalars(parameters), **variables}
                kwargs = _resolve(entry.get("kwargs") or {}, names, parameters)
                ignored = _resolve(entry.get("ignore_values") or [], names, parameters)
            except _MissingParameter as missing:
                plan.skipped.append(f"{_label(entry['type'], _columns_only(entry, variables, columns))}: "
                                    f"parameter {missing} not given")
                continue
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(f"{definition.path}: expectation {position} ({entry['type']}): "
                                 f"cannot fill {error}") from None
            if not isinstance(ignored, list) or not all(isinstance(value, int | float) for value in ignored) \
                    or (ignored and not isinstance(kwargs.get("column"), str)):
                raise ValueError(f"{definition.path}: expectation {position} ({entry['type']}): ignore_values "
                                 f"takes a list of numbers, on an expectation of one column; got {ignored!r}")
            entries.append((position, entry, _rename_columns(kwargs, columns), ignored))
    existence_checked = {kwargs["column"] for _, entry, kwargs, _ in entries
                         if entry["type"] == "expect_column_to_exist"}
    for position, entry, kwargs, ignored in entries:
        missing = [c for c in _columns_of(kwargs) if c not in available]
        if missing and entry.get("optional"):
            plan.skipped.append(f"{_label(entry['type'], kwargs)}: optional column {missing[0]!r} absent")
            continue
        if missing and entry["type"] != "expect_column_to_exist" and set(missing) <= existence_checked:
            plan.skipped.append(f"{_label(entry['type'], kwargs)}: column {missing[0]!r} missing "
                                "(reported by expect_column_to_exist)")
            continue
        try:
            configuration = ExpectationConfiguration(type=entry["type"], kwargs=kwargs,
                                                     description=entry.get("description"),
                                                     meta={"suite_entry": position,
                                                           **({"ignore_values": ignored} if ignored else {})})
            expectation = configuration.to_domain_obj()  # checks the type and its kwargs, naming the entry
        except Exception as error:
            raise ValueError(f"{definition.path}: expectation {position} ({entry['type']}): "
                             f"{error}") from None
        plan.configurations.append(configuration)
        plan.expectations.append(expectation)
    return plan


def _loop_values(definition: SuiteDefinition, entry: dict, parameters: dict, position: int) -> list[dict]:
    loop = entry.get("for_each")
    if not loop:
        return [{}]
    if not isinstance(loop, dict) or len(loop) != 1:
        raise ValueError(f"{definition.path}: expectation {position}: for_each takes one {{name: values}}")
    (name, values), = loop.items()
    if isinstance(values, str) and _PARAMETER.match(values):
        values = parameters.get(_PARAMETER.match(values)[1])
    if not isinstance(values, list | tuple):
        raise ValueError(f"{definition.path}: expectation {position}: for_each {name} needs a list, "
                         f"got {values!r}")
    return [{name: value} for value in values]


def _scalars(parameters: dict) -> dict:
    return {name: value for name, value in parameters.items() if isinstance(value, str | int | float)}


def _resolve(value, variables: dict, parameters: dict):
    """``$name`` → the parameter (typed); ``{name}`` in strings → loop variables and scalar parameters."""
    if isinstance(value, str):
        match = _PARAMETER.match(value)
        if match:
            if parameters.get(match[1]) is None:
                raise _MissingParameter(match[1])
            return parameters[match[1]]
        return value.format_map(variables)
    if isinstance(value, list):
        return [_resolve(item, variables, parameters) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item, variables, parameters) for key, item in value.items()}
    return value


def _rename_columns(kwargs: dict, columns: _RoleMap) -> dict:
    renamed = dict(kwargs)
    for key in _COLUMN_KWARGS:
        if key in renamed:
            renamed[key] = columns.column(renamed[key])
    for key in _COLUMN_LIST_KWARGS:
        if key in renamed:
            renamed[key] = [columns.column(name) for name in renamed[key]]
    if isinstance(renamed.get("row_condition"), str):
        renamed["row_condition"] = _BACKTICKED.sub(lambda match: f"`{columns.column(match[1])}`",
                                                   renamed["row_condition"])
    return renamed


def _columns_of(kwargs: dict) -> list[str]:
    names = [kwargs[key] for key in _COLUMN_KWARGS if key in kwargs]
    names += [name for key in _COLUMN_LIST_KWARGS for name in kwargs.get(key, [])]
    if isinstance(kwargs.get("row_condition"), str):
        names += _BACKTICKED.findall(kwargs["row_condition"])
    return list(dict.fromkeys(names))


def _columns_only(entry: dict, variables: dict, columns: _RoleMap) -> dict:
    """The column kwargs of a suite entry, filled with the loop variables and renamed (for labels)."""
    kwargs = {key: value for key, value in (entry.get("kwargs") or {}).items() if key in _COLUMN_KWARGS}
    return _rename_columns({key: str(value).format_map(variables) for key, value in kwargs.items()}, columns)


def _label(expectation: str, kwargs: dict) -> str:
    columns = ", ".join(_columns_of(kwargs))
    return f"{expectation} on {columns}" if columns else expectation


def _condition_text(condition) -> str:
    """A row condition as written (GX stores a pandas one as ``{"pass_through_filter": ...}``)."""
    if isinstance(condition, dict):
        return str(condition.get("pass_through_filter", condition))
    return str(condition)


# --- derived columns: per-object summaries of the PDF list column -------------------------------------------


class _PdfColumnProblem(Exception):
    def __init__(self, column: str, problem: str):
        self.column = column
        super().__init__(problem)


def _pdf_min(block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return block.min(axis=1)


def _pdf_integral(block: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if block.dtype.kind == "u":
        # cdf8 steps, all of the same weight: an integer sum is 6x faster than a float product
        return block.sum(axis=1, dtype=np.uint32) * weights[0]
    return block @ weights


_DERIVED_COLUMNS = {"pdf_min": _pdf_min, "pdf_integral": _pdf_integral}
"""Derived column → function of (block of PDFs, trapezoid weights of the grid) giving one value per row."""


def _derive_columns(table: pa.Table, names: set[str], pdf_column: str) -> dict[str, np.ndarray]:
    """The derived columns of the PDF column, in blocks (a NaN in a PDF gives a NaN summary)."""
    if pdf_column not in table.column_names:
        raise _PdfColumnProblem(pdf_column, "column missing")
    try:
        recorded = storage_metadata(table.schema)
    except ValueError as error:
        raise _PdfColumnProblem(pdf_column, str(error)) from None
    grid = np.asarray(recorded["xvals"])
    column_type = table.schema.field(pdf_column).type
    cdf_steps = recorded["representation"] == "cdf8"
    if not is_pdf_type(column_type, recorded["representation"]):
        expected = "fixed-size binary of CDF steps" if cdf_steps else "fixed-size list of floats"
        raise _PdfColumnProblem(pdf_column, f"expected a {expected}, found {column_type}")
    if pdf_width(column_type) != grid.size:
        raise _PdfColumnProblem(pdf_column, f"PDFs have {pdf_width(column_type)} values but the grid in the "
                                            f"schema metadata has {grid.size}")
    if cdf_steps:
        # Each value is the probability in one grid interval, in 1/levels: the integral is their sum.
        weights = np.full(grid.size, 1.0 / recorded["levels"])
    else:
        steps = np.diff(grid)
        weights = np.zeros(grid.size)
        weights[:-1] += steps / 2
        weights[1:] += steps / 2
    outputs = {name: np.empty(table.num_rows) for name in names}
    row = 0
    for chunk in table.column(pdf_column).chunks:
        pdfs = array_values(chunk)
        block_weights = weights.astype(pdfs.dtype if pdfs.dtype.kind == "f" else np.float64)
        for start in range(0, len(chunk), _PDF_BLOCK_ROWS):
            block = pdfs[start:start + _PDF_BLOCK_ROWS]
            rows = slice(row + start, row + start + len(block))
            for name in names:
                outputs[name][rows] = _DERIVED_COLUMNS[name](block, block_weights)
        if chunk.null_count:
            nulls = chunk.is_null().to_numpy(zero_copy_only=False)
            for name in names:
                outputs[name][row:row + len(chunk)][nulls] = np.nan
        row += len(chunk)
    return outputs


# --- running GX and reading its results -------------------------------------------------------------------


def _pandas_frame(table: pa.Table, wanted: set[str], derived: dict[str, np.ndarray]):
    """The scalar columns a suite uses, plus the derived ones; list columns are never converted."""
    import pandas as pd

    scalar = [name for name in table.column_names
              if name in wanted and not pa.types.is_nested(table.schema.field(name).type)]
    frame = table.select(scalar).to_pandas() if scalar else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for name, values in derived.items():
        frame[name] = values
    return frame


@cache
def _batch_definition():
    """GX's whole-dataframe batch definition in an ephemeral context, set up once per process."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("pzlib").add_dataframe_asset("table")
    return asset.add_batch_definition_whole_dataframe("whole table")


def _widened(frame):
    """``frame`` with float32 columns as float64 (other columns shared, not copied)."""
    narrow = [name for name, dtype in frame.dtypes.items() if dtype == np.float32]
    return frame.astype({name: np.float64 for name in narrow}, copy=False) if narrow else frame


def _masked(frame, columns: set[str], ignored: tuple):
    """The ``columns`` of ``frame`` with the ``ignored`` values made NaN (same index: example rows keep their
    positions)."""
    import pandas as pd

    return pd.DataFrame({name: frame[name].mask(frame[name].isin(ignored)) for name in sorted(columns)},
                        index=frame.index)


def _merged(results: list[dict]) -> dict:
    """One GX suite result (JSON) from the results of the dtype batch and the values batch."""
    if not results:
        return {}
    merged = dict(results[0])
    merged["results"] = [item for result in results for item in result.get("results", [])]
    merged["success"] = all(result.get("success", False) for result in results)
    evaluated = len(merged["results"])
    successful = sum(1 for item in merged["results"] if item.get("success"))
    merged["statistics"] = {"evaluated_expectations": evaluated, "successful_expectations": successful,
                            "unsuccessful_expectations": evaluated - successful,
                            "success_percent": 100.0 * successful / evaluated if evaluated else None}
    return merged


def _validate_frame(frame, suite_name: str, expectations: list):
    """GX's result of ``expectations`` on ``frame``: basic results, with those of the failed expectations
    replaced by summary results (the same counts, plus the row indices of the examples)."""
    import great_expectations as gx

    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})

    def validate(chosen: list, result_format: str):
        suite = gx.ExpectationSuite(name=suite_name, expectations=chosen)
        return batch.validate(suite, result_format={"result_format": result_format,
                                                    "partial_unexpected_count": EXAMPLE_COUNT})

    result = validate(expectations, "BASIC")
    failed = {_configuration_key(item.expectation_config) for item in result.results if not item.success}
    if failed:
        detailed = validate([expectation for expectation in expectations
                             if _configuration_key(expectation.configuration) in failed], "SUMMARY")
        by_key = {_configuration_key(item.expectation_config): item for item in detailed.results}
        result.results = [by_key.get(_configuration_key(item.expectation_config), item) if not item.success
                          else item for item in result.results]
    return result


def _configuration_key(configuration) -> str:
    """An expectation's identity across two GX runs: its type and kwargs (without the batch GX adds)."""
    kwargs = {key: value for key, value in configuration.kwargs.items() if key != "batch_id"}
    return json.dumps([configuration.type, kwargs], sort_keys=True, default=str)


def _failure(item, ids: np.ndarray | None, table_columns: list[str]) -> ExpectationFailure:
    configuration = item.expectation_config
    kwargs = {key: value for key, value in configuration.kwargs.items() if key != "batch_id"}
    columns = _columns_of({key: value for key, value in kwargs.items() if key != "row_condition"})
    if (configuration.meta or {}).get("ignore_values"):
        kwargs["ignore_values"] = configuration.meta["ignore_values"]
    result = item.result or {}
    exception = item.exception_info or {}
    error = None
    if exception.get("raised_exception"):
        error = (exception.get("exception_message") or "raised an exception").strip().splitlines()[0]
    elif configuration.type == "expect_column_to_exist":
        error = f"column missing (table has: {', '.join(table_columns)})"
    positions = result.get("partial_unexpected_index_list") or []
    example_ids = []
    if ids is not None and positions and all(isinstance(p, int | np.integer) for p in positions):
        example_ids = [ids[int(position)] for position in positions[:EXAMPLE_COUNT]]
    unexpected = result.get("unexpected_count")
    return ExpectationFailure(
        expectation=configuration.type,
        column=", ".join(columns) or None,
        parameters=kwargs,
        description=configuration.description,
        unexpected_count=None if unexpected is None else int(unexpected),
        element_count=None if result.get("element_count") is None else int(result["element_count"]),
        examples=[_plain(value) for value in (result.get("partial_unexpected_list") or [])[:EXAMPLE_COUNT]],
        example_ids=[_plain(value) for value in example_ids],
        observed=_plain(result.get("observed_value")),
        error=error,
        suite_entry=(configuration.meta or {}).get("suite_entry"),
    )


def _plain(value):
    """Python scalars (and tuples of them) for numpy values, so reports print and serialize cleanly."""
    if isinstance(value, tuple | list):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _short(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(item) for item in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_short(item) for item in value) + "]"
    return str(value)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
