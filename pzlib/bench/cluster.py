"""Stage III on the Slurm backend: what submission and polling cost next to the compute they drive.

Runs stage III of a 20-partition run (the DC2 validation set tiled to ROWS rows, BPZ) as one job array on the
test cluster of scripts/cluster/up.sh, through ``pzlib.compute.estimate_array`` exactly as the pz_compute DAG
does, and times every backend call: the SSH connection, the submission, each poll, the settlement. Prints
the submission and polling time as a fraction of the compute wall time (from the first task's start to the
last task's end, as Slurm accounted them; goal ≤ 5%), the SSH and Slurm commands issued per poll, and — side
by side, same partitions — the local backend's wall time.

It connects as the pz_compute DAG does: through the SSH provider's hook, from an Airflow SSH connection made of
cluster.json's facts (key_file, host_key), with the persistent shell over one channel. Then it compares, side by
side and interleaved, the cost of one poll (the same sacct + squeue command) over that shell, over the path of
before issue 20 (one ``ssh`` process running bash, commands on its stdin: :class:`OpenSSHShell`, kept here only
for this comparison), and over a new ``ssh`` connection per poll.

    .venv/bin/python scripts/bench_cluster.py [--rows 200000] [--partitions 20] [--poll-interval 10]
    .venv/bin/python scripts/bench_cluster.py --polls-only [--polls 40]

Needs root and the test cluster (scripts/cluster/up.sh). The tiled input is kept in var/bench/cluster for the
next run; the two run folders are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import structlog

from pzlib.bench.inputs import tiled_input
from pzlib.cluster.airflow import backend_for
from pzlib.cluster.backend import DEFAULT_POLL_INTERVAL_S, ArrayHandle, ArrayRequest, Done, Waiting, all_terminal
from pzlib.cluster.local import LocalBackend
from pzlib.cluster.resources import Resources
from pzlib.cluster.slurm import CLUSTER_TIME_FORMAT, SlurmBackend
from pzlib.cluster.ssh import SHELL_SETUP, answer_header, framed
from pzlib.compute.acquire import acquire
from pzlib.compute.estimate_array import EstimateArray
from pzlib.compute.spec import RunSpec
from pzlib.compute.train import train_model
from pzlib.config import load_settings
from pzlib.samples import dc2_sample_paths


def prepare(rows: int, partitions: int, workdir: Path, backend: str, slots: int) -> tuple[RunSpec, list]:
    """Stages I and II of the tiled DC2 input in a fresh run folder for ``backend``."""
    input_path = tiled_input(rows, workdir)
    train_path = dc2_sample_paths()[0]
    output = workdir / f"run-{backend}-{datetime.now():%Y%m%d-%H%M%S}"
    spec = RunSpec(release="bench", input=str(input_path), train=str(train_path), output=str(output),
                            estimators=["bpz"], partition_rows=-(-rows // partitions), backend=backend,
                            resources={"max_concurrent": slots, "mem": "2G"})
    partition_paths = acquire(spec)
    train_model(spec, "bpz")
    return spec, partition_paths


def drive(stage: EstimateArray, poll_interval_s: float) -> dict:
    """Stage III to the end, timing each backend call; the figures of one run."""
    backend = stage.backend
    figures: dict = {"polls": [], "arrays": 0}
    started = time.perf_counter()
    progress = stage.advance()
    figures["submission_s"] = time.perf_counter() - started
    while isinstance(progress, Waiting):
        figures["arrays"] += 1
        handle = progress.handle
        while True:
            time.sleep(poll_interval_s)
            before = dict(getattr(backend, "stats", {}))
            polled = time.perf_counter()
            states = backend.states([handle])
            figures["polls"].append({"seconds": time.perf_counter() - polled, "before": before,
                                     "after": dict(getattr(backend, "stats", {}))})
            if all_terminal(states, handle):
                break
        figures["detected_at"] = time.time()
        settling = time.perf_counter()
        progress = stage.advance(states)
        figures["settle_s"] = time.perf_counter() - settling
        figures["handle"] = handle
    assert isinstance(progress, Done)
    figures["wall_s"] = time.perf_counter() - started
    figures["outputs"] = len(progress.result["output_paths"])
    return figures


BENCH_CONN_ID = "pz_bench_cluster"


def define_connection(cluster_json: Path) -> str:
    """An Airflow SSH connection (in this process's environment) to the cluster of up.sh's cluster.json."""
    facts = json.loads(cluster_json.read_text())
    host_key = " ".join(Path(facts["known_hosts"]).read_text().split("\n")[0].split()[1:3])
    os.environ[f"AIRFLOW_CONN_{BENCH_CONN_ID.upper()}"] = json.dumps({
        "conn_type": "ssh", "host": facts["host"], "port": facts["port"], "login": facts["user"],
        "extra": {"key_file": facts["key_path"], "host_key": host_key}})
    return BENCH_CONN_ID


def openssh_argv(cluster_json: Path) -> list[str]:
    """``ssh`` with cluster.json's facts, checking the host key strictly (no ssh_config read)."""
    facts = json.loads(cluster_json.read_text())
    return ["ssh", "-F", "/dev/null", "-T", "-p", str(facts["port"]), "-i", facts["key_path"],
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={facts['known_hosts']}", "-o", "GlobalKnownHostsFile=/dev/null",
            f"{facts['user']}@{facts['host']}"]  # fmt: skip


class OpenSSHShell:
    """The path before issue 20, for comparison only: one ``ssh`` process running bash, each command written to
    its stdin, framed as :class:`pzlib.cluster.ssh.RemoteShell` frames it (one round trip per command)."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen([*argv, "exec bash --login -s"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.process.stdin.write(SHELL_SETUP)
        self.run("true")

    def run(self, command: str) -> str:
        request, token = framed(command)
        self.process.stdin.write(request)
        self.process.stdin.flush()
        while (header := answer_header(self.process.stdout.readline().rstrip(b"\n"), token)) is None:
            pass
        _, stdout_bytes, stderr_bytes = header
        return self.process.stdout.read(stdout_bytes + stderr_bytes)[:stdout_bytes].decode()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def compare_polls(slurm: SlurmBackend, handle: ArrayHandle, cluster_json: Path, polls: int) -> dict[str, list]:
    """Seconds of each of ``polls`` polls of ``handle`` on each path, interleaved (so load hits all alike)."""
    command = slurm.states_command([handle])
    argv = openssh_argv(cluster_json)
    openssh = OpenSSHShell(argv)
    slurm.shell.run("true")
    paths = {
        "provider (SSHHook, one channel)": lambda: slurm.shell.run(command),
        "before (ssh process, one shell)": lambda: openssh.run(command),
        "new ssh connection per poll": lambda: subprocess.run([*argv, command], capture_output=True, check=True),
    }
    seconds: dict[str, list] = {name: [] for name in paths}
    commands_before = slurm.shell.commands
    try:
        for _ in range(polls):
            for name, poll in paths.items():
                started = time.perf_counter()
                poll()
                seconds[name].append(time.perf_counter() - started)
    finally:
        openssh.close()
    assert slurm.shell.commands - commands_before == polls and slurm.shell.connections == 1
    return seconds


def tiny_array(slurm: SlurmBackend, workdir: Path) -> ArrayHandle:
    """A 2-task array that does nothing, waited for: something to poll."""
    folder = workdir / f"polls-{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True)
    handle = slurm.submit_array(ArrayRequest(name=f"bench-polls-{secrets.token_hex(3)}", python_args=["-c", "pass"],
                                             task_count=2, workdir=str(folder), log_dir=str(folder / "logs"),
                                             resources=Resources(mem="100M")))
    while not all_terminal(slurm.states([handle]), handle):
        time.sleep(0.5)
    shutil.rmtree(folder)
    return handle


def print_polls(seconds: dict[str, list]) -> None:
    ours = statistics.median(next(iter(seconds.values())))
    print(f"  one poll (sacct + squeue), {len(next(iter(seconds.values())))} polls per path, interleaved; median, "
          "quartiles, ratio of medians to the provider's:")
    for name, values in seconds.items():
        quartiles = statistics.quantiles(values, n=4)
        print(f"    {name:34s} {1000 * statistics.median(values):7.1f} ms  [{1000 * quartiles[0]:6.1f}, "
              f"{1000 * quartiles[2]:6.1f}]  ×{statistics.median(values) / ours:.2f}")


def slurm_compute_span(backend: SlurmBackend, handle) -> tuple[float, float]:
    """(first start, last end) of the array's tasks, as Unix times, from sacct (after the measured run)."""
    result = backend.shell.run(f"sacct -X -n -P -S {handle.submitted_at} -j {handle.job_id} -o JobID,Start,End")
    starts, ends = [], []
    for line in result.stdout.split():
        _, start, end = line.split("|")
        starts.append(datetime.strptime(start, CLUSTER_TIME_FORMAT).timestamp())
        ends.append(datetime.strptime(end, CLUSTER_TIME_FORMAT).timestamp())
    return min(starts), max(ends)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the tiled DC2 input (default 200,000)")
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL_S,
                        help=f"seconds between polls (default {DEFAULT_POLL_INTERVAL_S:g}, as in the Airflow trigger)")
    parser.add_argument("--slots", type=int, default=2, help="array tasks at once (default 2: the test cluster)")
    state_dir = load_settings().state_dir
    parser.add_argument("--cluster-json", default=str(state_dir / "cluster" / "cluster.json"))
    parser.add_argument("--workdir", default=str(state_dir / "bench" / "cluster"))
    parser.add_argument("--polls", type=int, default=40, help="polls per path in the comparison (default 40)")
    parser.add_argument("--polls-only", action="store_true",
                        help="only compare one poll's cost over the three SSH paths (on a tiny array)")
    args = parser.parse_args()
    # RAIL logs every chunk at info level through structlog; this report is the output here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cluster_json = Path(args.cluster_json)
    conn_id = define_connection(cluster_json)

    if args.polls_only:
        with backend_for("slurm", conn_id) as slurm:
            seconds = compare_polls(slurm, tiny_array(slurm, workdir), cluster_json, args.polls)
        print_polls(seconds)
        return 0

    spec, partitions = prepare(args.rows, args.partitions, workdir, "slurm", args.slots)
    slurm = backend_for("slurm", conn_id)
    with slurm:
        connecting = time.perf_counter()
        slurm.shell.run("true")
        connect_s = time.perf_counter() - connecting
        stage = EstimateArray(spec, "bpz", str(spec.model_path("bpz")), partitions, slurm, owner="bench")
        figures = drive(stage, args.poll_interval)
        first_start, last_end = slurm_compute_span(slurm, figures["handle"])
        connections = slurm.stats["ssh_connections"]
        poll_seconds_by_path = compare_polls(slurm, figures["handle"], cluster_json, args.polls)

    local_spec, local_partitions = prepare(args.rows, args.partitions, workdir, "local", args.slots)
    with LocalBackend() as local:
        local_figures = drive(EstimateArray(local_spec, "bpz", str(local_spec.model_path("bpz")), local_partitions,
                                            local, owner="bench"), args.poll_interval)
    for run_folder in (spec.output_path, local_spec.output_path):
        shutil.rmtree(run_folder)

    polls = figures["polls"]
    poll_seconds = [poll["seconds"] for poll in polls]
    ssh_per_poll = {poll["after"]["ssh_commands"] - poll["before"]["ssh_commands"] for poll in polls}
    slurm_per_poll = {poll["after"]["slurm_commands"] - poll["before"]["slurm_commands"] for poll in polls}
    compute_s = last_end - first_start
    overhead_s = connect_s + figures["submission_s"] + sum(poll_seconds)
    fraction = overhead_s / compute_s
    tasks = figures["handle"].task_count
    print(f"stage III, {len(partitions)} partitions ({args.rows:,} rows, BPZ) on the Slurm test cluster: "
          f"{figures['arrays']} job array of {tasks} task(s), at most {args.slots} at once")
    print(f"  compute wall time (first task start → last task end, sacct): {compute_s:7.1f} s")
    print(f"  SSH connection (once for the whole run, {connections} in all): {connect_s:7.2f} s")
    print(f"  submission (plan + one round trip: mkdir, date, sbatch):   {figures['submission_s']:7.2f} s")
    print(f"  polling: {len(polls)} polls every {args.poll_interval:g} s, median "
          f"{statistics.median(poll_seconds):.3f} s each:        {sum(poll_seconds):7.2f} s")
    print(f"  settling (verify {figures['outputs']} outputs):                            "
          f"{figures['settle_s']:7.2f} s")
    print(f"  submission + polling overhead (connection, submission, polls) / compute wall time: "
          f"{overhead_s:.2f} s / {compute_s:.1f} s = {100 * fraction:.1f}% "
          f"(goal ≤ 5%: {'met' if fraction <= 0.05 else 'NOT met'})")
    print(f"  with the settlement too: {100 * (overhead_s + figures['settle_s']) / compute_s:.1f}%")
    print(f"  commands per poll: {', '.join(map(str, sorted(ssh_per_poll)))} SSH command(s), "
          f"{', '.join(map(str, sorted(slurm_per_poll)))} Slurm command(s) (sacct + squeue), on one connection")
    print(f"  end noticed {figures['detected_at'] - last_end:.1f} s after the last task ended "
          f"(poll interval {args.poll_interval:g} s; sacct times are whole seconds)")
    print(f"  stage III wall time, submission to settled: slurm {figures['wall_s']:.1f} s, "
          f"local backend (same partitions, {args.slots} worker processes) {local_figures['wall_s']:.1f} s "
          f"(ratio {figures['wall_s'] / local_figures['wall_s']:.2f})")
    print_polls(poll_seconds_by_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
