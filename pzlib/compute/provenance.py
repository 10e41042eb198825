"""Where a run's photo-z catalog comes from, recorded with the product that publishes it: software versions, the
run's params, fingerprints of its input, training set and models, the Airflow run, and per-stage timings."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys

from pzlib.compute.spec import RunSpec
from pzlib.compute.timings import stage_timings
from pzlib.estimate import resolve_estimator
from pzlib.preprocess import MANIFEST_NAME
from pzlib.resources import source_checkout

_DISTRIBUTIONS = ("pz-rail-base", "qp-prob", "lsdb", "hats", "pyarrow", "numpy", "apache-airflow")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the checkout pzlib runs from (with ``-dirty`` when it has uncommitted changes); None for an
    installed wheel or without git."""
    checkout = source_checkout()
    if checkout is None or not (checkout / ".git").exists():
        return None
    try:
        described = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty", "--abbrev=40"],
                                   capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return described.stdout.strip() or None


def estimator_distribution(estimator: str) -> dict[str, str | None]:
    """The RAIL class of ``estimator`` and the distribution (and version) its module comes from."""
    cls = resolve_estimator(estimator).estimator
    module_file = sys.modules[cls.__module__].__file__ or ""
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if not name or not name.lower().startswith(("pz-rail", "rail")):
            continue
        for path in distribution.files or ():
            if str(distribution.locate_file(path)) == module_file:
                return {"class": f"{cls.__module__}.{cls.__qualname__}", "distribution": name,
                        "version": distribution.version}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "distribution": None, "version": None}


def software() -> dict:
    """pz-platform's version and git commit, Python's and the main libraries'."""
    return {"pz-platform": _version("pz-platform"), "git_commit": git_commit(), "python": platform.python_version(),
            **{name: _version(name) for name in _DISTRIBUTIONS}}


def run_provenance(spec: RunSpec, estimator: str, *, dag_id: str | None = None, run_id: str | None = None,
                   triggered_by: str | None = None) -> dict:
    """Everything that says where the estimator's catalog of this run comes from (JSON-able)."""
    stage1 = json.loads((spec.output_path / "stage1" / MANIFEST_NAME).read_text())
    model_record = json.loads(spec.model_path(estimator).with_name(f"{estimator}.pkl.json").read_text())
    return {
        "software": {**software(), "estimator": estimator_distribution(estimator)},
        "params": spec.to_params(),
        "input": {"fingerprint": stage1["input"], "partitions": len(stage1["rows"]), "rows": sum(stage1["rows"]),
                  "partition_sha256": stage1["sha256"]},
        "training": model_record.get("identity"),
        "model_sha256": model_record["sha256"],
        "airflow": {"dag_id": dag_id, "run_id": run_id, "triggered_by": triggered_by},
        "timings": stage_timings(spec.output),
    }
