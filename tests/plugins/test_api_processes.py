"""Pipelines and processes over HTTP: what the client's Training Set Maker and Combine Redshift Catalogs read
and send; a started process records its output product."""

from __future__ import annotations

import json

from api_calls import API, create_product, published_specz


def test_pipelines_describe_their_inputs_outputs_and_defaults(server, as_alice):
    found = server.client.get(f"{API}/pipelines/?name=training_set_maker", headers=as_alice).json()
    assert found["count"] == 1
    tsm = found["results"][0]
    types = {item["id"]: item["name"] for item in
             server.client.get(f"{API}/product-types/", headers=as_alice).json()["results"]}
    assert [types[type_id] for type_id in tsm["product_types_accepted"]] == ["redshift_catalog"]
    assert types[tsm["output_product_type"]] == "training_set"
    assert tsm["system_config"]["param"]["crossmatch"]["radius_arcsec"] == 1.0
    assert server.client.get(f"{API}/pipelines/?name=combine_redshift_dedup", headers=as_alice).json()["count"] == 1
    assert server.client.get(f"{API}/pipelines/?name=nope", headers=as_alice).json()["count"] == 0


def test_a_process_records_its_output_product_and_can_be_stopped(server, as_alice, as_bob):
    specz = published_specz(server, as_alice)
    body = {"pipeline": 1, "used_config": json.dumps({"param": {"flux_type": "psf"}}), "display_name": "My TS",
            "inputs": [specz["id"]], "release": None}
    started = server.client.post(f"{API}/processes/", headers=as_alice, json=body)
    assert started.status_code == 201, started.text
    process = started.json()
    assert process["status"] == "Pending" and process["used_config"]["param"]["flux_type"] == "psf"
    assert process["used_config"]["param"]["dereddening"] == "sfd"
    output = server.client.get(f"{API}/products/{process['upload']}/", headers=as_alice).json()
    assert output["display_name"] == "My TS" and output["product_type_internal_name"] == "training_set"
    assert output["status"] == 3
    assert server.client.get(f"{API}/processes/{process['id']}/", headers=as_bob).status_code == 404
    stopped = server.client.get(f"{API}/processes/{process['id']}/stop/", headers=as_alice).json()
    assert stopped["status"] == "Stopped"
    again = server.client.get(f"{API}/processes/{process['id']}/stop/", headers=as_alice)
    assert again.status_code == 400 and "already ended" in again.json()["detail"]


def test_a_combine_request_keeps_its_flags_translation_file(server, as_alice):
    first, second = published_specz(server, as_alice, "Cat A"), published_specz(server, as_alice, "Cat B")
    started = server.client.post(
        f"{API}/processes/",
        headers=as_alice,
        data={"pipeline": "2", "display_name": "Combined", "inputs": [str(first["id"]), str(second["id"])],
              "used_config": json.dumps({"param": {}})},
        files={"flags_translation_file": ("flags.yaml", b"vvds: {4: 4}\n")},
    )
    assert started.status_code == 201, started.text
    files = server.client.get(f"{API}/product-files/?product_id={started.json()['upload']}", headers=as_alice)
    assert [(item["name"], item["role_name"]) for item in files.json()["results"]] == [("flags.yaml", "Auxiliary")]


def test_bad_process_requests_are_refused_and_nothing_is_stored(server, as_alice):
    training_set = create_product(server, as_alice, "A training set", product_type="training_set")
    specz = published_specz(server, as_alice)
    before = server.snapshot()
    cases = [
        ({"pipeline": 1, "display_name": "x", "inputs": [training_set["id"]]}, 400, "reads redshift_catalog"),
        ({"pipeline": 1, "display_name": "x", "inputs": []}, 400, "needs at least one input"),
        ({"pipeline": 9, "display_name": "x", "inputs": [specz["id"]]}, 404, "pipeline 9 does not exist"),
        ({"pipeline": 1, "display_name": "x", "inputs": [specz["id"]], "used_config": "{bad"}, 400, "not valid JSON"),
        ({"pipeline": 1, "display_name": "DESI spec-z", "inputs": [specz["id"]]}, 409, "already have a product"),
        ({"pipeline": 1, "display_name": "x", "inputs": [99999]}, 400, "does not exist or is not visible"),
    ]
    for body, status, problem in cases:
        response = server.client.post(f"{API}/processes/", headers=as_alice, json=body)
        assert response.status_code == status, (body, response.text)
        assert problem in response.json()["detail"]
    assert server.snapshot() == before
