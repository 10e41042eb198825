"""pzlib.cluster.slurm over real SSH on the single-node test cluster, and stage III through it.

The backend connects as the pz_compute DAG does: from an Airflow SSH connection, through the SSH provider's hook
(pzlib.cluster.airflow). The shared behaviours come from backend_contract.py; here is what is particular to Slurm
over SSH: one round trip per poll, sbatch's refusals, a connection cut while polling, and reading sacct's records.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from backend_contract import SLEEPER, BackendContract, StageThreeContract, sleeper_request, wait_for_end

from pzlib.cluster.airflow import backend_for
from pzlib.cluster.backend import ArrayHandle, ArrayPoller, SubmissionRejected
from pzlib.cluster.resources import Resources
from pzlib.cluster.slurm import SlurmBackend, merge_states
from pzlib.cluster.ssh import RemoteShell
from pzlib.compute.estimate_array import EstimateArray, PartitionsFailed


@pytest.fixture(scope="module")
def backend_factory(cluster_connections):
    return lambda: backend_for("slurm", cluster_connections["direct"])


@pytest.fixture
def backend(backend_factory):
    with backend_factory() as slurm:
        yield slurm


@pytest.fixture
def new_backend(backend_factory):
    return backend_factory


@pytest.fixture
def kill_task(slurm_cluster):
    """scancel one array task, as an operator (or preemption) would."""

    def kill(handle: ArrayHandle, index: int) -> None:
        slurm_cluster.run(f"scancel {handle.task_id(index)}")

    return kill


@pytest.fixture
def submissions(slurm_cluster):
    """The job ids sacct knows under a job name since the run began."""

    def find(name: str, run) -> set[str]:
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 3600))
        output = slurm_cluster.run(f"sacct -X -n -P -S {since} --name={name} -o JobID")
        return {line.split("_")[0] for line in output.split()}

    return find


class TestSlurmBackend(BackendContract):
    def test_a_poll_of_several_arrays_is_one_ssh_round_trip(self, backend, tmp_path):
        first = backend.submit_array(sleeper_request(tmp_path / "a", "first", 2))
        second = backend.submit_array(sleeper_request(tmp_path / "b", "second", 1))
        before = backend.stats

        backend.states([first, second])

        after = backend.stats
        assert after["ssh_connections"] == before["ssh_connections"] == 1
        assert after["ssh_commands"] - before["ssh_commands"] == 1
        assert after["slurm_commands"] - before["slurm_commands"] == 2  # sacct and squeue
        wait_for_end(backend, [first, second])

    def test_sbatch_rejecting_the_array_is_a_clear_error(self, backend, tmp_path):
        request = replace(sleeper_request(tmp_path, "rejected", 2), resources=Resources(partition="nosuch"))

        with pytest.raises(SubmissionRejected) as rejection:
            backend.submit_array(request)

        assert "sbatch rejected job array" in str(rejection.value)
        assert "invalid partition specified: nosuch" in str(rejection.value)

    def test_polling_reconnects_when_the_connection_drops(self, backend, tmp_path):
        handle = backend.submit_array(sleeper_request(tmp_path, "dropped", 2, "--seconds", "4"))
        poller = ArrayPoller(backend, handle)
        poller.poll()
        local_port = backend.shell.client.get_transport().sock.getsockname()[1]

        # Destroy both ends of this one TCP connection, as a network failure would (no process is killed).
        subprocess.run(["ss", "-K", f"( sport = :{local_port} or dport = :{local_port} )"], check=True,
                       capture_output=True)
        states = None
        while states is None:
            states = poller.poll()
            time.sleep(0.5)

        assert backend.shell.connections == 2
        assert all(state.succeeded for state in states.values())


def test_sacct_and_squeue_records_are_read_per_task_and_recycled_ids_ignored():
    handle = ArrayHandle("slurm", "77", "pz", 7, "2026-05-01T10:00:00", "/w", "/w/logs")
    accounted = "\n".join([
        "77_0|COMPLETED|0:0|None|2026-05-01T10:00:00",
        "77_1|FAILED|3:0|NonZeroExitCode|2026-05-01T10:00:00",
        "77_2|CANCELLED by 0|0:15|None|2026-05-01T10:00:00",
        "77_[3-4%2]|PENDING|0:0|JobArrayTaskLimit|2026-05-01T10:00:01",
        "77_5|COMPLETED|0:0|None|2025-01-01T00:00:00",  # an earlier job that had the same id
    ])  # fmt: skip
    queued = "77_5|RUNNING|None|0|\n77_6|FAILED|NonZeroExitCode|768|\n"  # 77_6 not in sacct yet

    states = merge_states([handle], accounted, queued)

    assert {task_id: state.describe() for task_id, state in states.items()} == {
        "77_0": "COMPLETED", "77_1": "FAILED (exit 3)", "77_2": "CANCELLED (signal 15)",
        "77_3": "PENDING (JobArrayTaskLimit)", "77_4": "PENDING (JobArrayTaskLimit)", "77_5": "RUNNING",
        "77_6": "FAILED (exit 3)",
    }  # fmt: skip


def test_a_just_submitted_array_is_pending_not_finished():
    handle = ArrayHandle("slurm", "78", "pz", 3, "2026-05-01T10:00:00", "/w", "/w/logs")

    pending = merge_states([handle], "78|PENDING|0:0|None|2026-05-01T10:00:00\n", "")

    assert {task_id: state.state for task_id, state in pending.items()} == dict.fromkeys(handle.task_ids(), "PENDING")
    assert merge_states([handle], "", "") == {}  # unknown: left out, never taken for done


class TestSlurmStageThree(StageThreeContract):
    # The attempts are counted by the backend-neutral driver: checked once, on the production backend.
    def test_a_partition_failing_three_times_fails_the_stage_naming_it(self, make_run, backend_factory):
        run = make_run()
        broken = Path(run.partition_paths[1])
        broken.write_bytes(b"this is not a Parquet file")

        with backend_factory() as backend, pytest.raises(PartitionsFailed) as failure:
            EstimateArray(run.spec, "bpz", run.model_path, run.partition_paths, backend).run(self.poll_interval_s)

        message = str(failure.value)
        assert f"partition {broken.name} ({broken})" in message
        assert "failed 3 times" in message
        assert "failed with" in message and "magic bytes not found" in message  # the worker's error
        assert failure.value.partitions == [str(broken)]
        state = run.state
        assert state["attempts"] == {broken.name: 3}
        assert len(state["arrays"]) == 3
        assert all(array["partitions"] == [str(broken)] for array in state["arrays"][1:])
        assert sorted(path.name for path in run.outputs_dir.iterdir()) == sorted(
            Path(path).name for path in run.partition_paths if path != str(broken))


def test_the_batch_script_is_rendered_from_the_template(tmp_path):
    request = replace(sleeper_request(tmp_path, "rendered", 5, "--seconds", "1"),
                      resources=Resources(cpus=2, mem="3G", time_limit="01:00:00", account="lsst", max_concurrent=2))
    never = RemoteShell(lambda opened: pytest.fail("rendering connected"), "login.example")
    backend = SlurmBackend(never, python="/opt/pz/bin/python", pythonpath="/opt/pz/src",
                           environment={"PZ_STATE_DIR": "/scratch/pz state"})

    script = backend.render_script(request)

    for line in [f"#SBATCH --job-name={request.name}", "#SBATCH --array=0-4%2", f"#SBATCH --chdir={tmp_path}",
                 f"#SBATCH --output={tmp_path}/logs/%A_%a.out", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=3G",
                 "#SBATCH --time=01:00:00", "#SBATCH --account=lsst", "export OMP_NUM_THREADS=2",
                 "export PZ_STATE_DIR='/scratch/pz state'",
                 f'exec /opt/pz/bin/python {SLEEPER} --seconds 1 --task-index "${{SLURM_ARRAY_TASK_ID}}"']:
        assert line in script.splitlines()
    assert "--partition" not in script  # the cluster's default partition
