"""The single-node Slurm cluster of scripts/cluster/, used the way the slurm job backend uses it: over real
SSH with a checked host key, jobs in with sbatch, states and exit codes out of sacct (slurmdbd + MariaDB).

Waits poll with a deadline; Slurm's own latency on this cluster is about a second per job.
"""

import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

CLUSTER_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "cluster"

JOB_DEADLINE_S = 60
POLL_INTERVAL_S = 0.2
TERMINAL_STATES = {
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
    "TIMEOUT",
}  # fmt: skip


def submit(cluster, workdir: Path, script: str, sbatch_options: str = "") -> tuple[str, str]:
    """Submits `script` with sbatch --wrap over SSH; returns the job id and the cluster's clock before it.

    The clock bounds later sacct queries, so a job id recycled by an earlier cluster cannot be mistaken for
    this job.
    """
    output = cluster.run(
        "date +%Y-%m-%dT%H:%M:%S && "
        f"sbatch --parsable --chdir={shlex.quote(str(workdir))} {sbatch_options} --wrap={shlex.quote(script)}"
    )
    submitted_after, parsable = output.split()
    return parsable.split(";")[0], submitted_after


def wait_for_sacct(cluster, job_id: str, since: str, expected_job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Polls sacct until every id in `expected_job_ids` has finished; returns {id: (state, exit code)}.

    A job missing from sacct is not finished yet (slurmdbd records it a moment after slurmctld).
    """
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:
        output = cluster.run(f"sacct -X -n -P -S {since} -j {job_id} -o JobID,State,ExitCode")
        records = {}
        for line in output.splitlines():
            record_id, state, exit_code = line.split("|")
            # "CANCELLED by 0" -> "CANCELLED"
            records[record_id] = (state.split()[0], exit_code)
        if all(records.get(record_id, ("",))[0] in TERMINAL_STATES for record_id in expected_job_ids):
            return {record_id: records[record_id] for record_id in expected_job_ids}
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} not finished after {JOB_DEADLINE_S}s; sacct says {records}")
        time.sleep(POLL_INTERVAL_S)


def test_ssh_login_with_the_generated_key_and_host_key(slurm_cluster):
    output = slurm_cluster.run('whoami && echo "$SLURM_CONF" && sinfo -h -o "%R %a"')

    user, slurm_conf, *partitions = output.splitlines()
    assert user == slurm_cluster.user
    assert slurm_conf.endswith("/etc/slurm.conf")
    assert partitions == [f"{slurm_cluster.partition} up", f"{slurm_cluster.second_partition} up"]


@pytest.mark.parametrize("other_key_listed", [False, True], ids=["host-unknown", "host-key-changed"])
def test_ssh_refuses_a_host_key_not_in_known_hosts(slurm_cluster, tmp_path, other_key_listed):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    if other_key_listed:
        other_key = tmp_path / "other_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
        key_type, key = Path(f"{other_key}.pub").read_text().split()[:2]
        known_hosts.write_text(f"[{slurm_cluster.host}]:{slurm_cluster.port} {key_type} {key}\n")

    completed = subprocess.run(
        slurm_cluster.ssh_command("true", known_hosts=known_hosts),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert completed.returncode == 255
    assert "Host key verification failed" in completed.stderr


def test_wrap_job_completes_and_stays_visible(slurm_cluster, tmp_path):
    job_id, since = submit(slurm_cluster, tmp_path, 'echo "hello from $SLURM_JOB_ID"')

    states = wait_for_sacct(slurm_cluster, job_id, since, [job_id])

    assert states == {job_id: ("COMPLETED", "0:0")}
    assert slurm_cluster.run(f"cat {tmp_path}/slurm-{job_id}.out") == f"hello from {job_id}\n"
    # MinJobAge keeps finished jobs in the controller, so squeue/scontrol still know them.
    assert "JobState=COMPLETED" in slurm_cluster.run(f"scontrol -o show job {job_id}")


def test_job_array_completes(slurm_cluster, tmp_path):
    job_id, since = submit(slurm_cluster, tmp_path, 'echo "task $SLURM_ARRAY_TASK_ID"', sbatch_options="--array=0-3%2")

    states = wait_for_sacct(slurm_cluster, job_id, since, [f"{job_id}_{task}" for task in range(4)])

    assert set(states.values()) == {("COMPLETED", "0:0")}
    outputs = " ".join(f"{tmp_path}/slurm-{job_id}_{task}.out" for task in range(4))
    assert slurm_cluster.run(f"cat {outputs}") == "task 0\ntask 1\ntask 2\ntask 3\n"


def test_failing_job_is_failed_with_its_exit_code(slurm_cluster, tmp_path):
    job_id, since = submit(slurm_cluster, tmp_path, "echo 'partition 7 is broken' >&2; exit 7")

    states = wait_for_sacct(slurm_cluster, job_id, since, [job_id])

    assert states == {job_id: ("FAILED", "7:0")}
    assert "partition 7 is broken" in slurm_cluster.run(f"cat {tmp_path}/slurm-{job_id}.out")


def test_array_reports_each_task_state(slurm_cluster, tmp_path):
    job_id, since = submit(
        slurm_cluster, tmp_path, '[ "$SLURM_ARRAY_TASK_ID" != 1 ] || exit 3', sbatch_options="--array=0-2"
    )

    states = wait_for_sacct(slurm_cluster, job_id, since, [f"{job_id}_{task}" for task in range(3)])

    assert states == {
        f"{job_id}_0": ("COMPLETED", "0:0"),
        f"{job_id}_1": ("FAILED", "3:0"),
        f"{job_id}_2": ("COMPLETED", "0:0"),
    }


def test_up_again_keeps_the_running_daemons(slurm_cluster):
    def daemon_pids() -> dict[str, str]:
        status = subprocess.run(
            [str(CLUSTER_SCRIPTS / "status.sh")], capture_output=True, text=True, timeout=30, check=True
        )
        return dict(re.findall(r"^(\S+)\s+running \(pid (\d+)\)$", status.stdout, flags=re.MULTILINE))

    before = daemon_pids()
    up = subprocess.run(
        [str(CLUSTER_SCRIPTS / "up.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert up.returncode == 0, up.stderr
    assert {"munged", "slurmdbd", "slurmctld", "slurmd", "sshd"} <= before.keys()
    assert daemon_pids() == before
