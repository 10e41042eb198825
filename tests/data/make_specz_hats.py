"""Regenerate specz_hats.zip: a 40-row spec-z catalog (id, ra, dec, z, z_err) as a HATS catalog written by lsdb,
zipped in its folder ``specz_hats/``, as users upload HATS catalogs to the PZ Server.

Run with ``.venv/bin/python tests/data/make_specz_hats.py``.
"""

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from pzlib.catalog import write_hats

index = np.arange(40)
table = pa.table(
    {"id": index, "ra": 10.0 + index * 0.01, "dec": -5.0 - index * 0.01, "z": 0.1 + index / 100,
     "z_err": np.full(40, 0.001)}
)
with tempfile.TemporaryDirectory() as work_dir:
    catalog = write_hats(table, Path(work_dir) / "specz_hats")
    with zipfile.ZipFile(Path(__file__).with_name("specz_hats.zip"), "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(catalog.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(work_dir).as_posix())
