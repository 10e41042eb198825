"""Airflow DAG runs of PZ Server processes, reached from inside the api-server that serves the plugin.

The plugin runs in the api-server, next to Airflow's metadata database: a run is created with Airflow's own
``trigger_dag`` (as the REST API's trigger does, checked against the DAG's params), read back from ``DagRun``,
and stopped with ``set_dag_run_state_to_failed`` (as the REST API's "mark failed" does: running tasks are
killed, the others skipped). The process page also reads the run's task instances and a failed task's log
(through Airflow's ``TaskLogReader``, as the REST API's log route does), cut to what a user needs by
:func:`log_excerpt`. Airflow is imported on first use only, so importing the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOG_EXCERPT_LINES = 30
"""Log lines a failed task's excerpt keeps, ending with its error."""

_PIPELINE_LOGGERS = ("pzlib",)
"""Loggers whose messages tell a user what the task did; Airflow's and other libraries' are left out."""


@dataclass(frozen=True)
class TaskState:
    """One task instance of a DAG run, as the process page shows it."""

    task_id: str
    map_index: int
    """-1 for a task that is not mapped."""
    state: str | None
    """Airflow's state (``success``, ``running``, ``failed``, ...); None when not scheduled yet."""
    try_number: int
    started_at: datetime | None
    ended_at: datetime | None
    label: str | None = None
    """A mapped task's rendered label (pz_compute's estimate tasks: ``<estimator> <partition>``)."""


@dataclass(frozen=True)
class RunSummary:
    """One DAG run, as the PZ Compute page lists it."""

    run_id: str
    state: str
    conf: dict[str, Any]
    """The trigger's conf: the params it set (the DAG's defaults fill in the others)."""
    started_at: datetime | None
    ended_at: datetime | None


def log_excerpt(messages: Iterable[dict[str, Any]], lines: int = LOG_EXCERPT_LINES) -> list[str]:
    """The part of a failed task's structured log a user needs: the pipeline's own messages (``pzlib`` loggers)
    up to the first error, and the error with its exception's type and message (no frames). Airflow's grouped
    sections (pre/post execute, log sources), Python warnings and other libraries' chatter are left out."""
    kept: list[str] = []
    in_group = False
    for message in messages:
        event = str(message.get("event") or "")
        if event.startswith("::group::") or event.startswith("::endgroup::"):
            in_group = event.startswith("::group::")
            continue
        level = str(message.get("level") or "info").lower()
        is_error = level in ("error", "critical")
        if in_group or "category" in message or not (is_error or str(message.get("logger") or "").startswith(
                _PIPELINE_LOGGERS)):
            continue
        for detail in message.get("error_detail") or ():
            event += f"\n{detail.get('exc_type', 'Error')}: {detail.get('exc_value', '')}"
        kept.append(f"{level.upper()} {event}")
        if is_error:
            break
    return kept[-lines:]


class AirflowDagRuns:
    """:class:`pzlib.registry.process_runs.DagRuns` over this Airflow's metadata database."""

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], user: str) -> None:
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagNotFound, ParamValidationError
        from airflow.utils.types import DagRunTriggeredByType

        from pzlib.registry import InvalidInput

        try:
            trigger_dag(dag_id, triggered_by=DagRunTriggeredByType.REST_API, run_id=run_id, conf=conf,
                        triggering_user_name=user, replace_microseconds=False)
        except DagNotFound as error:
            raise InvalidInput(f"the DAG {dag_id} is not in Airflow yet ({error}); try again shortly") from None
        except ParamValidationError as error:
            raise InvalidInput(f"the DAG {dag_id} refused the run's params: {error}") from None

    def state(self, dag_id: str, run_id: str) -> str | None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        return None if state is None else str(getattr(state, "value", state))

    def stop(self, dag_id: str, run_id: str) -> None:
        from airflow.api.common.mark_tasks import set_dag_run_state_to_failed
        from airflow.models.dagbag import DBDagBag
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            if run is None or str(getattr(run.state, "value", run.state)) in ("success", "failed"):
                return
            dag = DBDagBag().get_dag_for_run(run, session=session)
            set_dag_run_state_to_failed(dag=dag, run_id=run_id, commit=True, session=session)

    def runs(self, dag_id: str, limit: int) -> list[RunSummary]:
        """The DAG's ``limit`` latest runs, newest first."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)
                                    .order_by(DagRun.id.desc()).limit(limit)).all()
            return [RunSummary(run.run_id, str(getattr(run.state, "value", run.state)), dict(run.conf or {}),
                               run.start_date, run.end_date) for run in found]

    def tasks(self, dag_id: str, run_id: str) -> list[TaskState]:
        """The run's task instances, in the order Airflow started them."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                               TaskInstance.run_id == run_id)).all()
            states = [TaskState(task.task_id, task.map_index, None if task.state is None else
                                str(getattr(task.state, "value", task.state)), task.try_number, task.start_date,
                                task.end_date, task.rendered_map_index) for task in found]
        return sorted(states, key=lambda task: (task.started_at is None, task.started_at or datetime.max,
                                                task.task_id, task.map_index))

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> list[dict]:
        """The structured log of one try of a task, as Airflow's log route reads it."""
        from airflow.models.dagbag import DBDagBag
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.utils.log.log_reader import TaskLogReader
        from airflow.utils.session import create_session
        from sqlalchemy import select

        reader = TaskLogReader()
        with create_session() as session:
            task = None
            for model in (TaskInstance, TaskInstanceHistory):
                task = session.scalar(select(model).where(
                    model.dag_id == dag_id, model.run_id == run_id, model.task_id == task_id,
                    model.map_index == map_index, model.try_number == try_number))
                if task is not None:
                    break
            if task is None or not reader.supports_read:
                return []
            dag = DBDagBag().get_dag_for_run(task.dag_run, session=session)
            if dag is not None and task_id in dag.task_ids:
                task.task = dag.get_task(task_id)
            stream, _ = reader.read_log_chunks(task, try_number, {"download_logs": True})
            return [message.model_dump(mode="json") for message in stream]
