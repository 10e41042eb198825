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

A cluster is an Airflow connection of type ``ssh`` (conn id ``pz_slurm`` by default; a run's ``cluster`` param names
others), read by the SSH provider's hook: host, port, login, and the provider's extras (``key_file`` or
``private_key`` with ``private_key_passphrase``, ``host_key``, ``conn_timeout``, ``look_for_keys``...), so the UI's
connection form is the provider's. Host keys are always checked (``host_key``, else the known_hosts of the account
Airflow runs as): a connection that turns the check off (``no_host_key_check``, ``allow_host_key_change``) is
refused. The persistent shell of :mod:`pzlib.cluster.ssh` runs over one channel of the hook's client. The extra
may also hold this platform's settings of the cluster (:class:`Cluster`): ``jump_conn_id`` (the SSH connection of
a login host the cluster is reached through: one direct-tcpip channel of it carries the cluster's connection,
each hop checking its own host key), ``python`` and ``pythonpath`` (the interpreter and pzlib on the cluster),
``environment`` (variables for the jobs), ``resources`` (the cluster's defaults of job array resources, in the
shape of a run's ``resources`` param, which overrides them) and ``poll_interval`` (seconds, default 10). E.g.::

    AIRFLOW_CONN_PZ_SLURM='{"conn_type": "ssh", "host": "login.cluster", "port": 22, "login": "pz",
        "extra": {"key_file": "/keys/pz", "host_key": "ssh-ed25519 AAAAC3Nz...",
                  "resources": {"partition": "cpu", "fzboost": {"mem": "8G"}}}}'
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from pzlib.cluster import DEFAULT_CLUSTER, make_backend
from pzlib.cluster.backend import (
    DEFAULT_POLL_INTERVAL_S,
    ArrayHandle,
    ArrayPoller,
    ArrayStage,
    BackendError,
    BackendUnavailable,
    JobBackend,
    TaskState,
    Waiting,
)
from pzlib.cluster.resources import check_resources
from pzlib.cluster.ssh import RemoteShell, SSHConfigError, ssh_errors

if TYPE_CHECKING:
    import paramiko
    from airflow.providers.ssh.hooks.ssh import SSHHook

DEFAULT_CONN_ID = DEFAULT_CLUSTER
CONNECT_TIMEOUT_S = 20
"""Seconds to connect to a cluster whose connection sets no ``conn_timeout`` (the provider would wait forever)."""


@dataclass(frozen=True)
class Cluster:
    """A Slurm cluster: an Airflow SSH connection and this platform's settings in its extra (see the module's
    description). :meth:`from_connection` checks them; nothing connects until a command runs."""

    conn_id: str
    destination: str
    """Names the cluster in messages: ``conn_id (login@host port N)``."""
    jump_conn_id: str | None = None
    python: str | None = None
    pythonpath: str | None = None
    environment: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S

    @classmethod
    def from_connection(cls, connection) -> Cluster:
        """The cluster of an Airflow connection; raises SSHConfigError naming the connection and the setting."""
        conn_id = connection.conn_id
        if connection.conn_type != "ssh":
            raise SSHConfigError(f"connection {conn_id!r} is of type {connection.conn_type!r}: a cluster is an "
                                 "Airflow connection of type ssh")
        extra = connection.extra_dejson
        problem = None
        for name in ("jump_conn_id", "python"):
            if extra.get(name) is not None and not (isinstance(extra[name], str) and extra[name]):
                problem = f"extra {name}: must be a non-empty string"
        if extra.get("pythonpath") is not None and not isinstance(extra["pythonpath"], str):
            problem = "extra pythonpath: must be a string (\"\": add nothing to the jobs' PYTHONPATH)"
        environment = extra.get("environment") or {}
        if not isinstance(environment, dict) or not all(isinstance(value, str) for value in environment.values()):
            problem = "extra environment: must be an object of variable names to string values"
        try:
            check_resources(extra.get("resources") or {})
        except ValueError as error:
            problem = f"extra resources: {error}"
        poll_interval = extra.get("poll_interval", DEFAULT_POLL_INTERVAL_S)
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or poll_interval <= 0:
            problem = f"extra poll_interval: must be a positive number of seconds, got {poll_interval!r}"
        if extra.get("jump_conn_id") == conn_id:
            problem = "extra jump_conn_id: names the connection itself"
        if problem:
            raise SSHConfigError(f"connection {conn_id!r}, {problem}")
        where = f"{connection.login}@{connection.host}" if connection.login else connection.host
        return cls(conn_id=conn_id, destination=f"{conn_id} ({where} port {connection.port or 22})",
                   jump_conn_id=extra.get("jump_conn_id"), python=extra.get("python"),
                   pythonpath=extra.get("pythonpath"), environment=dict(environment),
                   resources=dict(extra.get("resources") or {}), poll_interval_s=float(poll_interval))

    def check(self) -> None:
        """Check the connection's provider extras (host key, private key...) and the jump host's, without
        connecting."""
        _ssh_hook(self.conn_id)
        if self.jump_conn_id:
            jump = Cluster.from_connection(_get_connection(self.jump_conn_id))
            if jump.jump_conn_id:
                raise SSHConfigError(f"connection {self.conn_id!r}: its jump host {jump.conn_id!r} has a jump host of "
                                     "its own (one jump host is supported)")
            jump.check()

    def connect(self, opened: ExitStack) -> paramiko.SSHClient:
        """Connect with the provider's hook, through the jump host's when there is one (:data:`pzlib.cluster.ssh.
        Connect`)."""
        hook = _ssh_hook(self.conn_id)
        if self.jump_conn_id:
            import paramiko

            jump = _ssh_hook(self.jump_conn_id)
            jump_destination = f"jump host {self.jump_conn_id} ({jump.username}@{jump.remote_host} port {jump.port})"
            with ssh_errors(jump_destination):
                jump_client = jump.get_conn()
                opened.callback(jump_client.close)
                try:
                    # The cluster's connection runs inside this channel; its host key is checked as without one.
                    hook.host_proxy = jump_client.get_transport().open_channel(
                        "direct-tcpip", (hook.remote_host, hook.port), ("127.0.0.1", 0), timeout=hook.conn_timeout)
                except paramiko.ChannelException as error:
                    raise BackendUnavailable(f"{jump_destination} cannot reach {hook.remote_host} port {hook.port} "
                                             f"for {self.conn_id}: {error.text}") from None
        with ssh_errors(self.destination, "the connection's login and key_file, private_key or password"):
            client = hook.get_conn()
        opened.callback(client.close)
        return client

    def backend(self) -> JobBackend:
        """The Slurm backend of this cluster (connecting on its first command)."""
        return make_backend("slurm", shell=RemoteShell(self.connect, self.destination), python=self.python,
                            pythonpath=self.pythonpath, environment=self.environment, resources=self.resources)


def _get_connection(conn_id: str):
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        raise SSHConfigError(f"cluster connection {conn_id!r} is not defined: create an Airflow connection of "
                             "type ssh with that id") from None


def _ssh_hook(conn_id: str) -> SSHHook:
    """The SSH provider's hook of ``conn_id``, which must check host keys; connection errors fail at once (a
    cluster that cannot be reached is ridden out by the poller and the tasks' retries)."""
    from airflow.providers.ssh.hooks.ssh import SSHHook
    from airflow.sdk.exceptions import AirflowException

    _get_connection(conn_id)
    try:
        hook = SSHHook(ssh_conn_id=conn_id, conn_retry_attempts=1)
    except (ValueError, AirflowException) as error:
        raise SSHConfigError(f"connection {conn_id!r}: {error}") from None
    if hook.no_host_key_check or hook.allow_host_key_change:
        raise SSHConfigError(f"connection {conn_id!r} turns host key checking off (extra no_host_key_check or "
                             "allow_host_key_change): a cluster's host key must be checked; set host_key instead")
    if hook.conn_timeout is None:
        hook.conn_timeout = CONNECT_TIMEOUT_S
    return hook


def cluster(conn_id: str) -> Cluster:
    """The cluster of Airflow connection ``conn_id``, checked without connecting (:meth:`Cluster.check`)."""
    found = Cluster.from_connection(_get_connection(conn_id))
    found.check()
    return found


def check_clusters(conn_ids: list[str]) -> None:
    """Raise ValueError (a bad param: not retried) naming the first connection that is not a usable cluster;
    nothing connects, so a cluster that is down fails only the tasks that run on it."""
    for conn_id in conn_ids:
        try:
            cluster(conn_id)
        except SSHConfigError as error:
            raise ValueError(f"cluster: {error}") from None


def backend_from_connection(kind: str, connection) -> JobBackend:
    """The ``kind`` backend; for 'slurm', on the cluster of an Airflow connection (unused for 'local')."""
    if kind == "local":
        return make_backend("local")
    return Cluster.from_connection(connection).backend()


def backend_for(kind: str, conn_id: str) -> JobBackend:
    """The ``kind`` backend; for 'slurm', on the cluster of Airflow connection ``conn_id``."""
    return backend_from_connection(kind, None if kind == "local" else _get_connection(conn_id))


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
        if kind == "local":
            connection = None
        else:
            try:
                connection = await BaseHook.aget_connection(self.conn_id)
            except AirflowNotFoundException:
                raise SSHConfigError(f"cluster connection {self.conn_id!r} is not defined (any more)") from None
        # Building it imports the backend's modules: off the event loop too.
        return await asyncio.to_thread(backend_from_connection, kind, connection)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        handle = ArrayHandle.from_dict(self.handle)
        try:
            backend = await self._backend()
        except BackendError as error:
            yield TriggerEvent({"status": "error", "message": str(error), "handle": self.handle})
            return
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
    conn_id : str or callable
        Airflow connection of the cluster (type ssh; see the module's description), or a function of the run's
        ``params`` and this task's ``stage_args`` returning it (each mapped task on its own cluster).
    poll_interval_s : float, optional
        Seconds between polls; default: the connection's extra ``poll_interval``, else 10.

    Returns (XCom) the stage's result.
    """

    template_fields = ("stage_args", "items", "backend")
    ui_color = "#e8d6f4"

    def __init__(self, *, stage: StageFactory, stage_args: dict, items: list[str], backend: str,
                 conn_id: str | Callable[[dict, dict], str] = DEFAULT_CONN_ID, poll_interval_s: float | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.stage = stage
        self.stage_args = stage_args
        self.items = items
        self.backend = backend
        self.conn_id = conn_id
        self.poll_interval_s = poll_interval_s
        self._stage = None  # the ArrayStage while this process works on it, for on_kill
        self._cluster_id = None  # its cluster's connection

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
            with backend_for(handle.backend, self._cluster_id) as backend:
                backend.cancel([handle])
            self.log.info("cancelled array %s", handle.job_id)

    # --- helpers ------------------------------------------------------------------------------------------

    @contextmanager
    def _array_stage(self, context) -> Iterator[ArrayStage]:
        """This task's stage, on a backend connected for the duration of the block."""
        ti = context["ti"]
        owner = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}[{ti.map_index}]#{ti.try_number}"
        self._cluster_id = (self.conn_id(context["params"], self.stage_args) if callable(self.conn_id)
                            else self.conn_id)
        with backend_for(self.backend, self._cluster_id) as backend:
            self._stage = self.stage(params=context["params"], stage_args=self.stage_args, items=self.items,
                                     backend=backend, owner=owner, report=self.log.info)
            context["map_label"] = self._stage.label
            yield self._stage

    def _next(self, progress) -> dict:
        """Defer while an array runs; the stage's result once it is done."""
        if isinstance(progress, Waiting):
            handle = progress.handle
            trigger = JobArrayTrigger(handle.to_dict(), self._cluster_id, self._poll_interval(handle.backend))
            self.defer(trigger=trigger, method_name="execute_complete")
        return progress.result

    def _poll_interval(self, kind: str) -> float:
        if self.poll_interval_s is not None:
            return self.poll_interval_s
        if kind == "local":
            return DEFAULT_POLL_INTERVAL_S
        return Cluster.from_connection(_get_connection(self._cluster_id)).poll_interval_s

    def _log_task_output(self, stage: ArrayStage, handle: ArrayHandle, states: dict[str, TaskState]) -> None:
        """Copy the end of every task's stdout and stderr into this task's log."""
        for index, logs in stage.task_logs(handle).items():
            state = states.get(handle.task_id(index), TaskState("UNKNOWN")).describe()
            for stream, path, text in (("stdout", logs.stdout_path, logs.stdout),
                                       ("stderr", logs.stderr_path, logs.stderr)):
                if text.strip():
                    self.log.info("task %s (%s) %s, %s:\n%s", handle.task_id(index), state, stream, path,
                                  text.rstrip())
