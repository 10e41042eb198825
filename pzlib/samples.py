"""Sample catalogs shipped with RAIL, used by tests, benchmarks and the DAGs' default params (below every pipeline)."""

from __future__ import annotations

from pathlib import Path


def dc2_sample_paths() -> tuple[Path, Path]:
    """(training, validation) DC2 catalogs shipped in pz-rail-base: 10,225 and 20,449 galaxies."""
    from rail.core.utils import RAILDIR

    testdata = Path(RAILDIR) / "rail" / "examples_data" / "testdata"
    return testdata / "test_dc2_training_9816.hdf5", testdata / "test_dc2_validation_9816.hdf5"
