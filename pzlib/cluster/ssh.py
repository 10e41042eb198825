"""SSH to the cluster: one connection running one remote shell, commands framed over its one channel.

Each new SSH connection costs a key exchange and a login (0.5–0.9 s on the test machine), and even a new
channel on a live connection costs a remote session start (~0.3 s). :class:`RemoteShell` instead keeps one
channel running ``bash`` on the cluster and writes commands to it one after another; each answer comes back
framed — a header line ``<token> <exit code> <stdout bytes> <stderr bytes>`` followed by those bytes — so a poll
costs one round trip and the Slurm command it runs.

The connection itself (authentication, host keys, a jump host, timeouts, keepalive) is not made here: the shell
is given a ``connect`` function returning a connected :class:`paramiko.SSHClient` — :mod:`pzlib.cluster.airflow`
builds it with the SSH provider's hook from an Airflow connection. :func:`ssh_errors` turns what paramiko raises
into this package's errors, naming the host.

When the connection drops, the command in flight raises :class:`ConnectionLost`; the next command reconnects.
Commands that are safe to run twice (queries, scancel) are retried once on a fresh connection automatically;
the caller decides for the others (sbatch).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from pzlib.cluster.backend import BackendError, BackendUnavailable

log = logging.getLogger(__name__)

Connect = Callable[[ExitStack], paramiko.SSHClient]
"""Opens the SSH connection to the cluster's login node and returns its client; everything it opens (the client,
a jump host's client) is registered on the given stack, which the shell closes when it disconnects. Raises
:class:`SSHConfigError` or :class:`~pzlib.cluster.backend.BackendUnavailable` (see :func:`ssh_errors`)."""


class SSHConfigError(BackendError):
    """SSH refused the connection for a reason a retry will not fix (host key, key, login, host name)."""


class ConnectionLost(BackendUnavailable):
    """The SSH connection dropped or stopped answering; the command in flight may or may not have run."""


@dataclass(frozen=True)
class CommandResult:
    """What a remote command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def ssh_errors(destination: str, settings: str = "the connection's host, login and key") -> Iterator[None]:
    """Turn paramiko's errors while connecting to ``destination`` into :class:`SSHConfigError` (a setting to
    fix: ``settings`` says which) or :class:`~pzlib.cluster.backend.BackendUnavailable` (worth retrying)."""
    try:
        yield
    except paramiko.BadHostKeyException as error:
        raise SSHConfigError(
            f"SSH to {destination} refused: its host key ({error.key.get_name()} "
            f"{error.key.fingerprint}) is not the expected one (check the connection's host_key)") from None
    except paramiko.AuthenticationException as error:
        raise SSHConfigError(f"SSH to {destination} refused: login failed ({error}; check {settings})") from None
    except socket.gaierror as error:
        raise SSHConfigError(f"SSH to {destination}: cannot resolve the host name ({error.strerror})") from None
    except paramiko.SSHException as error:
        if "not found in known_hosts" in str(error):
            raise SSHConfigError(
                f"SSH to {destination} refused: its host key is unknown (set the connection's host_key extra to "
                "the host's public key, or add it to the known_hosts of the account Airflow runs as)") from None
        raise BackendUnavailable(f"cannot reach {destination}: {error}") from None
    except (OSError, EOFError) as error:
        raise BackendUnavailable(f"cannot reach {destination}: {error}") from None


class RemoteShell:
    """One persistent SSH connection to the cluster, running commands in a remote bash one at a time.

    Thread-safe (commands are serialized). Counts its connections and commands, for benchmarks.

    Parameters
    ----------
    connect : Connect
        Opens the connection (see :data:`Connect`).
    destination : str
        Names the cluster in messages, e.g. ``"apollo (pz@login.apollo port 22)"``.
    connect_timeout_s : float
        Seconds to wait for the remote shell to answer once connected (its login profile runs first).
    command_timeout_s : float
        Seconds to wait for one command's answer before the connection is considered dead.
    """

    # The remote side: a login shell (so site profiles put sbatch on PATH) reading commands from the channel.
    _REMOTE_COMMAND = "exec bash --login -s"

    def __init__(self, connect: Connect, destination: str, connect_timeout_s: float = 20.0,
                 command_timeout_s: float = 300.0):
        self.connect = connect
        self.destination = destination
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s
        self.connections = 0
        """SSH connections opened so far."""
        self.commands = 0
        """Commands sent so far."""
        self.client: paramiko.SSHClient | None = None
        """The live connection's client, if connected."""
        self._channel: paramiko.Channel | None = None
        self._opened = ExitStack()
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
            SSH refused the connection (host key, key, login...).
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
        return self._channel is not None and not self._channel.closed and self._channel.get_transport().is_active()

    def close(self) -> None:
        """Log out and close the connection; a later command reconnects."""
        with self._lock:
            channel, self._channel = self._channel, None
            if channel is not None:
                try:
                    channel.sendall(b"exit\n")
                    channel.shutdown_write()
                except (OSError, EOFError, paramiko.SSHException):
                    pass
                channel.close()
            self.client = None
            self._opened.close()
            self._buffer.clear()

    def __enter__(self) -> RemoteShell:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- connection ---------------------------------------------------------------------------------------

    def _connect(self) -> None:
        self.close()
        started = time.monotonic()
        self.connections += 1
        try:
            self.client = self.connect(self._opened)
            with ssh_errors(self.destination):
                self._channel = self.client.get_transport().open_session(timeout=self.connect_timeout_s)
                self._channel.exec_command(self._REMOTE_COMMAND)
            self._send(SHELL_SETUP)
            self._exchange("true", None, self.connect_timeout_s)
        except ConnectionLost as lost:
            detail = self._channel_error()
            self.close()
            raise BackendUnavailable(f"cannot start a shell on {self.destination}: {detail or lost}") from None
        except BaseException:
            self.close()
            raise
        log.info("connected to %s in %.2f s", self.destination, time.monotonic() - started)

    def _channel_error(self) -> str:
        """What the remote side printed on its stderr and how it exited, if it did (why the shell ended)."""
        channel = self._channel
        if channel is None:
            return ""
        text = b""
        while channel.recv_stderr_ready():
            text += channel.recv_stderr(1 << 16)
        lines = text[-4000:].decode(errors="replace").strip().splitlines()
        detail = " / ".join(line.strip() for line in lines[-3:])
        if channel.exit_status_ready():
            detail = f"{detail}{'; ' if detail else ''}remote shell exited with {channel.recv_exit_status()}"
        return detail

    # --- one command --------------------------------------------------------------------------------------

    def _run_once(self, command: str, input: str | None, timeout_s: float | None) -> CommandResult:
        if not self.connected:
            self._connect()
        try:
            return self._exchange(command, input, timeout_s or self.command_timeout_s)
        except ConnectionLost as lost:
            detail = self._channel_error()
            self.close()
            raise ConnectionLost(f"SSH connection to {self.destination} lost"
                                 f"{': ' + detail if detail else ''} ({lost})") from None

    def _exchange(self, command: str, input: str | None, timeout_s: float) -> CommandResult:
        request, token = framed(command, input)
        self.commands += 1
        self._send(request)
        deadline = time.monotonic() + timeout_s
        while (header := answer_header(self._read_line(deadline), token)) is None:
            pass
        returncode, stdout_bytes, stderr_bytes = header
        stdout = self._read_exactly(stdout_bytes, deadline)
        stderr = self._read_exactly(stderr_bytes, deadline)
        return CommandResult(returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _send(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"cannot send to the remote shell: {error or type(error).__name__}") from None

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionLost("no answer within the command timeout")
        self._channel.settimeout(remaining)
        try:
            chunk = self._channel.recv(1 << 16)
        except TimeoutError:
            return
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"cannot read from the remote shell: {error or type(error).__name__}") from None
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


SHELL_SETUP = b"__pz_dir=$(mktemp -d) || exit 1; trap 'rm -rf \"$__pz_dir\"' EXIT\n"
"""What the remote shell runs first: a private folder for the stdout/stderr of the command in flight."""


def framed(command: str, input: str | None = None) -> tuple[bytes, str]:
    """(what to write to the remote shell to run ``command`` with ``input`` on its stdin, the answer's token): the
    answer is a line ``<token> <exit code> <stdout bytes> <stderr bytes>`` then those bytes."""
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
    return request.encode(), token


def answer_header(line: bytes, token: str) -> tuple[int, int, int] | None:
    """(exit code, stdout bytes, stderr bytes) if ``line`` is the header of the answer ``token``; None for any
    other line (a login banner, profile output: logged and skipped)."""
    if not line.startswith(token.encode() + b" "):
        if line.strip():
            log.debug("remote shell printed %r", line)
        return None
    _, returncode, stdout_bytes, stderr_bytes = line.decode().split()
    return int(returncode), int(stdout_bytes), int(stderr_bytes)


def quote_path(path: str | Path) -> str:
    """A path quoted for the remote shell."""
    return shlex.quote(str(path))
