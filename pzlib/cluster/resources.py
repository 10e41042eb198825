"""What one stage III job array asks the cluster for: CPUs, memory, time, partition, account, concurrency.

A run's ``resources`` param is a dict: top-level keys apply to every estimator, and a key named after one of
the run's estimators holds overrides for that estimator only::

    {"partition": "cpu", "account": "lsst", "max_concurrent": 100, "fzboost": {"mem": "8G"}}

Whatever the param leaves out comes from the cluster's own defaults (the same shape, in its Airflow
connection's extra ``resources``: see :mod:`pzlib.cluster.airflow`), then from :data:`ESTIMATOR_DEFAULTS` (sized
for 150,000-row partitions on a typical HPC node) or :data:`DEFAULT_RESOURCES` for any other RAIL estimator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

_SLURM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MEMORY = re.compile(r"^[1-9][0-9]*[KMGT]?$")
# Slurm's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"^([0-9]+-)?[0-9]+(:[0-9]{1,2}){0,2}$")


@dataclass(frozen=True)
class Resources:
    """Per-task resources and shape of one job array (Slurm) or set of worker processes (local)."""

    cpus: int = 1
    """CPUs per array task (``--cpus-per-task``); also the task's thread count (OMP_NUM_THREADS...)."""
    mem: str = "4G"
    """Memory per array task (``--mem``): a number with an optional K, M, G or T suffix."""
    time_limit: str = "12:00:00"
    """Wall-time limit per array task (``--time``), in a Slurm time format such as ``HH:MM:SS``."""
    partition: str | None = None
    """Slurm partition (``--partition``); None uses the cluster's default partition."""
    account: str | None = None
    """Slurm account to charge (``--account``); None uses the user's default account."""
    max_concurrent: int = 50
    """Array tasks running at once (the ``%N`` of ``--array``; worker processes on the local backend)."""
    partitions_per_task: int | None = None
    """Partitions each array task works through; None spreads them evenly over ``max_concurrent`` tasks."""

    def __post_init__(self):
        for name in ("cpus", "max_concurrent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.partitions_per_task is not None and (
            isinstance(self.partitions_per_task, bool)
            or not isinstance(self.partitions_per_task, int)
            or self.partitions_per_task <= 0
        ):
            raise ValueError(
                f"partitions_per_task: must be a positive integer or null, got {self.partitions_per_task!r}"
            )
        if not isinstance(self.mem, str) or not _MEMORY.match(self.mem):
            raise ValueError(f"mem: {self.mem!r} is not a memory size such as '4G' or '512M'")
        if not isinstance(self.time_limit, str) or not _TIME.match(self.time_limit):
            raise ValueError(f"time_limit: {self.time_limit!r} is not a Slurm time such as '02:00:00' or '1-00:00:00'")
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _SLURM_NAME.match(value)):
                raise ValueError(f"{name}: {value!r} is not a Slurm {name} name (letters, digits, '.', '_', '-')")

    def task_count(self, partition_count: int) -> int:
        """Array tasks for ``partition_count`` partitions: each task is one long-lived worker."""
        per_task = self.partitions_per_task or -(-partition_count // self.max_concurrent)
        return max(1, -(-partition_count // per_task))


DEFAULT_RESOURCES = Resources()
"""Resources of an estimator without its own entry in :data:`ESTIMATOR_DEFAULTS`."""

ESTIMATOR_DEFAULTS = {
    # BPZ-lite: templates and prior are small; a 150k-row partition takes about a minute.
    "bpz": Resources(mem="3G", time_limit="06:00:00"),
    # FlexZBoost: the model holds the trained trees (hundreds of MB); slower per object than BPZ.
    "fzboost": Resources(mem="6G", time_limit="12:00:00"),
    # The others: one worker's peak RSS measured on tiled DC2 rows (pz bench's side of ours, one process, one
    # batch of 10,000 and of 40,000 rows), extrapolated linearly to the batch a 150,000-row partition streams
    # (its stage III batch_rows: the peak follows the batch, not the partition), plus ~1 GB of headroom; time is
    # ~10x a partition at the measured objects per CPU-second. All are single-threaded: one CPU.
    # TPZ: 0.45 GB + 31 kB/row → 2.0 GB at 50,000 rows; 336 objects/CPU-s (~7.5 min a partition).
    "tpz": Resources(mem="3G", time_limit="04:00:00"),
    # GPz: 0.46 GB + 15 kB/row → 1.2 GB at 50,000 rows; ~18,000 objects/CPU-s.
    "gpz": Resources(mem="2G", time_limit="01:00:00"),
    # CMNN: 0.41 GB + 12 kB/row → 1.0 GB at 50,000 rows; 642 objects/CPU-s (~4 min a partition).
    "cmnn": Resources(mem="2G", time_limit="02:00:00"),
    # DNF: 0.40 GB + 336 kB/row → 3.8 GB at its 10,000-row batches; 676 objects/CPU-s (~4 min a partition).
    "dnf": Resources(mem="5G", time_limit="02:00:00"),
    # KNN: 0.40 GB + 184 kB/row → 2.2 GB at its 10,000-row batches; 1,678 objects/CPU-s.
    "knn": Resources(mem="3G", time_limit="01:00:00"),
}

RESOURCE_FIELDS = tuple(field.name for field in fields(Resources))


def resources_for(param: dict | None, estimator: str, cluster: Mapping | None = None) -> Resources:
    """The resources of ``estimator``'s job array: its defaults, then the ``cluster``'s defaults (top level, then
    its entry for the estimator), then the param's (top level, then its entry).

    Examples
    --------
    >>> resources = resources_for({"mem": "2G", "bpz": {"cpus": 2}}, "bpz", {"partition": "cpu", "mem": "8G"})
    >>> resources.cpus, resources.mem, resources.time_limit, resources.partition
    (2, '2G', '06:00:00', 'cpu')
    """
    settings: dict = {}
    for layer in (cluster or {}, param or {}):
        settings.update({name: value for name, value in layer.items() if name in RESOURCE_FIELDS})
        settings.update(layer.get(estimator) or {})
    return replace(ESTIMATOR_DEFAULTS.get(estimator, DEFAULT_RESOURCES), **settings)


def check_resources(param: dict, estimators: list[str] | None = None) -> None:
    """Raise ValueError, naming the key, when ``param`` is not a valid ``resources`` param for ``estimators``
    (None: a cluster's defaults, whose entries may name any estimator)."""
    if not isinstance(param, dict):
        raise ValueError(f"must be an object of resource settings, got {param!r}")
    replace(DEFAULT_RESOURCES, **{key: value for key, value in param.items() if key in RESOURCE_FIELDS})
    for key, value in param.items():
        if key in RESOURCE_FIELDS:
            continue
        if estimators is not None and key not in estimators:
            raise ValueError(
                f"unknown key {key!r}: use {', '.join(RESOURCE_FIELDS)}, or an estimator of this run "
                f"({', '.join(estimators)}) with its own settings"
            )
        if not isinstance(value, dict):
            raise ValueError(f"{key}: must be an object of resource settings, got {value!r}")
        unknown = set(value) - set(RESOURCE_FIELDS)
        if unknown:
            raise ValueError(f"{key}.{sorted(unknown)[0]}: unknown resource (known: {', '.join(RESOURCE_FIELDS)})")
        try:
            replace(DEFAULT_RESOURCES, **value)
        except ValueError as error:
            raise ValueError(f"{key}.{error}") from None
