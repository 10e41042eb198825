"""SSH to the cluster: one OpenSSH connection running one remote shell, commands framed over its pipes.

Each new SSH connection costs a key exchange and a login (0.5–0.9 s on the test machine), and even a
multiplexed channel costs a remote session start (~0.3 s). :class:`RemoteShell` instead keeps one ``ssh``
process running ``bash`` on the cluster and writes commands to its stdin one after another; each answer comes
back framed — a header line ``<token> <exit code> <stdout bytes> <stderr bytes>`` followed by those bytes — so
a poll costs only the Slurm command it runs. OpenSSH does the security: keys, and host keys checked strictly
against the given known_hosts file (never disabled).

When the connection drops, the command in flight raises :class:`ConnectionLost`; the next command reconnects.
Commands that are safe to run twice (queries, scancel) are retried once on a fresh connection automatically;
the caller decides for the others (sbatch).
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import shlex
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pzlib.cluster.backend import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

# ssh's own error messages that no retry will cure: they name a setting to fix.
_CONFIG_ERRORS = (
    "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED", "Permission denied",
    "Could not resolve hostname", "no such identity", "Bad configuration option", "Load key",
)  # fmt: skip


class SSHConfigError(BackendError):
    """SSH refused the connection for a reason a retry will not fix (host key, key, user, host name)."""


class ConnectionLost(BackendUnavailable):
    """The SSH connection dropped or stopped answering; the command in flight may or may not have run."""


@dataclass(frozen=True)
class SSHSettings:
    """How to reach the cluster's login node."""

    host: str
    """Host name or address of the login node."""
    port: int = 22
    """SSH port."""
    user: str | None = None
    """Login; None uses the local user name."""
    key_file: str | None = None
    """Private key to log in with; None lets ssh use its default keys."""
    known_hosts: str | None = None
    """known_hosts file holding the host's key, checked strictly; None uses ~/.ssh/known_hosts."""
    connect_timeout_s: float = 20.0
    """Seconds to wait for the connection and the remote shell."""
    command_timeout_s: float = 300.0
    """Seconds to wait for one command's answer before the connection is considered dead."""

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_argv(self) -> list[str]:
        """The ``ssh`` command line (without the remote command). No ssh_config file is read."""
        argv = [
            "ssh", "-F", "/dev/null", "-T", "-p", str(self.port),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={max(1, int(self.connect_timeout_s))}",
            # A connection that silently died (network gone) is noticed within a minute.
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
        ]  # fmt: skip
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.key_file:
            argv += ["-i", self.key_file, "-o", "IdentitiesOnly=yes"]
        return [*argv, self.destination]


@dataclass(frozen=True)
class CommandResult:
    """What a remote command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


class RemoteShell:
    """One persistent SSH connection to the cluster, running commands in a remote bash one at a time.

    Thread-safe (commands are serialized). Counts its connections and commands, for benchmarks.

    Examples
    --------
    >>> with RemoteShell(SSHSettings("login.cluster", user="me")) as shell:  # doctest: +SKIP
    ...     shell.run("squeue -h -u me").stdout
    """

    # The remote side: a login shell (so site profiles put sbatch on PATH) reading commands from stdin, with a
    # private folder for the stdout/stderr of the command in flight.
    _REMOTE_COMMAND = "exec bash --login -s"
    _SETUP = "__pz_dir=$(mktemp -d) || exit 1; trap 'rm -rf \"$__pz_dir\"' EXIT\n"

    def __init__(self, settings: SSHSettings):
        self.settings = settings
        self.connections = 0
        """SSH connections opened so far."""
        self.commands = 0
        """Commands sent so far."""
        self._process: subprocess.Popen | None = None
        self._stderr_file = None
        self._buffer = bytearray()
        self._lock = threading.RLock()

    # --- public -------------------------------------------------------------------------------------------

    def run(self, command: str, input: str | None = None, timeout_s: float | None = None,
            idempotent: bool = True) -> CommandResult:
        """Run ``command`` (one bash command line, possibly several lines) on the cluster.

        ``input`` is fed to its stdin (otherwise stdin is empty). ``idempotent`` commands are run again on a new
        connection if the connection drops while they run.

        Raises
        ------
        ConnectionLost
            The connection dropped during a non-idempotent command (it may or may not have run), or twice.
        BackendUnavailable
            The cluster cannot be reached.
        SSHConfigError
            SSH refused the connection (host key not in known_hosts, key refused...).
        """
        with self._lock:
            try:
                return self._run_once(command, input, timeout_s)
            except ConnectionLost as lost:
                if not idempotent:
                    raise
                log.warning("%s; reconnecting and running the command again", lost)
                return self._run_once(command, input, timeout_s)

    @property
    def connected(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the live ``ssh`` client, if connected."""
        return self._process.pid if self.connected else None

    def close(self) -> None:
        """Log out and stop the ssh process; a later command reconnects."""
        with self._lock:
            process, self._process = self._process, None
            if process is not None:
                try:
                    process.stdin.write(b"exit\n")
                    process.stdin.close()
                    process.wait(timeout=2)
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    process.kill()
                    process.wait()
                process.stdout.close()
            if self._stderr_file is not None:
                self._stderr_file.close()
                self._stderr_file = None
            self._buffer.clear()

    def __enter__(self) -> RemoteShell:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- connection ---------------------------------------------------------------------------------------

    def _connect(self) -> None:
        self.close()
        self._stderr_file = tempfile.TemporaryFile()
        argv = [*self.settings.ssh_argv(), self._REMOTE_COMMAND]
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=self._stderr_file)
        except FileNotFoundError as error:
            raise SSHConfigError("the OpenSSH client `ssh` is not installed on this machine") from error
        os.set_blocking(self._process.stdout.fileno(), False)
        self.connections += 1
        started = time.monotonic()
        try:
            self._send(self._SETUP.encode())
            self._exchange("true", None, self.settings.connect_timeout_s)
        except ConnectionLost as lost:
            message = self._ssh_error()
            self.close()
            if any(marker in message for marker in _CONFIG_ERRORS):
                raise SSHConfigError(
                    f"SSH to {self.settings.destination} port {self.settings.port} refused: {message} "
                    f"(check the connection's host, login, key_file and known_hosts)"
                ) from None
            raise BackendUnavailable(f"cannot reach {self.settings.destination} port {self.settings.port}: "
                                     f"{message or lost}") from None
        log.info("connected to %s port %d in %.2f s", self.settings.destination, self.settings.port,
                 time.monotonic() - started)

    def _ssh_error(self) -> str:
        """The last lines ssh printed on its stderr (why it could not connect or dropped)."""
        if self._process is not None:
            try:
                self._process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        if self._stderr_file is None:
            return ""
        self._stderr_file.seek(0)
        lines = self._stderr_file.read()[-4000:].decode(errors="replace").strip().splitlines()
        return " / ".join(line.strip() for line in lines[-3:])

    # --- one command --------------------------------------------------------------------------------------

    def _run_once(self, command: str, input: str | None, timeout_s: float | None) -> CommandResult:
        if not self.connected:
            self._connect()
        try:
            return self._exchange(command, input, timeout_s or self.settings.command_timeout_s)
        except ConnectionLost as lost:
            detail = self._ssh_error()
            self.close()
            raise ConnectionLost(f"SSH connection to {self.settings.destination} lost"
                                 f"{': ' + detail if detail else ''} ({lost})") from None

    def _exchange(self, command: str, input: str | None, timeout_s: float) -> CommandResult:
        token = f"__pz_{secrets.token_hex(8)}"
        redirect = "</dev/null"
        heredoc = ""
        if input is not None:
            redirect = f"<<'{token}_EOF'"
            heredoc = input + ("" if input.endswith("\n") else "\n") + f"{token}_EOF\n"
        request = (
            f"( {command}\n) {redirect} >\"$__pz_dir/o\" 2>\"$__pz_dir/e\"; __pz_rc=$?; "
            f"printf '\\n%s %s %s %s\\n' {token} \"$__pz_rc\" \"$(wc -c <\"$__pz_dir/o\")\" "
            f"\"$(wc -c <\"$__pz_dir/e\")\"; cat \"$__pz_dir/o\" \"$__pz_dir/e\"\n{heredoc}"
        )
        self.commands += 1
        self._send(request.encode())
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_line(deadline)
            if line.startswith(token.encode() + b" "):
                break
            if line.strip():  # a login banner or profile output: not ours
                log.debug("remote shell printed %r", line)
        _, returncode, stdout_bytes, stderr_bytes = line.decode().split()
        stdout = self._read_exactly(int(stdout_bytes), deadline)
        stderr = self._read_exactly(int(stderr_bytes), deadline)
        return CommandResult(int(returncode), stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _send(self, data: bytes) -> None:
        try:
            self._process.stdin.write(data)
            self._process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as error:
            raise ConnectionLost(f"cannot send to ssh: {error}") from None

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionLost("no answer within the command timeout")
        readable, _, _ = select.select([self._process.stdout], [], [], remaining)
        if not readable:
            return
        chunk = os.read(self._process.stdout.fileno(), 1 << 16)
        if not chunk:
            raise ConnectionLost("the remote shell closed the connection")
        self._buffer += chunk

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line.rstrip(b"\n")

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


def quote_path(path: str | Path) -> str:
    """A path quoted for the remote shell."""
    return shlex.quote(str(path))
