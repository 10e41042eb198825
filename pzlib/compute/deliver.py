"""Stage IV of a pz_compute run: each estimator's catalog delivered to the run's ``destination`` (``s3://``) and
verified there against its manifest (:mod:`pzlib.storage.transfer`); a rerun copies only what is missing or
differs. Endpoint and keys are an :class:`~pzlib.storage.s3_access.S3Access` (the Airflow connection ``pz_s3``, or
the ``PZ_S3_*`` settings), never the run's params."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from pzlib.catalog import write_text_atomically
from pzlib.compute.spec import RunSpec
from pzlib.config import load_settings
from pzlib.storage.s3_access import S3Access
from pzlib.storage.transfer import MANIFEST_KEY, Manifest, check_destination, deliver


def check_destinations(spec: RunSpec, s3: S3Access | None = None) -> None:
    """Before any work: every estimator's destination answers, may be listed, and holds no other release's
    catalog.

    Raises
    ------
    DestinationRefused, DestinationUnreachable
        Naming the URL and the problem.
    """
    if spec.destination is None:
        return
    client = (s3 or S3Access.from_settings(load_settings())).boto3_client()
    for estimator in spec.estimators:
        bucket, prefix = spec.destination_of(estimator)
        check_destination(client, bucket, prefix, spec.delivery_label(estimator))


def deliver_catalog(spec: RunSpec, estimator: str, s3: S3Access | None = None,
                    report: Callable[[str], None] | None = None) -> dict | None:
    """Copy the estimator's assembled catalog to its destination and verify it; record what was done in
    ``RunSpec.delivery_path``. Returns that record, or None when the run has no destination."""
    if spec.destination is None:
        return None
    s3 = s3 or S3Access.from_settings(load_settings())
    bucket, prefix = spec.destination_of(estimator)
    manifest = Manifest.from_json(spec.manifest_path(estimator).read_text())
    result = deliver(spec.catalog_path(estimator), s3.boto3_client(), bucket, prefix, manifest, report=report)
    record = {
        "url": f"s3://{bucket}/{prefix}", "manifest": f"s3://{bucket}/{prefix}/{MANIFEST_KEY}",
        "endpoint_url": s3.endpoint_url, "files": len(manifest.files), "bytes": manifest.total_bytes,
        "copied_files": len(result.copied_keys), "copied_bytes": result.copied_bytes,
        "seconds": round(result.seconds, 3), "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomically(spec.delivery_path(estimator), json.dumps(record, indent=1))
    return record
