"""Airflow cluster policy of the platform: a DAG run's ``retries`` param sets its tasks' retries.

Airflow fixes a task's retries when the DAG is parsed; only the scheduler, creating a run's task instances,
can give one run another number. Airflow imports this module in every process by its name,
``airflow_local_settings``, from its plugins folder (which it puts on ``sys.path``), in the embedded default
and in the docker image alike. The policy itself lives in :mod:`pzlib.retries`.
"""

from __future__ import annotations

from typing import Any

from pzlib.retries import run_retries


def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    """Give a task instance the retries its run's conf asks for, when the scheduler creates it.

    Only a task instance that has never run (``try_number`` 0) is changed: Airflow re-applies this hook to
    existing instances, whose ``max_tries`` counts the tries already made.
    """
    retries = run_retries(dag_run.conf) if dag_run is not None else None
    if retries is not None and task_instance.try_number == 0:
        task_instance.max_tries = retries
