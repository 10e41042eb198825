"""Limits of what the PZ Server reads: request bodies (counted as they stream, 413), field lengths, 63-bit
integers, search terms, malformed JSON (400), hand-made report files; and no input ever gets a 500, which when
a bug makes one anyway shows nothing of the server.

Every limit is a setting (``pzlib.config.Settings``, ``PZ_*``); the test app runs with the defaults unless a
test says otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import uvicorn
from api_calls import API, create_product
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pzserver_app.app import create_app
from pzserver_app.bodies import FORM_FIELD_LIMIT_BYTES, MAX_JSON_DEPTH
from starlette.types import Receive, Scope, Send

from pzlib.config import Settings, load_settings
from pzlib.registry import InvalidInput, ProductFilter
from pzlib.registry.checks import MAX_ID
from pzlib.registry.registration import ProductFiles
from pzlib.registry.reports import REPORT_JSON_LIMIT_BYTES, REPORT_ROWS, publish_report

UI = "/pzserver/ui"
DEFAULTS = Settings()
MiB = 1024 * 1024

BEFORE_THE_DATABASE = pytest.mark.parametrize("backend", ["sqlite"])
"""For what is refused before any query, or read from storage: one database is enough."""


def client_with(server, **limits) -> TestClient:
    """A client of the same registry and store, served with other limits; server errors come back as 500s."""
    context = replace(server.context, settings=replace(server.context.settings, **limits))
    app = FastAPI()
    app.mount("/pzserver", create_app(context=context, airflow_token_resolver=server.logins,
                                      dag_runs=server.dag_runs, process_dir=context.settings.state_dir / "processes"))
    return TestClient(app, raise_server_exceptions=False)


def test_the_limits_are_settings_read_from_the_environment():
    settings = load_settings({"PZ_BODY_LIMIT_BYTES": "2048", "PZ_DESCRIPTION_LIMIT_CHARS": "300",
                              "PZ_SEARCH_TERMS_LIMIT": "7"})
    assert (settings.body_limit_bytes, settings.description_limit_chars, settings.search_terms_limit) == (2048, 300, 7)
    assert (DEFAULTS.body_limit_bytes, DEFAULTS.description_limit_chars, DEFAULTS.search_terms_limit) == (
        MiB, 10_000, 50)
    with pytest.raises(ValueError, match="PZ_SEARCH_TERMS_LIMIT must be a whole number"):
        load_settings({"PZ_SEARCH_TERMS_LIMIT": "many"})
    with pytest.raises(ValueError, match="body_limit_bytes must be a positive integer"):
        load_settings({"PZ_BODY_LIMIT_BYTES": "0"})


# Request bodies


class CountingBodies:
    """ASGI wrapper: counts the request-body bytes the server hands to the app below it."""

    def __init__(self, app):
        self.app = app
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted_receive, send)


@pytest.fixture
def live_server(server) -> Iterator[tuple[str, CountingBodies]]:
    """The test app behind a real HTTP server (uvicorn, on a free loopback port), with a 64 KiB body limit."""
    counting = CountingBodies(client_with(server, body_limit_bytes=64 * 1024).app)
    live = uvicorn.Server(uvicorn.Config(counting, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                         http="h11"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not live.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = live.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", counting
    live.should_exit = True
    thread.join(timeout=30)


@BEFORE_THE_DATABASE
def test_a_chunked_body_over_the_limit_is_a_413_and_is_never_read_whole(server, as_alice, live_server):
    base_url, counting = live_server
    before = server.snapshot()
    offered = 0

    def chunks() -> Iterator[bytes]:  # 48 MiB of JSON whitespace, with no Content-Length
        nonlocal offered
        for _ in range(768):
            offered += 64 * 1024
            yield b" " * (64 * 1024)

    tracemalloc.start()
    try:
        response = httpx.post(f"{base_url}{API}/products/", content=chunks(), timeout=120,
                              headers={**as_alice, "Content-Type": "application/json"})
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": "the request body is larger than the limit of 65536 bytes; send less (or "
                                         "raise PZ_BODY_LIMIT_BYTES)", "limit_bytes": 64 * 1024}
    # The limit and at most one ASGI message past it; a message is what one socket read gave uvicorn (asyncio reads
    # up to 256 KiB at once, so several of the client's chunks can arrive as one): never the 48 MiB offered.
    assert counting.received <= 64 * 1024 + 256 * 1024, counting.received
    assert peak_bytes < 16 * MiB, f"{peak_bytes} bytes held while {offered} were sent"
    assert server.snapshot() == before


@BEFORE_THE_DATABASE
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_declared_body_over_the_limit_is_a_413_before_it_is_read(server, as_alice, content_type):
    product = create_product(server, as_alice)
    before = server.snapshot()
    body = (json.dumps({"description": "x" * MiB}) if content_type == "application/json"
            else "description=" + "x" * MiB).encode()
    for method, url in (("POST", f"{API}/products/"), ("PATCH", f"{API}/products/{product['id']}/"),
                        ("PATCH", f"{API}/product-contents/1/"), ("POST", f"{API}/processes/")):
        response = server.client.request(method, url, headers={**as_alice, "Content-Type": content_type},
                                         content=body)
        assert response.status_code == 413, f"{method} {url}: {response.text}"
        assert response.json()["limit_bytes"] == DEFAULTS.body_limit_bytes
    assert server.snapshot() == before


@BEFORE_THE_DATABASE
def test_form_fields_of_a_multipart_body_are_bounded(server, as_alice):
    product = create_product(server, as_alice)
    before = server.snapshot()
    too_long = server.client.post(f"{API}/product-files/", headers=as_alice,
                                  data={"product": str(product["id"]), "type": "x" * (FORM_FIELD_LIMIT_BYTES + 1)},
                                  files={"file": ("notes.txt", b"notes")})
    assert too_long.status_code == 400 and "exceeded maximum size" in too_long.json()["detail"]
    too_many = server.client.post(f"{API}/product-files/", headers=as_alice,
                                  data={f"field{index}": "x" for index in range(200)},
                                  files={"file": ("notes.txt", b"notes")})
    assert too_many.status_code == 400 and "Too many fields" in too_many.json()["detail"]
    patched = server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice,
                                  files={"description": (None, "x" * (FORM_FIELD_LIMIT_BYTES + 1))})
    assert patched.status_code == 400 and "exceeded maximum size" in patched.json()["detail"]
    assert server.snapshot() == before


# Field lengths


def test_a_description_of_20_mib_is_refused_whole_and_over_the_limit_by_its_length(server, as_alice):
    product = create_product(server, as_alice)
    before = server.snapshot()
    huge = "x" * (20 * MiB)
    assert server.client.post(f"{API}/products/", headers=as_alice,
                              json={"display_name": "Huge", "product_type": 1, "description": huge}).status_code == 413
    roomy = client_with(server, body_limit_bytes=32 * MiB)
    for method, url, body in (("POST", f"{API}/products/", {"display_name": "Huge", "product_type": 1}),
                              ("PATCH", f"{API}/products/{product['id']}/", {})):
        response = roomy.request(method, url, headers=as_alice, json={**body, "description": huge})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "description has 20971520 characters; the limit is 10000"
    over = server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice,
                               data={"description": "é" * (DEFAULTS.description_limit_chars + 1)})
    assert over.status_code == 400 and "the limit is 10000" in over.json()["detail"]
    assert server.snapshot() == before
    at_limit = server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice,
                                   json={"description": "é" * DEFAULTS.description_limit_chars})
    assert at_limit.status_code == 200 and len(at_limit.json()["description"]) == DEFAULTS.description_limit_chars


@pytest.mark.parametrize(
    "field, value, limit",
    [("display_name", "n" * 256, 255), ("pz_code", "c" * 56, 55)],
)
def test_product_names_and_codes_over_their_length_are_refused(server, as_alice, field, value, limit):
    product = create_product(server, as_alice)
    before = server.snapshot()
    for method, url, body in (("POST", f"{API}/products/", {"display_name": "A name", "product_type": 1}),
                              ("PATCH", f"{API}/products/{product['id']}/", {})):
        response = server.client.request(method, url, headers=as_alice, json={**body, field: value})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == f"{field} has {len(value)} characters; the limit is {limit}"
    assert server.snapshot() == before


@pytest.mark.parametrize("field, limit", [("alias", 255), ("ucd", 128)])
def test_column_associations_over_their_length_are_refused(server, records, as_alice, field, limit):
    before = server.contents()
    response = server.client.patch(f"{API}/product-contents/{records.content_id}/", headers=as_alice,
                                   json={field: "a" * (MiB // 2)})
    assert response.status_code == 400
    assert response.json()["detail"] == f"{field} has {MiB // 2} characters; the limit is {limit}"
    assert server.contents() == before


# Integers


def id_routes(app) -> list[tuple[str, str]]:
    return sorted((method, route.path) for route in app.routes if "{" in getattr(route, "path", "")
                  and "/ui/static/" not in route.path and not route.path.endswith("{plot}")
                  for method in route.methods)


@pytest.mark.parametrize("huge", [2**62, MAX_ID + 1, 2**64 + 1, 10**30, -(2**63) - 1])
def test_an_id_beyond_what_the_database_holds_in_a_path_is_a_400_or_404_on_every_route(server, records, as_alice,
                                                                                       huge):
    client = client_with(server)
    before = server.contents()
    for method, path in id_routes(server.app):
        url = "/pzserver" + path.replace(path[path.index("{"):path.index("}") + 1], str(huge))
        response = client.request(method, url, headers={**as_alice, "Origin": "http://testserver"}, json={})
        assert response.status_code in (400, 404), f"{method} {url}: {response.status_code} {response.text}"
    assert server.contents() == before


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "X", "product_type": 2**63},
        {"display_name": "X", "product_type": 1, "release": 2**63},
        {"display_name": "X", "product_type": 1, "release": -(2**70)},
        {"display_name": "X", "product_type": 1, "status": 2**64},
        {"display_name": "X", "product_type": 1, "release_year": 10**40},
        {"display_name": "X", "product_type": 1, "official_product": 2**63},
    ],
)
def test_an_integer_beyond_64_bits_in_a_json_field_is_a_400(server, as_alice, body):
    before = server.snapshot()
    response = client_with(server).post(f"{API}/products/", headers=as_alice, json=body)
    assert response.status_code == 400, response.text
    assert "beyond the 64-bit integers" in response.json()["detail"]
    assert server.snapshot() == before


def test_ids_are_63_bit_so_a_large_one_is_a_missing_record(server, as_alice):
    assert MAX_ID == 2**63 - 1
    response = client_with(server).get(f"{API}/products/{2**62}/", headers=as_alice)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize("field", ["product_type", "release"])
def test_an_id_beyond_what_the_database_holds_in_a_json_field_is_a_400(server, as_alice, field):
    before = server.snapshot()
    response = client_with(server).post(f"{API}/products/", headers=as_alice,
                                        json={"display_name": "X", "product_type": 1, field: MAX_ID + 1})
    assert response.status_code == 400, response.text
    assert f"{MAX_ID + 1} is beyond the 64-bit integers" in response.json()["detail"]
    assert server.snapshot() == before


def test_integers_beyond_the_database_in_processes_filters_and_pages_are_400s(server, records, as_alice):
    client = client_with(server)
    before = server.contents()
    for body in ({"pipeline": 2**63, "display_name": "X", "inputs": [1]},
                 {"pipeline": 2, "display_name": "X", "inputs": [records.product["id"], 2**63]}):
        response = client.post(f"{API}/processes/", headers=as_alice, json=body)
        assert response.status_code == 400 and "beyond the 64-bit integers" in response.json()["detail"]
    form = client.post(f"{API}/processes/", headers=as_alice,
                       data={"pipeline": "2", "display_name": "X", "inputs": f"[{records.product['id']}, {10**25}]"})
    assert form.status_code == 400 and "beyond the 64-bit integers" in form.json()["detail"]
    for query in (f"page={2**63}", f"page={10**18 - 1}", f"page_size={2**63}", f"id={2**63}", "id=" + "9" * 5000,
                  f"id={MAX_ID + 1}", f"product_type={MAX_ID + 1}", f"user=1,{10**19}",
                  f"page={2**63 // 1000 + 2}&page_size=1000"):
        response = client.get(f"{API}/products/?{query}", headers=as_alice)
        assert response.status_code == 400, f"{query[:40]}: {response.text}"
        read = client.get(f"{API}/products/{records.product['id']}/read_data/?{query}", headers=as_alice)
        assert read.status_code == 400, f"read_data {query[:40]}: {read.text}"
    upload = client.post(f"{API}/product-files/", headers=as_alice, data={"product": "9" * 30},
                         files={"file": ("notes.txt", b"notes")})
    assert upload.status_code in (400, 404), upload.text
    assert server.contents() == before


def test_the_registry_refuses_ids_no_database_column_holds(server, records):
    """Ids also reach the registry from other records and from Python callers, not only from checked paths."""
    alice = server.registry_user("alice")
    registry = server.context.registry
    for call in (lambda: registry.get_product(alice, 2**63), lambda: registry.get_user(-(2**64)),
                 lambda: registry.get_release(alice, 10**20),
                 lambda: registry.list_products(alice, ProductFilter(owner=(2**70,))),
                 lambda: registry.list_products(alice, ProductFilter(release=(MAX_ID + 1,)))):
        with pytest.raises(InvalidInput, match=f"ids are integers up to {MAX_ID}"):
            call()
    with pytest.raises(InvalidInput, match="product id must be a non-negative integer up to"):
        registry.list_products(alice, ProductFilter(ids=(2**64,)))


# Search terms


def test_a_query_with_thousands_of_words_or_values_is_a_400(server, records, as_alice):
    words = " ".join(f"word{index}" for index in range(5000))
    limit = DEFAULTS.search_terms_limit
    for query in (f"product_name={words}", f"uploaded_by__or={words}", "id=" + ",".join(["1"] * 5000),
                  "product_type=" + ",".join(["2"] * (limit + 1)),
                  "&".join(f"display_name=n{index}" for index in range(limit + 1))):
        response = server.client.get(f"{API}/products/?{query}", headers=as_alice)
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == (f"the query filters by more than {limit} values and words; narrow it "
                                             "down (the limit is PZ_SEARCH_TERMS_LIMIT)")
    page = server.client.get(f"{UI}/products/user/?search=x&product_type={','.join(['1'] * 5000)}", headers=as_alice)
    assert page.status_code == 400 and "narrow it down" in page.text
    at_limit = " ".join(["desi"] * limit)
    assert server.client.get(f"{API}/products/?product_name={at_limit}", headers=as_alice).json()["count"] == 1


def test_a_search_term_longer_than_any_name_is_a_400(server, records, as_alice):
    for query in (f"search={'desi ' * 1000}", f"product_name={'d' * 256}", f"display_name={'n' * 300}"):
        response = server.client.get(f"{API}/products/?{query}", headers=as_alice)
        assert response.status_code == 400 and "characters; the limit is 255" in response.json()["detail"]
    assert server.client.get(f"{API}/products/?search=DESI%20spec", headers=as_alice).json()["count"] == 1


# Malformed JSON

MALFORMED = {
    "deep-nesting": (b'{"display_name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests deeper than 32 levels"),
    "nesting-past-the-depth": (json.dumps({"display_name": "X", "product_type": 1,
                                           "description": json.loads("[" * 40 + "]" * 40)}).encode(),
                               f"nests deeper than {MAX_JSON_DEPTH} levels"),
    "5000-digit-number": (b'{"display_name": "X", "product_type": ' + b"7" * 5000 + b"}",
                          "beyond the 64-bit integers"),
    "5000-digit-float": (b'{"display_name": "X", "product_type": 1, "release_year": 1' + b"0" * 5000 + b".5}",
                         "is too large"),
    "lone-surrogate": (b'{"display_name": "\\ud800", "product_type": 1}', "lone surrogate"),
    "lone-surrogate-key": (b'{"display_name": "X", "product_type": 1, "\\udfff": 1}', "lone surrogate"),
    "invalid-utf8": (b'{"display_name": "\xff\xfe caf\xe9", "product_type": 1}', "not valid JSON"),
    "nan": (b'{"display_name": "X", "product_type": NaN}', "NaN is not a JSON number"),
    "infinity": (b'{"display_name": "X", "product_type": 1, "release_year": -Infinity}', "-Infinity is not"),
    "truncated": (b'{"display_name": "X", "product_type', "not valid JSON"),
    "not-an-object": (b'["display_name"]', "must be a JSON object"),
}


@BEFORE_THE_DATABASE
@pytest.mark.parametrize("body, problem", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_json_is_a_400_that_says_what_is_wrong(server, as_alice, body, problem):
    product = create_product(server, as_alice)
    client = client_with(server)
    before = server.snapshot()
    for method, url in (("POST", f"{API}/products/"), ("PATCH", f"{API}/products/{product['id']}/"),
                        ("POST", f"{API}/processes/")):
        response = client.request(method, url, headers={**as_alice, "Content-Type": "application/json"},
                                  content=body)
        assert response.status_code == 400, f"{method} {url}: {response.text}"
        assert problem in response.json()["detail"], response.text
    assert server.snapshot() == before


@BEFORE_THE_DATABASE
def test_malformed_json_in_a_form_field_is_a_400(server, records, as_alice):
    client = client_with(server)
    before = server.contents()
    inputs = [records.product["id"]]
    for used_config, problem in (("[" * 50_000, "nests deeper"), ('{"param": ' + "1" * 5000 + "}", "64-bit"),
                                 ('{"param": {"combine_type": "\\ud800"}}', "lone surrogate")):
        response = client.post(f"{API}/processes/", headers=as_alice,
                               data={"pipeline": "2", "display_name": "X", "inputs": json.dumps(inputs),
                                     "used_config": used_config})
        assert response.status_code == 400 and problem in response.json()["detail"], response.text
    assert server.contents() == before


# Hand-made validation reports

HAND_MADE_METRICS = {
    "wrong-types": json.dumps({
        "title": 42,
        "metrics": {"n_objects": "many", "primary": ["zmode"], "cde_loss": {"x": 1},
                    "point": {"zmode": {"sigma_nmad": "NaN", "bias": [1], "n_objects": True}, "zmean": "x"},
                    "pit": [1, 2], "nz": {"mean_z_true": {"a": 1}}, "by_magnitude": {"low": 1},
                    "by_redshift": [1, "x", {"low": "a", "high": 10**30, "outlier_rate": "2%"}]},
        "validation": {"suite": "x"},
        "provenance": "text",
    }),
    "missing-keys": "{}",
    "nan-strings": json.dumps({"metrics": {"cde_loss": "NaN", "pit": {"ks": "nan"},
                                           "point": {"zmode": {"sigma_nmad": "Infinity", "outlier_rate": "-inf"}}}}),
    "nan-literals": '{"metrics": {"cde_loss": NaN, "n_objects": Infinity, "point": {"zmode": {"bias": -Infinity}}}}',
    "huge-arrays": json.dumps({
        "metrics": {"by_magnitude": [{"low": index, "high": index + 1, "n_objects": index} for index in range(50_000)],
                    "point": {f"estimate{index}": {"bias": 0.1} for index in range(5_000)},
                    "pit": {"histogram": list(range(100_000))}},
        "validation": [{"suite": "s", "success": "yes", "failures": [{"message": "m"}] * 10_000}],
    }),
    "huge-numbers": '{"metrics": {"n_objects": 1' + "0" * 400 + ', "point": {"zmode": {"outlier_rate": 1e300}}}}',
    "lone-surrogates": '{"title": "\\ud800", "metrics": {"primary": "\\udfff", "point": {"\\ud800": {"bias": 1}}}}',
    "deep-provenance": '{"provenance": ' + "[" * 500 + "]" * 500 + "}",
    "long-texts": json.dumps({"title": "t" * 100_000, "validation": [{"suite": "s" * 50_000, "failures": 3}]}),
}


@pytest.fixture
def publish_metrics(server, as_alice, tmp_path):
    """Publish a validation_results product of alice's from hand-made files, as anyone may upload one."""
    alice = server.registry_user("alice")
    files = ProductFiles(server.context.registry, server.context.storage, upload_limit_bytes=32 * MiB)
    published = []

    def publish(metrics: bytes, checks: bytes | None = None) -> int:
        folder = tmp_path / f"report{len(published)}"
        folder.mkdir()
        (folder / "metrics.json").write_bytes(metrics)
        if checks is not None:
            (folder / "gx_results.json").write_bytes(checks)
        published.append(publish_report(files, alice, folder, display_name=f"Hand-made report {len(published)}"))
        return published[-1].id

    return publish


@BEFORE_THE_DATABASE
@pytest.mark.parametrize("metrics", list(HAND_MADE_METRICS.values()), ids=list(HAND_MADE_METRICS))
def test_a_hand_made_metrics_file_renders_what_is_valid_and_says_what_is_not(server, as_alice, publish_metrics,
                                                                            metrics):
    product_id = publish_metrics(metrics.encode("utf-8", "surrogatepass"))
    page = client_with(server).get(f"{UI}/products/{product_id}/report/", headers=as_alice)
    assert page.status_code == 200, page.text[:2000]
    assert "Validation report" in page.text and "Traceback" not in page.text
    assert len(page.text) < 4 * MiB
    if metrics != "{}":
        assert 'id="report-notes"' in page.text


@BEFORE_THE_DATABASE
def test_a_hand_made_report_shows_its_valid_values_beside_the_notes(server, as_alice, publish_metrics):
    product_id = publish_metrics(HAND_MADE_METRICS["wrong-types"].encode(), checks=b'{"not": "a list"}')
    page = client_with(server).get(f"{UI}/products/{product_id}/report/", headers=as_alice).text
    assert "metrics.n_objects: &#39;many&#39; is not a number" in page
    assert "metrics.point.zmode.sigma_nmad: &#39;NaN&#39; is not a number" in page
    assert "metrics.by_redshift[2].high: 1000000000000000000000000000000 is not a number" in page
    assert "gx_results.json: gx_results.json of product" in page and "holds a JSON dict, not the list" in page
    assert "<code>zmode</code>" in page and "<code>zmean</code>" in page  # the estimates, with dashes for values


@BEFORE_THE_DATABASE
def test_a_huge_list_in_a_report_is_cut(server, as_alice, publish_metrics):
    product_id = publish_metrics(HAND_MADE_METRICS["huge-arrays"].encode())
    page = client_with(server).get(f"{UI}/products/{product_id}/report/", headers=as_alice).text
    assert f"metrics.by_magnitude: 50000 entries; the first {REPORT_ROWS} are shown" in page
    assert page.count('<tr class="failures">') == 1 and page.count("<li>m</li>") == REPORT_ROWS


@BEFORE_THE_DATABASE
@pytest.mark.parametrize(
    "metrics, problem",
    [(b"{not json", "is not valid JSON"), (b"[1, 2]", "holds a JSON list, not the dict"),
     (b'{"n": ' + b"9" * 5000 + b"}", "is not valid JSON"), (b"[" * 100_000, "nests too deeply"),
     (b'{"title": "\xff"}', "is not valid JSON"),
     (b'{"title": "' + b"x" * REPORT_JSON_LIMIT_BYTES + b'"}', f"is at most {REPORT_JSON_LIMIT_BYTES}")],
    ids=["not-json", "a-list", "5000-digits", "deep", "not-utf8", "too-large"],
)
def test_a_metrics_file_that_is_no_report_is_a_400_page(server, as_alice, publish_metrics, metrics, problem):
    product_id = publish_metrics(metrics)
    page = client_with(server).get(f"{UI}/products/{product_id}/report/", headers=as_alice)
    assert page.status_code == 400 and problem in page.text
    assert page.headers["content-type"].startswith("text/html")


# The last resort


@BEFORE_THE_DATABASE
def test_an_unexpected_error_is_a_plain_500_and_its_trace_goes_to_the_log(server, records, as_alice, caplog,
                                                                         monkeypatch):
    def broken_state(dag_id: str, run_id: str) -> str:
        raise RuntimeError(f"lost connection to /srv/airflow/secret.db while asking for {run_id}")

    monkeypatch.setattr(server.dag_runs, "state", broken_state)
    client = client_with(server)
    with caplog.at_level(logging.ERROR, logger="pzserver_app.app"):
        response = client.get(f"{API}/processes/{records.process['id']}/", headers=as_alice)
    assert response.status_code == 500
    assert response.json() == {"detail": "the server failed to answer this request; the error is in its log"}
    [logged] = [record for record in caplog.records if record.name == "pzserver_app.app"]
    assert logged.exc_info and "/srv/airflow/secret.db" in str(logged.exc_info[1])
    assert f"GET /pzserver/api/processes/{records.process['id']}/" in logged.getMessage()

