"""The pages under /pzserver/ui/ in-process: each renders for a logged-in user, an anonymous or forged login goes
to Airflow's login page, another user's hidden product is a 404 as in the API, errors are pages, and no page
carries inline script (its Content Security Policy would block it). The real browser test is
test_pages_browser.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from api_calls import API, create_product, published_specz
from fastapi.routing import APIRoute
from fixtures.reports import PLOT_NAMES, PNG_SIGNATURE, write_report_folder

from pzlib.registry.reports import publish_report

UI = "/pzserver/ui"
EXPECTED_PAGES = {
    "/ui/",
    "/ui/products/official/",
    "/ui/products/user/",
    "/ui/products/{product}/",
    "/ui/products/{product}/report/",
    "/ui/products/{product}/report/{plot}",
    "/ui/upload/",
    "/ui/static/{name}",
    "/ui/pipelines/",
    "/ui/processes/",
    "/ui/processes/{process_id}/",
    "/ui/compute/",
}
POSTED_PAGES = {"/ui/pipelines/{pipeline}/", "/ui/processes/{process_id}/stop/", "/ui/compute/runs/"}
"""The forms that change state (same-origin checked, as the API's changes): a pipeline request, a stop, an
admin's pz_compute run."""


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_folder(tmp_path_factory.mktemp("report") / "validation")


@pytest.fixture
def login(server):
    """Log a user in as the Airflow UI does (its ``_token`` cookie); returns the registry user."""

    def log_in(username: str, *, admin: bool = False):
        server.client.cookies.set("_token", server.logins.login(username, is_admin=admin))
        server.client.get(f"{UI}/upload/")  # the first request makes the registry user
        return server.registry_user(username)

    yield log_in
    server.client.cookies.clear()


def page_routes(app, method: str = "GET") -> set[str]:
    return {route.path for route in app.routes
            if isinstance(route, APIRoute) and route.path.startswith("/ui/") and method in route.methods}


def html(response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_the_pages_are_exactly_these_routes_all_read_only_but_three_forms(server):
    assert page_routes(server.app) == EXPECTED_PAGES
    assert page_routes(server.app, "POST") == POSTED_PAGES
    methods = {method for route in server.app.routes if isinstance(route, APIRoute)
               and route.path.startswith("/ui/") for method in route.methods}
    assert methods == {"GET", "POST"}


@pytest.mark.parametrize(
    "credentials",
    [{}, {"Cookie": "_token=forged.jwt.token"}, {"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"}],
    ids=["anonymous", "forged-cookie", "unknown-token"],
)
def test_every_page_sends_a_missing_or_bad_login_to_airflows_login(server, as_alice, credentials):
    product = published_specz(server, as_alice)
    before = server.snapshot()
    for path in sorted(page_routes(server.app)):
        url = "/pzserver" + re.sub(r"\{product\}", str(product["id"]), path).replace("{plot}", "nz.png").replace(
            "{name}", "pzserver.css").replace("{process_id}", "1") + "?search=x"
        response = server.client.get(url, headers=credentials, follow_redirects=False)
        assert response.status_code == 307, f"GET {url} answered {response.status_code}: {response.text[:200]}"
        assert response.headers["location"] == f"/auth/login?next={quote(url, safe='')}"
    for path in sorted(POSTED_PAGES):
        url = "/pzserver" + path.replace("{pipeline}", "training_set_maker").replace("{process_id}", "1")
        response = server.client.post(url, headers=credentials, data={"display_name": "x"}, follow_redirects=False)
        assert response.status_code == 307, f"POST {url} answered {response.status_code}: {response.text[:200]}"
    assert server.snapshot() == before


def test_each_page_renders_for_a_logged_in_user(server, as_alice, login, report_folder):
    catalog = published_specz(server, as_alice, description="DESI DR1 spec-z in the DP1 fields")
    alice = login("alice")
    report = publish_report(server.context.files, alice, report_folder, display_name="DC2 validation")
    pages = {
        "/products/official/": "Rubin products",
        "/products/user/": "User products",
        f"/products/{catalog['id']}/": "DESI spec-z",
        f"/products/{catalog['internal_name']}/": "DESI spec-z",
        f"/products/{report.id}/report/": "Validation report",
        "/upload/": "Upload a product",
        "/pipelines/": "Pipelines",
        "/processes/": "Processes",
        "/compute/": "PZ Compute",
    }
    for path, heading in pages.items():
        response = server.client.get(UI + path)
        text = html(response)
        assert re.search(rf"<h1[^>]*>{re.escape(heading)}", text), f"{path} lacks its heading {heading!r}"
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert 'class="username"' in text and "alice" in text
    home = server.client.get(f"{UI}/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (307, f"{UI}/products/official/")


def test_no_page_carries_inline_script_or_style(server, as_alice, login, report_folder):
    catalog = published_specz(server, as_alice)
    alice = login("alice")
    report = publish_report(server.context.files, alice, report_folder, display_name="DC2 validation")
    for path in ("/products/user/", f"/products/{catalog['id']}/", f"/products/{report.id}/report/", "/upload/",
                 "/pipelines/", "/processes/", "/compute/"):
        text = html(server.client.get(UI + path))
        for script in re.findall(r"<script[^>]*>", text):
            assert "src=" in script or 'type="application/json"' in script, f"{path}: inline {script}"
        assert not re.search(r"\son[a-z]+=", text), f"{path} has an inline event handler"
        assert " style=" not in text, f"{path} has an inline style"


def test_the_listings_search_and_filter_official_and_user_products(server, as_alice, as_admin, login):
    published_specz(server, as_alice, "DESI spec-z")
    published_specz(server, as_alice, "VVDS spec-z")
    create_product(server, as_alice, "Draft training set", product_type=2)
    official = create_product(server, as_admin, "Rubin DP1 photo-z", product_type=5, official_product=True)
    server.client.patch(f"{API}/products/{official['id']}/", headers=as_admin, data={"status": "1"})
    login("bob")

    def names(path: str) -> list[str]:
        return re.findall(r'class="product-link"[^>]*>([^<]+)<', html(server.client.get(UI + path)))

    assert names("/products/official/") == ["Rubin DP1 photo-z"]
    assert names("/products/user/") == ["VVDS spec-z", "DESI spec-z"]
    assert names("/products/user/?search=desi") == ["DESI spec-z"]
    assert names("/products/user/?search=&product_type=training_set&release=") == []
    assert names("/products/user/?product_type=training_set&status=") == []  # a draft is its owner's alone
    assert names("/products/user/?user=bob") == []
    assert names("/products/user/?user=alice&search=vvds&status=1") == ["VVDS spec-z"]

    first = html(server.client.get(f"{UI}/products/user/?page_size=1"))
    assert "page 1 of 2" in first
    next_page = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert names(next_page.removeprefix(UI)) == ["DESI spec-z"]

    refused = server.client.get(f"{UI}/products/user/?status=published&colour=red")
    assert refused.status_code == 400 and refused.headers["content-type"].startswith("text/html")
    assert "unknown query parameter(s) colour" in refused.text


def test_the_product_page_shows_metadata_columns_preview_and_the_owners_actions(server, as_alice, login):
    product = published_specz(server, as_alice, description="Line one\n<script>alert(1)</script>")
    page_url = f"{UI}/products/{product['id']}/"

    login("alice")
    owner_view = html(server.client.get(page_url))
    assert 'id="delete-product"' in owner_view
    assert f'href="{API}/products/{product["id"]}/download/file/"' in owner_view
    assert f'value="http://testserver{UI}/products/{product["internal_name"]}/"' in owner_view
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in owner_view and "<script>alert" not in owner_view
    columns = re.findall(r"<tr>\s*<td><code>(\w+)</code></td>\s*<td>([^<]*)", owner_view)
    assert [(name, alias.strip()) for name, alias in columns] == [
        ("id", "—"), ("ra", "RA"), ("dec", "Dec"), ("z", "z"), ("z_err", "—")]
    assert owner_view.count("<tr><td>") == 25  # the first page of the preview: its 25 rows
    assert "<td>0.12</td>" in owner_view  # floats without binary noise

    login("bob")
    other_view = html(server.client.get(page_url))
    assert 'id="delete-product"' not in other_view and 'id="download-product"' in other_view
    login("root", admin=True)
    assert 'id="delete-product"' in html(server.client.get(page_url))


def test_another_users_hidden_product_is_not_found_as_in_the_api(server, as_alice, as_bob, login):
    server.context.registry.create_release("dp1", "Data Preview 1", access_groups=["lsst"])
    product = published_specz(server, as_alice, release="dp1")
    assert server.client.get(f"{API}/products/{product['id']}/", headers=as_bob).status_code == 404
    login("bob")
    for path in (f"/products/{product['id']}/", f"/upload/?product={product['id']}"):
        response = server.client.get(UI + path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
        assert f"product {product['id']} does not exist or is not visible to you" in response.text
    login("carol")
    server.context.registry.update_user("carol", groups=["lsst"])
    resumed = server.client.get(f"{UI}/upload/?product={product['id']}")
    assert resumed.status_code == 403 and "belongs to alice" in resumed.text


def test_the_upload_wizard_carries_the_types_the_system_columns_and_a_resumed_upload(server, as_alice, login):
    draft = create_product(server, as_alice, "Half-done upload")
    login("alice")
    text = html(server.client.get(f"{UI}/upload/"))
    assert '<option value="redshift_catalog"' in text and '<option value="RA">' in text
    assert 'id="official_product"' not in text  # admins only
    wizard = re.search(r'<script type="application/json" id="wizard-data">(.*?)</script>', text, re.S).group(1)
    assert '"mandatory_aliases": {"object_catalog": ["RA", "Dec"]' in wizard
    assert '"product": null' in wizard
    resumed = html(server.client.get(f"{UI}/upload/?product={draft['id']}"))
    assert f'"id": {draft["id"]}' in resumed and '"has_main_file": false' in resumed
    login("root", admin=True)
    assert 'id="official_product"' in html(server.client.get(f"{UI}/upload/"))


def test_the_report_page_shows_the_metrics_the_checks_and_the_plots(server, login, report_folder):
    alice = login("alice")
    report = publish_report(server.context.files, alice, report_folder, display_name="DC2 validation")
    text = html(server.client.get(f"{UI}/products/{report.id}/report/"))
    metrics = json.loads(report_folder.joinpath("metrics.json").read_text())["metrics"]
    assert "dc2_test · fzboost" in text
    zmode = re.search(r'<tr class="primary-estimate">\s*<th scope="row"><code>zmode</code></th>(.*?)</tr>', text, re.S)
    cells = re.findall(r'<td class="num">([^<]+)</td>', zmode.group(1))
    point = metrics["point"]["zmode"]
    assert cells == ["2,000", f"{point['sigma_nmad']:.4f}", f"{point['sigma_iqr']:.4f}", f"{point['bias']:.4f}",
                     f"{100 * point['outlier_rate']:.2f}%", f"{100 * point['outlier_rate_rail']:.2f}%"]
    assert "stage1_partition" in text and "magnitudes are physical" in text
    plots = re.findall(rf'<img src="{UI}/products/{report.id}/report/([^"]+)"', text)
    assert plots == list(PLOT_NAMES)
    image = server.client.get(f"{UI}/products/{report.id}/report/pit.png")
    assert image.headers["content-type"] == "image/png" and image.content.startswith(PNG_SIGNATURE)
    assert server.client.get(f"{UI}/products/{report.id}/report/metrics.json").status_code == 404
    product_page = html(server.client.get(f"{UI}/products/{report.id}/"))
    assert f'href="{UI}/products/{report.id}/report/"' in product_page


def test_a_product_that_is_not_a_report_has_no_report_page(server, as_alice, login):
    product = published_specz(server, as_alice)
    login("alice")
    response = server.client.get(f"{UI}/products/{product['id']}/report/")
    assert response.status_code == 404 and "not a validation report" in response.text
    assert 'id="open-report"' not in html(server.client.get(f"{UI}/products/{product['id']}/"))


def test_static_files_are_served_by_name_only_and_unknown_pages_are_404_pages(server, login):
    login("alice")
    for name, media_type in (("pzserver.css", "text/css"), ("upload.js", "text/javascript"),
                             ("icon.svg", "image/svg+xml")):
        response = server.client.get(f"{UI}/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
    for path in ("/static/../app.py", "/static/%2e%2e%2fapp.py", "/static/app.py", "/no/such/page/"):
        response = server.client.get(UI + path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html"), path


def test_the_plugin_puts_the_pages_in_the_airflow_navigation():
    import pzserver_plugin  # the plugins folder is on sys.path (conftest.py), as Airflow puts it

    views = pzserver_plugin.PzServerPlugin.external_views
    assert [view["name"] for view in views] == ["Rubin products", "User products", "Upload a product", "Pipelines",
                                                "Processes", "PZ Compute"]
    assert len({view["url_route"] for view in views}) == 6
    [mounted] = pzserver_plugin.PzServerPlugin.fastapi_apps
    pages = page_routes(mounted["app"])
    for view in views:
        assert view["destination"] == "nav" and view["category"] == "PZ Server"
        assert view["href"].removeprefix(pzserver_plugin.URL_PREFIX) in pages
        assert view["icon"].endswith("/ui/static/icon.svg") and view["icon_dark_mode"].endswith("icon-dark.svg")
