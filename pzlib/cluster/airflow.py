"""Stage III from Airflow on a job backend: a deferrable operator and its trigger (the only Airflow code in pzlib).

:class:`EstimateArrayOperator` is one task per estimator. It advances stage III with
:class:`pzlib.cluster.estimate_array.EstimateArray` — submits one job array for the partitions without a
verified output, or re-attaches to the array already running — then defers: the worker slot is free while the
array runs. :class:`EstimateArrayTrigger` polls the array from the triggerer (one sacct + squeue round trip per
poll on one SSH connection, nothing else: no side effects); its whole state is its serialized kwargs, so a
restarted triggerer goes on polling the same array. When every task has ended the operator resumes: it copies
the tasks' stdout and stderr into the task log, settles the array — resubmitting missing or failed partitions
and deferring again, or failing once a partition failed three times — and returns the output paths.

The job id is kept in the run folder (``OUTPUT/ESTIMATOR/jobs/state.json``): a retried or restarted task
re-attaches to the running array instead of submitting a second one. Marking the task failed or successful,
or clearing it, while it waits cancels its jobs (the trigger's ``on_kill``); so does killing it while it runs
(the operator's ``on_kill``).

SSH settings come from an Airflow connection of type ``ssh`` (conn id ``pz_slurm`` by default): host, port,
login, and in its extra ``key_file``, ``known_hosts`` (host keys are always checked), and optionally
``python`` and ``pythonpath`` (the interpreter and pzlib location on the cluster), ``environment`` (a dict of
variables for the jobs) and ``poll_interval`` (seconds, default 10). For example::

    AIRFLOW_CONN_PZ_SLURM='{"conn_type": "ssh", "host": "login.cluster", "port": 22, "login": "pz",
        "extra": {"key_file": "/keys/pz", "known_hosts": "/keys/known_hosts"}}'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pzlib.cluster.backend import DEFAULT_POLL_INTERVAL_S, ArrayHandle, JobBackend, TaskState
from pzlib.retries import without_retries

DEFAULT_CONN_ID = "pz_slurm"


def backend_from_connection(kind: str, connection) -> JobBackend:
    """The ``kind`` backend, configured from an Airflow connection (unused for 'local')."""
    from pzlib.cluster import make_backend
    from pzlib.cluster.ssh import SSHSettings

    if kind == "local":
        return make_backend("local")
    extra = connection.extra_dejson
    ssh = SSHSettings(host=connection.host, port=connection.port or 22, user=connection.login or None,
                      key_file=extra.get("key_file"), known_hosts=extra.get("known_hosts"))
    return make_backend("slurm", ssh=ssh, python=extra.get("python"), pythonpath=extra.get("pythonpath"),
                        environment=extra.get("environment"))


class EstimateArrayTrigger(BaseTrigger):
    """Waits until every task of a job array has ended; fires once with their states.

    Parameters
    ----------
    handle : dict
        The array (:meth:`pzlib.cluster.backend.ArrayHandle.to_dict`).
    conn_id : str
        Airflow connection of the cluster (ignored for the local backend).
    poll_interval_s : float
        Seconds between polls.
    """

    def __init__(self, handle: dict, conn_id: str = DEFAULT_CONN_ID,
                 poll_interval_s: float = DEFAULT_POLL_INTERVAL_S):
        super().__init__()
        self.handle = handle
        self.conn_id = conn_id
        self.poll_interval_s = poll_interval_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"handle": self.handle, "conn_id": self.conn_id, "poll_interval_s": self.poll_interval_s})

    async def _backend(self) -> JobBackend:
        kind = self.handle["backend"]
        connection = None if kind == "local" else await BaseHook.aget_connection(self.conn_id)
        # Building it imports the backend's modules: off the event loop too.
        return await asyncio.to_thread(backend_from_connection, kind, connection)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pzlib.cluster.backend import ArrayPoller, BackendError

        handle = ArrayHandle.from_dict(self.handle)
        backend = await self._backend()
        poller = ArrayPoller(backend, handle)
        reported = ""
        try:
            while True:
                # The backend's I/O (SSH round trips) is blocking: it runs in a thread, the loop stays free.
                try:
                    states = await asyncio.to_thread(poller.poll)
                except BackendError as error:
                    yield TriggerEvent({"status": "error", "message": str(error), "handle": self.handle})
                    return
                if poller.summary != reported:
                    self.log.info("%s", poller.summary)
                    reported = poller.summary
                if states is not None:
                    yield TriggerEvent({"status": "ended", "handle": self.handle,
                                        "states": {task_id: state.to_dict() for task_id, state in states.items()}})
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            await asyncio.to_thread(backend.close)

    async def on_kill(self) -> None:
        """The user marked the waiting task failed or successful, or cleared it: cancel the array."""
        backend = await self._backend()
        try:
            await asyncio.to_thread(backend.cancel, [ArrayHandle.from_dict(self.handle)])
            self.log.info("cancelled array %s", self.handle["job_id"])
        finally:
            await asyncio.to_thread(backend.close)


class EstimateArrayOperator(BaseOperator):
    """Stage III of one estimator as job arrays on the run's backend (deferrable).

    Parameters
    ----------
    model : dict
        Stage II's result for the estimator: ``{"estimator": ..., "model_path": ...}``.
    partition_paths : list of str
        Stage I's partitions.
    conn_id : str
        Airflow connection of the cluster (type ssh; see the module's description).
    poll_interval_s : float, optional
        Seconds between polls; default: the connection's extra ``poll_interval``, else 10.

    Returns (XCom) ``{"estimator": ..., "output_paths": [...]}``.
    """

    template_fields = ("model", "partition_paths")
    ui_color = "#e8d6f4"

    def __init__(self, *, model: dict, partition_paths: list[str], conn_id: str = DEFAULT_CONN_ID,
                 poll_interval_s: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.partition_paths = partition_paths
        self.conn_id = conn_id
        self.poll_interval_s = poll_interval_s
        self._stage = None  # the EstimateArray while this process works on it, for on_kill

    def execute(self, context) -> dict:
        with self._estimate_array(context) as stage:
            return self._next(stage.advance())

    def execute_complete(self, context, event: dict) -> dict:
        if event["status"] != "ended":
            raise RuntimeError(f"stage III of {self.model['estimator']}: {event['message']}")
        handle = ArrayHandle.from_dict(event["handle"])
        states = {task_id: TaskState.from_dict(state) for task_id, state in event["states"].items()}
        with self._estimate_array(context) as stage:
            self._log_task_output(stage, handle, states)
            return self._next(stage.advance(states))

    def on_kill(self) -> None:
        """Killed while submitting or settling: cancel the array this task waits for."""
        if self._stage is None:
            return
        handle = self._stage.current()
        if handle is not None:
            with self._connect(handle.backend) as backend:
                backend.cancel([handle])
            self.log.info("cancelled array %s", handle.job_id)

    # --- helpers ------------------------------------------------------------------------------------------

    def _connect(self, kind: str) -> JobBackend:
        return backend_from_connection(kind, None if kind == "local" else BaseHook.get_connection(self.conn_id))

    @contextmanager
    def _estimate_array(self, context) -> Iterator:
        """The run's stage III for this estimator, on a backend connected for the duration of the block."""
        from pzlib.cluster.estimate_array import EstimateArray
        from pzlib.compute.spec import RunSpec

        spec = RunSpec.from_params(without_retries(context["params"]))
        ti = context["ti"]
        owner = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}[{ti.map_index}]#{ti.try_number}"
        context["map_label"] = self.model["estimator"]
        with self._connect(spec.backend) as backend:
            self._stage = EstimateArray(spec, self.model["estimator"], self.model["model_path"],
                                        self.partition_paths, backend, owner=owner, report=self.log.info)
            yield self._stage

    def _next(self, progress) -> dict:
        """Defer while an array runs; the XCom once every partition is done."""
        from pzlib.cluster.estimate_array import Waiting

        if isinstance(progress, Waiting):
            handle = progress.handle
            trigger = EstimateArrayTrigger(handle.to_dict(), self.conn_id, self._poll_interval(handle.backend))
            self.defer(trigger=trigger, method_name="execute_complete")
        return {"estimator": self.model["estimator"], "output_paths": progress.output_paths}

    def _poll_interval(self, kind: str) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        if kind == "local":
            return DEFAULT_POLL_INTERVAL_S
        extra = BaseHook.get_connection(self.conn_id).extra_dejson
        return float(extra.get("poll_interval", DEFAULT_POLL_INTERVAL_S))

    def _log_task_output(self, stage, handle: ArrayHandle, states: dict[str, TaskState]) -> None:
        """Copy the end of every task's stdout and stderr into this task's log."""
        for index, logs in stage.task_logs(handle).items():
            state = states.get(handle.task_id(index), TaskState("UNKNOWN")).describe()
            for stream, path, text in (("stdout", logs.stdout_path, logs.stdout),
                                       ("stderr", logs.stderr_path, logs.stderr)):
                if text.strip():
                    self.log.info("task %s (%s) %s, %s:\n%s", handle.task_id(index), state, stream, path,
                                  text.rstrip())
