"""FAB logins of the production profile: a "pz-user" logs in, sees the PZ Server pages as the same PZ Server user
(an API token of that user included), triggers training_set_maker over REST and the run completes on the Celery
workers, and is refused (403) pz_compute and the admin routes; an Op may trigger pz_compute; the Admin and the Op
are PZ Server admins; an anonymous caller gets 401 everywhere. Users are made with `airflow users create`, run in
the services' environment.
"""

from __future__ import annotations

import secrets

import httpx
import pytest
from fixtures.airflow import task_states, wait_for_dag, wait_for_run

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 600


def fab_user(production, username: str, role: str) -> str:
    """A new FAB user with ``role``; returns its password."""
    password = secrets.token_urlsafe(12)
    created = production.run("airflow", "users", "create", "--role", role, "--username", username, "--password",
                             password, "--email", f"{username}@example.org", "--firstname", username,
                             "--lastname", role)  # fmt: skip
    assert created.returncode == 0, created.stderr[-2000:]
    return password


def login(production, username: str, password: str) -> str:
    response = httpx.post(f"{production.services.url}/auth/token",
                          json={"username": username, "password": password}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def scientist(production) -> httpx.Client:
    """A REST client logged in as a new pz-user."""
    token = login(production, "pz-alice", fab_user(production, "pz-alice", "pz-user"))
    with httpx.Client(base_url=production.services.url, headers={"Authorization": f"Bearer {token}"},
                      cookies={"_token": token}, timeout=30) as client:
        yield client


def test_a_pz_user_sees_the_pz_server_pages_as_the_same_pz_server_user(production, scientist):
    me = scientist.get("/pzserver/api/users/me/")
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "pz-alice" and me.json()["is_admin"] is False
    for page in ("/pzserver/ui/", "/pzserver/ui/products/official/", "/pzserver/ui/products/user/"):
        shown = httpx.get(f"{production.services.url}{page}", cookies={"_token": scientist.cookies["_token"]},
                          timeout=30, follow_redirects=True)
        assert shown.status_code == 200, (page, shown.text[:500])
        assert "text/html" in shown.headers["content-type"]
    token = production.run("pz", "token", "create", "pz-alice")
    assert token.returncode == 0, token.stderr
    with_token = httpx.get(f"{production.services.url}/pzserver/api/users/me/",
                           headers={"Authorization": f"Token {token.stdout.strip()}"}, timeout=30)
    assert with_token.status_code == 200, with_token.text
    assert with_token.json()["id"] == me.json()["id"]


def test_a_pz_user_triggers_training_set_maker_and_the_run_completes(scientist, crossmatch_sample, tmp_path):
    wait_for_dag(scientist, "training_set_maker")
    conf = {"specz_catalog": str(crossmatch_sample.reference), "object_catalog": str(crossmatch_sample.objects),
            "output_dir": str(tmp_path / "tsm"), "radius_arcsec": 1.0, "n_neighbors": 1}
    response = scientist.post("/api/v2/dags/training_set_maker/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    state = wait_for_run(scientist, "training_set_maker", run_id, RUN_TIMEOUT_S)
    assert state == "success", task_states(scientist, "training_set_maker", run_id)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/v2/dags/pz_compute/dagRuns", {"logical_date": None, "conf": {}}),
    ("PATCH", "/api/v2/dags/pz_compute", {"is_paused": True}),
    ("GET", "/api/v2/config", None),
    ("GET", "/api/v2/connections", None),
    ("POST", "/api/v2/variables", {"key": "pz", "value": "x"}),
    ("GET", "/auth/fab/v1/users", None),
])  # fmt: skip
def test_a_pz_user_is_refused_pz_compute_and_the_admin_routes(scientist, method, path, body):
    response = scientist.request(method, path, json=body)
    assert response.status_code == 403, response.text


def test_the_fab_admin_is_a_pz_server_admin(production):
    token = login(production, production.services.username, production.services.password)
    me = httpx.get(f"{production.services.url}/pzserver/api/users/me/", headers={"Authorization": f"Bearer {token}"},
                   timeout=30)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == production.services.username and me.json()["is_admin"] is True


def test_an_op_may_trigger_pz_compute_and_is_a_pz_server_admin(production):
    token = login(production, "pz-oscar", fab_user(production, "pz-oscar", "Op"))
    response = httpx.post(f"{production.services.url}/api/v2/dags/pz_compute/dagRuns",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"logical_date": None, "conf": {"partition_rows": 0}}, timeout=30)
    # Past the authorization: the conf is checked, and refused (no run is started).
    assert response.status_code == 400, response.text
    me = httpx.get(f"{production.services.url}/pzserver/api/users/me/", headers={"Authorization": f"Bearer {token}"},
                   timeout=30)
    assert me.json()["username"] == "pz-oscar" and me.json()["is_admin"] is True


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v2/dags"),
    ("POST", "/api/v2/dags/training_set_maker/dagRuns"),
    ("GET", "/api/v2/config"),
    ("GET", "/auth/fab/v1/users"),
    ("GET", "/pzserver/api/users/me/"),
    ("GET", "/pzserver/api/products/"),
])  # fmt: skip
def test_an_anonymous_caller_gets_401(production, method, path):
    response = httpx.request(method, f"{production.services.url}{path}", json={}, timeout=30)
    assert response.status_code == 401, response.text
