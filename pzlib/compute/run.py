"""A whole pz_compute run on this machine (the ``pz run`` command): stages I–IV, publishing nothing."""

from __future__ import annotations

import os
from collections.abc import Callable

from pzlib.catalog import open_catalog
from pzlib.compute.acquire import acquire
from pzlib.compute.assemble import assemble
from pzlib.compute.estimate_partitions import estimate_all
from pzlib.compute.spec import RunSpec
from pzlib.compute.train import train_model


def run(spec: RunSpec, workers: int | None = None, report: Callable[[str], None] | None = None) -> dict:
    """All four stages on the local backend; returns ``{estimator: assemble summary}``."""
    report = report or (lambda message: None)
    workers = workers or os.cpu_count() or 1
    open_catalog(spec.train)  # fail on a bad training catalog before stage I does any work
    partitions = acquire(spec)
    report(f"stage I: {len(partitions)} partition(s) in {spec.output_path / 'stage1'}")
    results = {}
    for estimator in spec.estimators:
        model_path = train_model(spec, estimator)
        report(f"stage II: {estimator} model {model_path}")
        outputs = estimate_all(spec, estimator, model_path, partitions, workers)
        report(f"stage III: {estimator} estimated {len(outputs)} partition(s)")
        results[estimator] = assemble(spec, estimator, outputs)
    return results
