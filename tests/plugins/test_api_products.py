"""Products over HTTP, on SQLite and Postgres: the client's upload flow, listing with LIneA's filters, metadata,
rows, ownership and release visibility, and 4xx answers to bad input that change nothing stored."""

from __future__ import annotations

import pytest
from api_calls import API, create_product, published_specz, specz_table, table_bytes, upload


def test_the_clients_upload_flow_publishes_a_catalog(server, as_alice):
    product = create_product(server, as_alice)
    assert product["internal_name"] == f"{product['id']}_desi_specz"
    assert product["status"] == 0 and product["is_owner"] and product["uploaded_by"] == "alice"

    stored = upload(server, as_alice, product["id"], "specz.csv", table_bytes(specz_table(), "csv"))
    assert stored.status_code == 201, stored.text
    assert stored.json() | {"n_rows": 25, "role_name": "Main", "extension": ".csv"} == stored.json()

    registered = server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice).json()
    assert [column["column_name"] for column in registered["columns"]] == ["id", "ra", "dec", "z", "z_err"]

    refused = server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice, data={"status": "1"})
    assert refused.status_code == 406
    assert refused.json()["missing_columns"] == ["RA", "Dec", "z"]
    assert "RA, Dec, z" in refused.json()["detail"]

    published = published_specz(server, as_alice, "Another spec-z")
    assert published["status"] == 1


def test_registering_again_keeps_the_associations(server, as_alice):
    product = published_specz(server, as_alice)
    again = server.client.get(f"{API}/products/{product['id']}/registry/", headers=as_alice).json()
    assert {column["column_name"]: column["alias"] for column in again["columns"]}["ra"] == "RA"


def test_main_file_info_describes_the_table_as_the_client_reads_it(server, as_alice):
    product = published_specz(server, as_alice)
    info = server.client.get(f"{API}/products/{product['id']}/main_file_info/", headers=as_alice).json()
    main_file = info["main_file"]
    assert info["id"] == product["id"] and info["product_type_internal_name"] == "redshift_catalog"
    assert main_file["name"] == "specz.csv" and main_file["n_rows"] == 25 and main_file["is_directory"] is False
    assert main_file["delimiter"] == "," and main_file["has_header"] is True
    assert main_file["columns"] == ["id", "ra", "dec", "z", "z_err"]
    assert {column["column_name"]: column["ucd"] for column in main_file["associated_columns"]}["z"] == "src.redshift"
    assert main_file["preview"][0] == {"id": 0, "ra": 10.0, "dec": -5.0, "z": 0.1, "z_err": 0.001}
    assert len(main_file["preview"]) == 10


def test_read_data_pages_through_the_table(server, as_alice):
    product = published_specz(server, as_alice)
    page = server.client.get(f"{API}/products/{product['id']}/read_data/?page=3&page_size=10", headers=as_alice)
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["count"] == 25 and body["columns"] == ["id", "ra", "dec", "z", "z_err"]
    assert [row["id"] for row in body["results"]] == list(range(20, 25))
    assert body["next"] is None and "page=2" in body["previous"]


def test_listing_filters_like_lineas_server(server, as_alice, as_bob):
    published_specz(server, as_alice, "DESI DR1 spec-z")
    published_specz(server, as_bob, "VVDS deep")
    create_product(server, as_alice, "Still registering")

    def names(query: str) -> list[str]:
        response = server.client.get(f"{API}//products/?{query}", headers=as_alice)  # the client's double slash
        assert response.status_code == 200, response.text
        return sorted(product["display_name"] for product in response.json()["results"])

    assert names("status=1") == ["DESI DR1 spec-z", "VVDS deep"]
    assert names("status=1&product_type_name=redshift_catalog") == ["DESI DR1 spec-z", "VVDS deep"]
    assert names("status=1&uploaded_by=bob") == ["VVDS deep"]
    assert names("status=1&product_name=desi,dr1") == ["DESI DR1 spec-z"]
    assert names("status=1&product_name__or=desi,vvds") == ["DESI DR1 spec-z", "VVDS deep"]
    assert names("status=1&release__isnull=true&official_product=false") == ["DESI DR1 spec-z", "VVDS deep"]
    assert names("search=still") == ["Still registering"]
    assert names("internal_name=1_desi_dr1_specz") == ["DESI DR1 spec-z"]
    ordered = server.client.get(f"{API}/products/?ordering=display_name&page_size=2", headers=as_alice).json()
    assert ordered["count"] == 3 and [item["display_name"] for item in ordered["results"]] == [
        "DESI DR1 spec-z", "Still registering"]
    assert ordered["next"].endswith("page=2")


def test_options_lists_every_filter_the_client_may_send(server, as_alice):
    options = server.client.options(f"{API}//products/", headers=as_alice).json()
    names = {item["name"] for item in options["filter_classes"]}
    assert {"product_type_name", "release_name", "release_name__or", "internal_name", "status"} <= names
    assert "search" in options and "-created_at" in options["ordering"]


@pytest.mark.parametrize(
    "query, problem",
    [
        ("status=abc", "status must be a non-negative integer"),
        ("page_size=100000", "page_size must be between 1 and 1000"),
        ("page=0", "page must be 1 or more"),
        ("ordering=password", "cannot order products by 'password'"),
        ("official_product=maybe", "official_product must be true or false"),
        ("user_id=1", "unknown query parameter(s) user_id"),
        ("product_name=%00", "contains a NUL character"),
        ("id=1;DROP TABLE products", "id must be a non-negative integer"),
    ],
)
def test_hostile_filter_values_are_refused_with_a_clear_400(server, as_alice, query, problem):
    published_specz(server, as_alice)
    before = server.snapshot()
    response = server.client.get(f"{API}/products/?{query}", headers=as_alice)
    assert response.status_code == 400, response.text
    assert problem in response.json()["detail"]
    assert server.snapshot() == before


def test_like_wildcards_in_filters_match_themselves_only(server, as_alice):
    published_specz(server, as_alice, "spec_z 100%")
    published_specz(server, as_alice, "specXz")
    response = server.client.get(f"{API}/products/?product_name=spec_z&product_name=100%25", headers=as_alice)
    assert [item["display_name"] for item in response.json()["results"]] == ["spec_z 100%"]


def test_another_users_product_cannot_be_changed_or_deleted(server, as_alice, as_bob):
    product = published_specz(server, as_alice)
    before = server.snapshot()
    product_url = f"{API}/products/{product['id']}/"
    assert server.client.get(product_url, headers=as_bob).json()["can_update"] is False
    assert server.client.patch(product_url, headers=as_bob, data={"description": "mine now"}).status_code == 403
    assert server.client.delete(product_url, headers=as_bob).status_code == 403
    contents = server.client.get(f"{API}/product-contents/?product={product['id']}", headers=as_bob).json()
    content_url = f"{API}/product-contents/{contents['results'][0]['id']}/"
    assert server.client.patch(content_url, headers=as_bob, data={"alias": "RA"}).status_code == 403
    files = server.client.get(f"{API}/product-files/?product_id={product['id']}", headers=as_bob).json()
    assert files["results"][0]["can_delete"] is False
    assert server.client.delete(f"{API}/product-files/{files['results'][0]['id']}/", headers=as_bob).status_code == 403
    other_file = upload(server, as_bob, product["id"], "mine.txt", b"hello", role=2)
    assert other_file.status_code == 403
    assert server.snapshot() == before


def test_owners_and_admins_change_and_delete(server, as_alice, as_admin):
    product = published_specz(server, as_alice)
    product_url = f"{API}/products/{product['id']}/"
    changed = server.client.patch(product_url, headers=as_admin, data={"description": "Checked by an admin"})
    assert changed.status_code == 200 and changed.json()["description"] == "Checked by an admin"
    assert server.client.delete(product_url, headers=as_alice).status_code == 204
    assert server.client.get(product_url, headers=as_alice).status_code == 404
    assert server.snapshot()[1] == []  # no file or archive left in storage


def test_only_admins_make_official_products(server, as_alice, as_admin):
    refused = server.client.post(f"{API}/products/", headers=as_alice,
                                 json={"display_name": "Rubin", "product_type": 1, "official_product": True})
    assert refused.status_code == 403
    product = published_specz(server, as_alice)
    assert server.client.patch(f"{API}/products/{product['id']}/", headers=as_alice,
                               data={"official_product": "true"}).status_code == 403
    official = server.client.patch(f"{API}/products/{product['id']}/", headers=as_admin,
                                   data={"official_product": "true"})
    assert official.status_code == 200 and official.json()["official_product"] is True


def test_release_access_groups_limit_who_sees_products(server, as_alice, as_bob):
    server.context.registry.create_release("dp1", "Data Preview 1", access_groups=["lsst"])
    release_id = server.context.registry.get_release(server.registry_user("alice"), "dp1").id
    product = published_specz(server, as_alice, release=release_id)
    assert product["release_name"] == "Data Preview 1"
    assert [item["name"] for item in server.client.get(f"{API}/releases/", headers=as_alice).json()["results"]] == [
        "dp1"]
    assert server.client.get(f"{API}/releases/", headers=as_bob).json()["count"] == 0
    assert server.client.get(f"{API}/products/{product['id']}/", headers=as_bob).status_code == 404
    assert server.client.get(f"{API}/products/?release=dp1", headers=as_bob).json()["count"] == 0
    assert server.client.get(f"{API}/products/?release_name=preview", headers=as_alice).json()["count"] == 1
    assert server.client.get(f"{API}/products/{product['id']}/download/file/", headers=as_bob).status_code == 404


def test_duplicate_product_names_are_refused(server, as_alice):
    create_product(server, as_alice, "My catalog")
    before = server.snapshot()
    response = server.client.post(f"{API}/products/", headers=as_alice,
                                  json={"display_name": "my CATALOG", "product_type": 1})
    assert response.status_code == 409
    assert "already have a product named" in response.json()["detail"]
    assert server.snapshot() == before


@pytest.mark.parametrize(
    "body, status, problem",
    [
        ({"product_type": 1}, 400, "display_name is required"),
        ({"display_name": "x", "product_type": 99}, 400, "unknown product type 99"),
        ({"display_name": "x", "product_type": "redshift_catalog", "status": 1}, 400, "starts with status 0"),
        ({"display_name": "x", "product_type": 1, "owner": "bob"}, 400, "unknown field(s) owner"),
        ({"display_name": "x", "product_type": 1, "pz_code": "bpz"}, 400, "pz_code must be empty"),
        ({"display_name": "x", "product_type": 1, "release": "nope"}, 400, "release 'nope' does not exist"),
    ],
)
def test_bad_product_fields_are_refused(server, as_alice, body, status, problem):
    before = server.snapshot()
    response = server.client.post(f"{API}/products/", headers=as_alice, json=body)
    assert response.status_code == status, response.text
    assert problem in response.json()["detail"]
    assert server.snapshot() == before


def test_a_body_that_is_not_json_is_refused(server, as_alice):
    response = server.client.post(f"{API}/products/", headers={**as_alice, "Content-Type": "application/json"},
                                  content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


def test_reference_data_routes(server, as_alice):
    types = server.client.get(f"{API}/product-types/?ordering=order", headers=as_alice).json()["results"]
    assert [item["name"] for item in types][:2] == ["redshift_catalog", "training_set"]
    one = server.client.get(f"{API}/product-types/?name=training_set", headers=as_alice).json()
    assert one["count"] == 1 and one["results"][0]["display_name"] == "Training Set"
    assert server.client.get(f"{API}/product-types/{types[0]['id']}/", headers=as_alice).json()["order"] == 1
    users = server.client.get(f"{API}/users/", headers=as_alice).json()["results"]
    assert users == [{"id": users[0]["id"], "username": "alice", "first_name": "", "last_name": "",
                      "display_name": "alice"}]
    me = server.client.get(f"{API}/users/me/", headers=as_alice).json()
    assert me["username"] == "alice" and me["is_admin"] is False and me["groups"] == ["lsst"]
    assert server.client.get(f"{API}/product-types/abc/", headers=as_alice).status_code == 400
    assert server.client.get(f"{API}/product-types/999/", headers=as_alice).status_code == 404
