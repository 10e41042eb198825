"""Spec-z quality flags, each survey's own convention translated to one homogenized scale (0–4, 4 = secure).

The translations are data (``include/crc/flag_translation.yaml``, or given inline in a request); this module
loads and checks them (:func:`load_flag_translations`) and applies one to a catalog's rows
(:meth:`FlagTranslation.homogenize`). Flag values are compared as text, so ``3``, ``3.0`` and ``"3"`` are the
same flag whatever type the catalog stores them in.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from pzlib.preprocess import parse_filter

HOMOGENIZED_FLAGS = (0, 1, 2, 3, 4)
"""4 secure (≥ 99%), 3 ≥ 95%, 2 ≥ 75%, 1 ≥ 50%, 0 failed or not a galaxy redshift."""
CONDITION_COLUMNS = ("z", "z_err", "z_flag")


def flag_key(value) -> str | None:
    """The text a flag value is matched by: ``3``, ``3.0``, ``"3"`` and ``b"3"`` all give ``"3"``; None for a
    missing value.

    Examples
    --------
    >>> flag_key(4.0), flag_key(" A "), flag_key(float("nan")), flag_key(9.5)
    ('4', 'A', None, '9.5')
    """
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return None
    return str(int(number)) if number.is_integer() else format(number, "g")


def flag_keys(values: pd.Series) -> pd.Series:
    """:func:`flag_key` of every value (object dtype, None where missing); computed once per distinct value."""
    distinct = pd.unique(values.to_numpy(dtype=object))
    keys = {value: flag_key(value) for value in distinct if not _is_missing(value)}
    return values.map(keys).astype(object).where(values.notna(), None)


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Condition:
    """Comparisons that must all hold for a row to get ``flag``."""

    comparisons: tuple[tuple[str, Callable, float], ...]
    flag: int


@dataclass(frozen=True)
class FlagTranslation:
    """One survey's flag convention mapped to the homogenized scale."""

    survey: str
    flags: dict[str, int] = field(default_factory=dict)
    """{flag text: homogenized flag}."""
    conditions: tuple[Condition, ...] = ()
    """For rows no flag matched, in order; the first that holds wins."""
    default: int | None = None
    """For rows nothing matched; None makes an unmatched flag value an error."""

    @classmethod
    def from_dict(cls, survey: str, entry: dict) -> FlagTranslation:
        """A translation from its YAML/JSON form; raises ValueError saying what is wrong."""
        if not isinstance(entry, dict):
            raise ValueError(f"translation of survey {survey!r} must be a mapping with flags, conditions, default")
        unknown = sorted(set(entry) - {"flags", "conditions", "default"})
        if unknown:
            raise ValueError(f"survey {survey!r}: unknown key {unknown[0]!r} (use flags, conditions, default)")
        flags = {}
        for raw, homogenized in (entry.get("flags") or {}).items():
            key = flag_key(raw)
            if key is None:
                raise ValueError(f"survey {survey!r}: empty flag value in flags")
            flags[key] = _homogenized(survey, f"flag {raw!r}", homogenized)
        conditions = []
        for number, condition in enumerate(entry.get("conditions") or []):
            where = f"survey {survey!r}, conditions[{number}]"
            if not isinstance(condition, dict) or set(condition) != {"when", "flag"}:
                raise ValueError(f"{where}: must be {{when: [\"column op number\", ...], flag: N}}")
            expressions = condition["when"]
            if isinstance(expressions, str):
                expressions = [expressions]
            comparisons = tuple(_comparison(where, expression) for expression in expressions)
            if not comparisons:
                raise ValueError(f"{where}: 'when' needs at least one comparison")
            conditions.append(Condition(comparisons, _homogenized(survey, where, condition["flag"])))
        default = entry.get("default")
        if default is not None:
            default = _homogenized(survey, "default", default)
        if not flags and not conditions and default is None:
            raise ValueError(f"survey {survey!r}: the translation has no flags, conditions or default")
        return cls(survey, flags, tuple(conditions), default)

    def needs_columns(self) -> set[str]:
        """Canonical columns (z, z_err, z_flag) the conditions compare."""
        return {column for condition in self.conditions for column, _, _ in condition.comparisons}

    def homogenize(self, frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
        """Homogenized flags of ``frame``'s rows (canonical columns ``z``, ``z_err``, ``z_flag`` when present).

        Returns
        -------
        (flags, unmatched)
            ``flags``: nullable Int8, null where nothing applies to a row without a flag; ``unmatched``: the
            distinct flag values no rule translates (only without a default), for the caller's error message.
        """
        result = pd.Series(pd.NA, index=frame.index, dtype="Int8")
        has_flag = pd.Series(False, index=frame.index)
        if "z_flag" in frame:
            keys = flag_keys(frame["z_flag"])
            has_flag = keys.notna()
            if self.flags:
                result = keys.map(self.flags).astype("Int8")
        for condition in self.conditions:
            unset = result.isna()
            if not unset.any():
                break
            holds = unset.to_numpy(copy=True)
            for column, compare, value in condition.comparisons:
                if column not in frame:
                    holds = np.zeros(len(frame), dtype=bool)
                    break
                values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                with np.errstate(invalid="ignore"):
                    holds &= compare(values, value)
            result[holds] = condition.flag
        unmatched: list[str] = []
        if self.default is not None:
            result = result.fillna(self.default)
        elif has_flag.any():
            untranslated = result.isna() & has_flag
            if untranslated.any():
                unmatched = sorted(set(flag_keys(frame["z_flag"])[untranslated]))
        return result, unmatched


def _homogenized(survey: str, where: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in HOMOGENIZED_FLAGS:
        raise ValueError(f"survey {survey!r}, {where}: homogenized flag must be one of 0–4, got {value!r}")
    return value


def _comparison(where: str, expression) -> tuple[str, Callable, float]:
    if not isinstance(expression, str):
        raise ValueError(f"{where}: comparison must be text like 'z_err < 0.0005', got {expression!r}")
    column, compare, value = parse_filter(expression)
    if compare is None:
        raise ValueError(f"{where}: {expression!r} is not a comparison like 'z_err < 0.0005'")
    if column not in CONDITION_COLUMNS:
        raise ValueError(f"{where}: {expression!r} compares {column!r}; use one of {', '.join(CONDITION_COLUMNS)}")
    return column, compare, value


@dataclass(frozen=True)
class FlagTranslations:
    """The translations of a file, by upper-cased survey name."""

    path: Path
    by_survey: dict[str, FlagTranslation]

    def surveys(self) -> list[str]:
        return sorted(self.by_survey)

    def lookup(self, survey: str, inline: dict | None = None) -> FlagTranslation | None:
        """The survey's translation: ``inline`` when given (checked here), else the file's, else None."""
        if inline is not None:
            return FlagTranslation.from_dict(survey, inline)
        return self.by_survey.get(survey.strip().upper())


def load_flag_translations(path: str | os.PathLike) -> FlagTranslations:
    """The translations in a YAML file (``surveys: {NAME: {flags, conditions, default}}``), checked.

    Raises
    ------
    ValueError
        Naming the file and the survey when the file is missing, not YAML, or a translation is malformed.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise ValueError(f"flag translation file {path}: {error.strerror or error}") from None
    return _load(path.resolve(), stat.st_mtime_ns, stat.st_size)


@cache
def _load(path: Path, mtime_ns: int, size: int) -> FlagTranslations:
    import yaml

    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"flag translation file {path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("surveys"), dict):
        raise ValueError(f"flag translation file {path}: needs a 'surveys' mapping of survey name to translation")
    by_survey = {}
    for survey, entry in document["surveys"].items():
        try:
            by_survey[str(survey).upper()] = FlagTranslation.from_dict(str(survey), entry)
        except ValueError as error:
            raise ValueError(f"flag translation file {path}: {error}") from None
    return FlagTranslations(path, by_survey)
