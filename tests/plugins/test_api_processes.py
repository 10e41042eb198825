"""Pipelines and processes over HTTP: what the client's Training Set Maker and Combine Redshift Catalogs read
and send; a request is checked, records its output product and triggers its DAG (a stand-in for Airflow's DAG
runs here; test_pzserver_client.py runs the real DAGs), and reading a process follows its run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from api_calls import API, create_product, published_compiled_specz, published_specz, specz_table, table_bytes

from pzlib.crossmatch import CrcConfig
from pzlib.crossmatch.crc import combine_catalogs
from pzlib.registry import InvalidInput
from pzlib.registry.process_runs import request_params


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


OBJECT_COLUMN_MAP = {"value_template": "{band}_gaap1p0Flux", "error_template": "{band}_gaap1p0FluxErr",
                     "kind": "flux", "id_column": "objectId", "ra_column": "ra", "dec_column": "decl",
                     "ebv_column": "ebv"}


@pytest.fixture
def release(server):
    """A public release with its object catalog registered (the path is only recorded: no run reads it here)."""
    return server.context.registry.create_release(
        "dc2-sample", "DC2 sample", is_public=True, object_catalog="/data/dc2-sample/objects",
        object_column_map=OBJECT_COLUMN_MAP)


def tsm_body(specz: dict, release, **param) -> dict:
    return {"pipeline": 1, "used_config": json.dumps({"param": param}), "display_name": "My TS",
            "inputs": [specz["id"]], "release": release.id if release else None}


def test_a_request_triggers_the_dag_with_a_checked_conf_and_follows_the_run(server, as_alice, as_bob, release):
    specz = published_specz(server, as_alice)
    started = server.client.post(f"{API}/processes/", headers=as_alice,
                                 json=tsm_body(specz, release, crossmatch={"radius_arcsec": 0.5}))
    assert started.status_code == 201, started.text
    process = started.json()
    assert process["status"] == "Queued" and process["used_config"]["param"]["crossmatch"]["radius_arcsec"] == 0.5
    assert process["used_config"]["param"]["dereddening"] == "sfd"
    [run] = server.dag_runs.triggered
    assert run["dag_id"] == "training_set_maker" and run["user"] == "alice"
    conf = run["conf"]
    assert conf["pzserver_process"] == process["id"] and conf["radius_arcsec"] == 0.5
    assert conf["specz_columns"] == {"ra": "ra", "dec": "dec", "z": "z"}
    assert Path(conf["specz_catalog"]).read_bytes() == table_bytes(specz_table(), "csv")
    assert conf["object_catalog"] == "/data/dc2-sample/objects" and conf["column_map"] == OBJECT_COLUMN_MAP
    assert conf["release"] == "dc2-sample" and conf["dereddening"] == "sfd" and conf["train_fraction"] == 0.7
    assert Path(conf["output_dir"]).parent.name == str(process["id"])
    output = server.client.get(f"{API}/products/{process['upload']}/", headers=as_alice).json()
    assert output["display_name"] == "My TS" and output["product_type_internal_name"] == "training_set"
    assert output["status"] == 3
    assert server.client.get(f"{API}/processes/{process['id']}/", headers=as_bob).status_code == 404

    server.dag_runs.states[run["run_id"]] = "running"
    assert server.client.get(f"{API}/processes/{process['id']}/", headers=as_alice).json()["status"] == "Running"
    stopped = server.client.get(f"{API}/processes/{process['id']}/stop/", headers=as_alice).json()
    assert stopped["status"] == "Stopped" and server.dag_runs.stopped == [run["run_id"]]
    assert server.client.get(f"{API}/products/{process['upload']}/", headers=as_alice).json()["status"] == 9
    again = server.client.get(f"{API}/processes/{process['id']}/stop/", headers=as_alice)
    assert again.status_code == 400 and "already ended" in again.json()["detail"]


@pytest.mark.parametrize("state, problem", [("failed", "failed; see its task logs"), (None, "no longer exists"),
                                            ("success", "without registering its output")])
def test_a_run_that_ends_badly_fails_its_process_and_product(server, as_alice, release, state, problem):
    specz = published_specz(server, as_alice)
    process = server.client.post(f"{API}/processes/", headers=as_alice, json=tsm_body(specz, release)).json()
    server.dag_runs.states[server.dag_runs.triggered[0]["run_id"]] = state
    followed = server.client.get(f"{API}/processes/{process['id']}/", headers=as_alice).json()
    assert followed["status"] == "Failed"
    assert problem in server.context.registry.find_process(process["id"]).error
    assert server.client.get(f"{API}/products/{process['upload']}/", headers=as_alice).json()["status"] == 9


def test_a_combine_request_uses_its_flags_translation_file(server, as_alice):
    first, second = published_specz(server, as_alice, "Cat A"), published_specz(server, as_alice, "Cat B")
    flags = b"surveys:\n  CAT A:\n    flags: {\"1\": 4}\n"
    started = server.client.post(
        f"{API}/processes/",
        headers=as_alice,
        data={"pipeline": "2", "display_name": "Combined", "inputs": [str(first["id"]), str(second["id"])],
              "used_config": json.dumps({"param": {"combine_type": "concatenate_and_remove_duplicates",
                                                   "flags_translation_file": "/home/alice/flags.yaml"}})},
        files={"flags_translation_file": ("flags.yaml", flags)},
    )
    assert started.status_code == 201, started.text
    files = server.client.get(f"{API}/product-files/?product_id={started.json()['upload']}", headers=as_alice)
    assert [(item["name"], item["role_name"]) for item in files.json()["results"]] == [("flags.yaml", "Auxiliary")]
    [run] = server.dag_runs.triggered
    conf = run["conf"]
    assert run["dag_id"] == "combine_redshift_catalogs"
    assert conf["combine_type"] == "concatenate_and_remove_duplicates"
    assert Path(conf["flag_translation_file"]).read_bytes() == flags
    assert [(entry["survey"], entry["columns"]) for entry in conf["inputs"]] == [
        ("Cat A", {"ra": "ra", "dec": "dec", "z": "z"}), ("Cat B", {"ra": "ra", "dec": "dec", "z": "z"})]


def crc_body(inputs: list[dict], **param) -> dict:
    return {"pipeline": 2, "display_name": "Combined", "inputs": [item["id"] for item in inputs],
            "used_config": json.dumps({"param": param})}


def test_a_users_own_catalog_with_a_survey_column_is_combined_row_by_row(server, as_alice):
    compiled = published_compiled_specz(server, as_alice, "my compiled spec-z", survey_column=True)
    # Its survey column names VVDS and JADES (translated) and Mine (not): the run's input check decides on Mine.
    accepted = server.client.post(f"{API}/processes/", headers=as_alice, json=crc_body([compiled]))
    assert accepted.status_code == 201, accepted.text
    started = server.client.post(f"{API}/processes/", headers=as_alice,
                                 json={**crc_body([compiled], untranslated_surveys="rank_last"),
                                       "display_name": "Combined, mine last"})
    assert started.status_code == 201, started.text
    confs = [run["conf"] for run in server.dag_runs.triggered]
    assert [conf["inputs"][0]["untranslated_surveys"] for conf in confs] == ["refuse", "rank_last"]
    [entry] = confs[1]["inputs"]
    assert (entry["survey"], entry["survey_column"]) == ("my compiled spec-z", "origin")
    assert entry["columns"] == {"ra": "ra", "dec": "dec", "z": "z", "z_flag": "quality"}
    report = combine_catalogs(CrcConfig.from_params(request_params(confs[1])))
    assert report["inputs_summary"][0]["ranked_last"] == {"Mine": 2}
    assert report["by_survey"] == {"VVDS": 2, "JADES": 2, "Mine": 2}


def test_a_catalog_without_a_translation_gets_a_choice_not_only_a_refusal(server, as_alice):
    named = published_compiled_specz(server, as_alice, "my spec-z", survey_column=False)
    before = server.snapshot()
    refused = server.client.post(f"{API}/processes/", headers=as_alice, json=crc_body([named]))
    assert refused.status_code == 400
    detail = refused.json()["detail"]
    assert detail.startswith("pipeline combine_redshift_dedup: input product ")
    assert "no flag translation for survey(s) 'my spec-z'" in detail
    assert "send a flag translation file" in detail and "untranslated_surveys to rank_last" in detail
    assert "/" not in detail  # no server path
    assert server.snapshot() == before and server.dag_runs.triggered == []
    flags = b"surveys:\n  MY SPEC-Z:\n    flags: {\"4\": 4, \"A\": 4, \"9\": 1, \"3\": 3, \"B\": 3}\n"
    translated = server.client.post(f"{API}/processes/", headers=as_alice, data=crc_body([named]),
                                    files={"flags_translation_file": ("mine.yaml", flags)})
    assert translated.status_code == 201, translated.text
    ranked = server.client.post(f"{API}/processes/", headers=as_alice,
                                json={**crc_body([named], untranslated_surveys="rank_last"), "display_name": "Last"})
    assert ranked.status_code == 201, ranked.text


def test_bad_process_requests_are_refused_and_nothing_is_stored_or_started(server, as_alice, release):
    training_set = create_product(server, as_alice, "A training set", product_type="training_set")
    specz = published_specz(server, as_alice)
    draft = create_product(server, as_alice, "Draft spec-z")
    server.context.registry.create_release("desc-dr1", "DESC DR1", access_groups=["desc"])
    as_carol = server.user("carol", groups=("desc",))
    hidden = published_specz(server, as_carol, "Carol's spec-z", release="desc-dr1")
    bare = server.context.registry.create_release("dr9", "No objects", is_public=True)
    cases = [
        ({"pipeline": 1, "display_name": "x", "inputs": [training_set["id"]]}, 400, "reads redshift_catalog"),
        ({"pipeline": 1, "display_name": "x", "inputs": []}, 400, "needs at least one input"),
        ({"pipeline": 9, "display_name": "x", "inputs": [specz["id"]]}, 404, "pipeline 9 does not exist"),
        ({"pipeline": 1, "display_name": "x", "inputs": [specz["id"]], "used_config": "{bad"}, 400, "not valid JSON"),
        ({**tsm_body(specz, release), "display_name": "DESI spec-z"}, 409, "already have a product"),
        ({"pipeline": 1, "display_name": "x", "inputs": [99999]}, 400, "does not exist or is not visible"),
        ({**tsm_body(specz, release), "inputs": [hidden["id"]]}, 400, "does not exist or is not visible"),
        ({**tsm_body(specz, release), "inputs": [draft["id"]]}, 400, "is Registering; only Published"),
        (tsm_body(specz, release, crossmatch={"radius_arcsec": 0}), 400, "radius_arcsec: must be > 0"),
        (tsm_body(specz, release, crossmatch={"radius_arcsec": 3600}), 400, "at most 60 arcsec"),
        (tsm_body(specz, release, crossmatch={"radius": 1}), 400, "param.crossmatch.radius: unknown"),
        (tsm_body(specz, release, colour="red"), 400, "param.colour: unknown parameter"),
        (tsm_body(specz, release, flux_type="psf"), 400, "column_map"),
        (tsm_body(specz, None), 400, "give a release"),
        ({**tsm_body(specz, release), "release": 999}, 400, "release 999 does not exist"),
        (tsm_body(specz, bare), 400, "has no object catalog registered"),
        ({"pipeline": 2, "display_name": "x", "inputs": [specz["id"]],
          "used_config": json.dumps({"param": {"flags_translation_file": "/home/alice/flags.yaml"}})}, 400,
         "send the file itself"),
        ({"pipeline": 2, "display_name": "x", "inputs": [specz["id"]],
          "used_config": json.dumps({"param": {"combine_type": "merge"}})}, 400, "combine_type: must be one of"),
    ]
    before = server.snapshot()
    for body, status, problem in cases:
        response = server.client.post(f"{API}/processes/", headers=as_alice, json=body)
        assert response.status_code == status, (body, response.text)
        assert problem in response.json()["detail"], (body, response.text)
    assert server.snapshot() == before
    assert server.dag_runs.triggered == []


def test_a_run_airflow_refuses_fails_its_process(server, as_alice, release):
    specz = published_specz(server, as_alice)
    server.dag_runs.refuse = InvalidInput("the DAG training_set_maker is not in Airflow yet")
    response = server.client.post(f"{API}/processes/", headers=as_alice, json=tsm_body(specz, release))
    assert response.status_code == 400 and "not in Airflow yet" in response.json()["detail"]
    [output] = [item for item in server.client.get(f"{API}/products/", headers=as_alice).json()["results"]
                if item["display_name"] == "My TS"]
    assert output["status"] == 9
