"""The local backend: an array's tasks run as processes on this machine, at most ``max_concurrent`` at a time.

Each of the ``min(task_count, max_concurrent)`` slots is a small supervisor process (``python -m
pzlib.cluster.local``) in its own session; slot s runs tasks s, s + slots, ... one after another, each as its
own process (as a Slurm array task is), and records each task's state and exit code the way Slurm's accounting
does. Everything lives in files, so another process — a restarted Airflow task — sees the same states and can
cancel::

    WORKDIR/.local-<id>/array.json       the array: command, environment, slots and their process ids
    WORKDIR/.local-<id>/task-<i>.json    RUNNING, then COMPLETED | FAILED | CANCELLED with the exit code
    LOG_DIR/local-<id>_<i>.out, .err     each task's stdout and stderr

A slot whose process is gone (killed, machine restarted) without recording the end of a task leaves that task
FAILED (CANCELLED if the array was cancelled): it is never taken for completed. A task killed from outside
(SIGKILL, the OOM killer) had no chance to record anything either: whichever of it and its slot is seen to die
first, its state says so in the same words (:data:`UNRECORDED_END`). Of the resources, ``cpus``
(thread counts) and ``max_concurrent`` apply here; memory, time limit, partition and account are Slurm's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import psutil

from pzlib.cluster.backend import (
    ArrayHandle,
    ArrayRequest,
    JobBackend,
    TaskLogs,
    TaskState,
    log_paths,
)
from pzlib.cluster.plan import read_json, write_json
from pzlib.resources import source_checkout


def thread_environment(cpus: int) -> dict[str, str]:
    """Thread counts of the numeric libraries, so a task uses the CPUs it was given and no more."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    return {name: str(cpus) for name in names}


UNRECORDED_END = "ended without recording the task's end"
"""The reason of a task whose process, or whose slot's, was killed from outside."""


def _state_dir(handle_or_workdir: ArrayHandle | str, job_id: str | None = None) -> Path:
    if isinstance(handle_or_workdir, ArrayHandle):
        return Path(handle_or_workdir.workdir) / f".{handle_or_workdir.job_id}"
    return Path(handle_or_workdir) / f".{job_id}"


def _task_record_path(state_dir: Path, index: int) -> Path:
    return state_dir / f"task-{index}.json"


class LocalBackend(JobBackend):
    """Job arrays as supervised processes on this machine.

    Examples
    --------
    >>> with LocalBackend() as backend:  # doctest: +SKIP
    ...     handle = backend.submit_array(request)
    ...     backend.states([handle])
    """

    kind = "local"

    def __init__(self, python: str | None = None, environment: dict[str, str] | None = None):
        self.python = python or sys.executable
        """Interpreter of the tasks."""
        self.environment = dict(environment or {})
        """Extra environment of the tasks."""
        self._slots: list[subprocess.Popen] = []  # reaped in states(), so finished slots are not zombies

    def submit_array(self, request: ArrayRequest) -> ArrayHandle:
        job_id = f"local-{secrets.token_hex(4)}"
        handle = ArrayHandle(backend=self.kind, job_id=job_id, name=request.name, task_count=request.task_count,
                             submitted_at=datetime.now().isoformat(timespec="seconds"), workdir=request.workdir,
                             log_dir=request.log_dir)
        slot_count = min(request.task_count, request.resources.max_concurrent)
        # Tasks import this process's pzlib: a checkout's, or else the installed one their interpreter finds.
        python_path = os.pathsep.join(map(str, filter(None, [source_checkout(), os.environ.get("PYTHONPATH")])))
        environment = {**os.environ, **self.environment, **thread_environment(request.resources.cpus),
                       "PYTHONPATH": python_path}
        state_dir = _state_dir(handle)
        state_dir.mkdir(parents=True)
        Path(request.log_dir).mkdir(parents=True, exist_ok=True)
        array = {"handle": handle.to_dict(), "argv": [self.python, *request.python_args], "cancelled": False,
                 "slots": [{"tasks": list(range(slot, request.task_count, slot_count))} for slot in range(slot_count)]}
        write_json(state_dir / "array.json", array)
        for slot_number, slot in enumerate(array["slots"]):
            with open(state_dir / f"slot-{slot_number}.err", "wb") as slot_errors:
                process = subprocess.Popen(
                    [self.python, "-m", "pzlib.cluster.local", str(state_dir), str(slot_number)],
                    cwd=request.workdir, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=slot_errors, start_new_session=True,
                )
            self._slots.append(process)
            slot.update(pid=process.pid, create_time=psutil.Process(process.pid).create_time())
        write_json(state_dir / "array.json", array)
        return handle

    def states(self, handles: Sequence[ArrayHandle]) -> dict[str, TaskState]:
        for process in self._slots:
            process.poll()
        states = {}
        for handle in handles:
            state_dir = _state_dir(handle)
            array = read_json(state_dir / "array.json")
            if array is None:
                continue  # unknown, not finished
            for slot in array["slots"]:
                alive = _slot_alive(slot)
                for index in slot["tasks"]:
                    record = read_json(_task_record_path(state_dir, index))
                    if record and record["state"] != "RUNNING":
                        states[handle.task_id(index)] = TaskState(record["state"], record.get("exit_code"),
                                                                   record.get("signal"), record.get("reason", ""))
                    elif alive or "pid" not in slot:
                        states[handle.task_id(index)] = TaskState("RUNNING" if record else "PENDING")
                    else:
                        states[handle.task_id(index)] = TaskState(
                            "CANCELLED" if array["cancelled"] else "FAILED",
                            reason=f"its slot's supervisor {UNRECORDED_END} (killed, or the machine restarted)",
                        )
        return states

    def cancel(self, handles: Sequence[ArrayHandle]) -> None:
        for handle in handles:
            path = _state_dir(handle) / "array.json"
            array = read_json(path)
            if array is None:
                continue
            array["cancelled"] = True
            write_json(path, array)
            for slot in array["slots"]:
                if _slot_alive(slot):
                    # The slot leads its own session: the signal reaches the supervisor and the running task.
                    os.killpg(slot["pid"], signal.SIGTERM)

    def fetch_logs(self, handle: ArrayHandle, task_indices: Sequence[int], max_bytes: int = 64_000
                   ) -> dict[int, TaskLogs]:
        logs = {}
        for index in task_indices:
            stdout_path, stderr_path = log_paths(handle, index)
            logs[index] = TaskLogs(_tail(stdout_path, max_bytes), _tail(stderr_path, max_bytes), str(stdout_path),
                                   str(stderr_path))
        return logs

    def find_array(self, request: ArrayRequest, submitted_after_epoch: float) -> ArrayHandle | None:
        # Job names are unique per submission: the name alone identifies the array.
        for array_file in Path(request.workdir).glob(".local-*/array.json"):
            array = read_json(array_file)
            if array and array["handle"]["name"] == request.name:
                return ArrayHandle.from_dict(array["handle"])
        return None

    def close(self) -> None:
        for process in self._slots:
            process.poll()


def _slot_alive(slot: dict) -> bool:
    """Whether the slot's supervisor still runs: same pid and start time (pids get reused), not a zombie."""
    if "pid" not in slot:
        return False
    try:
        process = psutil.Process(slot["pid"])
        return process.create_time() == slot["create_time"] and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tail(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def run_slot(state_dir: Path, slot_number: int) -> int:
    """The supervisor of one slot: run its tasks one after another, recording each one's end."""
    array = read_json(state_dir / "array.json")
    handle = ArrayHandle.from_dict(array["handle"])
    cancelled = False
    task_process: subprocess.Popen | None = None

    def on_sigterm(signum, frame):
        nonlocal cancelled
        cancelled = True
        if task_process is not None and task_process.poll() is None:
            task_process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    for index in array["slots"][slot_number]["tasks"]:
        record_path = _task_record_path(state_dir, index)
        if cancelled:
            write_json(record_path, {"state": "CANCELLED", "exit_code": None})
            continue
        stdout_path, stderr_path = log_paths(handle, index)
        with open(stdout_path, "ab") as stdout, open(stderr_path, "ab") as stderr:
            task_process = subprocess.Popen([*array["argv"], "--task-index", str(index)], cwd=handle.workdir,
                                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
            write_json(record_path, {"state": "RUNNING", "pid": task_process.pid, "started": time.time()})
            returncode = task_process.wait()
        killed_by = -returncode if returncode < 0 else None
        record = {"state": "COMPLETED" if returncode == 0 else "FAILED",
                  "exit_code": None if killed_by else returncode, "signal": killed_by}
        if cancelled:
            record["state"] = "CANCELLED"
        elif killed_by:  # a signal this supervisor did not send: the task's process was killed from outside
            record["reason"] = (f"its process was killed by signal {killed_by} ({signal.strsignal(killed_by)}) and "
                                f"{UNRECORDED_END}")
        write_json(record_path, record)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pzlib.cluster.local",
                                     description="Supervisor of one slot of a local job array.")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("slot", type=int)
    arguments = parser.parse_args()
    sys.exit(run_slot(arguments.state_dir, arguments.slot))
