"""How Airflow retries a failed task of the platform's DAGs: one policy for every task of every DAG.

A release run must outlive a restarted api-server, a killed scheduler or a task process that dies mid-write
without anyone clearing tasks by hand, so every task is retried, later and later: after ``RETRY_DELAY``, then
twice that, and so on up to ``MAX_RETRY_DELAY`` (Airflow adds up to as much again of jitter). A retry is always
safe because every task is idempotent: outputs are written under a temporary name and renamed, a rerun keeps
what verifies, and publishing replaces the run's own product.

An error a retry cannot fix (:data:`NOT_RETRIED`: bad params or data) fails its task at once, so that a bad
request is reported in seconds, not after every retry.

The DAGs take their ``default_args`` from :func:`task_retry_args`, and declare the ``retries`` param
(:data:`RETRIES_PARAM`, schema :data:`RETRIES_PARAM_SCHEMA`) through which a run asks for another number of
retries. The Airflow cluster policy in ``plugins/airflow_local_settings.py`` gives that number to the run's
task instances (:func:`run_retries`) when the scheduler creates them, and gives every task the rule that
:data:`NOT_RETRIED` fail at once. The param is not part of what a run computes, so the DAGs leave it out
(:func:`without_retries`) of the params their pipelines check.

The module imports only the standard library: DAG files import it at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

TASK_RETRIES = 3
"""Retries of a failed task after its first try, unless the run's ``retries`` param says otherwise."""
RETRY_DELAY = timedelta(seconds=30)
"""Wait before the first retry: long enough for a restarted api-server or scheduler to be back."""
RETRY_BACKOFF = 2.0
"""Each further retry waits this many times longer than the one before."""
MAX_RETRY_DELAY = timedelta(minutes=10)
"""The longest wait between two tries."""
MAX_TASK_RETRIES = 10
"""The most retries a run may ask for: past that, a task fails for a reason a retry will not fix."""
NOT_RETRIED: tuple[type[Exception], ...] = (ValueError,)
"""Errors that fail a task at once: bad params or data, which a retry would meet again. pzlib's own errors about
them are ValueErrors (CatalogError, InvalidInput, ValidationError, the run and request configs' checks), and so
are pyarrow's about an unreadable file (ArrowInvalid)."""

RETRIES_PARAM = "retries"
"""The DAG param through which a run sets its tasks' retries."""
RETRIES_PARAM_SCHEMA = {
    "type": "integer", "minimum": 0, "maximum": MAX_TASK_RETRIES, "title": "Task retries",
    "description": (f"How many times a failed task of this run is retried (0 to {MAX_TASK_RETRIES}); the first "
                    f"retry waits {RETRY_DELAY.total_seconds():.0f} s, each next one {RETRY_BACKOFF:g}× longer, "
                    f"at most {MAX_RETRY_DELAY.total_seconds() / 60:.0f} min."),
}  # fmt: skip
"""JSON schema and words of that param in the DAGs' trigger form."""


def task_retry_args() -> dict[str, Any]:
    """The retry arguments of every task (a DAG's ``default_args``)."""
    return {"retries": TASK_RETRIES, "retry_delay": RETRY_DELAY, "retry_exponential_backoff": RETRY_BACKOFF,
            "max_retry_delay": MAX_RETRY_DELAY}


def run_retries(conf: Mapping[str, Any] | None) -> int | None:
    """The retries a DAG run's conf asks for; None when it asks for none (the tasks keep :data:`TASK_RETRIES`).

    Airflow checks the conf against :data:`RETRIES_PARAM_SCHEMA` when the run is triggered; a value that did not
    come through that check (a run created around it) is ignored rather than trusted.
    """
    value = (conf or {}).get(RETRIES_PARAM)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TASK_RETRIES:
        return None
    return value


def without_retries(params: Mapping[str, Any]) -> dict[str, Any]:
    """A run's params without :data:`RETRIES_PARAM`: what its pipeline's config checks."""
    return {name: value for name, value in params.items() if name != RETRIES_PARAM}
