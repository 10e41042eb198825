"""Authentication on every route: anonymous and forged calls are refused; API tokens, Airflow JWTs (Bearer) and
the Airflow UI's session cookie are accepted, and an Airflow user becomes a registry user on first sight."""

from __future__ import annotations

import re

import pytest
from api_calls import API, published_specz
from fastapi.routing import APIRoute

EXPECTED_ROUTES = {
    ("GET", "/api/"),
    ("GET", "/api/product-types/"),
    ("GET", "/api/product-types/{type_id}/"),
    ("GET", "/api/releases/"),
    ("GET", "/api/releases/{release_id}/"),
    ("GET", "/api/users/"),
    ("GET", "/api/users/me/"),
    ("GET", "/api/users/{user_id}/"),
    ("GET", "/api/pipelines/"),
    ("GET", "/api/pipelines/{pipeline_id}/"),
    ("OPTIONS", "/api/products/"),
    ("GET", "/api/products/"),
    ("POST", "/api/products/"),
    ("GET", "/api/products/{product}/"),
    ("PATCH", "/api/products/{product}/"),
    ("DELETE", "/api/products/{product}/"),
    ("GET", "/api/products/{product}/registry/"),
    ("GET", "/api/products/{product}/main_file_info/"),
    ("GET", "/api/products/{product}/read_data/"),
    ("POST", "/api/products/{product}/download/prepare/"),
    ("GET", "/api/products/{product}/download/status/"),
    ("GET", "/api/products/{product}/download/file/"),
    ("GET", "/api/products/{product}/download/"),
    ("POST", "/api/products/{product}/download/main-file/prepare/"),
    ("GET", "/api/products/{product}/download/main-file/status/"),
    ("GET", "/api/products/{product}/download/main-file/file/"),
    ("GET", "/api/products/{product}/download_main_file/"),
    ("GET", "/api/product-files/"),
    ("POST", "/api/product-files/"),
    ("GET", "/api/product-files/{file_id}/"),
    ("DELETE", "/api/product-files/{file_id}/"),
    ("GET", "/api/product-files/{file_id}/download/"),
    ("GET", "/api/product-contents/"),
    ("PATCH", "/api/product-contents/{content_id}/"),
    ("POST", "/api/processes/"),
    ("GET", "/api/processes/{process_id}/"),
    ("GET", "/api/processes/{process_id}/stop/"),
}


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every API route (the pages under /ui/ have their own tests in test_pages.py)."""
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods
    }


def test_the_app_serves_exactly_the_documented_routes(server):
    assert api_routes(server.app) == EXPECTED_ROUTES


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"},
        {"Authorization": "Bearer forged.jwt.token"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Cookie": "_token=forged.jwt.token"},
    ],
    ids=["anonymous", "unknown-token", "forged-jwt", "basic-auth", "forged-cookie"],
)
def test_every_route_refuses_a_call_without_valid_credentials(server, as_alice, credentials):
    product = published_specz(server, as_alice)  # real records, so a route could only answer by leaking them
    before = server.snapshot()
    for method, path in sorted(api_routes(server.app)):
        url = "/pzserver" + re.sub(r"\{[a-z_]+\}", str(product["id"]), path)
        response = server.client.request(method, url, headers=credentials, data={"status": "1"})
        assert response.status_code == 401, f"{method} {url} answered {response.status_code}: {response.text}"
        assert response.json()["detail"], f"{method} {url} gave no reason"
    assert server.snapshot() == before


def test_the_client_token_check_passes_with_a_token_and_fails_without(server, as_alice):
    assert server.client.get(f"{API}/", headers=as_alice).status_code == 200
    refused = server.client.get(f"{API}/")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Token"


def test_a_revoked_token_stops_working(server, as_alice):
    server.context.registry.revoke_token(server.tokens["alice"])
    assert server.client.get(f"{API}/users/me/", headers=as_alice).status_code == 401


def test_an_airflow_jwt_maps_to_a_registry_user_created_on_first_sight(server):
    admin_jwt = server.logins.login("airflow_admin", is_admin=True)
    viewer_jwt = server.logins.login("airflow_viewer")
    me = server.client.get(f"{API}/users/me/", headers={"Authorization": f"Bearer {admin_jwt}"}).json()
    assert me["username"] == "airflow_admin" and me["is_admin"] is True
    again = server.client.get(f"{API}/users/me/", headers={"Authorization": f"Bearer {admin_jwt}"}).json()
    assert again["id"] == me["id"]
    viewer = server.client.get(f"{API}/users/me/", headers={"Authorization": f"Bearer {viewer_jwt}"}).json()
    assert viewer["is_admin"] is False


def test_the_airflow_ui_cookie_authenticates_pages(server):
    server.client.cookies.set("_token", server.logins.login("carol"))
    try:
        assert server.client.get(f"{API}/users/me/").json()["username"] == "carol"
        same_origin = server.client.post(f"{API}/products/", headers={"Origin": "http://testserver"},
                                         json={"display_name": "Carol's catalog", "product_type": 1})
        assert same_origin.status_code == 201, same_origin.text
        before = server.snapshot()
        forged = server.client.post(f"{API}/products/", headers={"Origin": "http://evil.example"},
                                    json={"display_name": "Forged", "product_type": 1})
        assert forged.status_code == 403 and "may not use the Airflow session" in forged.json()["detail"]
        assert server.snapshot() == before
    finally:
        server.client.cookies.clear()


def test_an_airflow_user_name_the_registry_cannot_hold_is_refused(server):
    jwt = server.logins.login("name with spaces")
    response = server.client.get(f"{API}/users/me/", headers={"Authorization": f"Bearer {jwt}"})
    assert response.status_code == 403 and "cannot use the PZ Server" in response.json()["detail"]
