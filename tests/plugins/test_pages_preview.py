"""The product page's paged table preview, in-process: pages of 25 rows read from the preview file kept at
registration (never the main file), previous/next links, a page out of range, a product without a table, and the
preview file's size bound."""

from __future__ import annotations

import html
import re

import numpy as np
import pyarrow as pa
from api_calls import API, create_product, table_bytes, upload

from pzlib.registry import registration

UI = "/pzserver/ui"


def big_specz(rows: int) -> pa.Table:
    index = np.arange(rows)
    return pa.table({"id": index, "ra": 10.0 + index * 1e-3, "dec": -5.0 - index * 1e-3, "z": 0.1 + index / rows,
                     "label": [f"row {number}" for number in index]})


def preview_ids(page: str) -> list[int]:
    return [int(cell) for cell in re.findall(r"<tr><td>(\d+)</td>", page)]


def link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


def login_alice(server) -> None:
    server.client.cookies.set("_token", server.logins.login("alice", is_admin=False))


def test_the_preview_pages_through_the_first_thousand_rows_without_reading_the_main_file(server, as_alice):
    product = create_product(server, as_alice, "Big spec-z")
    sent = upload(server, as_alice, product["id"], "big.parquet", table_bytes(big_specz(1_234), "parquet"))
    assert sent.status_code == 201, sent.text
    alice = server.registry_user("alice")
    # The page never reads the main file: take it away from the store behind the registry's back.
    main = server.context.files.main_file(alice, product["id"]).file
    server.context.files.storage.delete(main.storage_key)
    login_alice(server)
    url = f"{UI}/products/{product['id']}/"

    first = server.client.get(url)
    assert first.status_code == 200, first.text
    assert preview_ids(first.text) == list(range(25))
    assert "rows 1–25 of the first 1,000 (the table has 1,234)" in first.text
    assert link(first.text, "prev") is None and "Page 1 of 40" in first.text
    second = server.client.get(link(first.text, "next"))
    assert preview_ids(second.text) == list(range(25, 50))
    assert link(second.text, "prev").endswith("?preview_page=1#preview-section")

    last = server.client.get(url, params={"preview_page": "40"})
    assert preview_ids(last.text) == list(range(975, 1000)) and link(last.text, "next") is None
    for asked, shown, ids in (("41", 40, range(975, 1000)), ("999999", 40, range(975, 1000)), ("0", 1, range(25)),
                              ("-3", 1, range(25)), ("two", 1, range(25))):
        response = server.client.get(url, params={"preview_page": asked})
        assert response.status_code == 200, response.text
        assert preview_ids(response.text) == list(ids), asked
        assert f"There is no preview page &#39;{asked}&#39;; showing page {shown} of 40." in response.text


def test_a_product_without_a_table_has_no_preview(server, as_alice):
    bare = create_product(server, as_alice, "No file yet")
    notes = create_product(server, as_alice, "Notes", product_type="validation_results")
    assert upload(server, as_alice, notes["id"], "notes.txt", b"just words\n").status_code == 201
    login_alice(server)
    for product in (bare, notes):
        page = server.client.get(f"{UI}/products/{product['id']}/", params={"preview_page": "3"})
        assert page.status_code == 200, page.text
        assert 'id="preview-section"' not in page.text and "There is no preview page" not in page.text
    assert server.client.get(f"{API}/products/{notes['id']}/", headers=as_alice).status_code == 200


def test_a_wide_tables_preview_file_is_cut_to_its_byte_bound(server, as_alice, monkeypatch):
    monkeypatch.setattr(registration, "PREVIEW_FILE_BYTES", 20_000)
    product = create_product(server, as_alice, "Wide-ish spec-z")
    assert upload(server, as_alice, product["id"], "wide.csv", table_bytes(big_specz(1_000), "csv")).status_code == 201
    alice = server.registry_user("alice")
    summary = server.context.files.main_file(alice, product["id"]).table
    assert 1 <= summary.preview_file_rows < 1_000 and summary.n_rows == 1_000
    preview = server.context.files.preview_rows(alice, product["id"], offset=0, limit=10_000)
    assert preview.preview_rows == len(preview.rows) == summary.preview_file_rows
    assert [row["id"] for row in preview.rows] == list(range(summary.preview_file_rows))
