"""Test and benchmark catalogs with real structure for TSM and CRC, built reproducibly from RAIL's DC2 sample.

The object catalog is RAIL's DC2 galaxies (``test_dc2_training_9816`` and ``test_dc2_validation_9816``: 30,674
galaxies with true redshifts and LSST magnitudes) observed as the LSST DM Object table of
``rubin_dm_dc2_example.pq``: its columns (``objectId``, ``ra``, ``decl``, GAaP fluxes in nJy and their
errors) plus ``ebv``, its sky field, and its flux noise per band; magnitudes are reddened by a smooth
E(B−V) before the noise is added, and the example's 100 real DM objects are included as they are. Positions
are uniform in a square patch sized for ``density_per_arcmin2``; above 30,674 objects, galaxies are drawn
again with fresh positions and ids. It is written as a HATS collection with a margin cache (lsdb).

Spec-z "surveys" then observe it as five real surveys report their data (own column names, file formats and
quality-flag conventions, those of ``include/crc/flag_translation.yaml``): each covers its own part of the
patch down to its own depth, so they overlap; its redshifts are the true ones plus its measurement error, with
catastrophic failures more frequent at lower quality and fainter magnitude; positions carry its astrometric
scatter; a few rows have no counterpart (stars, objects missing from the photometry) and some objects are
observed twice. A ``specz_reference`` catalog (one Parquet file and the same as HATS) is the TSM input of
the tests and of the 1e6 × 1e5 benchmark.

Everything comes from one seed: the same :class:`SampleConfig` gives the same catalogs. The folder is built
aside and renamed into place with a ``manifest.json``; a folder whose manifest matches the config is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pzlib.crossmatch.outputs import partition_order
from pzlib.preprocess import NJY_AB_ZEROPOINT, SFD_EXTINCTION_COEFFICIENTS
from pzlib.samples import OBJECT_COLUMN_MAP

BANDS = ("u", "g", "r", "i", "z", "y")
MANIFEST_NAME = "manifest.json"
DM_EXAMPLE_FILE = "rubin_dm_dc2_example.pq"
REFERENCE_COLUMNS = {"id": "id", "ra": "ra", "dec": "dec", "z": "z", "z_err": "z_err", "z_flag": "z_flag"}

# Quality mix of a survey's rows, by homogenized class 0–4: bright targets and targets at its depth limit.
_QUALITY_BRIGHT = np.array([0.02, 0.03, 0.05, 0.15, 0.75])
_QUALITY_FAINT = np.array([0.10, 0.15, 0.20, 0.25, 0.30])
# Chance that a redshift of each class is a catastrophic failure (a wrong line identification).
_CATASTROPHIC = np.array([0.7, 0.4, 0.15, 0.02, 0.002])
_MAX_REDSHIFT = 3.0


@dataclass(frozen=True)
class SurveyModel:
    """How a mock spec-z survey observes the object catalog and reports it."""

    survey: str
    """Survey name (its key in the flag translation table)."""
    file_name: str
    """File written under ``surveys/``; the suffix gives the format."""
    columns: dict[str, str]
    """{role: the survey's own column name} for id, ra, dec, z and, when it reports them, z_err and z_flag."""
    footprint: tuple[float, float, float, float]
    """(ra from, ra to, dec from, dec to) as fractions of the patch."""
    depth_i: float
    """Faintest true i magnitude targeted."""
    completeness: float
    """Fraction of the targets in the footprint observed."""
    z_error: float
    """σ_z / (1 + z) of a good redshift."""
    jitter_arcsec: float
    """Astrometric scatter per coordinate."""
    flags: dict[int, tuple] = field(default_factory=dict)
    """{homogenized class: the survey's flag values for it}, the first the common one; empty: no flag column."""
    repeat_fraction: float = 0.0
    """Fraction of observed objects with a second, independent row."""
    stray_fraction: float = 0.03
    """Rows without a counterpart in the object catalog, relative to the observed objects."""


SURVEYS: tuple[SurveyModel, ...] = (
    SurveyModel("2DFGRS", "2dfgrs.csv",
                {"id": "name", "ra": "ra_j2000_deg", "dec": "dec_j2000_deg", "z": "z", "z_flag": "quality"},
                (0.0, 1.0, 0.0, 1.0), 21.5, 0.6, 0.0003, 0.3,
                {0: (1,), 1: (2,), 3: (3,), 4: (4, 5)}, repeat_fraction=0.02),
    SurveyModel("SDSS", "sdss.hdf5",
                {"id": "SPECOBJID", "ra": "PLUG_RA", "dec": "PLUG_DEC", "z": "Z", "z_err": "Z_ERR",
                 "z_flag": "ZWARNING"},
                (0.0, 1.0, 0.3, 1.0), 21.0, 0.7, 0.00012, 0.15, {4: (0,), 0: (4, 16, 1)}),
    SurveyModel("VVDS", "vvds.fits",
                {"id": "NUM", "ra": "ALPHA", "dec": "DELTA", "z": "Z", "z_flag": "ZFLAGS"},
                (0.0, 0.6, 0.0, 0.8), 24.0, 0.35, 0.0009, 0.15,
                {0: (0, 10, 20), 1: (1, 11, 21), 2: (2, 9, 12, 22), 3: (3, 13, 23), 4: (4, 14, 24)},
                repeat_fraction=0.03),
    SurveyModel("JADES", "jades.parquet",
                {"id": "Unique_ID", "ra": "RA_TARG", "dec": "Dec_TARG", "z": "z_Spec", "z_flag": "z_Spec_flag"},
                (0.35, 0.65, 0.35, 0.65), 25.3, 0.8, 0.003, 0.05,
                {0: ("E",), 1: ("D",), 2: ("C",), 3: ("B",), 4: ("A",)}),
    SurveyModel("2MRS", "2mrs.parquet",
                {"id": "TMID", "ra": "RA", "dec": "DEC", "z": "redshift", "z_err": "redshift_err"},
                (0.4, 1.0, 0.0, 1.0), 20.0, 0.9, 0.0002, 0.5, stray_fraction=0.05),
)
"""The mock surveys, in the order CRC gets them by default."""


@dataclass
class SampleConfig:
    """What to build; every number has a default sized for the tests."""

    n_objects: int = 5_000
    """Objects of the object catalog (the 100 DM example objects included)."""
    reference_rows: int | None = None
    """Rows of ``specz_reference``; by default a tenth of ``n_objects``."""
    seed: int = 9816
    """Seed of every random draw."""
    density_per_arcmin2: float = 40.0
    """Objects per square arcminute (LSST gold-sample-like); sets the patch size."""
    partition_rows: int | None = None
    """Rows per HATS partition; by default a third of the objects, so even the tests' catalog has borders."""
    margin_arcsec: float = 5.0
    """Width of the object catalog's margin cache."""
    surveys: tuple[str, ...] = tuple(model.survey for model in SURVEYS)
    """Which mock surveys to write."""

    def __post_init__(self):
        if self.n_objects < 200:
            raise ValueError(f"n_objects: must be at least 200, got {self.n_objects}")
        if self.reference_rows is not None and not 1 <= self.reference_rows <= self.n_objects:
            raise ValueError(f"reference_rows: must be between 1 and n_objects, got {self.reference_rows}")
        if self.density_per_arcmin2 <= 0:
            raise ValueError(f"density_per_arcmin2: must be positive, got {self.density_per_arcmin2}")
        known = [model.survey for model in SURVEYS]
        unknown = [name for name in self.surveys if name not in known]
        if unknown:
            raise ValueError(f"surveys: unknown mock survey {unknown[0]!r} (known: {', '.join(known)})")
        self.surveys = tuple(self.surveys)

    @property
    def rows_per_partition(self) -> int:
        return self.partition_rows or max(self.n_objects // 3, 500)

    @property
    def reference_size(self) -> int:
        return self.reference_rows or max(self.n_objects // 10, 100)


@dataclass
class SampleData:
    """Where a built sample is, and requests that use it."""

    folder: Path
    objects: Path
    """HATS collection of the object catalog (catalog + margin cache)."""
    truth: Path
    """Parquet: objectId, true redshift and true (unreddened) magnitudes of the DC2 objects."""
    reference: Path
    """Parquet spec-z catalog for TSM (columns of :data:`REFERENCE_COLUMNS`)."""
    reference_hats: Path
    """The same catalog as HATS."""
    surveys: list[dict]
    """Per mock survey: ``path``, ``survey``, ``columns`` (a CRC input) and ``rows``."""
    manifest: dict

    def tsm_params(self, output_dir: str | os.PathLike, **overrides) -> dict:
        """Params of a TSM request on this sample (the reference catalog × the object catalog)."""
        return {"specz_catalog": str(self.reference), "object_catalog": str(self.objects),
                "output_dir": str(output_dir), "release": "dc2-sample", "specz_columns": dict(REFERENCE_COLUMNS),
                "column_map": dict(OBJECT_COLUMN_MAP), "dereddening": "sfd", **overrides}

    def crc_params(self, output_dir: str | os.PathLike, **overrides) -> dict:
        """Params of a CRC request combining every mock survey of this sample."""
        inputs = [{key: entry[key] for key in ("path", "survey", "columns")} for entry in self.surveys]
        return {"inputs": inputs, "output_dir": str(output_dir), **overrides}


def make_sample_data(folder: str | os.PathLike, config: SampleConfig | None = None) -> SampleData:
    """Build the sample under ``folder`` (or reuse it when its manifest matches ``config``).

    Examples
    --------
    >>> sample = make_sample_data("var/crossmatch/sample")  # doctest: +SKIP
    >>> sample.surveys[0]["survey"], sample.surveys[0]["columns"]["z_flag"]  # doctest: +SKIP
    ('2DFGRS', 'quality')
    """
    config = config or SampleConfig()
    folder = Path(folder)
    existing = _read_manifest(folder)
    if existing is not None and existing["config"] == _config_record(config):
        return _sample_data(folder, existing)
    if existing is None and folder.exists() and any(folder.iterdir()):
        raise ValueError(f"folder: {folder} holds other files; give an empty or new folder for the sample")
    staging = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        manifest = _build(staging, config)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        try:
            os.replace(staging, folder)
        except OSError:
            # Another process built the same sample meanwhile: use it when it matches.
            built = _read_manifest(folder)
            if built is None or built["config"] != manifest["config"]:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _sample_data(folder, _read_manifest(folder))


def provide_sample_data(paths: list[str], folder: str | os.PathLike, config: SampleConfig | None = None) -> bool:
    """Build the sample under ``folder`` when one of ``paths`` lies in it and does not exist yet (the DAGs'
    default params point there); returns whether it was needed."""
    folder = Path(folder).resolve()
    wanted = [Path(path).resolve() for path in paths]
    if not any(path.is_relative_to(folder) and not path.exists() for path in wanted):
        return False
    make_sample_data(folder, config)
    return True


def _config_record(config: SampleConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def _sample_data(folder: Path, manifest: dict) -> SampleData:
    surveys = [{**entry, "path": str(folder / entry["path"])} for entry in manifest["surveys"]]
    return SampleData(folder, folder / manifest["objects"]["path"], folder / manifest["truth"],
                      folder / manifest["reference"]["parquet"], folder / manifest["reference"]["hats"], surveys,
                      manifest)


def _build(staging: Path, config: SampleConfig) -> dict:
    rng = np.random.default_rng(config.seed)
    example = _dm_example()
    objects, truth, patch = _object_catalog(config, example, rng)
    _write_hats(objects, staging / "objects", "objects", "ra", "decl", config.rows_per_partition,
                config.margin_arcsec)
    truth.to_parquet(staging / "truth.parquet", index=False)

    reference = _reference_catalog(objects, truth, config.reference_size, patch, rng)
    reference.to_parquet(staging / "specz_reference.parquet", index=False)
    _write_hats(reference, staging / "specz_reference_hats", "specz_reference", "ra", "dec",
                config.rows_per_partition, None)

    (staging / "surveys").mkdir()
    surveys = []
    for model in SURVEYS:
        if model.survey not in config.surveys:
            continue
        rows = _survey_rows(model, objects, truth, patch, rng)
        _write_table(rows, staging / "surveys" / model.file_name)
        surveys.append({"survey": model.survey, "path": f"surveys/{model.file_name}", "columns": model.columns,
                        "rows": len(rows)})
    return {
        "config": _config_record(config),
        "objects": {"path": "objects", "rows": len(objects), "column_map": OBJECT_COLUMN_MAP,
                    "patch_deg": {key: round(value, 6) for key, value in patch.items()}},
        "truth": "truth.parquet",
        "reference": {"parquet": "specz_reference.parquet", "hats": "specz_reference_hats",
                      "rows": len(reference), "columns": REFERENCE_COLUMNS},
        "surveys": surveys,
    }


def _dm_example() -> pd.DataFrame:
    from pzlib.samples import dc2_sample_paths

    return pd.read_parquet(dc2_sample_paths()[0].with_name(DM_EXAMPLE_FILE))


def _dc2_galaxies() -> pd.DataFrame:
    import tables_io

    from pzlib.samples import dc2_sample_paths

    frames = [pd.DataFrame(tables_io.read(str(path))["photometry"]) for path in dc2_sample_paths()]
    return pd.concat(frames, ignore_index=True)


def _ebv(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """A smooth E(B−V) of 0.01–0.04 mag over the field (DC2's field has little dust)."""
    return 0.025 + 0.012 * np.sin(np.radians(ra) * 90.0) * np.cos(np.radians(dec) * 70.0)


def _object_catalog(config: SampleConfig, example: pd.DataFrame,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    galaxies = _dc2_galaxies()
    n_synthetic = config.n_objects - len(example)
    chosen = rng.choice(len(galaxies), n_synthetic, replace=n_synthetic > len(galaxies))
    drawn = galaxies.iloc[chosen].reset_index(drop=True)

    ra0, dec0 = float(example["ra"].mean()), float(example["decl"].mean())
    side = np.sqrt(config.n_objects / config.density_per_arcmin2) / 60.0
    patch = {"ra_min": ra0 - side / 2 / np.cos(np.radians(dec0)), "ra_max": ra0 + side / 2 / np.cos(np.radians(dec0)),
             "dec_min": dec0 - side / 2, "dec_max": dec0 + side / 2}
    ra, dec = _uniform_positions(patch, (0.0, 1.0, 0.0, 1.0), n_synthetic, rng)
    ebv = _ebv(ra, dec)
    noise = {band: float(example[f"{band}_gaap1p0FluxErr"].median()) for band in BANDS}
    first_id = int(example["objectId"].max()) + 1
    columns = {"objectId": np.arange(first_id, first_id + n_synthetic, dtype=np.int64), "ra": ra, "decl": dec}
    for band in BANDS:
        magnitude = drawn[f"mag_{band}_lsst"].to_numpy(dtype=float)
        true_flux = np.where(magnitude < 90.0, 10.0 ** (-0.4 * (magnitude - NJY_AB_ZEROPOINT)), 0.0)
        true_flux *= 10.0 ** (-0.4 * SFD_EXTINCTION_COEFFICIENTS[band] * ebv)
        error = noise[band] * rng.uniform(0.85, 1.25, n_synthetic)
        columns[f"{band}_gaap1p0Flux"] = true_flux + rng.normal(0.0, error)
        columns[f"{band}_gaap1p0FluxErr"] = error
    columns["ebv"] = ebv
    synthetic = pd.DataFrame(columns)
    real = example.assign(ebv=_ebv(example["ra"].to_numpy(), example["decl"].to_numpy()))
    objects = pd.concat([real[synthetic.columns], synthetic], ignore_index=True)
    truth = pd.DataFrame({"objectId": columns["objectId"], "redshift": drawn["redshift"].to_numpy(),
                          **{f"mag_{band}_lsst": drawn[f"mag_{band}_lsst"].to_numpy() for band in BANDS}})
    return objects, truth, patch


def _uniform_positions(patch: dict, footprint: tuple[float, float, float, float], count: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions uniform on the sphere in a footprint given as fractions of the patch."""
    x0, x1, y0, y1 = footprint
    ra_span = patch["ra_max"] - patch["ra_min"]
    dec_span = patch["dec_max"] - patch["dec_min"]
    ra = patch["ra_min"] + ra_span * rng.uniform(x0, x1, count)
    sin_low = np.sin(np.radians(patch["dec_min"] + dec_span * y0))
    sin_high = np.sin(np.radians(patch["dec_min"] + dec_span * y1))
    dec = np.degrees(np.arcsin(rng.uniform(sin_low, sin_high, count)))
    return ra, dec


def _jittered(ra: np.ndarray, dec: np.ndarray, sigma_arcsec: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sigma_deg = sigma_arcsec / 3600.0
    dec_out = dec + rng.normal(0.0, sigma_deg, dec.size)
    ra_out = (ra + rng.normal(0.0, sigma_deg, ra.size) / np.cos(np.radians(dec))) % 360.0
    return ra_out, dec_out


def _in_footprint(objects: pd.DataFrame, patch: dict, footprint: tuple[float, float, float, float]) -> np.ndarray:
    x0, x1, y0, y1 = footprint
    x = (objects["ra"].to_numpy() - patch["ra_min"]) / (patch["ra_max"] - patch["ra_min"])
    y = (objects["decl"].to_numpy() - patch["dec_min"]) / (patch["dec_max"] - patch["dec_min"])
    return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


def _measured_redshifts(true_z: np.ndarray, quality: np.ndarray, z_error: float,
                        rng: np.random.Generator) -> np.ndarray:
    good = true_z + rng.normal(0.0, z_error * (1.0 + true_z))
    failed = rng.uniform(0.0, 1.0, true_z.size) < _CATASTROPHIC[quality]
    return np.clip(np.where(failed, rng.uniform(0.0, _MAX_REDSHIFT, true_z.size), good), 0.0, None)


def _qualities(magnitude_i: np.ndarray, depth_i: float, rng: np.random.Generator) -> np.ndarray:
    """Homogenized class per row: mostly secure when bright, mixed at the depth limit."""
    faintness = np.clip((magnitude_i - (depth_i - 2.5)) / 2.5, 0.0, 1.0)[:, None]
    probabilities = (1.0 - faintness) * _QUALITY_BRIGHT + faintness * _QUALITY_FAINT
    cumulative = probabilities.cumsum(axis=1)
    return (rng.uniform(0.0, 1.0, (magnitude_i.size, 1)) > cumulative).sum(axis=1).clip(0, 4)


def _flag_values(model: SurveyModel, quality: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(the survey's flag per row, the homogenized class it stands for): a class the survey cannot express is
    reported as its nearest one (ties towards the lower)."""
    classes = np.array(sorted(model.flags))
    nearest = classes[np.abs(quality[:, None] - classes[None, :]).argmin(axis=1)]
    values = np.empty(quality.size, dtype=object)
    for homogenized, choices in model.flags.items():
        rows = np.flatnonzero(nearest == homogenized)
        weights = np.array([0.85] + [0.15 / (len(choices) - 1)] * (len(choices) - 1)) if len(choices) > 1 else None
        values[rows] = np.array(choices, dtype=object)[rng.choice(len(choices), rows.size, p=weights)]
    return values, nearest


def _survey_rows(model: SurveyModel, objects: pd.DataFrame, truth: pd.DataFrame, patch: dict,
                 rng: np.random.Generator) -> pd.DataFrame:
    with_truth = objects.merge(truth[["objectId", "redshift", "mag_i_lsst"]], on="objectId")
    targets = with_truth[_in_footprint(with_truth, patch, model.footprint) & (with_truth["mag_i_lsst"] < model.depth_i)]
    observed = targets[rng.uniform(0.0, 1.0, len(targets)) < model.completeness]
    repeats = observed[rng.uniform(0.0, 1.0, len(observed)) < model.repeat_fraction]
    rows = pd.concat([observed, repeats], ignore_index=True)
    ra, dec = _jittered(rows["ra"].to_numpy(), rows["decl"].to_numpy(), model.jitter_arcsec, rng)
    true_z = rows["redshift"].to_numpy()
    magnitude_i = rows["mag_i_lsst"].to_numpy()

    n_stray = int(round(model.stray_fraction * len(observed)))
    stray_ra, stray_dec = _uniform_positions(patch, model.footprint, n_stray, rng)
    ra, dec = np.concatenate([ra, stray_ra]), np.concatenate([dec, stray_dec])
    true_z = np.concatenate([true_z, rng.uniform(0.0, 1.2, n_stray)])
    magnitude_i = np.concatenate([magnitude_i, rng.uniform(model.depth_i - 3.0, model.depth_i, n_stray)])

    quality = _qualities(magnitude_i, model.depth_i, rng)
    columns = model.columns
    table = {columns["ra"]: ra, columns["dec"]: dec}
    if model.flags:
        flags, quality = _flag_values(model, quality, rng)
        table[columns["z_flag"]] = _typed(flags)
    else:
        quality = np.full(quality.size, 4)
    z = _measured_redshifts(true_z, quality, model.z_error, rng)
    table[columns["z"]] = z
    if "z_err" in columns:
        spread = np.where(quality >= 3, 1.0, 3.0) * rng.uniform(0.6, 1.6, z.size)
        table[columns["z_err"]] = np.round(model.z_error * (1.0 + z) * spread, 6)
    frame = pd.DataFrame(table).sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)
    frame.insert(0, columns["id"], _survey_ids(model, len(frame)))
    return frame[[columns[role] for role in ("id", "ra", "dec", "z", "z_err", "z_flag") if role in columns]]


def _typed(values: np.ndarray) -> np.ndarray:
    """Flags as the survey stores them: integers when they all are, else text."""
    if all(isinstance(value, int | np.integer) for value in values):
        return values.astype(np.int16)
    return values.astype(str)


def _survey_ids(model: SurveyModel, count: int) -> np.ndarray:
    numbers = np.arange(1, count + 1)
    if model.survey == "2DFGRS":
        return np.array([f"TGS{number:06d}" for number in numbers])
    if model.survey == "2MRS":
        return np.array([f"2MASX{number:08d}" for number in numbers])
    if model.survey == "SDSS":
        return 1_237_000_000_000_000_000 + numbers * 1_000
    return numbers + 100_000


def _reference_catalog(objects: pd.DataFrame, truth: pd.DataFrame, rows: int, patch: dict,
                       rng: np.random.Generator) -> pd.DataFrame:
    """A compiled spec-z catalog (homogenized flags, errors): 98% of rows have a counterpart."""
    n_stray = rows // 50
    chosen = truth.iloc[rng.choice(len(truth), rows - n_stray, replace=False)]
    positions = objects.set_index("objectId").loc[chosen["objectId"], ["ra", "decl"]]
    ra, dec = _jittered(positions["ra"].to_numpy(), positions["decl"].to_numpy(), 0.2, rng)
    stray_ra, stray_dec = _uniform_positions(patch, (0.0, 1.0, 0.0, 1.0), n_stray, rng)
    true_z = np.concatenate([chosen["redshift"].to_numpy(), rng.uniform(0.0, 1.2, n_stray)])
    magnitude_i = np.concatenate([chosen["mag_i_lsst"].to_numpy(), rng.uniform(20.0, 25.0, n_stray)])
    quality = _qualities(magnitude_i, 25.3, rng)
    z = _measured_redshifts(true_z, quality, 0.0005, rng)
    return pd.DataFrame({
        "id": np.arange(1, rows + 1, dtype=np.int64),
        "ra": np.concatenate([ra, stray_ra]),
        "dec": np.concatenate([dec, stray_dec]),
        "z": z,
        "z_err": np.round(0.0005 * (1.0 + z) * rng.uniform(0.6, 1.6, rows), 6),
        "z_flag": quality.astype(np.int16),
    })


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".fits":
        from astropy.table import Table

        Table.from_pandas(frame).write(path, format="fits")
    elif path.suffix == ".hdf5":
        import h5py

        with h5py.File(path, "w", track_order=True) as h5file:
            for name in frame.columns:
                h5file.create_dataset(name, data=frame[name].to_numpy())
    else:
        raise ValueError(f"no writer for {path.suffix} files")


def _write_hats(frame: pd.DataFrame, path: Path, name: str, ra_column: str, dec_column: str,
                partition_rows: int, margin_arcsec: float | None) -> None:
    import lsdb

    order = partition_order(frame[ra_column].to_numpy(), frame[dec_column].to_numpy(), partition_rows)
    catalog = lsdb.from_dataframe(frame, catalog_name=name, ra_column=ra_column, dec_column=dec_column,
                                  partition_rows=partition_rows, highest_order=order, margin_threshold=margin_arcsec)
    catalog.write_catalog(path, progress_bar=False)
