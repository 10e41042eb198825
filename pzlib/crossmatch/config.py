"""The typed requests of the Training Set Maker and of Combine Redshift Catalogs, checked before any data is read.

A request is data: :class:`TsmConfig` and :class:`CrcConfig` are built from JSON-like params (the DAG's conf,
a PZ Server process's config) by ``from_params``, and every field is checked in ``__post_init__``; a bad value
raises ``ValueError`` whose message starts with the field's name (``radius_arcsec: ...``,
``inputs[1].columns.z: ...``). What can only be checked against the files (columns present, a margin cache
wide enough) is checked by ``check_inputs`` in :mod:`pzlib.crossmatch.tsm` and :mod:`pzlib.crossmatch.crc`,
still before any work. ``params_schema()`` gives the JSON schema the DAGs' params refine.

A PZ Server request (LIneA's ``param`` fields of a process: ``crossmatch.radius_arcsec``, ``flux_type``,
``split.train_fraction``, ...) becomes params here too, by ``params_from_pzserver_request``: what those fields
mean, and the default of one left out, is each config's own; :data:`PZSERVER_REQUESTS` hands the translations to
the PZ Server (:class:`pzlib.registry.process_runs.ProcessRuns`), which knows no pipeline's parameters, and
:data:`PZSERVER_REQUEST_FIELDS` the fields its pipeline forms ask for, with their params' schemas.

The module imports only the standard library (and pzlib's settings); checking a ``column_map`` or the flag
translations loads the small parts of pzlib they live in, never lsdb.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import unquote, urlparse

from pzlib.column_maps import COLUMN_MAP_SCHEMA, column_map
from pzlib.resources import include_path

MAX_RADIUS_ARCSEC = 60.0
"""Largest accepted match radius: spec-z positions are good to well under an arcsecond, and at a minute of arc
a deep object catalog has dozens of unrelated neighbours per spec-z."""

RELEASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Release names: the rule of :attr:`pzlib.compute.spec.RunSpec.release`."""

OUTPUT_FORMATS = ("parquet", "csv", "hats")
DEREDDENING_METHODS = ("sfd",)
DUPLICATE_CRITERIA = ("closest", "all")
COMBINE_TYPES = ("concatenate", "concatenate_and_mark_duplicates", "concatenate_and_remove_duplicates")
UNTRANSLATED_CHOICES = ("refuse", "rank_last")
"""What Combine Redshift Catalogs does with a survey that has flags but no flag translation: refuse the request,
or give its rows no homogenized flag, which ranks them after every graded row of their duplicate group."""
UNTRANSLATED_FIELD = "untranslated_surveys"
DEFAULT_FLAG_TRANSLATION_FILE = include_path("crc", "flag_translation.yaml")
SPECZ_ROLES = ("id", "ra", "dec", "z", "z_err", "z_flag")
FLAGS_FILE_FIELD = "flags_translation_file"
"""LIneA's Combine Redshift Catalogs parameter naming a flag translation file, and the multipart field of a PZ
Server request that carries the file itself."""
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TSM_REQUEST_PARAMS = frozenset({"crossmatch", "duplicate_criteria", "flux_type", "convert_flux_to_mag", "dereddening",
                                 "split", "selected_columns"})
_CRC_REQUEST_PARAMS = frozenset({"combine_type", "crossmatch", FLAGS_FILE_FIELD, UNTRANSLATED_FIELD})
_FLUX_TYPES = {"cmodel": "dm_cmodel", "gaap": "dm_gaap"}
"""LIneA's ``flux_type`` words and the column-map presets they mean; ``auto`` takes the release's."""


def local_path(path_or_uri: str) -> Path:
    """The local path of ``path_or_uri``: a path, or a ``file://`` URI as the PZ Server's storage gives."""
    if path_or_uri.startswith("file://"):
        return Path(unquote(urlparse(path_or_uri).path))
    return Path(path_or_uri).expanduser()


def _check_path(name: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: a path is required")
    scheme = urlparse(value).scheme
    if scheme and scheme != "file" and len(scheme) > 1:  # one letter: a Windows drive, not a scheme
        raise ValueError(f"{name}: only local paths and file:// URIs are readable here, got {value!r}")
    return value


def _check_radius(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a number of arcseconds, got {value!r}")
    if not 0 < value <= MAX_RADIUS_ARCSEC:
        raise ValueError(f"{name}: must be > 0 and at most {MAX_RADIUS_ARCSEC:g} arcsec, got {value!r}")
    return float(value)


def _check_positive_int(name: str, value, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be an integer ≥ 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be at most {maximum}, got {value!r}")
    return value


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_release(value) -> str | None:
    if value is not None and (not isinstance(value, str) or not re.match(RELEASE_PATTERN, value)):
        raise ValueError(f"release: {value!r} is not a valid name (letters, digits, '.', '_', '-')")
    return value


def _check_output_name(value) -> str:
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise ValueError(f"output_name: {value!r} is not a valid file name (letters, digits, '.', '_', '-')")
    return value


def _unknown_fields(cls, params: dict, where: str = "") -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}{unknown[0]}: unknown parameter (known: {', '.join(sorted(known))})")


def _defaults(cls) -> dict:
    """{field: default} of a config class's fields that have a plain default."""
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def _check_request_params(param: dict, known: frozenset[str]) -> None:
    unknown = sorted(set(param) - known)
    if unknown:
        raise ValueError(f"param.{unknown[0]}: unknown parameter (known: {', '.join(sorted(known))})")


def _request_section(param: dict, name: str, known: set[str]) -> dict:
    """A section of a PZ Server request's parameters (``crossmatch``, ``split``), checked to hold only ``known``."""
    value = param.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"param.{name}: must be an object, got {value!r}")
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"param.{name}.{unknown[0]}: unknown parameter (known: {', '.join(sorted(known))})")
    return value


def _fingerprint(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RequestField:
    """One of LIneA's ``param`` fields of a PZ Server request, as a form asks for it."""

    path: str
    """Where the value goes in ``param``, dotted: ``crossmatch.radius_arcsec``."""
    param: str
    """The config param it sets, which a ``ValueError`` of the config names."""
    label: str
    help: str
    schema: dict
    """JSON schema of the value: the config param's own (its range, its choices) or the request's words for it."""


class _OutputRequest:
    """What both requests share: an output named ``output_name`` in ``output_dir``, in ``output_format``, with
    its report beside it; params as JSON-like values."""

    output_dir: str
    output_name: str
    output_format: str

    @property
    def output_path(self) -> Path:
        suffix = "" if self.output_format == "hats" else f".{self.output_format}"
        return local_path(self.output_dir) / f"{self.output_name}{suffix}"

    @property
    def report_path(self) -> Path:
        return local_path(self.output_dir) / f"{self.output_name}.report.json"

    def to_params(self) -> dict:
        return asdict(self)

    def _output_shaping_params(self) -> dict:
        """The params without ``workers``, which changes how fast, not what."""
        values = self.to_params()
        values.pop("workers")
        return values


@dataclass
class SpeczColumns:
    """Which columns of a spec-z catalog hold the PZ Server's column roles (its "column association")."""

    ra: str = "ra"
    """Right ascension (deg)."""
    dec: str = "dec"
    """Declination (deg)."""
    z: str = "z"
    """Spectroscopic redshift."""
    id: str | None = None
    """Identifier in the survey, if the catalog has one."""
    z_err: str | None = None
    """Redshift error, if the catalog has one."""
    z_flag: str | None = None
    """Quality flag in the survey's own convention, if the catalog has one."""

    def check(self, where: str) -> None:
        for role in ("ra", "dec", "z"):
            value = getattr(self, role)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}.{role}: the spec-z catalog's {role} column is required")
        for role in ("id", "z_err", "z_flag"):
            value = getattr(self, role)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{where}.{role}: must be a column name or null, got {value!r}")
        names = list(self.roles().values())
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{where}: column {repeated[0]!r} is given for more than one role")

    def roles(self) -> dict[str, str]:
        """{role: column} of the roles this catalog has."""
        return {role: getattr(self, role) for role in SPECZ_ROLES if getattr(self, role) is not None}

    @classmethod
    def from_value(cls, value, where: str) -> SpeczColumns:
        if isinstance(value, SpeczColumns):
            columns = value
        elif isinstance(value, dict):
            _unknown_fields(cls, value, f"{where}.")
            columns = cls(**value)
        else:
            raise ValueError(f"{where}: must be an object of column names ({', '.join(SPECZ_ROLES)})")
        columns.check(where)
        return columns

    @staticmethod
    def schema() -> dict:
        optional = {"type": ["string", "null"], "minLength": 1}
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ra": {"type": "string", "minLength": 1},
                "dec": {"type": "string", "minLength": 1},
                "z": {"type": "string", "minLength": 1},
                "id": optional,
                "z_err": optional,
                "z_flag": optional,
            },
        }


@dataclass
class TsmConfig(_OutputRequest):
    """A Training Set Maker request: a spec-z catalog cross-matched with a release's object catalog.

    Examples
    --------
    >>> config = TsmConfig.from_params({"specz_catalog": "specz.parquet", "object_catalog": "dr1/objects",
    ...                                 "output_dir": "out", "radius_arcsec": 0.5})
    >>> config.radius_arcsec, config.n_neighbors, config.output_path.name
    (0.5, 1, 'training_set.parquet')
    >>> TsmConfig.from_params({"specz_catalog": "s.pq", "object_catalog": "o", "output_dir": "out",
    ...                        "radius_arcsec": 0})
    Traceback (most recent call last):
    ...
    ValueError: radius_arcsec: must be > 0 and at most 60 arcsec, got 0
    """

    specz_catalog: str
    """Spec-z catalog: Parquet, CSV, FITS, HDF5 file or a HATS catalog (path or file:// URI)."""
    object_catalog: str
    """The release's object catalog: a HATS catalog with its margin cache (the folder lsdb and hats-import write)."""
    output_dir: str
    """Folder for the training set and its report; created if missing."""
    release: str | None = None
    """Release the object catalog belongs to (recorded in the report)."""
    specz_columns: SpeczColumns | dict = field(default_factory=SpeczColumns)
    """Columns of the spec-z catalog holding ra, dec, z (required) and id, z_err, z_flag (optional)."""
    object_id_column: str | None = None
    """Object id column of the object catalog; by default the column map's id column, else ``id``."""
    selected_columns: list[str] | None = None
    """Object catalog columns copied into the training set (besides id, ra, dec); None means all of them."""
    column_map: str | dict | None = None
    """The object catalog's photometry (a :data:`pzlib.catalog.COLUMN_MAPS` preset or ColumnMap fields); with it
    the training set carries RAIL's ``mag_{band}_lsst`` / ``mag_err_{band}_lsst``, cleaned as in stage I."""
    convert_flux_to_mag: bool = True
    """With a flux column map: AB magnitudes (RAIL's columns) when True, the fluxes as they are when False."""
    dereddening: str | None = None
    """``sfd``: correct the photometry for Galactic extinction with the column map's E(B−V) column."""
    radius_arcsec: float = 1.0
    """Match radius (arcsec)."""
    n_neighbors: int = 1
    """Objects kept per spec-z within the radius, nearest first."""
    duplicate_criteria: str = "closest"
    """An object matched by several spec-z: ``closest`` keeps the nearest spec-z, ``all`` keeps every pair."""
    train_fraction: float | None = 0.7
    """Fraction of rows flagged ``is_training_set`` (the rest is the test set); None adds no split column."""
    split_seed: int = 0
    """Seed of the train/test split; a row's side depends only on its object id and the seed."""
    output_name: str = "training_set"
    """Name of the output (file stem, or folder for HATS)."""
    output_format: str = "parquet"
    """``parquet``, ``csv`` or ``hats``."""
    workers: int = 2
    """Threads of the local Dask scheduler running the cross-match."""

    def __post_init__(self):
        self.specz_catalog = _check_path("specz_catalog", self.specz_catalog)
        self.object_catalog = _check_path("object_catalog", self.object_catalog)
        self.output_dir = _check_path("output_dir", self.output_dir)
        _check_release(self.release)
        self.specz_columns = SpeczColumns.from_value(self.specz_columns, "specz_columns")
        if self.object_id_column is not None and (not isinstance(self.object_id_column, str)
                                                  or not self.object_id_column):
            raise ValueError(f"object_id_column: must be a column name, got {self.object_id_column!r}")
        if self.selected_columns is not None:
            if not isinstance(self.selected_columns, list) or not all(
                    isinstance(name, str) and name for name in self.selected_columns):
                raise ValueError("selected_columns: must be a list of column names, or null for all columns")
            self.selected_columns = list(dict.fromkeys(self.selected_columns))
        photometry = self.photometry_map()
        if not isinstance(self.convert_flux_to_mag, bool):
            raise ValueError(f"convert_flux_to_mag: must be true or false, got {self.convert_flux_to_mag!r}")
        if self.dereddening is not None:
            _check_choice("dereddening", self.dereddening, DEREDDENING_METHODS)
            if photometry is None:
                raise ValueError("dereddening: needs column_map, which names the photometry and E(B−V) columns")
            if not photometry.ebv_column:
                raise ValueError("dereddening: the column map has no ebv_column (the E(B−V) column to correct with)")
            from pzlib.preprocess import SFD_EXTINCTION_COEFFICIENTS

            missing = [band for band in photometry.bands if band not in SFD_EXTINCTION_COEFFICIENTS]
            if missing:
                raise ValueError(f"dereddening: no SFD extinction coefficient for band(s) {', '.join(missing)}")
        self.radius_arcsec = _check_radius("radius_arcsec", self.radius_arcsec)
        self.n_neighbors = _check_positive_int("n_neighbors", self.n_neighbors, maximum=1000)
        _check_choice("duplicate_criteria", self.duplicate_criteria, DUPLICATE_CRITERIA)
        if self.train_fraction is not None:
            if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, int | float) \
                    or not 0 < self.train_fraction < 1:
                raise ValueError(f"train_fraction: must be between 0 and 1 (exclusive) or null, "
                                 f"got {self.train_fraction!r}")
            self.train_fraction = float(self.train_fraction)
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0:
            raise ValueError(f"split_seed: must be a non-negative integer, got {self.split_seed!r}")
        _check_output_name(self.output_name)
        _check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        self.workers = _check_positive_int("workers", self.workers, maximum=64)

    def photometry_map(self):
        """The :class:`pzlib.catalog.ColumnMap` of ``column_map``, or None."""
        if self.column_map is None:
            return None
        try:
            return column_map(self.column_map)
        except (TypeError, ValueError) as error:
            raise ValueError(f"column_map: {error}") from None

    @property
    def id_column(self) -> str:
        """The object id column actually used."""
        if self.object_id_column:
            return self.object_id_column
        photometry = self.photometry_map()
        return photometry.id_column if photometry else "id"

    def fingerprint(self) -> str:
        """Hash of everything that shapes the output (not ``workers``), recorded in the report."""
        return _fingerprint(self._output_shaping_params())

    @classmethod
    def from_params(cls, params: dict) -> TsmConfig:
        """A config from DAG params / a process's config; raises ValueError naming the bad field."""
        _unknown_fields(cls, params)
        for name in ("specz_catalog", "object_catalog", "output_dir"):
            if params.get(name) in (None, ""):
                raise ValueError(f"{name}: required")
        return cls(**params)

    @classmethod
    def params_from_pzserver_request(cls, param: dict, *, inputs: list[dict], release: dict | None, output_dir: str,
                                     output_format: str | None = None,
                                     flag_translation_file: str | None = None) -> dict:
        """The params of a PZ Server Training Set Maker request, checked.

        Parameters
        ----------
        param : dict
            LIneA's fields: ``crossmatch`` (``radius_arcsec``, ``n_neighbors``), ``duplicate_criteria``,
            ``flux_type`` (``auto``: the release's column map; ``cmodel``, ``gaap`` or a preset name),
            ``convert_flux_to_mag``, ``dereddening`` (``sfd``, or ``none``), ``split`` (``method`` ``random``,
            ``train_fraction``, ``seed``) and ``selected_columns``; one left out takes this config's default.
        inputs : list of dict
            The spec-z catalog, one: its ``path`` and ``columns`` (:class:`SpeczColumns` fields).
        release : dict or None
            The release's ``name``, ``object_catalog`` and ``object_column_map``.
        output_dir, output_format : str
            Where the training set goes, and its format (by default this config's).
        flag_translation_file : str or None
            Must be None: the Training Set Maker takes no flag translation.

        Raises
        ------
        ValueError
            Naming the field (``param.<name>`` for LIneA's).
        """
        _check_request_params(param, _TSM_REQUEST_PARAMS)
        if flag_translation_file is not None:
            raise ValueError(f"{FLAGS_FILE_FIELD}: the Training Set Maker takes no flag translation file")
        if len(inputs) != 1:
            raise ValueError(f"inputs: the Training Set Maker reads one spec-z catalog, got {len(inputs)}")
        if release is None:
            raise ValueError("release: the Training Set Maker cross-matches with a release's objects; give a release")
        if not release.get("object_catalog"):
            raise ValueError(f"release {release['name']!r} has no object catalog registered; an admin registers it "
                             "with `pz release set --object-catalog`")
        crossmatch = _request_section(param, "crossmatch", {"radius_arcsec", "n_neighbors"})
        split = _request_section(param, "split", {"method", "train_fraction", "seed"})
        if split.get("method", "random") != "random":
            raise ValueError(f"param.split.method: only 'random' is supported, got {split['method']!r}")
        defaults = _defaults(cls)
        flux_type = param.get("flux_type", "auto")
        dereddening = param.get("dereddening", defaults["dereddening"])
        params = {
            "specz_catalog": inputs[0]["path"],
            "specz_columns": {role: column for role, column in inputs[0]["columns"].items() if role in SPECZ_ROLES},
            "object_catalog": release["object_catalog"],
            "release": release["name"],
            "column_map": (release.get("object_column_map") if flux_type in ("auto", None)
                           else _FLUX_TYPES.get(flux_type, flux_type)),
            "convert_flux_to_mag": param.get("convert_flux_to_mag", defaults["convert_flux_to_mag"]),
            "dereddening": None if dereddening in ("", "none") else dereddening,
            "radius_arcsec": crossmatch.get("radius_arcsec", defaults["radius_arcsec"]),
            "n_neighbors": crossmatch.get("n_neighbors", defaults["n_neighbors"]),
            "duplicate_criteria": param.get("duplicate_criteria", defaults["duplicate_criteria"]),
            "train_fraction": split.get("train_fraction", defaults["train_fraction"]),
            "split_seed": split.get("seed", defaults["split_seed"]),
            "selected_columns": param.get("selected_columns", defaults["selected_columns"]),
            "output_dir": output_dir,
            "output_format": output_format or defaults["output_format"],
        }
        cls.from_params(params)
        return params

    @classmethod
    def request_fields(cls) -> tuple[RequestField, ...]:
        """LIneA's ``param`` fields a PZ Server request may set, each with the schema of its config param."""
        schema = cls.params_schema()["properties"]
        return (
            RequestField("crossmatch.radius_arcsec", "radius_arcsec", "Match radius (arcsec)",
                         "A spec-z and an object closer than this are a match.", schema["radius_arcsec"]),
            RequestField("crossmatch.n_neighbors", "n_neighbors", "Objects per spec-z",
                         "Objects kept per spec-z within the radius, nearest first.", schema["n_neighbors"]),
            RequestField("duplicate_criteria", "duplicate_criteria", "Object matched twice",
                         "closest: the nearest spec-z keeps the object; all: every pair is kept.",
                         schema["duplicate_criteria"]),
            RequestField("flux_type", "column_map", "Photometry",
                         "auto: the release's own columns; cmodel or gaap: those fluxes.",
                         {"type": "string", "enum": ["auto", *_FLUX_TYPES]}),
            RequestField("convert_flux_to_mag", "convert_flux_to_mag", "Fluxes to AB magnitudes",
                         "RAIL's mag_{band}_lsst columns instead of the fluxes.", schema["convert_flux_to_mag"]),
            RequestField("dereddening", "dereddening", "Dereddening",
                         "sfd: correct for Galactic extinction with the release's E(B−V) column; none: as measured.",
                         {"type": "string", "enum": [*DEREDDENING_METHODS, "none"]}),
            RequestField("split.train_fraction", "train_fraction", "Training fraction",
                         "Share of rows flagged is_training_set; the rest is the test set.",
                         {**schema["train_fraction"], "type": "number"}),
            RequestField("split.seed", "split_seed", "Split seed", "The same seed gives the same split.",
                         schema["split_seed"]),
        )

    @classmethod
    def params_schema(cls) -> dict:
        """JSON schema of the params (the DAG's params refine it)."""
        path = {"type": "string", "minLength": 1}
        return {
            "type": "object",
            "required": ["specz_catalog", "object_catalog", "output_dir"],
            "additionalProperties": False,
            "properties": {
                "specz_catalog": path,
                "object_catalog": path,
                "output_dir": path,
                "release": {"type": ["string", "null"], "pattern": RELEASE_PATTERN},
                "specz_columns": SpeczColumns.schema(),
                "object_id_column": {"type": ["string", "null"], "minLength": 1},
                "selected_columns": {"type": ["array", "null"], "items": {"type": "string", "minLength": 1}},
                "column_map": {"type": ["string", "object", "null"],
                               "anyOf": [*COLUMN_MAP_SCHEMA["anyOf"], {"type": "null"}]},
                "convert_flux_to_mag": {"type": "boolean"},
                "dereddening": {"type": ["string", "null"], "enum": [*DEREDDENING_METHODS, None]},
                "radius_arcsec": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS_ARCSEC},
                "n_neighbors": {"type": "integer", "minimum": 1, "maximum": 1000},
                "duplicate_criteria": {"type": "string", "enum": list(DUPLICATE_CRITERIA)},
                "train_fraction": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "split_seed": {"type": "integer", "minimum": 0},
                "output_name": {"type": "string", "pattern": _NAME_PATTERN.pattern},
                "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                "workers": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        }


@dataclass
class SpeczInput:
    """One spec-z catalog given to Combine Redshift Catalogs."""

    path: str
    """Parquet, CSV, FITS, HDF5 file or HATS catalog (path or file:// URI)."""
    survey: str
    """Survey name: the key of its flag translation and the ``survey`` value of its rows (with ``survey_column``:
    of the rows that name no survey)."""
    columns: SpeczColumns | dict = field(default_factory=SpeczColumns)
    """Columns holding ra, dec, z (required) and id, z_err, z_flag (optional)."""
    flag_translation: dict | None = None
    """The survey's flag translation given inline (same fields as in the translation file), overriding the file."""
    survey_column: str | None = None
    """Column naming each row's survey (a compiled multi-survey catalog): every row is translated by its own
    survey's flag translation and keeps its survey in the output."""
    untranslated_surveys: str = "refuse"
    """A survey of this input with flags but no flag translation: ``refuse`` the request, or ``rank_last``."""

    def check(self, where: str) -> None:
        self.path = _check_path(f"{where}.path", self.path)
        if not isinstance(self.survey, str) or not self.survey.strip():
            raise ValueError(f"{where}.survey: a survey name is required")
        self.columns = SpeczColumns.from_value(self.columns, f"{where}.columns")
        if self.flag_translation is not None and not isinstance(self.flag_translation, dict):
            raise ValueError(f"{where}.flag_translation: must be an object (flags, conditions, default) or null")
        if self.survey_column is not None:
            if not isinstance(self.survey_column, str) or not self.survey_column:
                raise ValueError(f"{where}.survey_column: must be a column name or null, got {self.survey_column!r}")
            if self.survey_column in self.columns.roles().values():
                raise ValueError(f"{where}.survey_column: column {self.survey_column!r} already holds another role")
            if self.flag_translation is not None:
                raise ValueError(f"{where}.flag_translation: an input of several surveys (survey_column) takes its "
                                 "translations from a flag translation file, one entry per survey")
        _check_choice(f"{where}.{UNTRANSLATED_FIELD}", self.untranslated_surveys, UNTRANSLATED_CHOICES)

    @classmethod
    def from_value(cls, value, where: str) -> SpeczInput:
        if isinstance(value, SpeczInput):
            entry = value
        elif isinstance(value, dict):
            _unknown_fields(cls, value, f"{where}.")
            for name in ("path", "survey"):
                if value.get(name) in (None, ""):
                    raise ValueError(f"{where}.{name}: required")
            entry = cls(**value)
        else:
            raise ValueError(f"{where}: must be an object with path, survey and columns")
        entry.check(where)
        return entry


@dataclass
class CrcConfig(_OutputRequest):
    """A Combine Redshift Catalogs request: N spec-z catalogs into one, duplicates marked or removed.

    Examples
    --------
    >>> config = CrcConfig.from_params({"output_dir": "out", "inputs": [
    ...     {"path": "a.csv", "survey": "2DFGRS", "columns": {"z_flag": "quality"}},
    ...     {"path": "b.parquet", "survey": "JADES", "columns": {"z": "z_Spec", "z_flag": "z_Spec_flag"}}]})
    >>> config.combine_type, [entry.survey for entry in config.inputs]
    ('concatenate_and_mark_duplicates', ['2DFGRS', 'JADES'])
    """

    inputs: list[SpeczInput]
    """The spec-z catalogs, in priority order: on a full tie the earlier catalog's row is kept."""
    output_dir: str
    """Folder for the combined catalog and its report; created if missing."""
    combine_type: str = "concatenate_and_mark_duplicates"
    """``concatenate``, ``concatenate_and_mark_duplicates`` or ``concatenate_and_remove_duplicates``."""
    radius_arcsec: float = 1.0
    """Rows closer than this (arcsec) are the same object."""
    n_neighbors: int = 16
    """Neighbours searched per row within the radius, itself included; bigger groups still link through their
    members, since duplicates are grouped transitively."""
    flag_translation_file: str | None = None
    """YAML of per-survey flag translations; None means include/crc/flag_translation.yaml."""
    release: str | None = None
    """Release the combined catalog is meant for, if any (recorded in the report)."""
    output_name: str = "combined_redshift_catalog"
    """Name of the output (file stem, or folder for HATS)."""
    output_format: str = "parquet"
    """``parquet``, ``csv`` or ``hats``."""
    workers: int = 2
    """Threads of the local Dask scheduler running the duplicate search."""

    def __post_init__(self):
        if not isinstance(self.inputs, list) or not self.inputs:
            raise ValueError("inputs: at least one spec-z catalog is required")
        self.inputs = [SpeczInput.from_value(entry, f"inputs[{index}]") for index, entry in enumerate(self.inputs)]
        self.output_dir = _check_path("output_dir", self.output_dir)
        _check_choice("combine_type", self.combine_type, COMBINE_TYPES)
        self.radius_arcsec = _check_radius("radius_arcsec", self.radius_arcsec)
        self.n_neighbors = _check_positive_int("n_neighbors", self.n_neighbors, maximum=1000)
        if self.n_neighbors < 2 and self.combine_type != "concatenate":
            raise ValueError("n_neighbors: must be at least 2 to find a duplicate (a row is its own first neighbour)")
        if self.flag_translation_file is not None:
            self.flag_translation_file = _check_path("flag_translation_file", self.flag_translation_file)
        _check_release(self.release)
        _check_output_name(self.output_name)
        _check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        self.workers = _check_positive_int("workers", self.workers, maximum=64)
        from pzlib.crossmatch.flags import load_flag_translations

        translations = load_flag_translations(self.translation_file)
        for index, entry in enumerate(self.inputs):
            try:
                translation = translations.lookup(entry.survey, entry.flag_translation)
            except ValueError as error:
                field_name = "flag_translation" if entry.flag_translation is not None else "survey"
                raise ValueError(f"inputs[{index}].{field_name}: {error}") from None
            # An input of several surveys is checked against its rows' surveys by crc.check_inputs.
            if (entry.columns.z_flag and translation is None and entry.survey_column is None
                    and entry.untranslated_surveys == "refuse"):
                raise ValueError(f"inputs[{index}].survey: {self.untranslated_message([entry.survey])}")

    @property
    def translation_file(self) -> Path:
        if self.flag_translation_file is None:
            return DEFAULT_FLAG_TRANSLATION_FILE
        return local_path(self.flag_translation_file)

    def untranslated_message(self, surveys: list[str]) -> str:
        """Why surveys without a flag translation are refused, and the two ways on (no server path in it)."""
        from pzlib.crossmatch.flags import load_flag_translations

        source = ("the platform's flag translations" if self.flag_translation_file is None
                  else f"flag translation file {self.translation_file.name}")
        known = ", ".join(load_flag_translations(self.translation_file).surveys())
        named = ", ".join(repr(survey) for survey in surveys[:10]) + (" …" if len(surveys) > 10 else "")
        return (f"no flag translation for survey(s) {named} in {source} (known: {known}); send a flag translation "
                f"file that translates them (or give flag_translation inline), or set {UNTRANSLATED_FIELD} to "
                "rank_last to rank their rows after every graded row")

    def fingerprint(self) -> str:
        """Hash of everything that shapes the output (not ``workers``), the translation table's text included."""
        return _fingerprint({**self._output_shaping_params(),
                             "flag_translation_text": self.translation_file.read_text()})

    @classmethod
    def from_params(cls, params: dict) -> CrcConfig:
        """A config from DAG params / a process's config; raises ValueError naming the bad field."""
        _unknown_fields(cls, params)
        for name in ("inputs", "output_dir"):
            if params.get(name) in (None, "", []):
                raise ValueError(f"{name}: required")
        return cls(**params)

    @classmethod
    def params_from_pzserver_request(cls, param: dict, *, inputs: list[dict], release: dict | None, output_dir: str,
                                     output_format: str | None = None,
                                     flag_translation_file: str | None = None) -> dict:
        """The params of a PZ Server Combine Redshift Catalogs request, checked.

        Parameters
        ----------
        param : dict
            LIneA's fields: ``combine_type``, ``crossmatch`` (``radius_arcsec``, ``n_neighbors``) and
            ``flags_translation_file``, which only says a file was sent; one left out takes this config's default.
            And ours: ``untranslated_surveys`` (``refuse`` or ``rank_last``), for every input.
        inputs : list of dict
            The spec-z catalogs, in priority order: ``path``, ``survey`` (the product's name) and ``columns`` (the
            product's column roles); a ``survey`` role names the column of each row's survey.
        release : dict or None
            The release the combined catalog is meant for (its ``name``).
        output_dir, output_format : str
            Where the combined catalog goes, and its format (by default this config's).
        flag_translation_file : str or None
            The flag translation file sent with the request, saved where the run reads it.

        Raises
        ------
        ValueError
            Naming the field (``param.<name>`` for LIneA's).
        """
        _check_request_params(param, _CRC_REQUEST_PARAMS)
        crossmatch = _request_section(param, "crossmatch", {"radius_arcsec", "n_neighbors"})
        if param.get(FLAGS_FILE_FIELD) and flag_translation_file is None:
            raise ValueError(f"param.{FLAGS_FILE_FIELD}: send the file itself in the multipart field "
                             f"{FLAGS_FILE_FIELD!r}; the server cannot read {param[FLAGS_FILE_FIELD]!r}")
        defaults = _defaults(cls)
        untranslated = param.get(UNTRANSLATED_FIELD, _defaults(SpeczInput)[UNTRANSLATED_FIELD])
        _check_choice(f"param.{UNTRANSLATED_FIELD}", untranslated, UNTRANSLATED_CHOICES)
        params = {
            "combine_type": param.get("combine_type", defaults["combine_type"]),
            "radius_arcsec": crossmatch.get("radius_arcsec", defaults["radius_arcsec"]),
            "n_neighbors": crossmatch.get("n_neighbors", defaults["n_neighbors"]),
            "flag_translation_file": flag_translation_file,
            "output_dir": output_dir,
            "output_format": output_format or defaults["output_format"],
            "release": release["name"] if release else None,
            "inputs": [_crc_input(entry, untranslated) for entry in inputs],
        }
        cls.from_params(params)
        return params

    @classmethod
    def request_fields(cls) -> tuple[RequestField, ...]:
        """LIneA's ``param`` fields a PZ Server request may set, each with the schema of its config param (the
        flag translation file is sent as a file, not a field)."""
        schema = cls.params_schema()["properties"]
        return (
            RequestField("combine_type", "combine_type", "Duplicates",
                         "concatenate: keep every row; mark: flag the rows of one object; remove: keep the best.",
                         schema["combine_type"]),
            RequestField("crossmatch.radius_arcsec", "radius_arcsec", "Same-object radius (arcsec)",
                         "Rows closer than this are the same object.", schema["radius_arcsec"]),
            RequestField("crossmatch.n_neighbors", "n_neighbors", "Neighbours searched",
                         "Neighbours searched per row within the radius, itself included.", schema["n_neighbors"]),
            RequestField(UNTRANSLATED_FIELD, UNTRANSLATED_FIELD, "Surveys without a flag translation",
                         "A survey with quality flags the translations do not cover (a catalog's own name, or a "
                         "value of its associated survey column): refuse the request (then send a flag translation "
                         "file for it), or rank_last: keep its rows, ungraded, after every graded duplicate.",
                         schema["inputs"]["items"]["properties"][UNTRANSLATED_FIELD]),
        )

    @classmethod
    def params_schema(cls) -> dict:
        """JSON schema of the params (the DAG's params refine it)."""
        return {
            "type": "object",
            "required": ["inputs", "output_dir"],
            "additionalProperties": False,
            "properties": {
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["path", "survey"],
                        "additionalProperties": False,
                        "properties": {
                            "path": {"type": "string", "minLength": 1},
                            "survey": {"type": "string", "minLength": 1},
                            "columns": SpeczColumns.schema(),
                            "flag_translation": {"type": ["object", "null"]},
                            "survey_column": {"type": ["string", "null"], "minLength": 1},
                            UNTRANSLATED_FIELD: {"type": "string", "enum": list(UNTRANSLATED_CHOICES)},
                        },
                    },
                },
                "output_dir": {"type": "string", "minLength": 1},
                "combine_type": {"type": "string", "enum": list(COMBINE_TYPES)},
                "radius_arcsec": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS_ARCSEC},
                "n_neighbors": {"type": "integer", "minimum": 1, "maximum": 1000},
                "flag_translation_file": {"type": ["string", "null"], "minLength": 1},
                "release": {"type": ["string", "null"], "pattern": RELEASE_PATTERN},
                "output_name": {"type": "string", "pattern": _NAME_PATTERN.pattern},
                "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                "workers": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        }


def _crc_input(entry: dict, untranslated: str) -> dict:
    """A CRC input from a PZ Server input: its ``survey`` role, if associated, is the column of the rows' surveys."""
    columns = {role: column for role, column in entry["columns"].items() if role != "survey"}
    survey_column = entry["columns"].get("survey")
    return {"path": entry["path"], "survey": entry["survey"], "columns": columns,
            **({"survey_column": survey_column} if survey_column else {}), UNTRANSLATED_FIELD: untranslated}


PZSERVER_REQUESTS = {
    "training_set_maker": TsmConfig.params_from_pzserver_request,
    "combine_redshift_dedup": CrcConfig.params_from_pzserver_request,
}
"""How a PZ Server request of each pipeline (by its name in :mod:`pzlib.registry.pipelines`) becomes checked
params: what the PZ Server hands :class:`pzlib.registry.process_runs.ProcessRuns`."""

PZSERVER_REQUEST_FIELDS = {
    "training_set_maker": TsmConfig.request_fields(),
    "combine_redshift_dedup": CrcConfig.request_fields(),
}
"""The ``param`` fields of each pipeline's PZ Server request, for the PZ Server's forms."""
