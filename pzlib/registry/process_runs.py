"""Processes carried out by Airflow DAG runs: a PZ Server request becomes a checked DAG run conf, the run's
state becomes the process's, and the run's output becomes the process's product.

The PZ Server calls :meth:`ProcessRuns.request` (checks everything, records the process, triggers the DAG),
:meth:`ProcessRuns.follow` (brings a process up to date with its DAG run) and :meth:`ProcessRuns.stop`.
Airflow is reached through a :class:`DagRuns` object the server provides, so pzlib never imports Airflow. The
DAG's tasks call :func:`mark_running`, :func:`publish_output` and :func:`mark_failed` with the process id their
conf carries (the ``pzserver_process`` param).

A request is refused before anything is stored or started when an input is not Published or not visible, a
spec-z input lacks its ra/dec/z association, the release is unknown, or the pipeline's own config refuses it
(a release without an object catalog, a parameter out of range); the message names the product or the
parameter. The registry knows no pipeline's parameters: what LIneA's ``param`` fields mean is the pipeline
config's, handed in as a :class:`PipelineRequest` per pipeline (``pzlib.crossmatch.config.PZSERVER_REQUESTS``).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from pzlib.registry import checks
from pzlib.registry.errors import InvalidInput, NotFound
from pzlib.registry.pipelines import Pipeline, get_pipeline, start_process
from pzlib.registry.records import Process, Product, ProductFile, Release, User
from pzlib.registry.schema import SYSTEM_COLUMNS, FileRole, ProcessStatus, ProductStatus

if TYPE_CHECKING:  # registration and storage load pyarrow and boto3; DAG files import this module at parse time
    from pzlib.registry.registration import ProductFiles

log = logging.getLogger(__name__)

PROCESS_PARAM = "pzserver_process"
"""The DAG param carrying the id of the process a run carries out (null for runs started elsewhere)."""
PROCESS_PARAM_SCHEMA = {
    "type": ["integer", "null"], "title": "PZ Server process",
    "description": "Set by the PZ Server when it starts this run for a process: the output becomes the process's "
                   "product. Null for runs started from Airflow.",
}
"""JSON schema and words of that param in the DAGs' trigger form."""

_SYSTEM_COLUMN = {column.alias.lower(): column for column in SYSTEM_COLUMNS}

_PROCESS_OPTIONS = {"param", "output_format"}

_AIRFLOW_STATES = {"queued": ProcessStatus.QUEUED, "running": ProcessStatus.RUNNING}


class PipelineRequest(Protocol):
    """How a pipeline's config turns a PZ Server request into the checked params of its DAG run."""

    def __call__(self, param: dict[str, Any], *, inputs: list[dict[str, Any]], release: dict[str, Any] | None,
                 output_dir: str, output_format: str | None = None,
                 flag_translation_file: str | None = None) -> dict[str, Any]:
        """The DAG params of a request: LIneA's ``param`` fields (the pipeline's defaults filled in), the input
        catalogs (``path``, ``survey``: the product's name, ``columns``: its column roles, a ``survey`` role
        included: the pipeline decides what it means), the release (``name``,
        ``object_catalog``, ``object_column_map``), the output and a flag translation file sent with it; raise
        ``ValueError`` naming the field."""


class DagRuns(Protocol):
    """The few Airflow DAG-run operations a process needs (the PZ Server plugin implements them)."""

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], user: str) -> None:
        """Create the DAG run ``run_id`` with ``conf``; raise when Airflow refuses it."""

    def state(self, dag_id: str, run_id: str) -> str | None:
        """The run's Airflow state (``queued``, ``running``, ``success``, ``failed``), None when it is gone."""

    def stop(self, dag_id: str, run_id: str) -> None:
        """Fail the run: running tasks are killed, the others skipped."""


@dataclass(frozen=True)
class ProcessRuns:
    """Processes of the PZ Server run as Airflow DAG runs.

    Parameters
    ----------
    files : ProductFiles
        The registry and the product store.
    dag_runs : DagRuns
        Airflow.
    work_root : Path
        Folder of the runs' inputs and outputs (``<state_dir>/processes``), shared with the Airflow workers.
    requests : mapping of str to PipelineRequest
        How each pipeline (by name) checks its requests.
    """

    files: ProductFiles
    dag_runs: DagRuns
    work_root: Path
    requests: Mapping[str, PipelineRequest]

    def request(
        self,
        user: User,
        pipeline: int | str,
        *,
        display_name: str,
        used_config: dict[str, Any] | None,
        inputs: list[int | str],
        release: int | str | None,
        flags_file: tuple[str, Any] | None = None,
    ) -> Process:
        """Check a request, record its process and output product, and trigger the pipeline's DAG.

        Parameters
        ----------
        flags_file : (name, binary stream) or None
            A Combine Redshift Catalogs request's flag translation file, kept as an auxiliary file of the
            output product.

        Raises
        ------
        NotFound
            No such pipeline.
        InvalidInput
            Anything wrong with the request (nothing is stored then).
        """
        chosen = get_pipeline(pipeline)
        registry = self.files.registry
        config = used_config or {}
        if not isinstance(config, dict):
            raise InvalidInput(f"used_config must be a JSON object, got {type(config).__name__}")
        unknown = sorted(set(config) - _PROCESS_OPTIONS)
        if unknown:
            known = ", ".join(sorted(_PROCESS_OPTIONS))
            raise InvalidInput(f"used_config: unknown option {unknown[0]!r} (known: {known})")
        chosen_release = _release(registry, user, release) if release not in (None, "") else None
        with tempfile.TemporaryDirectory(prefix="pz-request-") as received:
            flags_path = None
            if flags_file is not None:
                flags_name, content = flags_file
                flags_path = Path(received) / checks.file_name(flags_name or "flags_translation.yaml")
                with open(flags_path, "wb") as writer:
                    shutil.copyfileobj(content, writer)
            self._conf(user, chosen, config, inputs, chosen_release, self.work_root / "checking", flags_path)
            process = start_process(registry, user, chosen.name, display_name=display_name, used_config=config,
                                    inputs=inputs, release=chosen_release.id if chosen_release else None)
            try:
                work_dir = self.work_root / str(process.id)
                if flags_path is not None:
                    with open(flags_path, "rb") as content:
                        stored = self.files.upload(user, process.output_product_id, name=flags_path.name,
                                                   content=content, role=FileRole.AUXILIARY)
                    flags_path = Path(self._local_copy(stored, work_dir / "inputs"))
                conf = self._conf(user, chosen, process.used_config, inputs, chosen_release, work_dir, flags_path,
                                  stage=True)
                run_id = f"pzserver_{process.id}_{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
                conf[PROCESS_PARAM] = process.id
                self.dag_runs.trigger(chosen.dag_id, run_id, conf, user.username)
            except Exception as error:
                _fail(registry, process, f"the run could not start: {error}")
                raise
        return registry.update_process(process.id, status=ProcessStatus.QUEUED, dag_id=chosen.dag_id, run_id=run_id)

    def follow(self, process: Process) -> Process:
        """``process`` brought up to date with its DAG run (a run that failed or vanished fails it)."""
        if process.status.is_final or not process.run_id:
            return process
        state = self.dag_runs.state(process.dag_id, process.run_id)
        registry = self.files.registry
        if state in _AIRFLOW_STATES:
            wanted = _AIRFLOW_STATES[state]
            if process.status in (ProcessStatus.PENDING, ProcessStatus.QUEUED) and wanted is not process.status:
                return registry.update_process(process.id, status=wanted)
            return process
        if state == "success":
            # The DAG's last task publishes the output and marks the process Successful before the run ends.
            return _fail(registry, process, f"DAG run {process.run_id} ended without registering its output")
        if state == "failed":
            return _fail(registry, process, f"DAG run {process.run_id} of {process.dag_id} failed; "
                                            "see its task logs in Airflow")
        return _fail(registry, process, f"DAG run {process.run_id} of {process.dag_id} no longer exists")

    def stop(self, user: User, process_id: int) -> Process:
        """Stop a process: its DAG run is failed (running tasks killed) and the process ends ``Stopped``.

        Raises
        ------
        NotFound
            No such process, or not ``user``'s.
        InvalidInput
            The process already ended.
        """
        registry = self.files.registry
        current = self.follow(registry.get_process(user, process_id))
        stopping = registry.stop_process(user, current.id)
        if current.run_id:
            self.dag_runs.stop(current.dag_id, current.run_id)
        if not stopping.status.is_final:
            stopping = registry.update_process(current.id, status=ProcessStatus.STOPPED)
        _set_output_status(registry, stopping, ProductStatus.FAILED)
        return stopping

    def _conf(self, user: User, chosen: Pipeline, config: dict, inputs: list[int | str], release: Release | None,
              work_dir: Path, flags_path: Path | None, stage: bool = False) -> dict[str, Any]:
        """The DAG conf of a request, made and checked by the pipeline's config; inputs copied locally if ``stage``."""
        if not inputs:
            raise InvalidInput(f"pipeline {chosen.name} needs at least one input product")
        tables = [self._input(user, chosen, reference) for reference in inputs]
        paths = [self._local_copy(stored, work_dir / "inputs") if stage else self._planned_path(stored, work_dir)
                 for _, stored, _ in tables]
        param = config.get("param") or {}
        if not isinstance(param, dict):
            raise InvalidInput(f"used_config['param'] must be a JSON object, got {type(param).__name__}")
        try:
            return self.requests[chosen.name](
                chosen.with_defaults(param),
                inputs=[{"path": path, "survey": product.display_name, "columns": roles}
                        for (product, _, roles), path in zip(tables, paths, strict=True)],
                release=None if release is None else {"name": release.name, "object_catalog": release.object_catalog,
                                                      "object_column_map": release.object_column_map},
                output_dir=str(work_dir / "output"),
                output_format=config.get("output_format"),
                flag_translation_file=str(flags_path) if flags_path else None,
            )
        except ValueError as error:
            # The flag file's path is ours (a temporary or work folder): the user knows the file by its name.
            message = str(error).replace(str(flags_path), flags_path.name) if flags_path else str(error)
            raise InvalidInput(f"pipeline {chosen.name}: {_named_input(message, tables)}") from None

    def _input(self, user: User, chosen: Pipeline, reference: int | str) -> tuple[Product, ProductFile, dict]:
        """An input product, its main file and its column roles, checked for the pipeline."""
        registry = self.files.registry
        try:
            product = registry.get_product(user, reference)
        except NotFound:
            raise InvalidInput(f"input product {reference!r} does not exist or is not visible to you") from None
        chosen.check_accepts(product)
        if product.status is not ProductStatus.PUBLISHED:
            raise InvalidInput(f"input product {product.internal_name} is {product.status.label}; "
                               "only Published products can be processed")
        main = self.files.main_file(user, product.id)
        if main is None:
            raise InvalidInput(f"input product {product.internal_name} has no main file")
        roles = {_SYSTEM_COLUMN[content.alias.lower()].alias.lower(): content.column_name
                 for content in registry.list_contents(user, product.id)
                 if content.alias and content.alias.lower() in _SYSTEM_COLUMN}
        missing = [role for role in ("ra", "dec", "z") if role not in roles]
        if missing:
            raise InvalidInput(f"input product {product.internal_name} has no column associated with "
                               f"{', '.join(missing)}; associate its columns first")
        return product, main.file, roles

    def _planned_path(self, stored: ProductFile, work_dir: Path) -> str:
        if self._in_place():
            return str(self.files.storage.root / stored.storage_key)
        return str(work_dir / "inputs" / f"{stored.id}_{stored.name}")

    def _local_copy(self, stored: ProductFile, folder: Path) -> str:
        """A path the Airflow workers can read: the file in place on local storage, else a copy in ``folder``."""
        if self._in_place():
            return str(self.files.storage.root / stored.storage_key)
        destination = folder / f"{stored.id}_{stored.name}"
        folder.mkdir(parents=True, exist_ok=True)
        if stored.is_directory:
            self.files.storage.get_directory(stored.storage_key, destination)
        else:
            self.files.storage.download(stored.storage_key, destination)
        return str(destination)


    def _in_place(self) -> bool:
        """Whether the store is a local folder the Airflow workers read files from in place."""
        from pzlib.storage import LocalStorage

        return isinstance(self.files.storage, LocalStorage)


def _release(registry, user: User, reference: int | str) -> Release:
    try:
        return registry.get_release(user, reference)
    except NotFound:
        raise InvalidInput(f"release {reference!r} does not exist or is not visible to you") from None


def _named_input(message: str, tables: list[tuple[Product, ProductFile, dict]]) -> str:
    """A config error about ``inputs[i]`` told with the product's name."""
    for index, (product, _, _) in enumerate(tables):
        message = message.replace(f"inputs[{index}]", f"input product {product.internal_name}")
    return message


# The DAG's side


def platform_files() -> ProductFiles:
    """The registry and store of the platform settings, as the api-server's PZ Server uses them."""
    from pzlib.config import load_settings
    from pzlib.registry.registration import ProductFiles

    return ProductFiles.from_settings(load_settings())


def request_params(params: Any) -> dict[str, Any]:
    """A DAG run's params without :data:`PROCESS_PARAM`: the request its config class checks."""
    return {name: value for name, value in dict(params).items() if name != PROCESS_PARAM}


def run_started(params: dict[str, Any]) -> None:
    """A DAG run with these params started its work (marks its process Running, if it carries one out)."""
    if params.get(PROCESS_PARAM) is not None:
        mark_running(platform_files(), params[PROCESS_PARAM])


def run_finished(params: dict[str, Any], report: dict[str, Any]) -> dict[str, Any] | None:
    """A DAG run with these params wrote its output and ``report``: publish it as its process's product.

    Returns the process as JSON-able values for the task's XCom, or None when the run carries out no process.
    """
    if params.get(PROCESS_PARAM) is None:
        return None
    process = publish_output(platform_files(), params[PROCESS_PARAM], report)
    return {"process": process.id, "status": process.status.value, "product": process.output_product_id}


def task_failed(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: the failed task's error ends the process its run carries out (the
    platform's folders cut from the paths it names, which leaves their file names)."""
    process_id = context["params"].get(PROCESS_PARAM)
    if process_id is not None:
        task = context.get("task_instance") or context.get("ti")
        where = f"task {task.task_id} failed: " if task is not None else ""
        files = platform_files()
        mark_failed(files, process_id, without_server_paths(f"{where}{context.get('exception')}",
                                                            server_folders(files)))


def server_folders(files: ProductFiles) -> list[Path]:
    """The platform's own folders a message may name: its state folder and a local store's root."""
    from pzlib.config import load_settings
    from pzlib.storage import LocalStorage

    folders = [load_settings().state_dir]
    if isinstance(files.storage, LocalStorage):
        folders.append(files.storage.root)
    return folders


def without_server_paths(text: str, folders: Iterable[str | Path]) -> str:
    """``text`` with every path below one of ``folders`` cut to its file name: users know their files by name,
    and the server's layout is not theirs to see."""
    for folder in sorted({str(Path(folder).resolve()) for folder in folders} | {str(folder) for folder in folders},
                         key=len, reverse=True):
        text = re.sub(re.escape(folder.rstrip("/")) + r"/(?:[^\s,:;'\"]*/)?([^/\s,:;'\"]+)", r"\1", text)
    return text


def mark_running(files: ProductFiles, process_id: int | None) -> None:
    """The run started: a Pending or Queued process becomes Running."""
    if process_id is None:
        return
    current = files.registry.find_process(process_id)
    if current.status in (ProcessStatus.PENDING, ProcessStatus.QUEUED):
        files.registry.update_process(process_id, status=ProcessStatus.RUNNING)


def mark_failed(files: ProductFiles, process_id: int | None, error: str) -> None:
    """The run failed: the process is Failed with ``error`` (Stopped when it was being stopped)."""
    if process_id is None:
        return
    current = files.registry.find_process(process_id)
    if not current.status.is_final:
        _fail(files.registry, current, error)


def publish_output(files: ProductFiles, process_id: int | None, report: dict[str, Any]) -> Process | None:
    """Register a finished run's output as the process's product: main file, report, column association,
    provenance; publish it and mark the process Successful. A rerun after a partial publish completes it."""
    if process_id is None:
        return None
    registry = files.registry
    process = registry.find_process(process_id)
    if process.status is ProcessStatus.SUCCESSFUL:
        return process
    if process.status.is_final or process.status is ProcessStatus.STOPPING:
        raise InvalidInput(f"process {process.id} is {process.status.value}; its output is not published")
    owner = registry.get_user(process.owner_id)
    product_id = process.output_product_id
    present = {stored.name for stored in registry.list_files(owner, product_id)}
    output = Path(report["output"]["path"])
    if not registry.list_files(owner, product_id, FileRole.MAIN):
        with _uploadable(output) as (name, content):
            files.upload(owner, product_id, name=name, content=content, role=FileRole.MAIN)
    report_path = Path(report["report_path"])
    if report_path.name not in present:
        with open(report_path, "rb") as content:
            files.upload(owner, product_id, name=report_path.name, content=content, role=FileRole.AUXILIARY,
                         mime_type="application/json")
    contents = files.register(owner, product_id)
    by_column = {content.column_name: content for content in contents}
    for role, column in report["columns_association"].items():
        if column in by_column and role in _SYSTEM_COLUMN:
            system = _SYSTEM_COLUMN[role]
            registry.update_content(owner, by_column[column].id, ucd=system.ucd, alias=system.alias)
    summary = {name: report[name] for name in ("matched_fraction", "separation_arcsec", "n_specz",
                                               "n_specz_matched", "n_groups", "n_duplicate_rows", "n_removed")
               if name in report}
    registry.update_product(owner, product_id, status=ProductStatus.PUBLISHED, provenance={
        "process": process.id, "pipeline": process.pipeline, "dag_id": process.dag_id, "run_id": process.run_id,
        "inputs": list(process.inputs), "fingerprint": report.get("fingerprint"), **summary})
    return registry.update_process(process.id, status=ProcessStatus.SUCCESSFUL)


@contextmanager
def _uploadable(path: Path) -> Iterator[tuple[str, BinaryIO]]:
    """(name, binary stream) of an output to upload: the file, or a HATS folder zipped (how uploads carry it)."""
    if not path.is_dir():
        with open(path, "rb") as stream:
            yield path.name, stream
        return
    with tempfile.TemporaryDirectory(prefix="pz-publish-") as work:
        archive = Path(shutil.make_archive(str(Path(work) / path.name), "zip", path.parent, path.name))
        with open(archive, "rb") as stream:
            yield archive.name, stream


def _fail(registry, process: Process, error: str) -> Process:
    """End ``process`` (Stopped when it was stopping, else Failed with ``error``) and fail its product."""
    status = ProcessStatus.STOPPED if process.status is ProcessStatus.STOPPING else ProcessStatus.FAILED
    log.warning("process %s %s: %s", process.id, status.value, error)
    ended = registry.update_process(process.id, status=status, error=error[:4000])
    _set_output_status(registry, ended, ProductStatus.FAILED)
    return ended


def _set_output_status(registry, process: Process, status: ProductStatus) -> None:
    if process.output_product_id is None:
        return
    try:
        owner = registry.get_user(process.owner_id)
        registry.update_product(owner, process.output_product_id, status=status)
    except NotFound:  # the owner deleted the product meanwhile
        pass


__all__ = [
    "PROCESS_PARAM",
    "PROCESS_PARAM_SCHEMA",
    "DagRuns",
    "PipelineRequest",
    "ProcessRuns",
    "mark_failed",
    "mark_running",
    "platform_files",
    "publish_output",
    "request_params",
    "run_finished",
    "run_started",
    "server_folders",
    "task_failed",
    "without_server_paths",
]
