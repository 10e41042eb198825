"""Stage II of a pz_compute run: one model per estimator, trained on the checked training set."""

from __future__ import annotations

import pyarrow as pa

from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import timed
from pzlib.estimate import train
from pzlib.preprocess import PreprocessConfig
from pzlib.storage.s3_access import S3Access
from pzlib.validate.expectations import check_table


def train_model(spec: RunSpec, estimator: str, s3: S3Access | None = None) -> str:
    """Stage II: check the training set (``training_set`` expectations), then train ``estimator`` on it
    (reused when already trained); returns the model path. ``s3`` reaches an ``s3://`` training set (by default as
    the platform's settings say, ``PZ_S3_*``)."""
    config = spec.estimate_config(estimator)
    context = {"bands": list(config.bands), "columns": {"redshift": config.truth_column}}

    def check(table: pa.Table) -> None:
        check_table(table, "training_set", context, source=spec.train)

    training_cleaning = PreprocessConfig(columns=spec.column_map)
    with timed(spec.output, "stage_2_train", estimator):
        return str(train(spec.train, spec.model_path(estimator), config, training_cleaning, check, s3=s3))
