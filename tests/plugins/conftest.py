"""Fixtures of the PZ Server app tests: the app mounted at /pzserver as Airflow mounts it, over a registry on
SQLite or Postgres (``fixtures.registry``) and local storage, with users, API tokens and tables of every format.

Airflow JWTs are checked by the api-server's auth manager, and processes run as DAG runs in Airflow's metadata
DB; in-process the app gets stand-ins (``AirflowLogins``, ``RecordedDagRuns``) and the real ones are exercised
against the running api-server in test_pzserver_client.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parents[2]
# Airflow puts the plugins folder on sys.path; the tests do the same.
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))

from api_calls import API, create_product, published_specz  # noqa: E402
from pzserver_app.app import create_app  # noqa: E402
from pzserver_app.auth import AirflowIdentity  # noqa: E402
from pzserver_app.context import ServerContext  # noqa: E402
from pzserver_app.dag_runs import RunSummary, TaskState  # noqa: E402

from pzlib.config import Settings  # noqa: E402
from pzlib.registry import AuthenticationFailed, Registry, User, schema  # noqa: E402
from pzlib.storage import open_storage  # noqa: E402

UPLOAD_LIMIT_BYTES = 256 * 1024
"""Upload limit of the test app: room for the test tables, small enough to exceed cheaply."""


class AirflowLogins:
    """Stand-in for Airflow's JWT check: tokens handed out by ``login`` are valid, others are not."""

    def __init__(self):
        self.identities: dict[str, AirflowIdentity] = {}

    def login(self, username: str, *, is_admin: bool = False) -> str:
        token = f"jwt-of-{username}"
        self.identities[token] = AirflowIdentity(username, is_admin)
        return token

    async def __call__(self, token: str) -> AirflowIdentity:
        if token not in self.identities:
            raise AuthenticationFailed("the Airflow login token is not valid (Signature verification failed)")
        return self.identities[token]


class RecordedDagRuns:
    """Stand-in for Airflow's DAG runs: records triggers and stops; a test sets a run's state, its task states,
    its task logs (``logs[(run_id, task_id)]``: structured log messages) and a DAG's runs (``summaries``)."""

    def __init__(self):
        self.triggered: list[dict] = []
        self.states: dict[str, str | None] = {}
        self.stopped: list[str] = []
        self.refuse: Exception | None = None
        self.task_states: dict[str, list[TaskState]] = {}
        self.logs: dict[tuple[str, str], list[dict]] = {}
        self.summaries: dict[str, list[RunSummary]] = {}

    def trigger(self, dag_id: str, run_id: str, conf: dict, user: str) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.triggered.append({"dag_id": dag_id, "run_id": run_id, "conf": conf, "user": user})
        self.states[run_id] = "queued"

    def state(self, dag_id: str, run_id: str) -> str | None:
        return self.states.get(run_id)

    def stop(self, dag_id: str, run_id: str) -> None:
        self.stopped.append(run_id)
        self.states[run_id] = "failed"

    def runs(self, dag_id: str, limit: int) -> list[RunSummary]:
        return self.summaries.get(dag_id, [])[:limit]

    def tasks(self, dag_id: str, run_id: str) -> list[TaskState]:
        return self.task_states.get(run_id, [])

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> list[dict]:
        return self.logs.get((run_id, task_id), [])


@dataclass
class Server:
    """The mounted app, its services and a few users with API tokens."""

    client: TestClient
    app: FastAPI
    """The PZ Server app itself (mounted in ``client``'s app at /pzserver)."""
    context: ServerContext
    logins: AirflowLogins
    tokens: dict[str, str]
    """API token key of each user made by ``user``."""
    dag_runs: RecordedDagRuns

    def user(self, username: str, *, admin: bool = False, groups: tuple[str, ...] = ()) -> dict[str, str]:
        """Create a user and return the headers that authenticate as them."""
        self.context.registry.create_user(username, is_admin=admin, groups=groups)
        self.tokens[username] = self.context.registry.create_token(username)
        return {"Authorization": f"Token {self.tokens[username]}"}

    def registry_user(self, username: str) -> User:
        return self.context.registry.get_user(username)

    def snapshot(self) -> tuple[dict[str, int], list[tuple[str, int]]]:
        """Rows of every registry table and every stored object: what 'nothing stored changed' compares."""
        with self.context.registry.engine.connect() as connection:
            rows = {
                table.name: connection.scalar(select(func.count()).select_from(table))
                for table in schema.metadata.sorted_tables
            }
        objects = [(item.key, item.size) for item in self.context.storage.list_objects()]
        return rows, objects

    def contents(self) -> tuple[dict[str, list[tuple]], list[tuple[str, int]], list[str]]:
        """Every row of every registry table, every stored object and every stopped run: what 'nothing changed'
        compares when a change would keep the number of rows."""
        with self.context.registry.engine.connect() as connection:
            rows = {
                table.name: sorted(tuple(map(repr, row)) for row in connection.execute(select(table)))
                for table in schema.metadata.sorted_tables
            }
        objects = [(item.key, item.size) for item in self.context.storage.list_objects()]
        return rows, objects, list(self.dag_runs.stopped)


@pytest.fixture
def server(registry: Registry, tmp_path: Path) -> Iterator[Server]:
    """The PZ Server app over ``registry`` (SQLite or Postgres) and local storage, mounted at /pzserver."""
    storage = open_storage(str(tmp_path / "storage"))
    settings = Settings(state_dir=tmp_path, upload_limit_bytes=UPLOAD_LIMIT_BYTES)
    context = ServerContext.open(registry, storage, settings)
    logins = AirflowLogins()
    dag_runs = RecordedDagRuns()
    app = create_app(context=context, airflow_token_resolver=logins, dag_runs=dag_runs,
                     process_dir=tmp_path / "processes")
    airflow = FastAPI()
    airflow.mount("/pzserver", app)
    with TestClient(airflow) as client:
        yield Server(client, app, context, logins, {}, dag_runs)


@pytest.fixture
def as_alice(server: Server) -> dict[str, str]:
    """Headers of alice, a user in the access group ``lsst``."""
    return server.user("alice", groups=("lsst",))


@pytest.fixture
def as_bob(server: Server) -> dict[str, str]:
    """Headers of bob, a user in no access group."""
    return server.user("bob")


@pytest.fixture
def as_admin(server: Server) -> dict[str, str]:
    """Headers of an admin."""
    return server.user("root", admin=True)


@dataclass
class Records:
    """alice's records of each kind the API serves: what route tests put in path parameters."""

    product: dict
    """A published spec-z catalog with its main file and associated columns."""
    draft: dict
    """A product still Registering, without files."""
    file_id: int
    """The main file of ``product``."""
    content_id: int
    """A column of ``product``."""
    process: dict
    """A Combine Redshift Catalogs run of ``product``, queued."""


@pytest.fixture
def records(server: Server, as_alice: dict[str, str]) -> Records:
    """One record of each kind, made through the API as the pzserver client makes them."""
    product = published_specz(server, as_alice, "DESI spec-z")
    other = published_specz(server, as_alice, "VVDS spec-z")
    draft = create_product(server, as_alice, "Draft training set", product_type="training_set")
    [main_file] = server.client.get(f"{API}/product-files/?product_id={product['id']}", headers=as_alice).json()[
        "results"]
    columns = server.client.get(f"{API}/product-contents/?product={product['id']}", headers=as_alice).json()
    process = server.client.post(f"{API}/processes/", headers=as_alice, json={
        "pipeline": "combine_redshift_dedup", "display_name": "Combined spec-z",
        "inputs": [product["id"], other["id"]], "used_config": {"param": {"combine_type": "concatenate"}}})
    assert process.status_code == 201, process.text
    return Records(product, draft, main_file["id"], columns["results"][0]["id"], process.json())


@pytest.fixture(scope="session")
def hats_zip() -> bytes:
    """A 40-row spec-z HATS catalog written by lsdb, zipped in its folder (tests/data/make_specz_hats.py)."""
    return (REPO_ROOT / "tests" / "data" / "specz_hats.zip").read_bytes()
