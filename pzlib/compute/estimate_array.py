"""Stage III of one run and one estimator on a job backend: one job array at a time, resubmitting only what is
missing, at most three attempts per partition.

:class:`EstimateArray` moves stage III forward one step per :meth:`~EstimateArray.advance` call, so the same
logic serves a blocking loop (:meth:`~EstimateArray.run`: the benchmark, scripts) and Airflow's deferrable
operator (which polls in between from the triggerer). A step:

1. If an array was submitted and has not been settled: while any of its tasks has not ended, wait for it —
   whoever calls (a restarted process, a retried Airflow task) re-attaches to it instead of submitting a
   second one. If the answer of its submission was lost, the array is looked up by its unique job name first.
2. Once all its tasks have ended, settle it: every partition whose output does not verify counts one attempt;
   a partition at three attempts fails the stage, with a message naming it and showing its error.
3. Submit one array for every partition whose output does not exist and verify (none: stage III is done).
   Each array task is one long-lived worker (``python -m pzlib.compute.worker``) working through its share.

Everything is kept under the run folder, so it survives restarts::

    OUTPUT/ESTIMATOR/jobs/state.json        the arrays submitted (job ids, partitions) and attempts per partition
    OUTPUT/ESTIMATOR/jobs/array-NNN/        one array: plan.json, partition markers, logs/

Attempts are counted per *owner* (an Airflow task try, or one process): a new owner re-attaches to a running
array but counts attempts afresh, so clearing a failed task retries its failed partitions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pzlib.catalog import open_catalog
from pzlib.cluster.backend import (
    DEFAULT_POLL_INTERVAL_S,
    ArrayHandle,
    ArrayPoller,
    ArrayRequest,
    BackendError,
    Done,
    JobBackend,
    SubmissionRejected,
    TaskLogs,
    TaskState,
    Waiting,
    all_terminal,
)
from pzlib.cluster.plan import read_json, split_shares, write_json
from pzlib.cluster.resources import resources_for
from pzlib.compute.array_plan import ArrayPlan, partition_marker_path
from pzlib.compute.spec import RunSpec
from pzlib.estimate import PartitionEstimator, output_problem

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Arrays a partition may be part of without getting a verified output before stage III fails."""


class PartitionsFailed(RuntimeError):
    """Partitions failed ``MAX_ATTEMPTS`` times; the message names each and shows its last error."""

    def __init__(self, message: str, partitions: list[str]):
        super().__init__(message)
        self.partitions = partitions


class EstimateArray:
    """Stage III of ``estimator`` over ``partition_paths`` of run ``spec``, as job arrays on ``backend`` (an
    :class:`pzlib.cluster.backend.ArrayStage`; once every partition has a verified output, the result is
    ``{"estimator": ..., "output_paths": [...]}``).

    Parameters
    ----------
    spec : pzlib.compute.spec.RunSpec
        The run; its ``resources`` param sizes the arrays (see :mod:`pzlib.cluster.resources`).
    estimator, model_path : str
        The estimator and its trained model (stage II).
    partition_paths : list of str
        Stage I partitions.
    backend : JobBackend
        Where the arrays run.
    owner : str, optional
        Who drives the stage (attempts are counted per owner); default: this host and process.
    report : callable, optional
        Called with one line per event (submission, settlement), e.g. a logger's ``info``.

    Examples
    --------
    >>> with SlurmBackend(settings) as slurm:  # doctest: +SKIP
    ...     outputs = EstimateArray(spec, "bpz", model_path, partitions, slurm).run(poll_interval_s=5)
    """

    def __init__(self, spec: RunSpec, estimator: str, model_path: str, partition_paths: list[str], backend: JobBackend,
                 owner: str | None = None, report: Callable[[str], None] | None = None,
                 max_attempts: int = MAX_ATTEMPTS):
        self.spec = spec
        self.estimator = estimator
        self.label = estimator
        # Workers run in the array's folder: every path they get is absolute.
        self.model_path = str(Path(model_path).resolve())
        self.partition_paths = [str(Path(path).resolve()) for path in partition_paths]
        self.backend = backend
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.report = report or log.info
        self.max_attempts = max_attempts
        self.jobs_dir = Path(spec.output).resolve() / estimator / "jobs"
        self._partition_estimator = None

    # --- the steps ----------------------------------------------------------------------------------------

    def advance(self, states: dict[str, TaskState] | None = None) -> Waiting | Done:
        """One step of stage III (see the module's description).

        ``states`` are the states of the current array's tasks if the caller has just polled them.

        Raises
        ------
        PartitionsFailed
            A partition reached ``max_attempts`` without a verified output.
        SubmissionRejected
            The scheduler refused the array (e.g. an unknown partition or account in the resources param).
        BackendUnavailable
            The cluster cannot be reached; calling again later is safe.
        """
        with self._state() as state:
            record = self._unsettled(state)
            if record is not None:
                handle = ArrayHandle.from_dict(record["handle"])
                if states is None or not all_terminal(states, handle):
                    states = self.backend.states([handle])
                if not all_terminal(states, handle):
                    return Waiting(handle)
                self._settle(state, record, handle, states)
            pending = [path for path in self.partition_paths if not self._verified(path)]
            if not pending:
                outputs = [str(self.spec.partition_output(self.estimator, path)) for path in self.partition_paths]
                return Done({"estimator": self.estimator, "output_paths": outputs})
            exhausted = [path for path in pending if state["attempts"].get(Path(path).name, 0) >= self.max_attempts]
            if exhausted:
                raise PartitionsFailed(self._failure_message(state, exhausted), exhausted)
            return Waiting(self._submit(state, pending))

    def current(self) -> ArrayHandle | None:
        """The array stage III waits for, if any (submitted and not settled)."""
        state = read_json(self.jobs_dir / "state.json") or {}
        arrays = state.get("arrays", [])
        if arrays and not arrays[-1]["settled"] and arrays[-1]["handle"]:
            return ArrayHandle.from_dict(arrays[-1]["handle"])
        return None

    def task_logs(self, handle: ArrayHandle, max_bytes: int = 64_000) -> dict[int, TaskLogs]:
        """The end of every task's stdout and stderr."""
        return self.backend.fetch_logs(handle, range(handle.task_count), max_bytes)

    def run(self, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
            on_poll: Callable[[ArrayPoller], None] | None = None) -> list[str]:
        """Drive stage III to the end, polling every ``poll_interval_s``; return the output paths."""
        progress = self.advance()
        while isinstance(progress, Waiting):
            poller = ArrayPoller(self.backend, progress.handle)
            while True:
                time.sleep(poll_interval_s)
                states = poller.poll()
                if on_poll:
                    on_poll(poller)
                if states is not None:
                    break
            progress = self.advance(states)
        return progress.result["output_paths"]

    # --- state file ---------------------------------------------------------------------------------------

    @contextmanager
    def _state(self) -> Iterator[dict]:
        """The state, locked against other drivers of this stage, written back on the way out."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.jobs_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.jobs_dir / "state.json"
            state = read_json(path) or {"owner": None, "attempts": {}, "arrays": []}
            if state["owner"] != self.owner:
                state["owner"], state["attempts"] = self.owner, {}
            try:
                yield state
            finally:
                write_json(path, state)

    def _unsettled(self, state: dict) -> dict | None:
        """The last array if it is not settled, its handle found if its submission's answer was lost."""
        if not state["arrays"] or state["arrays"][-1]["settled"]:
            return None
        record = state["arrays"][-1]
        if record["handle"] and record["handle"]["backend"] != self.backend.kind:
            raise BackendError(
                f"array {record['handle']['job_id']} of this stage was submitted to the "
                f"{record['handle']['backend']} backend and has not been followed to its end; run the stage "
                f"with backend {record['handle']['backend']!r} again (or cancel that array) before switching"
            )
        if record["handle"] is None:
            found = self.backend.find_array(self._request(record), record["requested_at"])
            if found is None:  # never reached the scheduler
                state["arrays"].pop()
                return None
            record["handle"] = found.to_dict()
            self.report(f"found array {found.job_id} ({record['name']}), whose submission was interrupted")
        return record

    # --- submit, settle -----------------------------------------------------------------------------------

    def _request(self, record: dict) -> ArrayRequest:
        array_dir = Path(record["dir"])
        return ArrayRequest(
            name=record["name"],
            python_args=["-m", "pzlib.compute.worker", "--plan", str(array_dir / "plan.json")],
            task_count=len(record["tasks"]),
            workdir=str(array_dir),
            log_dir=str(array_dir / "logs"),
            resources=resources_for(self.spec.resources, self.estimator, self.backend.resources),
        )

    def _submit(self, state: dict, pending: list[str]) -> ArrayHandle:
        resources = resources_for(self.spec.resources, self.estimator, self.backend.resources)
        number = len(state["arrays"]) + 1
        token = secrets.token_hex(3)
        array_dir = self.jobs_dir / f"array-{number:03d}-{token}"
        params = {**self.spec.to_params(), "output": str(Path(self.spec.output).resolve())}
        shares = split_shares(pending, resources.task_count(len(pending)))
        ArrayPlan(params=params, estimator=self.estimator, model_path=self.model_path, tasks=shares).write(array_dir)
        record = {"number": number, "name": f"pz-{self.spec.release}-{self.estimator}-{number:03d}-{token}",
                  "dir": str(array_dir), "owner": self.owner, "partitions": pending, "tasks": shares,
                  "requested_at": time.time(), "handle": None, "settled": False}
        state["arrays"].append(record)
        # Persisted before sbatch: if the answer is lost, the next step looks the array up by name.
        write_json(self.jobs_dir / "state.json", state)
        try:
            handle = self.backend.submit_array(self._request(record))
        except SubmissionRejected as rejected:
            record.update(settled=True, rejected=str(rejected))
            raise
        record["handle"] = handle.to_dict()
        self.report(f"submitted array {handle.job_id} ({record['name']}): {len(pending)} partition(s) in "
                    f"{len(shares)} task(s), at most {resources.max_concurrent} at once; logs in {array_dir}/logs")
        return handle

    def _settle(self, state: dict, record: dict, handle: ArrayHandle, states: dict[str, TaskState]) -> None:
        missing = [path for path in record["partitions"] if not self._verified(path)]
        for path in missing:
            state["attempts"][Path(path).name] = state["attempts"].get(Path(path).name, 0) + 1
        record.update(settled=True, missing=missing,
                      task_states={task_id: states[task_id].to_dict() for task_id in handle.task_ids()})
        done = len(record["partitions"]) - len(missing)
        self.report(f"array {handle.job_id} ended: {done} of {len(record['partitions'])} partition(s) done"
                    + (f"; missing: {', '.join(Path(path).name for path in missing)}" if missing else ""))

    def _verified(self, partition_path: str) -> bool:
        """Whether the partition's output exists, was made from this partition and model, and has the bytes whose
        SHA-256 its worker recorded."""
        output = self.spec.partition_output(self.estimator, partition_path)
        if not output.exists():
            return False
        if self._partition_estimator is None:
            self._partition_estimator = PartitionEstimator(self.model_path, self.spec.estimate_config(self.estimator))
        try:
            rows = open_catalog(partition_path).num_rows
        except Exception:  # an unreadable partition has no valid output; its worker reports why
            return False
        provenance = self._partition_estimator.provenance(Path(partition_path), rows)
        problem = output_problem(output, provenance, self.spec.partition_checksum(self.estimator, partition_path))
        if problem is not None:
            log.warning("output %s %s; recomputing", output, problem)
        return problem is None

    # --- failure report -----------------------------------------------------------------------------------

    def _failure_message(self, state: dict, exhausted: list[str]) -> str:
        lines = [f"stage III of {self.estimator}: {len(exhausted)} partition(s) failed {self.max_attempts} times; "
                 "outputs already made are kept, fix the cause and run the task again"]
        for path in exhausted[:5]:
            lines.extend(self._partition_failure(state, path))
        if len(exhausted) > 5:
            lines.append(f"... and {len(exhausted) - 5} more: {', '.join(Path(p).name for p in exhausted[5:])}")
        return "\n".join(lines)

    def _partition_failure(self, state: dict, path: str) -> list[str]:
        """Lines naming the partition, the arrays it was in, and its last error (marker or task log)."""
        arrays = [record for record in state["arrays"]
                  if record.get("owner") == self.owner and path in record["partitions"] and record["handle"]]
        job_ids = ", ".join(record["handle"]["job_id"] for record in arrays)
        lines = [f"partition {Path(path).name} ({path}) failed in job array(s) {job_ids}"]
        if not arrays:
            return lines
        last = arrays[-1]
        handle = ArrayHandle.from_dict(last["handle"])
        task_index = next(index for index, share in enumerate(last["tasks"]) if path in share)
        task_state = TaskState.from_dict(last["task_states"][handle.task_id(task_index)])
        marker = read_json(partition_marker_path(Path(last["dir"]), path)) or {}
        situation = {
            "failed": "failed with",
            "started": f"ended {task_state.describe()} while estimating it",
            "cancelled": f"ended {task_state.describe()} while estimating it",
        }.get(marker.get("state"), f"ended {task_state.describe()} before reaching it")
        lines.append(f"  last attempt: task {handle.task_id(task_index)} {situation}"
                     + (f" {marker['error']}" if marker.get("error") else ""))
        if marker.get("traceback"):
            detail, source = marker["traceback"], "traceback"
        else:
            logs = self.backend.fetch_logs(handle, [task_index], max_bytes=16_000)[task_index]
            detail, source = logs.stderr or logs.stdout, f"end of {logs.stderr_path}"
        tail = detail.strip().splitlines()[-25:]
        if tail:
            lines.append(f"  {source}:")
            lines.extend(f"    {line}" for line in tail)
        return lines
