"""The Pipelines and Processes pages in-process (Airflow's DAG runs recorded by the stand-in): a form starts the
process ``POST processes/`` would start and opens its page; a refused form says why next to the field and
stores nothing; the list and the page show a user their own processes only (an admin every one), the page
shows the params as run, the task states and a failed task's log excerpt; the stop button is a same-origin POST.
The browser test is test_pages_pipelines_browser.py."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from api_calls import API, published_compiled_specz, published_specz
from pzserver_app.dag_runs import TaskState, log_excerpt

UI = "/pzserver/ui"
SAME_ORIGIN = {"Origin": "http://testserver"}
OBJECT_COLUMN_MAP = {"value_template": "{band}_gaap1p0Flux", "error_template": "{band}_gaap1p0FluxErr",
                     "kind": "flux", "id_column": "objectId", "ra_column": "ra", "dec_column": "decl",
                     "ebv_column": "ebv"}


@pytest.fixture
def login(server):
    """Log a user in as the Airflow UI does (its ``_token`` cookie); returns the registry user."""

    def log_in(username: str, *, admin: bool = False):
        server.client.cookies.set("_token", server.logins.login(username, is_admin=admin))
        server.client.get(f"{UI}/processes/")  # the first request makes the registry user
        return server.registry_user(username)

    yield log_in
    server.client.cookies.clear()


@pytest.fixture
def releases(server):
    """A public release with an object catalog (only recorded: no run reads it here) and a private one."""
    registry = server.context.registry
    public = registry.create_release("dc2-sample", "DC2 sample", is_public=True,
                                     object_catalog="/data/dc2-sample/objects", object_column_map=OBJECT_COLUMN_MAP)
    hidden = registry.create_release("dp2-private", "DP2 (embargoed)", is_public=False, access_groups=("rubin",),
                                     object_catalog="/data/dp2/objects", object_column_map=OBJECT_COLUMN_MAP)
    return public, hidden


def tsm_form(specz_id: int | str, **overrides: str) -> dict[str, str]:
    return {"display_name": "My training set", "release": "dc2-sample", "inputs": str(specz_id),
            "crossmatch.radius_arcsec": "0.5", "crossmatch.n_neighbors": "1", "duplicate_criteria": "closest",
            "flux_type": "auto", "convert_flux_to_mag": "on", "dereddening": "sfd",
            "split.train_fraction": "0.7", "split.seed": "0", **overrides}


def post_form(server, path: str, form: dict[str, str], files=None, headers=SAME_ORIGIN):
    return server.client.post(f"{UI}/{path}", data=form, files=files or {"_": ("", b"")}, headers=headers,
                              follow_redirects=False)


def field_error(page: str, form_id: str, field_id: str) -> str:
    found = re.search(rf'id="{re.escape(form_id)}-{re.escape(field_id)}-error" role="alert">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def test_the_training_set_form_starts_the_process_the_api_would_and_opens_its_page(server, as_alice, login,
                                                                                   releases):
    specz = published_specz(server, as_alice)
    login("alice")
    form_page = server.client.get(f"{UI}/pipelines/").text
    assert 'name="crossmatch.radius_arcsec" value="1.0"' in form_page and 'max="60.0"' in form_page
    assert "DP2 (embargoed)" not in form_page and "DC2 sample" in form_page  # releases alice may see
    assert f'<option value="{specz["id"]}" data-kind="own"' in form_page

    sent = post_form(server, "pipelines/training_set_maker/", tsm_form(specz["id"]))
    assert sent.status_code == 303, sent.text
    process_id = int(sent.headers["location"].rstrip("/").rsplit("/", 1)[-1])
    assert sent.headers["location"] == f"{UI}/processes/{process_id}/"
    [run] = server.dag_runs.triggered
    assert run["conf"]["radius_arcsec"] == 0.5 and run["conf"]["pzserver_process"] == process_id
    process = server.client.get(f"{API}/processes/{process_id}/", headers=as_alice).json()
    assert process["used_config"]["param"]["crossmatch"] == {"radius_arcsec": 0.5, "n_neighbors": 1}
    assert process["used_config"]["param"]["split"] == {"train_fraction": 0.7, "seed": 0}

    page = server.client.get(sent.headers["location"]).text
    assert "My training set" in page and "Queued" in page and 'id="stop-process"' in page
    assert "<code>crossmatch.radius_arcsec</code></td><td>0.5</td>" in page


@pytest.mark.parametrize("overrides, field, message", [
    ({"inputs": ""}, "inputs", "Choose at least one input product"),
    ({"inputs": "999999"}, "inputs", "does not exist or is not visible to you"),
    ({"crossmatch.radius_arcsec": "61"}, "crossmatch-radius_arcsec", "61 is out of range: must be > 0 and ≤ 60"),
    ({"crossmatch.radius_arcsec": "0"}, "crossmatch-radius_arcsec", "0 is out of range"),
    ({"crossmatch.radius_arcsec": "near"}, "crossmatch-radius_arcsec", "is not a number"),
    ({"split.train_fraction": "1"}, "split-train_fraction", "out of range: must be > 0 and < 1"),
    ({"release": "dp2-private"}, "release", "release 'dp2-private' does not exist or is not visible to you"),
    ({"release": ""}, "release", "give a release"),
    ({"display_name": " "}, "display_name", "Give the run a name"),
    ({"duplicate_criteria": "<script>"}, "duplicate_criteria", "choose one of closest, all"),
], ids=["no-input", "unknown-input", "radius-too-big", "radius-zero", "radius-text", "fraction", "hidden-release",
        "no-release", "no-name", "bad-choice"])
def test_a_bad_form_says_why_next_to_the_field_and_stores_nothing(server, as_alice, login, releases, overrides,
                                                                  field, message):
    specz = published_specz(server, as_alice)
    login("alice")
    before = server.snapshot()
    sent = post_form(server, "pipelines/training_set_maker/", tsm_form(specz["id"], **overrides))
    assert sent.status_code == 400
    assert message in field_error(sent.text, "training_set_maker", field), sent.text
    assert server.snapshot() == before and server.dag_runs.triggered == []
    assert "<script>" not in sent.text.split("<main", 1)[1].replace('<script src="', "")


def test_the_combine_form_sends_its_flag_translation_file_and_a_cross_site_post_is_refused(server, as_alice, login):
    first = published_specz(server, as_alice, "2DFGRS")
    second = published_specz(server, as_alice, "JADES")
    login("alice")
    form = {"display_name": "Combined", "release": "", "inputs": [str(first["id"]), str(second["id"])],
            "combine_type": "concatenate", "crossmatch.radius_arcsec": "1", "crossmatch.n_neighbors": "16",
            "untranslated_surveys": "refuse"}
    flags = b"surveys:\n  2DFGRS:\n    flags: {1: 0, 2: 1, 3: 3, 4: 4, 5: 4}\n  JADES:\n    default: 3\n"
    before = server.snapshot()
    unreadable = post_form(server, "pipelines/combine_redshift_dedup/", form,
                           files={"flags_translation_file": ("my_flags.yaml", b"2DFGRS: [not, a, mapping]\n")})
    assert unreadable.status_code == 400 and server.snapshot() == before
    message = field_error(unreadable.text, "combine_redshift_dedup", "flags_translation_file")
    assert "flag translation file my_flags.yaml: needs a 'surveys' mapping" in message, unreadable.text
    assert "/tmp" not in unreadable.text and str(server.context.settings.state_dir) not in unreadable.text
    refused = post_form(server, "pipelines/combine_redshift_dedup/", form, headers={"Origin": "https://evil.example"},
                        files={"flags_translation_file": ("flags.yaml", flags)})
    assert refused.status_code == 403 and server.snapshot() == before
    sent = post_form(server, "pipelines/combine_redshift_dedup/", form,
                     files={"flags_translation_file": ("flags.yaml", flags)})
    assert sent.status_code == 303, sent.text
    [run] = server.dag_runs.triggered
    assert [entry["survey"] for entry in run["conf"]["inputs"]] == ["2DFGRS", "JADES"]
    assert run["conf"]["flag_translation_file"].endswith("flags.yaml")


def test_the_combine_form_offers_a_choice_for_a_survey_without_a_translation(server, as_alice, login):
    named = published_compiled_specz(server, as_alice, "my spec-z", survey_column=False)
    login("alice")
    page = server.client.get(f"{UI}/pipelines/").text
    choice = re.search(r'<select id="combine_redshift_dedup-untranslated_surveys"[^>]*>(.*?)</select>', page, re.S)
    assert choice and re.findall(r'<option value="([^"]+)"', choice.group(1)) == ["refuse", "rank_last"]
    form = {"display_name": "Mine combined", "release": "", "inputs": [str(named["id"])],
            "combine_type": "concatenate", "crossmatch.radius_arcsec": "1", "crossmatch.n_neighbors": "16",
            "untranslated_surveys": "refuse"}
    before = server.snapshot()
    refused = post_form(server, "pipelines/combine_redshift_dedup/", form)
    assert refused.status_code == 400 and server.snapshot() == before
    message = field_error(refused.text, "combine_redshift_dedup", "inputs")
    assert "no flag translation for survey(s) 'my spec-z'" in message and "rank_last" in message, refused.text
    ranked = post_form(server, "pipelines/combine_redshift_dedup/", {**form, "untranslated_surveys": "rank_last"})
    assert ranked.status_code == 303, ranked.text
    [run] = server.dag_runs.triggered
    assert run["conf"]["inputs"][0]["untranslated_surveys"] == "rank_last"


def test_users_see_their_own_processes_and_admins_every_one(server, as_alice, as_bob, as_admin, login, releases):
    specz = published_specz(server, as_alice)
    for name in ("First run", "Second run"):
        started = server.client.post(f"{API}/processes/", headers=as_alice, json={
            "pipeline": "training_set_maker", "display_name": name, "inputs": [specz["id"]], "release": "dc2-sample"})
        assert started.status_code == 201, started.text
    first, second = (run["conf"]["pzserver_process"] for run in server.dag_runs.triggered)

    login("alice")
    listing = server.client.get(f"{UI}/processes/").text
    assert listing.index("Second run") < listing.index("First run")  # newest first
    login("bob")
    assert "First run" not in server.client.get(f"{UI}/processes/").text
    assert server.client.get(f"{UI}/processes/{first}/").status_code == 404
    assert server.client.get(f"{API}/processes/{first}/", headers=as_bob).status_code == 404
    assert server.client.get(f"{API}/processes/{first}/stop/", headers=as_bob).status_code == 404
    assert post_form(server, f"processes/{first}/stop/", {}).status_code == 404
    assert server.dag_runs.stopped == []
    login("root", admin=True)
    listing = server.client.get(f"{UI}/processes/").text
    assert "First run" in listing and "Second run" in listing and ">alice<" in listing


def test_a_failed_run_shows_its_tasks_and_the_error_of_its_log_and_a_running_one_stops(server, as_alice, login,
                                                                                      releases):
    specz = published_specz(server, as_alice)
    for name in ("Failing", "Running"):
        assert server.client.post(f"{API}/processes/", headers=as_alice, json={
            "pipeline": "training_set_maker", "display_name": name, "inputs": [specz["id"]],
            "release": "dc2-sample"}).status_code == 201
    failing, running = server.dag_runs.triggered
    now = datetime.now(UTC)
    server.dag_runs.task_states[failing["run_id"]] = [
        TaskState("start", -1, "success", 1, now, now), TaskState("crossmatch", -1, "failed", 1, now, now),
        TaskState("publish", -1, "upstream_failed", 0, None, None)]
    stored = f"{server.context.storage.root}/products/1_desi/0a1b/specz.csv"
    server.dag_runs.logs[(failing["run_id"], "crossmatch")] = [
        {"event": "::group::Log message source details"},
        {"event": "/var/airflow/logs/dag_id=x/attempt=1.log", "level": "info", "logger": "pzlib.x"},
        {"event": "::endgroup::"},
        {"event": "Task instance is in running state", "logger": "airflow.task", "level": "info"},
        {"event": "GitWildMatchPattern is deprecated", "level": "warning", "category": "DeprecationWarning"},
        {"event": "NumExpr defaulting to 2 threads.", "logger": "numexpr.utils", "level": "info"},
        {"event": f"reading {stored}", "logger": "pzlib.crossmatch.tsm", "level": "info"},
        {"event": "Task failed with exception", "logger": "task", "level": "error",
         "error_detail": [{"exc_type": "CatalogError", "exc_value": f"{stored}, column 'ra': ra must be numeric",
                           "frames": [{"filename": "/srv/secret/path.py", "lineno": 3}]}]},
        {"event": "after the error", "level": "info", "logger": "pzlib.x"},
    ]
    server.dag_runs.states[failing["run_id"]] = "failed"
    login("alice")
    page = server.client.get(f"{UI}/processes/{failing['conf']['pzserver_process']}/").text
    assert "Failed" in page and "failed; see its task logs" in page
    log = re.search(r'<pre class="log" id="task-log" tabindex="0">(.*?)</pre>', page, re.S).group(1)
    log = html.unescape(log)
    assert log.splitlines() == ["INFO reading specz.csv", "ERROR Task failed with exception",
                                "CatalogError: specz.csv, column 'ra': ra must be numeric"]
    assert 'data-task="crossmatch"' in page and "state-upstream_failed" in page

    server.dag_runs.states[running["run_id"]] = "running"
    running_id = running["conf"]["pzserver_process"]
    assert "Running" in server.client.get(f"{UI}/processes/{running_id}/").text
    stopped = post_form(server, f"processes/{running_id}/stop/", {})
    assert stopped.status_code == 303 and server.dag_runs.stopped == [running["run_id"]]
    assert "Stopped" in server.client.get(stopped.headers["location"]).text
    assert server.client.get(f"{API}/processes/{running_id}/", headers=as_alice).json()["status"] == "Stopped"


def test_the_log_excerpt_keeps_the_last_lines_up_to_the_error():
    messages = [{"event": f"line {index}", "level": "info", "logger": "pzlib.crossmatch"} for index in range(50)]
    messages.append({"event": "boom", "level": "error"})
    excerpt = log_excerpt(messages, lines=5)
    assert excerpt == ["INFO line 46", "INFO line 47", "INFO line 48", "INFO line 49", "ERROR boom"]


def test_a_hostile_markdown_description_is_shown_as_text_with_web_links_only(server, as_alice, login):
    hostile = ("# Notes\n\n<script>alert('pwned')</script> <img src=x onerror=alert(1)>\n\n"
               "[click](javascript:alert(1)) [data](data:text/html,hi) <javascript:alert(2)> "
               "[paper](https://arxiv.org/abs/2306.00000) *fine*")
    product = published_specz(server, as_alice, description=hostile)
    login("alice")
    page = server.client.get(f"{UI}/products/{product['id']}/").text
    description = re.search(r'<div class="markdown" id="product-description">(.*?)</div>', page, re.S).group(1)
    assert "<h1>Notes</h1>" in description and "<em>fine</em>" in description
    assert '<a href="https://arxiv.org/abs/2306.00000">paper</a>' in description
    assert "&lt;script&gt;" in description and "<script" not in description and "<img" not in description
    assert re.findall(r'href="([^"]*)"', description) == ["https://arxiv.org/abs/2306.00000"]


def test_the_column_association_menu_shows_each_roles_ucd(server, as_alice, login):
    login("alice")
    page = server.client.get(f"{UI}/upload/").text
    assert re.search(r'<option value="RA">[^<]* · UCD pos\.eq\.ra;meta\.main</option>', page)
