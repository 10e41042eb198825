"""The job backend interface: submit an array of tasks, learn the states of many tasks in one call, cancel,
fetch logs; and the records they exchange.

An *array* is N tasks of one Python command, each told its task index(es) with ``--task-index``. The Slurm
backend submits it as one job array; the local backend runs it as worker processes on this machine. A
backend never concludes that a task completed unless the system that ran it says so: a task the backend
cannot see yet is ``UNKNOWN``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from pzlib.cluster.resources import Resources

ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
})  # fmt: skip
"""Slurm job states of a task that has not ended yet (the local backend uses PENDING and RUNNING)."""

TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT",
})  # fmt: skip
"""Slurm job states of a task that has ended; only COMPLETED is a success."""

DEFAULT_POLL_INTERVAL_S = 10.0
"""Seconds between two polls of an array: a poll costs ~0.1–0.2 s of sacct + squeue, so 1–2% of the time."""

UNKNOWN = "UNKNOWN"
"""State of a task the backend cannot see (yet): keep polling, never treat it as finished."""


class BackendError(RuntimeError):
    """The backend could not do what was asked; the message says why and what to do."""


class BackendUnavailable(BackendError):
    """The cluster cannot be reached right now (connection refused or dropped): worth retrying later."""


class SubmissionRejected(BackendError):
    """The scheduler refused the array (unknown partition, bad account, limits): retrying will not help."""


@dataclass(frozen=True)
class ArrayRequest:
    """An array to submit."""

    name: str
    """Job name; unique per submission, so a submission whose answer was lost can be found again by name."""
    python_args: list[str]
    """Arguments of the backend's Python interpreter (e.g. ``["-m", "pzlib.compute.worker", ...]``); each task
    gets ``--task-index I`` appended."""
    task_count: int
    """Number of tasks (indices 0 .. task_count - 1)."""
    workdir: str
    """Working directory of every task; must exist where the tasks run."""
    log_dir: str
    """Folder of the tasks' stdout/stderr files (created if missing)."""
    resources: Resources = field(default_factory=Resources)
    """CPUs, memory, time, partition, account and concurrency cap."""

    def __post_init__(self):
        if self.task_count <= 0:
            raise ValueError(f"task_count must be positive, got {self.task_count}")


@dataclass(frozen=True)
class ArrayHandle:
    """A submitted array, as JSON-able data: enough to poll, cancel and read it from another process."""

    backend: str
    """'local' or 'slurm'."""
    job_id: str
    """Slurm array job id, or the local backend's array id."""
    name: str
    """The job name it was submitted with."""
    task_count: int
    """Number of tasks."""
    submitted_at: str
    """Time just before submission on the cluster's clock (ISO, no zone): bounds accounting queries, so a
    recycled job id from before cannot be mistaken for this array."""
    workdir: str
    """Working directory of the tasks."""
    log_dir: str
    """Folder of the tasks' stdout/stderr files."""

    def task_id(self, index: int) -> str:
        """The id under which the backend reports task ``index`` (Slurm's ``<job>_<index>``)."""
        return f"{self.job_id}_{index}"

    def task_ids(self) -> list[str]:
        return [self.task_id(index) for index in range(self.task_count)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ArrayHandle:
        return cls(**values)


@dataclass(frozen=True)
class TaskState:
    """The state of one array task."""

    state: str
    """A Slurm state name (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT...) or UNKNOWN."""
    exit_code: int | None = None
    """Exit code of the task's command, once it ended (None when killed by a signal or not known)."""
    signal: int | None = None
    """Signal that ended the task, if any."""
    reason: str = ""
    """Scheduler's reason (why pending, what failed), when it gives one."""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "COMPLETED"

    def describe(self) -> str:
        """E.g. 'FAILED (exit 1)', 'CANCELLED (signal 15)', 'PENDING (JobArrayTaskLimit)'."""
        details = []
        if self.exit_code and self.state != "COMPLETED":
            details.append(f"exit {self.exit_code}")
        if self.signal:
            details.append(f"signal {self.signal}")
        if self.reason and self.reason != "None" and not self.terminal:  # why it waits
            details.append(self.reason)
        return f"{self.state} ({', '.join(details)})" if details else self.state

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TaskState:
        return cls(**values)


@dataclass(frozen=True)
class TaskLogs:
    """The end of one task's stdout and stderr."""

    stdout: str
    stderr: str
    stdout_path: str
    stderr_path: str


def all_terminal(states: dict[str, TaskState], handle: ArrayHandle) -> bool:
    """True when every task of ``handle`` is known to have ended."""
    return all(states.get(task_id, TaskState(UNKNOWN)).terminal for task_id in handle.task_ids())


def summarize(states: dict[str, TaskState], handle: ArrayHandle) -> str:
    """E.g. 'array 123: 2 RUNNING, 1 PENDING, 3 COMPLETED'."""
    counts: dict[str, int] = {}
    for task_id in handle.task_ids():
        state = states.get(task_id, TaskState(UNKNOWN)).state
        counts[state] = counts.get(state, 0) + 1
    order = ["RUNNING", "PENDING", UNKNOWN, "COMPLETED"]

    def rank(item: tuple[str, int]) -> tuple[int, str]:
        return (order.index(item[0]) if item[0] in order else len(order), item[0])

    ranked = sorted(counts.items(), key=rank)
    return f"array {handle.job_id}: " + ", ".join(f"{count} {state}" for state, count in ranked)


class JobBackend(abc.ABC):
    """Where job arrays run. Implementations: :class:`pzlib.cluster.local.LocalBackend`,
    :class:`pzlib.cluster.slurm.SlurmBackend`; :func:`pzlib.cluster.make_backend` builds one by name.

    A backend may hold a connection: use it as a context manager, or call :meth:`close`.
    """

    kind: str
    """'local' or 'slurm'."""
    resources: Mapping = MappingProxyType({})
    """The backend's own defaults of job array resources (a cluster's partition, account...), in the shape of a
    run's ``resources`` param, which overrides them (:func:`pzlib.cluster.resources.resources_for`)."""

    @abc.abstractmethod
    def submit_array(self, request: ArrayRequest) -> ArrayHandle:
        """Submit the array; return its handle.

        Raises
        ------
        SubmissionRejected
            The scheduler refused the array; the message carries its reason.
        BackendUnavailable
            The cluster could not be reached; nothing was submitted.
        """

    @abc.abstractmethod
    def states(self, handles: Sequence[ArrayHandle]) -> dict[str, TaskState]:
        """The state of every task of ``handles`` in one query, keyed by :meth:`ArrayHandle.task_id`.

        A task the backend does not know (yet) is missing from the answer or ``UNKNOWN``, never assumed done.
        """

    @abc.abstractmethod
    def cancel(self, handles: Sequence[ArrayHandle]) -> None:
        """Cancel every task of ``handles`` that has not ended (no error for those that have)."""

    @abc.abstractmethod
    def fetch_logs(self, handle: ArrayHandle, task_indices: Sequence[int], max_bytes: int = 64_000
                   ) -> dict[int, TaskLogs]:
        """The last ``max_bytes`` of stdout and stderr of the given tasks."""

    @abc.abstractmethod
    def find_array(self, request: ArrayRequest, submitted_after_epoch: float) -> ArrayHandle | None:
        """The array submitted for ``request`` (same job name) after the given Unix time, if there is one.

        Used when the answer to a submission was lost (connection dropped, process restarted): the array may
        exist and must not be submitted twice.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the backend reconnects if used again."""

    def __enter__(self) -> JobBackend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def log_paths(handle: ArrayHandle, index: int) -> tuple[Path, Path]:
    """(stdout, stderr) files of task ``index``: ``<log_dir>/<job>_<index>.out`` and ``.err``."""
    log_dir = Path(handle.log_dir)
    return log_dir / f"{handle.task_id(index)}.out", log_dir / f"{handle.task_id(index)}.err"


class ArrayPoller:
    """Polls one array until every task has ended, riding out a cluster that is briefly unreachable.

    Each :meth:`poll` is one backend query. It returns the states once all tasks are terminal, else None;
    it raises BackendError when the cluster stayed unreachable, or a task stayed unknown to it, for too long.
    """

    def __init__(self, backend: JobBackend, handle: ArrayHandle, unreachable_timeout_s: float = 900,
                 unknown_timeout_s: float = 600):
        self.backend = backend
        self.handle = handle
        self.unreachable_timeout_s = unreachable_timeout_s
        self.unknown_timeout_s = unknown_timeout_s
        self.summary = ""
        """The last poll's one-line summary ('array 123: 2 RUNNING, ...')."""
        self.polls = 0
        self._unreachable_since: float | None = None
        self._unknown_since: float | None = None

    def poll(self) -> dict[str, TaskState] | None:
        self.polls += 1
        now = time.monotonic()
        try:
            states = self.backend.states([self.handle])
        except BackendUnavailable as error:
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since > self.unreachable_timeout_s:
                raise BackendError(f"{error}; unreachable for {now - self._unreachable_since:.0f} s, giving up "
                                   f"on array {self.handle.job_id}") from None
            self.summary = f"array {self.handle.job_id}: cluster unreachable ({error}); retrying"
            return None
        self._unreachable_since = None
        self.summary = summarize(states, self.handle)
        unknown = [task_id for task_id in self.handle.task_ids() if task_id not in states]
        if unknown:
            self._unknown_since = self._unknown_since or now
            if now - self._unknown_since > self.unknown_timeout_s:
                raise BackendError(
                    f"the cluster does not know task(s) {', '.join(unknown[:5])} of array {self.handle.job_id} "
                    f"(submitted {self.handle.submitted_at}) after {now - self._unknown_since:.0f} s: it was "
                    "purged or never registered; cancel it if it still runs and start the stage again"
                )
        else:
            self._unknown_since = None
        return states if all_terminal(states, self.handle) else None


@dataclass(frozen=True)
class Waiting:
    """A stage of job arrays waits for this array: poll it, then advance the stage once all its tasks have ended."""

    handle: ArrayHandle


@dataclass(frozen=True)
class Done:
    """A stage of job arrays has finished; ``result`` is what it hands on (JSON-able)."""

    result: dict


class ArrayStage(Protocol):
    """Work that a pipeline carries out as job arrays, one step per :meth:`advance` (e.g. stage III of one
    estimator, :class:`pzlib.compute.estimate_array.EstimateArray`): what :mod:`pzlib.cluster.airflow` drives
    without knowing the pipeline."""

    label: str
    """Names the stage in logs and in the Airflow task's map label."""

    def advance(self, states: dict[str, TaskState] | None = None) -> Waiting | Done:
        """Submit, re-attach or settle; ``states`` are the current array's, if the caller has just polled them."""

    def current(self) -> ArrayHandle | None:
        """The array the stage waits for, if any."""

    def task_logs(self, handle: ArrayHandle, max_bytes: int = 64_000) -> dict[int, TaskLogs]:
        """The end of every task's stdout and stderr."""
