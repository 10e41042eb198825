"""Airflow cluster policy of the platform: which failed tasks are retried, and how many times in a run; the name
a task instance records as its host (the production profile's ``hostname_callable``); and the check, when a run
is triggered, that a param naming an Airflow connection (the ``cluster`` of pz_compute) names one.

Airflow fixes a task's retries when the DAG is parsed; only the scheduler, creating a run's task instances,
can give one run another number, and only a policy can give every task of every DAG one rule. Airflow imports
this module in every process by its name, ``airflow_local_settings``, from its plugins folder (which it puts
on ``sys.path``), in the embedded default and in the docker image alike. The numbers and the rule are in
:mod:`pzlib.retries`.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule
from jsonschema import FormatChecker

from pzlib.cluster import CONNECTION_FORMAT
from pzlib.retries import NOT_RETRIED, run_retries

FAIL_AT_ONCE = ExceptionRetryPolicy(rules=[RetryRule(
    exception=list(NOT_RETRIED), action=RetryAction.FAIL,
    reason="bad params or data: a retry would fail the same way",
)])  # fmt: skip
"""Fail a task at once on an error a retry cannot fix; any other error takes the task's retries."""


def task_policy(task: Any) -> None:
    """Give every task :data:`FAIL_AT_ONCE`, unless its DAG chose a retry policy of its own."""
    if task.retry_policy is None:
        task.retry_policy = FAIL_AT_ONCE


def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    """Give a task instance the retries its run's conf asks for, when the scheduler creates it.

    Only a task instance that has never run (``try_number`` 0) is changed: Airflow re-applies this hook to
    existing instances, whose ``max_tries`` counts the tries already made.
    """
    retries = run_retries(dag_run.conf) if dag_run is not None else None
    if retries is not None and task_instance.try_number == 0:
        task_instance.max_tries = retries


def task_hostname() -> str:
    """The name a task instance records as its host: the Celery worker's name when scripts/airflow/up.sh
    started the worker (``PZ_CELERY_HOSTNAME``, e.g. ``worker-1@host``), else the host's own name, so that
    the task instances of two workers on one machine say which worker ran them."""
    return os.environ.get("PZ_CELERY_HOSTNAME") or socket.getfqdn()


def connection_defined(conn_id: object) -> bool:
    """Whether ``conn_id`` names an Airflow connection (JSON-schema format :data:`pzlib.cluster.CONNECTION_FORMAT`).

    Airflow checks a run's params against their schema when the run is created, in the api-server for a trigger
    (a failed check is HTTP 400 naming the param and the value), with a FormatChecker knowing the formats
    registered here; the check reads the connections as the api-server does (environment, secrets backends, the
    metadata database)."""
    if not isinstance(conn_id, str):
        return True
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return False
    return True


FormatChecker.checkers[CONNECTION_FORMAT] = (connection_defined, ())
