"""Fixtures of the fast-path equality tests: RAIL models trained once per session, the DC2 validation set,
and the stock RAIL stage as production builds it, to compare against."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tables_io

from pzlib.estimate import EstimateConfig, PartitionEstimator, train

FZBOOST_TRAINING = {"nbump": 3, "nsharp": 3}
"""A short FlexZBoost grid search: equality with stock RAIL does not depend on the model's quality."""


@pytest.fixture(scope="session")
def validation_columns(dc2_paths) -> dict[str, np.ndarray]:
    """The DC2 validation set (20,449 objects) as stage I columns: float32 magnitudes, 99 = non-detection."""
    table = tables_io.read(str(dc2_paths[1]))["photometry"]
    names = ["id", *EstimateConfig("bpz").input_columns()]
    return {name: np.asarray(table[name]) for name in names}


@pytest.fixture(scope="session")
def bpz_model(dc2_paths, tmp_path_factory) -> Path:
    """BPZ-lite model trained by RAIL with the platform's default options."""
    return train(dc2_paths[0], tmp_path_factory.mktemp("fastpaths") / "bpz.pkl", EstimateConfig("bpz"))


@pytest.fixture(scope="session")
def fzboost_config() -> EstimateConfig:
    return EstimateConfig("fzboost", rail_options=FZBOOST_TRAINING)


@pytest.fixture(scope="session")
def fzboost_model(dc2_paths, fzboost_config, tmp_path_factory) -> Path:
    """FlexZBoost model trained by RAIL (short bump/sharpen grid search)."""
    return train(dc2_paths[0], tmp_path_factory.mktemp("fastpaths") / "fzboost.pkl", fzboost_config)


@pytest.fixture(scope="session")
def run_stock():
    """``run_stock(model_path, config, columns)`` → the qp ensemble of the stock RAIL stage, built as
    ``PartitionEstimator`` builds it, on a copy of ``columns`` (the stage edits its input)."""

    def run(model_path: Path, config: EstimateConfig, columns: dict[str, np.ndarray]):
        stage = PartitionEstimator(model_path, config).stage
        return stage.estimate({name: np.array(values) for name, values in columns.items()}).data

    return run


@pytest.fixture(scope="session")
def load_model():
    def load(model_path: Path):
        with open(model_path, "rb") as handle:
            return pickle.load(handle)

    return load
