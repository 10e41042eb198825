"""A whole pz_compute run on this machine (the ``pz run`` command): stages I–IV, publishing nothing.

Stage III goes through the same job arrays as on a cluster (:class:`pzlib.compute.estimate_array.EstimateArray`),
on the local backend: ``workers`` long-lived worker processes, each loading the model once, resubmitting what is
missing and failing a partition after three attempts, exactly as on Slurm.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from pzlib.catalog import open_catalog
from pzlib.cluster.backend import ArrayPoller
from pzlib.cluster.local import LocalBackend
from pzlib.compute.acquire import acquire
from pzlib.compute.array_plan import array_progress
from pzlib.compute.assemble import assemble
from pzlib.compute.estimate_array import EstimateArray
from pzlib.compute.spec import RunSpec
from pzlib.compute.train import train_model

LOCAL_POLL_INTERVAL_S = 0.5
"""Seconds between two looks at the local array's state files (a few small reads)."""


def estimate_here(spec: RunSpec, estimator: str, model_path: str, partitions: list[str], workers: int,
                  on_progress: Callable[[int], None] | None = None) -> list[str]:
    """Stage III of one estimator in ``workers`` processes of this machine; returns the output paths.

    ``on_progress`` is called with the number of partitions that have a verified output so far. Interrupted
    (Ctrl-C, an error), the array's processes are stopped before the exception goes on.
    """
    resources = {**spec.resources, estimator: {**spec.resources.get(estimator, {}), "max_concurrent": workers}}
    local_spec = replace(spec, resources=resources)
    with LocalBackend() as backend:
        stage = EstimateArray(local_spec, estimator, model_path, partitions, backend)

        def report(poller: ArrayPoller) -> None:
            if on_progress:
                planned, done = array_progress(poller.handle.workdir)
                on_progress(len(partitions) - planned + done)

        try:
            return stage.run(LOCAL_POLL_INTERVAL_S, on_poll=report)
        except BaseException:
            handle = stage.current()
            if handle is not None:
                backend.cancel([handle])
            raise


def run(spec: RunSpec, workers: int | None = None, report: Callable[[str], None] | None = None) -> dict:
    """All four stages on this machine; returns ``{estimator: assemble summary}``."""
    report = report or (lambda message: None)
    workers = workers or os.cpu_count() or 1
    open_catalog(spec.train)  # fail on a bad training catalog before stage I does any work
    partitions = acquire(spec)
    report(f"stage I: {len(partitions)} partition(s) in {spec.output_path / 'stage1'}")
    model_paths = {}
    for estimator in spec.estimators:  # every model first: one that cannot be trained stops the run before stage III
        model_paths[estimator] = train_model(spec, estimator)
        report(f"stage II: {estimator} model {model_paths[estimator]}")
    results = {}
    for estimator in spec.estimators:
        outputs = estimate_here(spec, estimator, model_paths[estimator], partitions, workers)
        report(f"stage III: {estimator} estimated {len(outputs)} partition(s)")
        results[estimator] = assemble(spec, estimator, outputs)
    return results
