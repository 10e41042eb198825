"""RAIL's DC2 sample catalogs and the cross-match sample's columns, used by tests, benchmarks and the DAGs'
default params (below every pipeline).

Found without importing RAIL (a namespace package whose import loads its whole stack), so that a DAG file can
name them as defaults and still parse cheaply.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

DC2_TRAINING_FILE = "test_dc2_training_9816.hdf5"
DC2_VALIDATION_FILE = "test_dc2_validation_9816.hdf5"
OBJECT_COLUMN_MAP = {
    "value_template": "{band}_gaap1p0Flux", "error_template": "{band}_gaap1p0FluxErr", "kind": "flux",
    "id_column": "objectId", "ra_column": "ra", "dec_column": "decl", "ebv_column": "ebv",
}
"""The object catalog of the cross-match sample (``pzlib.crossmatch.sample_data``, made from RAIL's DM example):
its photometry as a :class:`pzlib.column_maps.ColumnMap` (``dm_gaap`` plus its ``ebv``)."""


def dc2_sample_path(file_name: str) -> Path:
    """A file of RAIL's DC2 test data (``rail/examples_data/testdata``), searched in every folder of the ``rail``
    namespace package; the bare file name when RAIL is not installed, so that opening it names what is missing."""
    rail_spec = importlib.util.find_spec("rail")
    for rail_dir in (rail_spec.submodule_search_locations or []) if rail_spec else []:
        candidate = Path(rail_dir) / "examples_data" / "testdata" / file_name
        if candidate.exists():
            return candidate
    return Path(file_name)


def dc2_sample_paths() -> tuple[Path, Path]:
    """(training, validation) DC2 catalogs shipped in pz-rail-base: 10,225 and 20,449 galaxies."""
    return dc2_sample_path(DC2_TRAINING_FILE), dc2_sample_path(DC2_VALIDATION_FILE)
