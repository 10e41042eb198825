"""Column maps: which columns of a survey's catalog hold the id, the position and the photometry.

Plain data with no dependencies, so that a DAG file can offer the presets without loading pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass

LSST_BANDS = ("u", "g", "r", "i", "z", "y")


@dataclass(frozen=True)
class ColumnMap:
    """Which columns of a survey catalog hold the id, the position and the photometry."""

    value_template: str
    """Photometry column per band, with ``{band}``: e.g. ``mag_{band}_lsst`` or ``{band}_cModelFlux``."""
    error_template: str
    """Photometric error column per band, with ``{band}``."""
    kind: str = "mag"
    """``mag`` (AB magnitudes) or ``flux`` (nJy, converted to AB magnitudes in stage I)."""
    bands: tuple[str, ...] = LSST_BANDS
    """Band names, in wavelength order."""
    id_column: str = "id"
    """Unique object id column."""
    ra_column: str | None = "ra"
    """Right ascension (deg); None when the catalog has no positions."""
    dec_column: str | None = "dec"
    """Declination (deg); None when the catalog has no positions."""
    ebv_column: str | None = None
    """E(B−V) column for dereddening, if the catalog carries one."""

    def __post_init__(self):
        if self.kind not in ("mag", "flux"):
            raise ValueError(f"column map kind must be 'mag' or 'flux', got {self.kind!r}")
        for template in (self.value_template, self.error_template):
            if "{band}" not in template:
                raise ValueError(f"column template {template!r} must contain '{{band}}'")
        if not self.bands:
            raise ValueError("column map needs at least one band")

    def value_column(self, band: str) -> str:
        return self.value_template.format(band=band)

    def error_column(self, band: str) -> str:
        return self.error_template.format(band=band)

    def photometry_columns(self) -> list[str]:
        return [c for band in self.bands for c in (self.value_column(band), self.error_column(band))]

    def position_columns(self) -> list[str]:
        return [c for c in (self.ra_column, self.dec_column) if c]


COLUMN_MAPS: dict[str, ColumnMap] = {
    # RAIL / DC2 convention: AB magnitudes with 99 for non-detections.
    "lsst_mag": ColumnMap("mag_{band}_lsst", "mag_err_{band}_lsst"),
    # LSST DM Object table, cModel fluxes in nJy.
    "dm_cmodel": ColumnMap(
        "{band}_cModelFlux", "{band}_cModelFluxErr", kind="flux",
        id_column="objectId", ra_column="coord_ra", dec_column="coord_dec",
    ),
    # LSST DM Object table, GAaP 1.0" fluxes in nJy (as in RAIL's rubin_dm_dc2_example.pq).
    "dm_gaap": ColumnMap(
        "{band}_gaap1p0Flux", "{band}_gaap1p0FluxErr", kind="flux",
        id_column="objectId", ra_column="ra", dec_column="decl",
    ),
}


def column_map(name_or_map: str | dict | ColumnMap) -> ColumnMap:
    """A :class:`ColumnMap` from a preset name, a dict of its fields, or a map itself."""
    if isinstance(name_or_map, ColumnMap):
        return name_or_map
    if isinstance(name_or_map, dict):
        values = dict(name_or_map)
        if "bands" in values:
            values["bands"] = tuple(values["bands"])
        return ColumnMap(**values)
    if name_or_map not in COLUMN_MAPS:
        raise ValueError(f"unknown column map {name_or_map!r}; presets: {', '.join(COLUMN_MAPS)}")
    return COLUMN_MAPS[name_or_map]


COLUMN_MAP_SCHEMA = {
    "type": ["string", "object"],
    "anyOf": [{"type": "string", "enum": list(COLUMN_MAPS)}, {"type": "object"}],
}
"""JSON schema of a column map param: a preset's name or an object of :class:`ColumnMap` fields."""
