"""The PZ Compute page in-process (the DAG runs of the stand-in): each release's pz_compute runs with their
stages and partitions per estimator, the validation reports a finished run published with their headline
metrics side by side; only admins see and use the reprocessing form, whose params are checked against the DAG's
schema before anything is triggered."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.reports import write_report_folder
from pzserver_app.dag_runs import RunSummary, TaskState

from pzlib.registry.reports import publish_report

UI = "/pzserver/ui"
SAME_ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report_folder(tmp_path_factory.mktemp("compute-report") / "validation")


@pytest.fixture
def login(server):
    def log_in(username: str, *, admin: bool = False):
        server.client.cookies.set("_token", server.logins.login(username, is_admin=admin))
        server.client.get(f"{UI}/compute/")
        return server.registry_user(username)

    yield log_in
    server.client.cookies.clear()


def test_the_page_shows_each_runs_progress_and_a_finished_runs_metrics(server, login, report_folder):
    admin = login("root", admin=True)
    server.context.registry.create_release("dc2-sample", "DC2 sample", is_public=True)
    now = datetime.now(UTC)
    server.dag_runs.summaries["pz_compute"] = [
        RunSummary("running_run", "running", {"release": "dc2-sample"}, now - timedelta(minutes=3), None),
        RunSummary("finished_run", "success", {"release": "dc2-sample"}, now - timedelta(hours=1),
                   now - timedelta(minutes=50)),
    ]
    server.dag_runs.task_states["running_run"] = [
        TaskState("stage_1_acquire.check_run", -1, "success", 1, now, now),
        TaskState("stage_3_estimate.estimate", 0, "success", 1, now, now, "fzboost part_0"),
        TaskState("stage_3_estimate.estimate", 1, "failed", 1, now, now, "fzboost part_1"),
        TaskState("stage_3_estimate.estimate", 2, "running", 1, now, None, "bpz part_0"),
        TaskState("stage_3_estimate.estimate_on_cluster", -1, "skipped", 0, None, None),
    ]
    server.dag_runs.summaries["pz_compute"].append(RunSummary("queued_run", "queued", {"release": "dc2-sample"},
                                                              None, None))
    server.dag_runs.task_states["queued_run"] = [  # not expanded into partitions yet
        TaskState("stage_3_estimate.estimate", -1, None, 0, None, None)]
    publish_report(server.context.files, admin, report_folder, display_name="DC2 fzboost validation",
                   pz_code="fzboost", provenance={"pipeline": "pz_compute", "release": "dc2-sample",
                                                  "estimator": "fzboost", "dag_run_id": "finished_run"})
    page = html.unescape(server.client.get(f"{UI}/compute/").text)
    running = page[page.index('data-run-id="running_run"'):page.index('data-run-id="finished_run"')]
    assert "running for 3 min" in running
    assert re.search(r'<code>fzboost</code></th><td class="num">1</td><td class="num">1</td><td class="num">2', running)
    assert re.search(r'<code>bpz</code></th><td class="num">0</td><td class="num">0</td><td class="num">1', running)
    assert "stage 3 estimate" in running and "2 / 4" in running  # the skipped cluster variant counts as done
    queued = page[page.index('data-run-id="queued_run"'):]
    assert "not started yet" in queued and "Stage III has not started." in queued
    finished = page[page.index('data-run-id="finished_run"'):page.index('data-run-id="queued_run"')]
    assert "took 10 min 00 s" in finished and "DC2 fzboost validation" in finished
    assert re.search(r'<code>fzboost</code></th><td>zmode</td><td class="num">2,000</td><td class="num">0\.\d{4}',
                     finished)
    assert 'id="start-compute"' in page


def test_only_an_admin_starts_a_run_and_its_params_are_checked_first(server, login):
    server.context.registry.create_release("dc2-sample", "DC2 sample", is_public=True)
    login("alice")
    page = server.client.get(f"{UI}/compute/").text
    assert 'id="start-compute"' not in page and 'id="no-runs"' in page
    refused = server.client.post(f"{UI}/compute/runs/", data={"release": "dc2-sample", "params": "{}"},
                                 headers=SAME_ORIGIN)
    assert refused.status_code == 403 and server.dag_runs.triggered == []

    login("root", admin=True)
    for params, message in (("{\"estimators\": []}", "estimators: [] should be non-empty"),
                            ("{\"partition_rows\": 0}", "partition_rows: 0 is less than the minimum of 1"),
                            ("[1]", "not a JSON object"), ("{\"colour\": 1}", "Additional properties")):
        bad = server.client.post(f"{UI}/compute/runs/", data={"release": "dc2-sample", "params": params},
                                 headers=SAME_ORIGIN)
        assert bad.status_code == 400 and message in html.unescape(bad.text), bad.text
    hidden = server.client.post(f"{UI}/compute/runs/", data={"release": "nope", "params": "{}"}, headers=SAME_ORIGIN)
    assert hidden.status_code == 400 and "release &#39;nope&#39; does not exist" in hidden.text
    assert server.dag_runs.triggered == []
    forged = server.client.post(f"{UI}/compute/runs/", data={"release": "dc2-sample", "params": "{}"},
                                headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403 and server.dag_runs.triggered == []
    started = server.client.post(f"{UI}/compute/runs/", data={"release": "dc2-sample",
                                                              "params": '{"estimators": ["fzboost"]}'},
                                 headers=SAME_ORIGIN, follow_redirects=False)
    assert started.status_code == 303
    [run] = server.dag_runs.triggered
    assert run["dag_id"] == "pz_compute" and run["user"] == "root"
    assert run["conf"] == {"estimators": ["fzboost"], "release": "dc2-sample"}


def test_a_finished_run_links_its_photoz_catalogs_with_stage_3s_objects_per_second(server, login):
    admin = login("root", admin=True)
    server.context.registry.create_release("dc2-sample", "DC2 sample", is_public=True)
    now = datetime.now(UTC)
    server.dag_runs.summaries["pz_compute"] = [
        RunSummary("timed_run", "success", {"release": "dc2-sample"}, now - timedelta(hours=2),
                   now - timedelta(hours=1)),
        RunSummary("untimed_run", "success", {"release": "dc2-sample"}, now - timedelta(hours=4),
                   now - timedelta(hours=3)),
        RunSummary("unpublished_run", "success", {"release": "dc2-sample"}, now - timedelta(hours=6),
                   now - timedelta(hours=5)),
    ]
    started = now - timedelta(hours=4)
    server.dag_runs.task_states["untimed_run"] = [
        TaskState("stage_3_estimate.estimate", 0, "success", 1, started, started + timedelta(seconds=30), "bpz p0"),
        TaskState("stage_3_estimate.estimate", 1, "success", 1, started + timedelta(seconds=10),
                  started + timedelta(seconds=40), "bpz p1"),
    ]
    server.dag_runs.task_states["unpublished_run"] = server.dag_runs.task_states["untimed_run"]

    def catalog(estimator: str, run_id: str, rows: int, timings: dict | None) -> int:
        provenance = {"pipeline": "pz_compute", "release": "dc2-sample", "estimator": estimator, "n_rows": rows,
                      "dag_run_id": run_id, "airflow": {"dag_id": "pz_compute", "run_id": run_id},
                      **({"timings": timings} if timings else {})}
        return server.context.registry.create_product(
            admin, display_name=f"dc2-sample {estimator} photo-z {run_id}", product_type="photoz_estimates",
            pz_code=estimator, provenance=provenance, official=True, release="dc2-sample", status=1).id

    stage_3 = {"stage_3_estimate": {"wall_s": 60.0, "busy_s": 110.0, "pieces": 4}}
    fzboost = catalog("fzboost", "timed_run", 150_000, stage_3)
    bpz = catalog("bpz", "timed_run", 150_000, stage_3)
    untimed = catalog("bpz", "untimed_run", 80_000, None)
    page = html.unescape(server.client.get(f"{UI}/compute/").text)
    timed = page[page.index('data-run-id="timed_run"'):page.index('data-run-id="untimed_run"')]
    assert "Stage III estimated 300,000 objects in 1 min 00 s: <strong>5,000 objects/s</strong>" in timed
    assert [int(found) for found in re.findall(r'href="/pzserver/ui/products/(\d+)/">dc2-sample', timed)] == [
        bpz, fzboost]  # by estimator
    untimed_view = page[page.index('data-run-id="untimed_run"'):page.index('data-run-id="unpublished_run"')]
    # No timings in its provenance: the estimate tasks' first start to last end, 40 s.
    assert "Stage III estimated 80,000 objects in 40 s: <strong>2,000 objects/s</strong>" in untimed_view
    assert f'href="/pzserver/ui/products/{untimed}/"' in untimed_view
    unpublished = page[page.index('data-run-id="unpublished_run"'):]
    assert "Photo-z catalogs" not in unpublished and "objects/s" not in unpublished
