"""Cross-site request forgery: a request authenticated by the Airflow UI's cookie changes nothing unless it
comes from a page of this site, whatever its method (a GET stops a process); API tokens and Airflow JWTs carry
their credentials themselves and are not concerned.

The routes that change state are read from the app (those that take ``ChangingUser``); every route with
another method than GET must be one of them, and every GET route that is not one of them must change nothing
when a foreign site makes a browser call it.
"""

from __future__ import annotations

import re

import pytest
from api_calls import API, specz_table, table_bytes
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pzserver_app.auth import changing_user

SITE = "http://testserver"
"""The origin the test client's requests go to."""

FOREIGN = "https://evil.example"

CROSS_SITE = {
    "foreign-origin": {"Origin": FOREIGN},
    "opaque-origin": {"Origin": "null"},
    "foreign-origin-same-fetch-site": {"Origin": FOREIGN, "Sec-Fetch-Site": "same-origin"},
    "cross-site-fetch": {"Sec-Fetch-Site": "cross-site"},
    "same-site-fetch": {"Sec-Fetch-Site": "same-site"},
    "foreign-referer": {"Referer": f"{FOREIGN}/page.html"},
    "unparsable-referer": {"Referer": "http://[broken/"},
    "no-source-at-all": {},
}
"""Headers of requests that do not come from a page of this site (the last: nothing says where from)."""

SAME_ORIGIN = {
    "origin": {"Origin": SITE},
    "fetch-site": {"Sec-Fetch-Site": "same-origin"},
    "typed-by-the-user": {"Sec-Fetch-Site": "none"},
    "referer": {"Referer": f"{SITE}/pzserver/ui/upload/"},
}

KNOWN_CHANGING_READS = {
    ("GET", "/api/products/{product}/registry/"),
    ("GET", "/api/processes/{process_id}/stop/"),
}
"""GET routes that change state, so that the test fails if they lose their mark."""


def _depends_on(dependant: Dependant, call) -> bool:
    return any(sub.call is call or _depends_on(sub, call) for sub in dependant.dependencies)


def changing_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route that takes ``ChangingUser``."""
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and _depends_on(route.dependant, changing_user)
        for method in route.methods
    }


def all_routes(app) -> set[tuple[str, str]]:
    return {(method, route.path) for route in app.routes if isinstance(route, APIRoute) for method in route.methods}


def record_ids(records) -> dict[str, int | str]:
    """What each path parameter of the routes names."""
    return {"product": records.product["id"], "file_id": records.file_id, "content_id": records.content_id,
            "process_id": records.process["id"], "type_id": 1, "release_id": 1, "user_id": 1, "pipeline_id": 1,
            "plot": "pit.png", "name": "pzserver.css"}


@pytest.fixture
def stoppable(server, records, as_alice) -> dict:
    """A second run of alice's, for the process page's stop button (the API's stop ends the first)."""
    started = server.client.post(f"{API}/processes/", headers=as_alice, json={
        "pipeline": "combine_redshift_dedup", "display_name": "Stoppable", "inputs": records.process["inputs"]})
    assert started.status_code == 201, started.text
    return started.json()


def changing_requests(records, stoppable) -> dict[tuple[str, str], dict]:
    """A request that succeeds same-origin, for each route that changes state, in an order where each still
    finds what it works on (deletes last). ``path_ids`` names another record than ``record_ids`` does; ``admin``
    marks a route only admins may use."""
    return {
        ("POST", "/api/products/"): {"json": {"display_name": "Forged catalog", "product_type": 1}},
        ("PATCH", "/api/products/{product}/"): {"json": {"description": "forged"}},
        ("GET", "/api/products/{product}/registry/"): {},
        ("POST", "/api/products/{product}/download/prepare/"): {},
        ("POST", "/api/products/{product}/download/main-file/prepare/"): {},
        ("POST", "/api/product-files/"): {"data": {"product": str(records.draft["id"]), "role": "0"},
                                          "files": {"file": ("specz.csv", table_bytes(specz_table(), "csv"))}},
        ("PATCH", "/api/product-contents/{content_id}/"): {"json": {"ucd": "meta.id"}},
        ("POST", "/api/processes/"): {"json": {"pipeline": "combine_redshift_dedup", "display_name": "Forged run",
                                               "inputs": records.process["inputs"]}},
        ("GET", "/api/processes/{process_id}/stop/"): {},
        ("POST", "/ui/pipelines/{pipeline}/"): {
            "path_ids": {"pipeline": "combine_redshift_dedup"},
            "files": {"flags_translation_file": ("", b"")},
            "data": {"display_name": "Forged page run", "inputs": [str(item) for item in records.process["inputs"]],
                     "combine_type": "concatenate", "crossmatch.radius_arcsec": "1", "crossmatch.n_neighbors": "16"}},
        ("POST", "/ui/processes/{process_id}/stop/"): {"path_ids": {"process_id": stoppable["id"]}},
        ("POST", "/ui/compute/runs/"): {"admin": True, "data": {"release": "dc2-sample", "params": "{}"}},
        ("DELETE", "/api/product-files/{file_id}/"): {},
        ("DELETE", "/api/products/{product}/"): {},
    }


def url_of(path: str, ids: dict[str, int | str]) -> str:
    return "/pzserver" + re.sub(r"\{(\w+)\}", lambda match: str(ids[match.group(1)]), path)


def send(server, method: str, path: str, ids: dict[str, int | str], headers: dict[str, str], request: dict):
    """One planned request, as alice or (for an admin's route) as root, with the Airflow UI's cookie."""
    server.client.cookies.set("_token", server.logins.login("root" if request.get("admin") else "alice",
                                                            is_admin=bool(request.get("admin"))))
    arguments = {name: value for name, value in request.items() if name not in ("path_ids", "admin")}
    return server.client.request(method, url_of(path, {**ids, **request.get("path_ids", {})}), headers=headers,
                                 **arguments)


def test_every_route_other_than_a_read_is_marked_as_changing(server):
    changing = changing_routes(server.app)
    not_reads = {(method, path) for method, path in all_routes(server.app) if method not in ("GET", "HEAD")}
    assert not_reads - {("OPTIONS", "/api/products/")} <= changing
    assert KNOWN_CHANGING_READS <= changing
    assert ("GET", "/api/processes/{process_id}/") not in changing  # reading follows the run, which is no change


@pytest.mark.parametrize("origin", list(CROSS_SITE.values()), ids=list(CROSS_SITE))
def test_a_cross_site_cookie_request_to_any_changing_route_is_refused_and_changes_nothing(server, records,
                                                                                           stoppable, origin):
    planned, ids = changing_requests(records, stoppable), record_ids(records)
    assert set(planned) == changing_routes(server.app), "a route that changes state has no request here"
    server.client.get(f"{API}/users/me/", cookies={"_token": server.logins.login("root", is_admin=True)})
    before = server.contents()
    for (method, path), request in planned.items():
        response = send(server, method, path, ids, origin, request)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text}"
        if path.startswith("/ui/"):  # a page's error is a page
            assert "Airflow session" in response.text and "API token" in response.text
        else:
            assert "Airflow session" in response.json()["detail"] and "API token" in response.json()["detail"]
    assert server.contents() == before
    assert server.dag_runs.stopped == [] and len(server.dag_runs.triggered) == 2  # the fixtures' own runs


@pytest.mark.parametrize("origin", list(SAME_ORIGIN.values()), ids=list(SAME_ORIGIN))
def test_a_same_origin_cookie_request_changes_what_it_asks(server, records, stoppable, origin):
    planned, ids = changing_requests(records, stoppable), record_ids(records)
    server.context.registry.create_release("dc2-sample", "DC2 sample", is_public=True)
    for (method, path), request in planned.items():
        response = send(server, method, path, ids, origin, request)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    assert server.dag_runs.stopped == [records.process["run_id"], stoppable["run_id"]]
    assert [run["dag_id"] for run in server.dag_runs.triggered][-2:] == ["combine_redshift_catalogs", "pz_compute"]


def test_a_cross_site_get_of_any_other_route_changes_nothing(server, records, as_alice):
    """A route that is not marked must be a read: a forged GET of each, after the same GET with a token (which
    makes the download archives and brings the process up to date), leaves everything as it was."""
    ids = record_ids(records)
    reads = sorted(all_routes(server.app) - changing_routes(server.app))
    for method, path in reads:
        server.client.request(method, url_of(path, ids), headers=as_alice)
    server.client.cookies.set("_token", server.logins.login("alice"))
    before = server.contents()
    for method, path in reads:
        response = server.client.request(method, url_of(path, ids), headers={"Origin": FOREIGN})
        assert response.status_code < 500, f"{method} {path}: {response.text}"
    assert server.contents() == before


@pytest.mark.parametrize("scheme", ["Token", "Bearer"])
def test_token_and_jwt_calls_change_state_from_anywhere_as_the_pzserver_client_does(server, records, as_alice,
                                                                                    scheme):
    credentials = server.tokens["alice"] if scheme == "Token" else server.logins.login("alice")
    server.client.cookies.set("_token", "a-cookie-the-header-wins-over")
    stopped = server.client.get(f"{API}/processes/{records.process['id']}/stop/",
                                headers={"Authorization": f"{scheme} {credentials}", "Origin": FOREIGN})
    assert stopped.status_code == 200 and stopped.json()["status"] == "Stopped", stopped.text
    assert server.dag_runs.stopped == [records.process["run_id"]]
