"""The single-node Slurm test cluster as a pytest fixture.

`slurm_cluster` runs scripts/cluster/up.sh once per session (installing and starting the cluster if needed)
and hands tests the connection facts up.sh wrote to var/cluster/cluster.json. It stops the cluster with
down.sh at the end of the session only when this session started it, so a cluster someone left running
keeps running.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPTS = REPO_ROOT / "scripts" / "cluster"
CLUSTER_DIR = Path(os.environ.get("PZ_CLUSTER_DIR", REPO_ROOT / "var" / "cluster"))

# The first run installs packages with apt; later runs take seconds.
UP_TIMEOUT_S = 900


@dataclass(frozen=True)
class ClusterConnection:
    """How to reach the test cluster over SSH, as written by scripts/cluster/up.sh."""

    host: str
    """SSH host name (the sshd listens on the loopback interface)."""
    port: int
    """SSH port."""
    user: str
    """Account that logs in and submits jobs."""
    key_path: Path
    """Private key that the sshd accepts for `user`."""
    known_hosts: Path
    """known_hosts file holding the sshd's host key; clients check it strictly."""
    partition: str
    """Default Slurm partition."""

    @classmethod
    def from_json(cls, path: Path) -> ClusterConnection:
        facts = json.loads(path.read_text())
        return cls(
            host=facts["host"],
            port=int(facts["port"]),
            user=facts["user"],
            key_path=Path(facts["key_path"]),
            known_hosts=Path(facts["known_hosts"]),
            partition=facts["partition"],
        )

    def ssh_command(self, remote_command: str, known_hosts: Path | None = None) -> list[str]:
        """The `ssh` argv that runs `remote_command` (one shell string: ssh joins and re-splits arguments).

        No ssh_config is read; the host key must be in `known_hosts` (the cluster's by default).
        """
        return [
            "ssh",
            "-F", "/dev/null",
            "-p", str(self.port),
            "-i", str(self.key_path),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10",
            f"{self.user}@{self.host}",
            remote_command,
        ]  # fmt: skip

    def run(self, remote_command: str, timeout_s: float = 60) -> str:
        """Runs `remote_command` on the cluster over SSH and returns its stdout; raises if it fails."""
        completed = subprocess.run(
            self.ssh_command(remote_command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if completed.returncode != 0:
            raise AssertionError(
                f"remote command {remote_command!r} exited with {completed.returncode}:\n{completed.stderr}"
            )
        return completed.stdout


def _run_script(name: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    # Output is captured: if a daemon kept an inherited pipe open, this would hang until the timeout.
    return subprocess.run(
        [str(CLUSTER_SCRIPTS / name)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[ClusterConnection]:
    """A running single-node Slurm cluster with slurmdbd, reachable over SSH."""
    if os.geteuid() != 0:
        reason = "the Slurm test cluster needs root: scripts/cluster/up.sh installs packages, starts daemons"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; run CI as root")
        pytest.skip(reason)

    already_running = _run_script("status.sh", timeout_s=30).returncode == 0
    up = _run_script("up.sh", timeout_s=UP_TIMEOUT_S)
    if up.returncode != 0:
        pytest.fail(f"scripts/cluster/up.sh exited with {up.returncode}:\n{up.stderr[-4000:]}")
    try:
        yield ClusterConnection.from_json(CLUSTER_DIR / "cluster.json")
    finally:
        if not already_running:
            down = _run_script("down.sh", timeout_s=120)
            assert down.returncode == 0, f"scripts/cluster/down.sh failed:\n{down.stderr}"
