"""What every job backend must do, as test classes that test_local.py and test_slurm.py subclass with their
real backend (fixtures ``backend``, ``new_backend`` and ``kill_task``).

:class:`BackendContract` drives arrays of a tiny stand-in task (sleeper.py); :class:`StageThreeContract` runs
stage III for real (``pzlib.compute.worker`` estimating DC2 partitions with BPZ): outputs, resubmission of a
missing partition, re-attaching after a restart, a task killed mid-run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pzlib.cluster.backend import ArrayHandle, ArrayRequest, TaskState, Waiting, all_terminal
from pzlib.cluster.plan import read_json
from pzlib.cluster.resources import Resources
from pzlib.compute.array_plan import partition_marker_path
from pzlib.compute.estimate_array import EstimateArray

SLEEPER = Path(__file__).with_name("sleeper.py")
DEADLINE_S = 180
RESOURCES = {"max_concurrent": 2, "mem": "1G"}
"""Two tasks at once, as the test cluster has two CPUs."""


@dataclass(frozen=True)
class StageThreeRun:
    """A run folder with stages I and II done: what stage III needs."""

    spec: object
    model_path: str
    partition_paths: list[str]

    @property
    def outputs_dir(self) -> Path:
        return self.spec.output_path / "bpz" / "partitions"

    @property
    def state(self) -> dict:
        return json.loads((self.spec.output_path / "bpz" / "jobs" / "state.json").read_text())


def copy_run(run: StageThreeRun, output: Path, resources: dict | None = None, copy: bool = True) -> StageThreeRun:
    """`run` copied to `output` (stage I partitions and model), with the given resources param."""
    if copy:
        shutil.copytree(run.spec.output_path, output)
    spec = replace(run.spec, output=str(output), resources=resources or RESOURCES)
    return StageThreeRun(spec, str(spec.model_path("bpz")),
                         [str(output / "stage1" / Path(path).name) for path in run.partition_paths])


def sleeper_request(workdir: Path, name: str, task_count: int, *options: str, max_concurrent: int = 2
                    ) -> ArrayRequest:
    workdir.mkdir(parents=True, exist_ok=True)
    return ArrayRequest(name=f"{name}-{time.time_ns()}", python_args=[str(SLEEPER), *options],
                        task_count=task_count, workdir=str(workdir), log_dir=str(workdir / "logs"),
                        resources=Resources(mem="100M", max_concurrent=max_concurrent))


def wait_for_end(backend, handles: list[ArrayHandle], deadline_s: float = DEADLINE_S, interval_s: float = 0.3
                 ) -> tuple[dict[str, TaskState], int]:
    """Polls until every task of `handles` has ended: (states, most tasks seen RUNNING at once)."""
    deadline = time.monotonic() + deadline_s
    most_running = 0
    while True:
        states = backend.states(handles)
        most_running = max(most_running, sum(state.state == "RUNNING" for state in states.values()))
        if all(all_terminal(states, handle) for handle in handles):
            return states, most_running
        assert time.monotonic() < deadline, f"not ended after {deadline_s} s: {states}"
        time.sleep(interval_s)


def wait_until(condition, what: str, deadline_s: float = DEADLINE_S, interval_s: float = 0.3):
    deadline = time.monotonic() + deadline_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        time.sleep(interval_s)
    return result


class BackendContract:
    def test_tasks_run_with_their_index_capped_and_logged(self, backend, tmp_path):
        request = sleeper_request(tmp_path, "capped", 3, "--seconds", "1.5", max_concurrent=2)

        handle = backend.submit_array(request)
        states, most_running = wait_for_end(backend, [handle])

        assert {task_id: state.state for task_id, state in states.items()} == dict.fromkeys(
            handle.task_ids(), "COMPLETED")
        assert most_running <= 2
        logs = backend.fetch_logs(handle, range(3))
        for index in range(3):
            assert f"task {index} starts, OMP_NUM_THREADS=1" in logs[index].stdout
            assert f"task {index} done" in logs[index].stdout

    def test_states_of_several_arrays_come_from_one_query(self, backend, tmp_path):
        first = backend.submit_array(sleeper_request(tmp_path / "a", "first", 2))
        second = backend.submit_array(sleeper_request(tmp_path / "b", "second", 1))
        wait_for_end(backend, [first, second])

        states = backend.states([first, second])

        assert set(states) == {*first.task_ids(), *second.task_ids()}
        assert all(state.succeeded for state in states.values())

    def test_a_failed_task_keeps_its_exit_code_and_error(self, backend, tmp_path):
        handle = backend.submit_array(sleeper_request(tmp_path, "failing", 3, "--fail-task", "1"))

        states, _ = wait_for_end(backend, [handle])

        assert states[handle.task_id(0)].succeeded and states[handle.task_id(2)].succeeded
        assert (states[handle.task_id(1)].state, states[handle.task_id(1)].exit_code) == ("FAILED", 3)
        assert "task 1 fails as told" in backend.fetch_logs(handle, [1])[1].stderr

    def test_cancel_ends_running_and_pending_tasks(self, backend, new_backend, tmp_path):
        handle = backend.submit_array(sleeper_request(tmp_path, "cancelled", 3, "--seconds", "120",
                                                      max_concurrent=1))
        wait_until(lambda: backend.states([handle]).get(handle.task_id(0), TaskState("?")).state == "RUNNING",
                   "first task running")

        with new_backend() as other:  # any process may cancel: the array is found from its handle alone
            other.cancel([handle])
        states, _ = wait_for_end(backend, [handle], deadline_s=60)

        assert {state.state for state in states.values()} == {"CANCELLED"}

    def test_an_array_whose_submission_answer_was_lost_is_found_by_name(self, backend, new_backend, tmp_path):
        request = sleeper_request(tmp_path, "found", 2)
        asked_at = time.time()
        handle = backend.submit_array(request)

        with new_backend() as other:
            found = other.find_array(request, asked_at)
            never_submitted = other.find_array(sleeper_request(tmp_path, "never", 2), asked_at)

        assert found is not None and found.job_id == handle.job_id
        assert never_submitted is None
        wait_for_end(backend, [handle])


class StageThreeContract:
    """Stage III of a real run (four 500-row partitions, BPZ) through job arrays and their faults.

    Test files provide ``backend_factory`` (a new backend per call, as a restarted process would make),
    ``kill_task(handle, index)`` and ``submissions(name, since)`` (the job ids submitted under a job name).
    """

    poll_interval_s = 0.5

    @pytest.fixture(scope="class")
    def finished_run(self, prepared_run, backend_factory, tmp_path_factory) -> tuple[StageThreeRun, list[str]]:
        run = copy_run(prepared_run, tmp_path_factory.mktemp("finished") / "run")
        with backend_factory() as backend:
            stage = EstimateArray(run.spec, "bpz", run.model_path, run.partition_paths, backend)
            return run, stage.run(self.poll_interval_s)

    def test_every_partition_output_exists_once_and_equals_the_in_process_one(self, finished_run,
                                                                               reference_outputs):
        run, outputs = finished_run

        assert outputs == [str(run.outputs_dir / Path(path).name) for path in run.partition_paths]
        assert sorted(path.name for path in run.outputs_dir.iterdir()) == sorted(reference_outputs)
        for output in outputs:
            ours, reference = pq.read_table(output), pq.read_table(reference_outputs[Path(output).name])
            assert ours.replace_schema_metadata(None).equals(reference.replace_schema_metadata(None))
        assert len(run.state["arrays"]) == 1
        assert len(run.state["arrays"][0]["tasks"]) == RESOURCES["max_concurrent"]  # one worker per slot

    def test_a_rerun_resubmits_only_the_missing_partition(self, finished_run, backend_factory):
        run, outputs = finished_run
        missing = Path(outputs[2])
        missing.unlink()
        kept = {path: Path(path).stat().st_mtime_ns for path in outputs if path != str(missing)}

        with backend_factory() as backend:
            EstimateArray(run.spec, "bpz", run.model_path, run.partition_paths, backend).run(self.poll_interval_s)

        assert [Path(path).name for path in run.state["arrays"][-1]["partitions"]] == [missing.name]
        assert missing.exists()
        assert {path: Path(path).stat().st_mtime_ns for path in kept} == kept

    def test_a_restart_reattaches_and_a_killed_task_is_resubmitted(self, make_run, backend_factory, kill_task,
                                                                 submissions):
        run = make_run()
        with backend_factory() as backend:
            submitted = EstimateArray(run.spec, "bpz", run.model_path, run.partition_paths, backend,
                                      owner="first process").advance()
        assert isinstance(submitted, Waiting)
        # The first process dies right after sbatch, before recording the job id.
        state_path = run.spec.output_path / "bpz" / "jobs" / "state.json"
        state = json.loads(state_path.read_text())
        state["arrays"][-1]["handle"] = None
        state_path.write_text(json.dumps(state))

        with backend_factory() as backend:
            stage = EstimateArray(run.spec, "bpz", run.model_path, run.partition_paths, backend,
                                  owner="restarted process")
            reattached = stage.advance()
            assert isinstance(reattached, Waiting) and reattached.handle.job_id == submitted.handle.job_id
            first_array = run.state["arrays"][0]
            first_share = first_array["tasks"][0]
            marker = partition_marker_path(Path(first_array["dir"]), first_share[0])
            wait_until(lambda: (read_json(marker) or {}).get("state") in ("started", "done"), "task 0 at work")
            kill_task(reattached.handle, 0)
            outputs = stage.run(self.poll_interval_s)

        arrays = run.state["arrays"]
        assert len(arrays) == 2
        assert arrays[0]["task_states"][submitted.handle.task_id(0)]["state"] in ("CANCELLED", "FAILED")
        assert arrays[1]["partitions"] and set(arrays[1]["partitions"]) <= set(first_share)
        assert submissions(arrays[0]["name"], run) == {submitted.handle.job_id}
        assert sorted(path.name for path in run.outputs_dir.iterdir()) == [Path(path).name for path in outputs]
        assert len(outputs) == len(run.partition_paths)
