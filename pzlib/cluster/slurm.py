"""The Slurm backend: job arrays submitted with sbatch over SSH, followed with sacct and squeue.

One :class:`~pzlib.cluster.ssh.RemoteShell` (one SSH connection) carries every command; a poll of any number of
arrays is one round trip running ``sacct`` and ``squeue`` once each. The batch script comes from
``include/sbatch/job_array.sbatch``.

How states are read, and why:

- ``sacct`` (slurmdbd's accounting) is the record of truth, including tasks that ended long ago; it is bounded
  by the submission time (``-S``), and records submitted before the array are dropped, so a recycled job id
  cannot pass for ours.
- slurmdbd learns of a job a moment after slurmctld: a task sacct does not show yet is taken from ``squeue -t
  all`` (the controller, which keeps ended jobs for MinJobAge); a task neither shows is UNKNOWN — never assumed
  finished.
- Pending tasks appear in sacct folded into one record (``123_[4-9%2]``) and, right after submission, as a
  bare ``123``; both are expanded to the tasks they stand for.
"""

from __future__ import annotations

import logging
import re
import shlex
import string
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from pzlib.cluster.backend import (
    ArrayHandle,
    ArrayRequest,
    BackendError,
    JobBackend,
    SubmissionRejected,
    TaskLogs,
    TaskState,
    log_paths,
)
from pzlib.cluster.local import thread_environment
from pzlib.cluster.resources import check_resources
from pzlib.cluster.ssh import ConnectionLost, RemoteShell, quote_path
from pzlib.resources import include_path, source_checkout

log = logging.getLogger(__name__)

TEMPLATE = include_path("sbatch", "job_array.sbatch")
"""The batch script template of every job array."""

CLUSTER_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
# A record submitted this long before our own submission (clock skew between login node and controller
# aside) belongs to an earlier job that had the same id.
_SUBMIT_SKEW = timedelta(minutes=5)
_SAFE_PATH = re.compile(r"^/[^\s'\"\\$`]*$")
_TASK_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")
_SECTION = "__pz_section__"
# squeue's exit_code is the raw wait status: exit code << 8 | signal.
_SQUEUE_FIELDS = "JobArrayID:|,State:|,Reason:|,exit_code:|"


class SlurmBackend(JobBackend):
    """Job arrays on a Slurm cluster reached over SSH.

    Parameters
    ----------
    shell : RemoteShell
        The connection to the login node (:func:`pzlib.cluster.airflow.backend_from_connection` makes it from an
        Airflow SSH connection).
    python : str, optional
        Python interpreter on the cluster's compute nodes (default: this process's, for a cluster that shares
        this machine's filesystem).
    pythonpath : str, optional
        Prepended to the tasks' PYTHONPATH so that ``pzlib`` imports (default: the checkout this pzlib runs from,
        nothing for an installed pzlib); "" adds nothing.
    environment : dict, optional
        Extra environment variables of the tasks.
    resources : dict, optional
        The cluster's own defaults of job array resources (partition, account, per estimator...), in the shape
        of a run's ``resources`` param (:func:`pzlib.cluster.resources.resources_for`), which overrides them.

    Examples
    --------
    >>> with backend_from_connection("slurm", "pz_slurm") as slurm:
    ...     handle = slurm.submit_array(request)  # doctest: +SKIP
    ...     slurm.states([handle])  # doctest: +SKIP
    """

    kind = "slurm"

    def __init__(self, shell: RemoteShell, python: str | None = None, pythonpath: str | None = None,
                 environment: dict[str, str] | None = None, resources: dict | None = None):
        check_resources(resources or {})
        self.shell = shell
        self.python = python or sys.executable
        self.pythonpath = str(source_checkout() or "") if pythonpath is None else pythonpath
        self.environment = dict(environment or {})
        self.resources = dict(resources or {})
        self.slurm_commands = 0
        """Slurm commands run so far (sbatch, sacct, squeue, scancel), for benchmarks."""

    # --- submission ---------------------------------------------------------------------------------------

    def render_script(self, request: ArrayRequest) -> str:
        """The batch script of ``request``, from the template."""
        for name in ("workdir", "log_dir"):
            if not _SAFE_PATH.match(getattr(request, name)):
                raise BackendError(f"{name} {getattr(request, name)!r}: the Slurm backend needs an absolute path "
                                   "without spaces or quotes (it goes into #SBATCH lines)")
        resources = request.resources
        options = [f"#SBATCH --{name}={value}" for name, value in
                   (("partition", resources.partition), ("account", resources.account)) if value]
        exports = [f"export {name}={shlex.quote(value)}"
                   for name, value in {**thread_environment(resources.cpus), **self.environment}.items()]
        if self.pythonpath:
            exports.append(f'export PYTHONPATH={shlex.quote(self.pythonpath)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
        return string.Template(TEMPLATE.read_text()).substitute(
            job_name=request.name,
            last_task=request.task_count - 1,
            max_concurrent=resources.max_concurrent,
            workdir=request.workdir,
            log_dir=request.log_dir,
            cpus=resources.cpus,
            mem=resources.mem,
            time_limit=resources.time_limit,
            scheduler_options="\n".join(options),
            environment="\n".join(exports),
            command=shlex.join([self.python, *request.python_args]),
        )

    def submit_array(self, request: ArrayRequest) -> ArrayHandle:
        script = self.render_script(request)
        command = (f"mkdir -p {quote_path(request.log_dir)} && date +{CLUSTER_TIME_FORMAT} && "
                   "sbatch --parsable")
        asked_at = time.time()
        try:
            result = self._run(command, slurm_commands=1, input=script, idempotent=False)
        except ConnectionLost as lost:
            # The array may have been submitted before the connection dropped: look for it before resubmitting.
            log.warning("%s while submitting %s; looking for it before submitting again", lost, request.name)
            found = self.find_array(request, asked_at)
            if found is not None:
                return found
            result = self._run(command, slurm_commands=1, input=script, idempotent=False)
        if result.returncode != 0:
            errors = [line.removeprefix("sbatch: error: ").strip() for line in result.stderr.splitlines()
                      if line.strip()]
            what = "sbatch rejected" if "sbatch:" in result.stderr else "could not submit"
            raise SubmissionRejected(f"{what} job array {request.name!r} on {self.shell.destination}: "
                                     f"{'; '.join(errors) or f'exit code {result.returncode}'}")
        submitted_at, parsable = result.stdout.split()[:2]
        handle = ArrayHandle(backend=self.kind, job_id=parsable.split(";")[0], name=request.name,
                             task_count=request.task_count, submitted_at=submitted_at, workdir=request.workdir,
                             log_dir=request.log_dir)
        log.info("submitted job array %s (%s, %d task(s), at most %d at once)", handle.job_id, request.name,
                 request.task_count, request.resources.max_concurrent)
        return handle

    def find_array(self, request: ArrayRequest, submitted_after_epoch: float) -> ArrayHandle | None:
        since = int(submitted_after_epoch - _SUBMIT_SKEW.total_seconds())
        name = shlex.quote(request.name)
        result = self._run(
            f"since=$(date -d @{since} +{CLUSTER_TIME_FORMAT}) && echo \"$since\" && "
            f"sacct -X -n -P -S \"$since\" --name={name} -o JobID; echo {_SECTION}; "
            f"squeue -h -t all --name={name} -o %F",
            slurm_commands=2,
        )
        since_text, *lines = result.stdout.split()
        job_ids = {line.split("_")[0] for line in lines if line != _SECTION}
        if not job_ids:
            return None
        if len(job_ids) > 1:
            raise BackendError(f"several job arrays are named {request.name!r}: {', '.join(sorted(job_ids))}")
        return ArrayHandle(backend=self.kind, job_id=job_ids.pop(), name=request.name,
                           task_count=request.task_count, submitted_at=since_text, workdir=request.workdir,
                           log_dir=request.log_dir)

    # --- states -------------------------------------------------------------------------------------------

    def states(self, handles: Sequence[ArrayHandle]) -> dict[str, TaskState]:
        if not handles:
            return {}
        result = self._run(self.states_command(handles), slurm_commands=2)
        if result.stderr.strip():
            log.warning("sacct/squeue said: %s", result.stderr.strip())
        accounted, _, queued = result.stdout.partition(f"{_SECTION}\n")
        return merge_states(handles, accounted, queued)

    @staticmethod
    def states_command(handles: Sequence[ArrayHandle]) -> str:
        """The one remote command of a poll of ``handles``: sacct, then squeue."""
        job_ids = ",".join(handle.job_id for handle in handles)
        since = min(handle.submitted_at for handle in handles)
        return (f"sacct -X -n -P -S {since} -j {job_ids} -o JobID,State,ExitCode,Reason,Submit; "
                f"echo {_SECTION}; squeue -h -r -t all -j {job_ids} -O '{_SQUEUE_FIELDS}' 2>/dev/null; true")

    # --- cancel, logs -------------------------------------------------------------------------------------

    def cancel(self, handles: Sequence[ArrayHandle]) -> None:
        if not handles:
            return
        result = self._run(f"scancel {' '.join(handle.job_id for handle in handles)}", slurm_commands=1)
        if result.returncode != 0:
            log.warning("scancel: %s", result.stderr.strip())

    def fetch_logs(self, handle: ArrayHandle, task_indices: Sequence[int], max_bytes: int = 64_000
                   ) -> dict[int, TaskLogs]:
        paths = {index: log_paths(handle, index) for index in task_indices}
        files = " ".join(quote_path(path) for pair in paths.values() for path in pair)
        result = self._run(f"for f in {files}; do printf '%s %s\\n' {_SECTION} \"$f\"; "
                           f"tail -c {int(max_bytes)} \"$f\" 2>/dev/null; echo; done")
        contents = {}
        for chunk in result.stdout.split(f"{_SECTION} ")[1:]:
            path, _, content = chunk.partition("\n")
            contents[path] = content[:-1] if content.endswith("\n") else content
        return {index: TaskLogs(contents.get(str(stdout), ""), contents.get(str(stderr), ""), str(stdout),
                                str(stderr))
                for index, (stdout, stderr) in paths.items()}

    def close(self) -> None:
        self.shell.close()

    @property
    def stats(self) -> dict[str, int]:
        """SSH connections opened, commands sent over them, Slurm commands run."""
        return {"ssh_connections": self.shell.connections, "ssh_commands": self.shell.commands,
                "slurm_commands": self.slurm_commands}

    def _run(self, command: str, slurm_commands: int = 0, **options):
        self.slurm_commands += slurm_commands
        return self.shell.run(command, **options)


def _exit_status(text: str) -> tuple[int | None, int | None]:
    """sacct's ExitCode 'code:signal' → (exit code, signal or None)."""
    code, _, signal_number = text.partition(":")
    try:
        return int(code), (int(signal_number) or None) if signal_number else None
    except ValueError:
        return None, None


def _expand_indices(text: str) -> list[int]:
    """'1,3-5' → [1, 3, 4, 5]."""
    indices = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        indices.extend(range(int(first), int(last or first) + 1))
    return indices


def merge_states(handles: Sequence[ArrayHandle], accounted: str, queued: str) -> dict[str, TaskState]:
    """Task states from sacct's lines (``JobID|State|ExitCode|Reason|Submit``) and squeue's
    (``JobArrayID|State|Reason|wait status|``).

    Per task: sacct's own record, else sacct's folded record of pending tasks, else squeue's, else sacct's bare
    array record if it says the array has not started; otherwise the task is left out (unknown).
    """
    by_job = {handle.job_id: handle for handle in handles}
    exact: dict[str, TaskState] = {}
    folded: dict[str, TaskState] = {}
    bare: dict[str, TaskState] = {}
    for line in accounted.splitlines():
        fields = line.split("|")
        if len(fields) != 5:
            continue
        job_field, state_text, exit_text, reason, submit = fields
        job_id = job_field.split("_")[0]
        handle = by_job.get(job_id)
        if handle is None or _submitted_before(submit, handle):
            continue
        exit_code, signal_number = _exit_status(exit_text)
        state = TaskState(state_text.split()[0], exit_code, signal_number, reason)
        if (folded_match := _TASK_RANGE.match(job_field)) is not None:
            for index in _expand_indices(folded_match.group(2)):
                folded[handle.task_id(index)] = state
        elif "_" in job_field:
            exact[job_field] = state
        elif not state.terminal:
            bare[job_id] = state
    queued_states = {}
    for line in queued.splitlines():
        fields = line.split("|")
        if len(fields) >= 4 and "_" in fields[0] and fields[3].isdigit():
            status = int(fields[3])
            queued_states[fields[0]] = TaskState(fields[1], exit_code=status >> 8, signal=(status & 0x7F) or None,
                                                 reason=fields[2])
    states = {}
    for handle in handles:
        for task_id in handle.task_ids():
            state = exact.get(task_id) or folded.get(task_id) or queued_states.get(task_id) or bare.get(handle.job_id)
            if state is not None:
                states[task_id] = state
    return states


def _submitted_before(submit: str, handle: ArrayHandle) -> bool:
    try:
        submitted = datetime.strptime(submit, CLUSTER_TIME_FORMAT)
        ours = datetime.strptime(handle.submitted_at, CLUSTER_TIME_FORMAT)
    except ValueError:
        return False
    return submitted < ours - _SUBMIT_SKEW

