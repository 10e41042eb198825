"""Regenerate dc2_300.parquet: 300 DC2 validation galaxies (RAIL's test data) with reproducible sky positions.

Run with ``.venv/bin/python tests/data/make_dc2_300.py``.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tables_io

from pzlib.samples import dc2_sample_paths

columns = tables_io.read(str(dc2_sample_paths()[1]))["photometry"]
rng = np.random.default_rng(9816)
rows = np.sort(rng.choice(len(columns["id"]), 300, replace=False))
sample = {name: values[rows] for name, values in columns.items()}
sample["ra"], sample["dec"] = rng.uniform(50, 52, 300), rng.uniform(-40, -38, 300)
order = ["id", "ra", "dec", *[f"mag_{b}_lsst" for b in "ugrizy"], *[f"mag_err_{b}_lsst" for b in "ugrizy"],
         "redshift"]
pq.write_table(pa.table({name: sample[name] for name in order}), Path(__file__).with_name("dc2_300.parquet"))
