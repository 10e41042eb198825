"""Job arrays: N tasks of one Python command, on a Slurm cluster over SSH or as processes on this machine.

This package knows commands, resources and backends, not pipelines: what the tasks do is the business of the
pipeline that submits them (stage III of pz_compute: :mod:`pzlib.compute.estimate_array` and
:mod:`pzlib.compute.worker`).

- :mod:`pzlib.cluster.backend` — the interface (submit an array, states of many tasks in one call, cancel,
  fetch logs), the records it exchanges, and :class:`~pzlib.cluster.backend.ArrayStage`, the shape of a
  pipeline's work as arrays;
- :mod:`pzlib.cluster.slurm` (sbatch/sacct/squeue/scancel over one SSH channel, :mod:`pzlib.cluster.ssh`)
  and :mod:`pzlib.cluster.local` (supervised processes; state in files) — the two backends;
- :mod:`pzlib.cluster.resources` — CPUs, memory, time... per estimator; :mod:`pzlib.cluster.plan` — shares of
  work per task, and the JSON files of an array's folder;
- :mod:`pzlib.cluster.airflow` — clusters as Airflow SSH connections (the SSH provider's hook), the deferrable
  operator and its trigger (the only module importing Airflow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pzlib.cluster.backend import JobBackend
from pzlib.config import BACKENDS

DEFAULT_CLUSTER = "pz_slurm"
"""Airflow connection of the cluster a run uses when its ``cluster`` param names none."""

CONNECTION_FORMAT = "defined Airflow connection"
"""JSON-schema ``format`` of a param naming an Airflow connection: the Airflow processes check at trigger time that
it names one (``plugins/airflow_local_settings.py``), so an unknown name gets HTTP 400: "'nope' is not a 'defined
Airflow connection'"."""

if TYPE_CHECKING:
    from pzlib.cluster.ssh import RemoteShell


def make_backend(kind: str, shell: RemoteShell | None = None, **options) -> JobBackend:
    """A backend by name: 'local', or 'slurm' over ``shell`` (:class:`pzlib.cluster.ssh.RemoteShell`).

    ``options`` go to the backend's constructor (``python``, ``environment``; ``pythonpath``, ``resources`` for
    Slurm).
    """
    if kind == "local":
        from pzlib.cluster.local import LocalBackend

        return LocalBackend(**options)
    if kind == "slurm":
        from pzlib.cluster.slurm import SlurmBackend

        if shell is None:
            raise ValueError("the slurm backend needs an SSH connection to the cluster")
        return SlurmBackend(shell, **options)
    raise ValueError(f"unknown job backend {kind!r}: use {' or '.join(map(repr, BACKENDS))}")
