"""Races over HTTP: the PZ Server app served by a real uvicorn server in a thread (its routes run in uvicorn's
worker threads, as in the api-server), with many clients at once on one product. Main-file uploads store exactly
one file; PATCH, DELETE and uploads racing a DELETE answer 2xx, 404 or 409, never a 5xx.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from api_calls import API, specz_table, table_bytes
from fastapi import FastAPI

RACERS = 8
"""Requests sent together."""

ROUNDS = 4
"""Races of PATCH, DELETE and upload on fresh products."""

ANSWERS_TO_A_RACE = frozenset({200, 201, 204, 404, 409})
"""What a request that lost or won a race may answer."""


@pytest.fixture
def api(server) -> Iterator[httpx.Client]:
    """A client of ``server``'s app served by uvicorn on a free local port, mounted at /pzserver as in Airflow."""
    airflow = FastAPI()
    airflow.mount("/pzserver", server.app)
    uvicorn_server = uvicorn.Server(uvicorn.Config(airflow, host="127.0.0.1", port=0, log_level="warning"))
    serving = threading.Thread(target=uvicorn_server.run, name="uvicorn", daemon=True)
    serving.start()
    while not uvicorn_server.started:
        assert serving.is_alive(), "uvicorn stopped before serving"
        threading.Event().wait(0.01)
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}{API}", timeout=60) as client:
        yield client
    uvicorn_server.should_exit = True
    serving.join()


def _race(requests: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Send every request from its own thread, released together."""
    barrier = threading.Barrier(len(requests))

    def send(request: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return request()

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def _new_product(api: httpx.Client, headers: dict[str, str], name: str) -> int:
    body = {"display_name": name, "product_type": 1, "status": 0}
    created = api.post("/products/", headers=headers, json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _upload(api: httpx.Client, headers: dict[str, str], product_id: int, name: str, role: int = 0) -> httpx.Response:
    content = table_bytes(specz_table(5), "csv") if role == 0 else b"notes"
    return api.post(
        "/product-files/",
        headers=headers,
        data={"product": str(product_id), "role": str(role), "type": "text/csv"},
        files={"file": (name, content)},
    )


def test_concurrent_main_file_uploads_store_exactly_one(server, api: httpx.Client, as_alice) -> None:
    product_id = _new_product(api, as_alice, "DESI spec-z")

    answers = _race([
        lambda racer=racer: _upload(api, as_alice, product_id, f"specz_{racer}.csv") for racer in range(RACERS)
    ])

    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {201: 1, 409: RACERS - 1}, [answer.text for answer in answers]
    files = api.get(f"/product-files/?product_id={product_id}", headers=as_alice).json()["results"]
    [stored] = [answer.json() for answer in answers if answer.status_code == 201]
    assert [item["id"] for item in files] == [stored["id"]]
    keys = [item.key for item in server.context.storage.list_objects()]
    # The stored file, its table summary and its preview: nothing of the refused uploads.
    assert len(keys) == 3 and all(stored["name"] in key or key.endswith((".table.json", ".preview.parquet"))
                                  for key in keys), keys


def test_changes_and_deletes_racing_on_one_product_never_answer_a_server_error(api: httpx.Client, as_alice) -> None:
    answers: list[httpx.Response] = []
    for round_number in range(ROUNDS):
        products = [_new_product(api, as_alice, f"Spec-z {round_number}.{pair}") for pair in range(RACERS // 4)]
        for product_id in products:
            assert _upload(api, as_alice, product_id, "specz.csv").status_code == 201
        requests: list[Callable[[], httpx.Response]] = []
        for product_id in products:
            path = f"/products/{product_id}/"
            requests += [
                lambda path=path: api.patch(path, headers=as_alice, json={"description": "changed while deleted"}),
                lambda path=path: api.delete(path, headers=as_alice),
                lambda path=path: api.delete(path, headers=as_alice),
                lambda product_id=product_id: _upload(api, as_alice, product_id, "notes.txt", role=2),
            ]

        answers += _race(requests)

        assert api.get("/products/", headers=as_alice).json()["count"] == 0
    unexpected = [(answer.request.method, answer.status_code, answer.text) for answer in answers
                  if answer.status_code not in ANSWERS_TO_A_RACE]
    assert unexpected == []
    assert Counter(answer.request.method for answer in answers if answer.status_code == 204) == {
        "DELETE": ROUNDS * RACERS // 4
    }
