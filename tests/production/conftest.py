"""The production profile, started once per test session from its script: `make up PROFILE=production`
(scripts/airflow/up.sh with PZ_PROFILE=production) on this machine's Postgres and Redis and the session's moto S3
server, and stopped with down.sh at the end.

Each session gets its own Airflow metadata and registry databases (created by up.sh, dropped here at the end), its
own Redis database number and key prefix (Celery's queues), its own bucket (created by docker/airflow-init.sh) and
its own secrets; nothing of a developer's `make up` is used or disturbed. The shared servers are never stopped or
reconfigured. Without Postgres or Redis the suite is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest
import redis
import sqlalchemy
from fixtures.airflow import AIRFLOW_SCRIPTS, UP_TIMEOUT_S, AirflowServices, airflow_environment, free_port
from fixtures.s3 import S3_CREDENTIALS

POSTGRES_SERVER = os.environ.get("PZ_TEST_POSTGRES_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("PZ_TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
REDIS_DB = 13
"""Redis database of the test sessions' Celery queues (each session also has a key prefix of its own)."""
WORKERS = ("worker-1", "worker-2")
"""The profile's Celery workers, as up.sh names their services (profiles/production.env: PZ_CELERY_WORKERS=2)."""
HEARTBEAT_TIMEOUT_S = 60
"""[scheduler] task_instance_heartbeat_timeout of the test instance: a task of a killed worker is failed and
retried after a minute rather than two (airflow.cfg), to keep the suite short."""


@dataclass(frozen=True)
class ProductionProfile:
    """The running profile: its Airflow services and where its state is."""

    services: AirflowServices
    bucket: str
    """The products' bucket on the session's moto server (PZ_STORAGE_URL is s3://bucket/products)."""
    worker_names: dict[str, str]
    """{service: Celery name} of the workers: worker-1@host, the hostname their task instances record."""
    started_in_s: float
    """Wall time of up.sh on a fresh install (databases, migration, roles, bucket, services healthy)."""

    def run(self, *command: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        """``command`` in the services' environment (scripts/airflow/run.sh), as an operator runs it."""
        return subprocess.run([AIRFLOW_SCRIPTS / "run.sh", *command], env=self.services.environment,
                              capture_output=True, text=True, timeout=timeout_s)

    def worker_processes(self, service: str) -> list[psutil.Process]:
        """Live processes of a worker's session: the worker, its pool processes and their task processes."""
        leader = self.services.service_pid(service)
        found = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == leader and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except (OSError, psutil.Error):
                continue
        return found


def _require(what: str, check) -> None:
    try:
        check()
    except Exception as error:  # noqa: BLE001 - any failure to reach the server means it is not there
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is not reachable (CI=true runs every test): {error}")
        pytest.skip(f"{what} is not reachable: {error}")


@pytest.fixture(scope="session")
def production(tmp_path_factory, s3_endpoint, s3_client) -> Iterator[ProductionProfile]:
    """The production profile of this session (see the module docstring)."""
    admin = sqlalchemy.create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    broker = redis.Redis.from_url(f"{REDIS_SERVER}/{REDIS_DB}")
    _require(f"Postgres at {POSTGRES_SERVER}", lambda: admin.connect().close())
    _require(f"Redis at {REDIS_SERVER}", broker.ping)

    session = uuid.uuid4().hex[:10]
    databases = (f"pz_airflow_t{session}", f"pz_registry_t{session}")
    key_prefix = f"pz-test-{session}:"
    bucket = f"pz-prod-{session}"
    state_dir = tmp_path_factory.mktemp("production")
    port = free_port()
    environment = airflow_environment(
        state_dir / "airflow",
        PZ_PROFILE="production",
        PZ_AIRFLOW_PORT=str(port),
        PZ_AIRFLOW_PASSWORD=secrets.token_urlsafe(12),
        PZ_AIRFLOW_START_TIMEOUT=str(UP_TIMEOUT_S - 60),
        PZ_STATE_DIR=str(state_dir / "pz"),
        PZ_POSTGRES_URL=POSTGRES_SERVER,
        PZ_AIRFLOW_DB=databases[0],
        PZ_REGISTRY_DB=databases[1],
        PZ_REDIS_URL=f"{REDIS_SERVER}/{REDIS_DB}",
        AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX=key_prefix,
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT_S),
        PZ_STORAGE_URL=f"s3://{bucket}/products",
        PZ_S3_ENDPOINT_URL=s3_endpoint,
        PZ_S3_REGION=S3_CREDENTIALS["region_name"],
        PZ_S3_ACCESS_KEY_ID=S3_CREDENTIALS["access_key_id"],
        PZ_S3_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_access_key"],
    )  # fmt: skip
    services = AirflowServices(f"http://127.0.0.1:{port}", "admin", environment["PZ_AIRFLOW_PASSWORD"],
                               state_dir / "airflow", environment)
    host = os.uname().nodename
    try:
        began = time.monotonic()
        started = services.script("up.sh")
        started_in_s = time.monotonic() - began
        assert started.returncode == 0, f"up.sh failed:\n{started.stdout}\n{started.stderr}"
        yield ProductionProfile(services, bucket, {worker: f"{worker}@{host}" for worker in WORKERS}, started_in_s)
    finally:
        stopped = services.script("down.sh", timeout_s=240)
        for name in databases:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        for key in broker.scan_iter(match=f"{key_prefix}*"):
            broker.delete(key)
        assert stopped.returncode == 0, f"down.sh failed:\n{stopped.stdout}\n{stopped.stderr}"
