"""Airflow DAG runs of PZ Server processes, reached from inside the api-server that serves the plugin.

The plugin runs in the api-server, next to Airflow's metadata database: a run is created with Airflow's own
``trigger_dag`` (as the REST API's trigger does, checked against the DAG's params), read back from ``DagRun``,
and stopped with ``set_dag_run_state_to_failed`` (as the REST API's "mark failed" does: running tasks are
killed, the others skipped). Airflow is imported on first use only, so importing the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any


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
