"""Job backends for stage III: job arrays on a Slurm cluster over SSH, or worker processes on this machine.

- :mod:`pzlib.cluster.backend` — the interface (submit an array, states of many tasks in one call, cancel,
  fetch logs) and the records it exchanges;
- :mod:`pzlib.cluster.slurm` (sbatch/sacct/squeue/scancel over one SSH connection, :mod:`pzlib.cluster.ssh`)
  and :mod:`pzlib.cluster.local` (supervised processes; state in files) — the two backends;
- :mod:`pzlib.cluster.estimate_array` — stage III of a run as job arrays: plan, submit, re-attach, settle,
  resubmit what is missing, fail after three attempts; :mod:`pzlib.cluster.worker` — the long-lived process
  each array task runs; :mod:`pzlib.cluster.resources` — CPUs, memory, time... per estimator;
- :mod:`pzlib.cluster.airflow` — the deferrable operator and its trigger (the only module importing Airflow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pzlib.cluster.backend import JobBackend

if TYPE_CHECKING:
    from pzlib.cluster.ssh import SSHSettings


def make_backend(kind: str, ssh: SSHSettings | None = None, **options) -> JobBackend:
    """A backend by name: 'local', or 'slurm' with ``ssh`` (:class:`pzlib.cluster.ssh.SSHSettings`).

    ``options`` go to the backend's constructor (``python``, ``environment``; ``pythonpath`` for Slurm).
    """
    if kind == "local":
        from pzlib.cluster.local import LocalBackend

        return LocalBackend(**options)
    if kind == "slurm":
        from pzlib.cluster.slurm import SlurmBackend

        if ssh is None:
            raise ValueError("the slurm backend needs SSH settings (host, port, user, key_file, known_hosts)")
        return SlurmBackend(ssh, **options)
    raise ValueError(f"unknown job backend {kind!r}: use 'local' or 'slurm'")
