"""The JSON schema of a pz_compute run's params, apart from :class:`pzlib.compute.spec.RunSpec` (which checks
everything else) because the ``pz_compute`` DAG file loads it at parse time: it imports no science package."""

from __future__ import annotations

from pzlib.cluster import CONNECTION_FORMAT
from pzlib.column_maps import COLUMN_MAP_SCHEMA
from pzlib.config import BACKENDS
from pzlib.registry.checks import USERNAME_PATTERN

RELEASE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""A release name: letters, digits, '.', '_', '-', at most 64."""

DESTINATION_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$"
"""Where stage IV delivers the catalogs: ``s3://bucket`` or ``s3://bucket/prefix``."""

RUN_PARAMS_SCHEMA = {
    "type": "object",
    "required": ["release", "input", "train", "output"],
    "additionalProperties": False,
    "properties": {
        "release": {"type": "string", "pattern": RELEASE_PATTERN},
        "input": {"type": "string", "minLength": 1},
        "train": {"type": "string", "minLength": 1},
        "output": {"type": "string", "minLength": 1},
        "estimators": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                       "uniqueItems": True},
        "column_map": COLUMN_MAP_SCHEMA,
        "backend": {"type": "string", "enum": list(BACKENDS)},
        "partition_rows": {"type": "integer", "minimum": 1},
        "truth_column": {"type": ["string", "null"]},
        "training_truth_column": {"type": "string", "minLength": 1},
        "rail_options": {"type": "object"},
        "publish": {"type": "boolean"},
        "destination": {"type": ["string", "null"], "pattern": DESTINATION_PATTERN},
        "owner": {"type": ["string", "null"], "pattern": USERNAME_PATTERN},
        "resources": {"type": "object"},  # cluster resources (pzlib.cluster.resources)
        # The Airflow SSH connection of the cluster, or one per estimator; checked to exist at trigger time.
        "cluster": {"type": ["string", "object", "null"], "minLength": 1, "format": CONNECTION_FORMAT,
                    "additionalProperties": {"type": "string", "minLength": 1, "format": CONNECTION_FORMAT}},
    },
}
"""What Airflow checks a trigger's conf against (HTTP 400 naming the param); ``RunSpec`` checks the rest."""
