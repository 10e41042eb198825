"""Job arrays from Airflow: a deferrable operator and its trigger (the only Airflow code in pzlib).

:class:`JobArrayOperator` runs one :class:`pzlib.cluster.backend.ArrayStage` — work a pipeline carries out as job
arrays, such as stage III of one estimator (:class:`pzlib.compute.estimate_array.EstimateArray`) — that the DAG
builds with its ``stage`` callable. It advances the stage — which submits an array, or re-attaches to the array
already running — then defers: the worker slot is free while the array runs. :class:`JobArrayTrigger` polls the
array from the triggerer (one sacct + squeue round trip per poll on one SSH connection, nothing else: no side
effects); its whole state is its serialized kwargs, so a restarted triggerer goes on polling the same array. When
every task has ended the operator resumes: it copies the tasks' stdout and stderr into the task log and advances
the stage again — which settles the array, and resubmits or fails — deferring again or returning the stage's
result. The operator knows backends, arrays and connections; what the arrays do is the stage's business.

A stage keeps its arrays' job ids in its own files (stage III: ``OUTPUT/ESTIMATOR/jobs/state.json``), so a
retried or restarted task re-attaches to the running array instead of submitting a second one. Marking the task
failed or successful, or clearing it, while it waits cancels its jobs (the trigger's ``on_kill``); so does
killing it while it runs (the operator's ``on_kill``).

SSH settings come from an Airflow connection of type ``ssh`` (conn id ``pz_slurm`` by default): host, port,
login, and in its extra ``key_file``, ``known_hosts`` (host keys are always checked), and optionally
``python`` and ``pythonpath`` (the interpreter and pzlib location on the cluster), ``environment`` (a dict of
variables for the jobs) and ``poll_interval`` (seconds, default 10). For example::

    AIRFLOW_CONN_PZ_SLURM='{"conn_type": "ssh", "host": "login.cluster", "port": 22, "login": "pz",
        "extra": {"key_file": "/keys/pz", "known_hosts": "/keys/known_hosts"}}'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pzlib.cluster import make_backend
from pzlib.cluster.backend import (
    DEFAULT_POLL_INTERVAL_S,
    ArrayHandle,
    ArrayPoller,
    ArrayStage,
    BackendError,
    JobBackend,
    TaskState,
    Waiting,
)
from pzlib.cluster.ssh import SSHSettings

DEFAULT_CONN_ID = "pz_slurm"


def backend_from_connection(kind: str, connection) -> JobBackend:
    """The ``kind`` backend, configured from an Airflow connection (unused for 'local')."""
    if kind == "local":
        return make_backend("local")
    extra = connection.extra_dejson
    ssh = SSHSettings(host=connection.host, port=connection.port or 22, user=connection.login or None,
                      key_file=extra.get("key_file"), known_hosts=extra.get("known_hosts"))
    return make_backend("slurm", ssh=ssh, python=extra.get("python"), pythonpath=extra.get("pythonpath"),
                        environment=extra.get("environment"))


class JobArrayTrigger(BaseTrigger):
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


StageFactory = Callable[..., ArrayStage]
"""Builds the stage of one task: called with ``params`` (the DAG run's), ``stage_args`` and ``items`` (the
operator's, rendered), ``backend`` (connected), ``owner`` (the task try, for counting attempts) and ``report``
(the task log's ``info``)."""


class JobArrayOperator(BaseOperator):
    """One stage of job arrays on a backend (deferrable).

    Parameters
    ----------
    stage : callable
        Builds the :class:`~pzlib.cluster.backend.ArrayStage` (see :data:`StageFactory`).
    stage_args : dict
        What this task's stage is about (mapped tasks expand over it), e.g. ``{"estimator": ..., "model_path":
        ...}``; templated.
    items : list of str
        The work items the arrays go through (e.g. partition paths); templated.
    backend : str
        'slurm' or 'local'; templated (e.g. ``"{{ params.backend }}"``).
    conn_id : str
        Airflow connection of the cluster (type ssh; see the module's description).
    poll_interval_s : float, optional
        Seconds between polls; default: the connection's extra ``poll_interval``, else 10.

    Returns (XCom) the stage's result.
    """

    template_fields = ("stage_args", "items", "backend")
    ui_color = "#e8d6f4"

    def __init__(self, *, stage: StageFactory, stage_args: dict, items: list[str], backend: str,
                 conn_id: str = DEFAULT_CONN_ID, poll_interval_s: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.stage = stage
        self.stage_args = stage_args
        self.items = items
        self.backend = backend
        self.conn_id = conn_id
        self.poll_interval_s = poll_interval_s
        self._stage = None  # the ArrayStage while this process works on it, for on_kill

    def execute(self, context) -> dict:
        with self._array_stage(context) as stage:
            return self._next(stage.advance())

    def execute_complete(self, context, event: dict) -> dict:
        handle = ArrayHandle.from_dict(event["handle"])
        if event["status"] != "ended":
            raise BackendError(f"job array {handle.job_id} ({handle.name}): {event['message']}")
        with self._array_stage(context) as stage:
            states = {task_id: TaskState.from_dict(state) for task_id, state in event["states"].items()}
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
    def _array_stage(self, context) -> Iterator[ArrayStage]:
        """This task's stage, on a backend connected for the duration of the block."""
        ti = context["ti"]
        owner = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}[{ti.map_index}]#{ti.try_number}"
        with self._connect(self.backend) as backend:
            self._stage = self.stage(params=context["params"], stage_args=self.stage_args, items=self.items,
                                     backend=backend, owner=owner, report=self.log.info)
            context["map_label"] = self._stage.label
            yield self._stage

    def _next(self, progress) -> dict:
        """Defer while an array runs; the stage's result once it is done."""
        if isinstance(progress, Waiting):
            handle = progress.handle
            trigger = JobArrayTrigger(handle.to_dict(), self.conn_id, self._poll_interval(handle.backend))
            self.defer(trigger=trigger, method_name="execute_complete")
        return progress.result

    def _poll_interval(self, kind: str) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        if kind == "local":
            return DEFAULT_POLL_INTERVAL_S
        extra = BaseHook.get_connection(self.conn_id).extra_dejson
        return float(extra.get("poll_interval", DEFAULT_POLL_INTERVAL_S))

    def _log_task_output(self, stage: ArrayStage, handle: ArrayHandle, states: dict[str, TaskState]) -> None:
        """Copy the end of every task's stdout and stderr into this task's log."""
        for index, logs in stage.task_logs(handle).items():
            state = states.get(handle.task_id(index), TaskState("UNKNOWN")).describe()
            for stream, path, text in (("stdout", logs.stdout_path, logs.stdout),
                                       ("stderr", logs.stderr_path, logs.stderr)):
                if text.strip():
                    self.log.info("task %s (%s) %s, %s:\n%s", handle.task_id(index), state, stream, path,
                                  text.rstrip())
