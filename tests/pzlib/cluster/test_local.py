"""pzlib.cluster.local: job arrays as supervised processes on this machine, and stage III through them.

The shared behaviours come from backend_contract.py; here is what is particular to local processes: their
states live in files, so a new backend instance (a restarted process) reads them and can cancel.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
from backend_contract import BackendContract, StageThreeContract, sleeper_request, wait_for_end, wait_until

from pzlib.cluster.local import UNRECORDED_END, LocalBackend
from pzlib.cluster.plan import read_json


@pytest.fixture(scope="module")
def backend_factory():
    return LocalBackend


@pytest.fixture
def backend():
    with LocalBackend() as local:
        yield local


@pytest.fixture
def new_backend():
    return LocalBackend


@pytest.fixture
def kill_task():
    """Ends a running task's process with SIGTERM, as an out-of-memory killer or an operator would."""

    def kill(handle, index: int) -> None:
        record_path = Path(handle.workdir) / f".{handle.job_id}" / f"task-{index}.json"
        record = wait_until(lambda: read_json(record_path), f"task {index} started")
        os.kill(record["pid"], signal.SIGTERM)

    return kill


@pytest.fixture
def submissions():
    """The local array ids submitted under a job name, from their state files."""

    def find(name: str, run) -> set[str]:
        arrays = (read_json(path) for path in (run.spec.output_path / "bpz" / "jobs").glob("*/.local-*/array.json"))
        return {array["handle"]["job_id"] for array in arrays if array["handle"]["name"] == name}

    return find


class TestLocalBackend(BackendContract):
    def test_a_task_whose_process_vanished_is_failed_not_completed(self, backend, tmp_path):
        handle = backend.submit_array(sleeper_request(tmp_path, "vanished", 1, "--seconds", "120"))
        slot = wait_until(lambda: (read_json(Path(handle.workdir) / f".{handle.job_id}" / "array.json") or {})
                          .get("slots", [{}])[0].get("pid"), "slot started")
        wait_until(lambda: backend.states([handle])[handle.task_id(0)].state == "RUNNING", "task running")

        for process in psutil.Process(slot).children(recursive=True) + [psutil.Process(slot)]:
            process.kill()  # the slot and its task die without a word (SIGKILL)
        states, _ = wait_for_end(LocalBackend(), [handle], deadline_s=30)

        # Which of the two is seen to die first is a race (the slot may record its task's end before it dies
        # itself): either way the task failed, for the same stated reason.
        assert states[handle.task_id(0)].state == "FAILED"
        assert UNRECORDED_END in states[handle.task_id(0)].reason

    def test_a_task_killed_from_outside_while_its_slot_lives_is_failed_with_the_same_reason(self, backend, tmp_path):
        handle = backend.submit_array(sleeper_request(tmp_path, "killed", 1, "--seconds", "120"))
        record_path = Path(handle.workdir) / f".{handle.job_id}" / "task-0.json"
        record = wait_until(lambda: read_json(record_path), "task started")

        os.kill(record["pid"], signal.SIGKILL)  # the OOM killer's way: no handler runs, nothing is recorded
        states, _ = wait_for_end(backend, [handle], deadline_s=30)

        state = states[handle.task_id(0)]
        assert (state.state, state.exit_code, state.signal) == ("FAILED", None, signal.SIGKILL)
        assert UNRECORDED_END in state.reason and "killed by signal 9" in state.reason


class TestLocalStageThree(StageThreeContract):
    pass
