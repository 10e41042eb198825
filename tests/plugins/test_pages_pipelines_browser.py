"""The Pipelines and Processes pages in a real headless Chromium against the running api-server, as a user works
with them: request a training set from the Pipelines page, watch its process page reach Successful and open and
download its output; read why a request failed on its process page; stop a running one; see that a bad form says
why next to the field and starts nothing; see that another user's processes are hidden, on the pages and over the
API; and a hostile Markdown description that runs no script. Screenshots of each page in light and dark mode and at
a phone's width go to var/screenshots/ (git-ignored) for a reviewer.

The browser, the login and the helpers are tests/fixtures/browser.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fixtures.browser import screenshot, set_theme, visible, wait_for, wait_for_download

RUN_S = 300
"""Longest wait for a pipeline run: the scheduler, the worker and the api-server share two cores."""
PHONE = (390, 844)


def pz_token(airflow_services, username: str) -> str:
    """A new API token of ``username`` from ``pz token create``, in the registry the api-server uses."""
    created = subprocess.run([sys.executable, "-m", "pzlib.cli", "token", "create", username],
                             env=airflow_services.environment, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def pz_release(airflow_services, *arguments: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pzlib.cli", "release", "set", *arguments],
                          env=airflow_services.environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def releases(airflow_services, crossmatch_sample) -> None:
    """The sample's object catalog as the public release ``dc2-sample``, and a private release of group rubin."""
    from pzlib.crossmatch.sample_data import OBJECT_COLUMN_MAP

    pz_release(airflow_services, "dc2-sample", "--display-name", "DC2 sample", "--public", "--object-catalog",
               str(crossmatch_sample.objects), "--column-map", json.dumps(OBJECT_COLUMN_MAP))
    pz_release(airflow_services, "dp9-embargoed", "--display-name", "DP9 embargoed", "--no-public", "--group",
               "rubin", "--object-catalog", str(crossmatch_sample.objects), "--column-map",
               json.dumps(OBJECT_COLUMN_MAP))


def publish(client: httpx.Client, path: Path, name: str, association: dict[str, str], **fields) -> int:
    """A spec-z catalog uploaded, associated and published over the API."""
    created = client.post("/pzserver/api/products/", json={"display_name": name, "product_type": "redshift_catalog",
                                                           **fields})
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    sent = client.post("/pzserver/api/product-files/", data={"product": str(product_id), "role": "0"},
                       files={"file": (path.name, path.read_bytes())})
    assert sent.status_code == 201, sent.text
    columns = client.get(f"/pzserver/api/products/{product_id}/registry/").json()["columns"]
    ucds = {"RA": "pos.eq.ra;meta.main", "Dec": "pos.eq.dec;meta.main", "z": "src.redshift"}
    for column in columns:
        alias = association.get(column["column_name"])
        if alias:
            patched = client.patch(f"/pzserver/api/product-contents/{column['id']}/",
                                   data={"alias": alias, "ucd": ucds.get(alias, "")})
            assert patched.status_code == 200, patched.text
    assert client.patch(f"/pzserver/api/products/{product_id}/", json={"status": 1}).status_code == 200
    return product_id


@pytest.fixture(scope="module")
def catalogs(airflow_services, crossmatch_sample, releases) -> dict[str, int]:
    """The sample's reference spec-z catalog, and a survey's catalog whose RA is associated with a text column
    (a well-formed request whose run fails), published by the browser's user."""
    two_df = next(entry for entry in crossmatch_sample.surveys if entry["survey"] == "2DFGRS")
    with airflow_services.client() as client:
        return {
            "good": publish(client, crossmatch_sample.reference, "DC2 reference spec-z (pages)",
                            {"ra": "RA", "dec": "Dec", "z": "z"}),
            "broken": publish(client, Path(two_df["path"]), "2dFGRS with RA mixed up (pages)",
                              {"name": "RA", "dec_j2000_deg": "Dec", "z": "z"}),
        }


def open_pipelines(browser, airflow_services):
    browser.get(f"{airflow_services.url}/pzserver/ui/pipelines/")
    return wait_for(browser, lambda: visible(browser, "id", "training_set_maker-display_name"), "the Pipelines page")


def fill_training_set_form(browser, name: str, product_id: int | None, release: str = "dc2-sample",
                           radius: str | None = None) -> None:
    """The Training Set Maker form filled in as a user does, with the keyboard (the submit is an Enter)."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "training_set_maker-release")).select_by_value(release)
    if product_id is not None:
        search = browser.find_element("id", "training_set_maker-inputs-search")
        search.send_keys("(pages)")
        Select(browser.find_element("id", "training_set_maker-inputs")).select_by_value(str(product_id))
    if radius is not None:
        field = browser.find_element("id", "training_set_maker-crossmatch-radius_arcsec")
        field.clear()
        field.send_keys(radius)
    name_field = browser.find_element("id", "training_set_maker-display_name")
    name_field.clear()
    name_field.send_keys(name, Keys.ENTER)


def process_status(browser) -> str:
    return browser.find_element("css selector", "#process-head .process-status").text


def wait_for_end(browser, what: str) -> str:
    """The process page's status once the run ended (the page reloads itself meanwhile)."""
    return wait_for(browser, lambda: process_status(browser) in ("Successful", "Failed", "Stopped")
                    and process_status(browser), what, timeout_s=RUN_S)


def process_count(browser, airflow_services) -> int:
    browser.get(f"{airflow_services.url}/pzserver/ui/processes/")
    text = wait_for(browser, lambda: visible(browser, "id", "process-count"), "the processes page").text
    return int(text.split()[0])


def test_a_training_set_requested_from_the_pipelines_page_comes_back_as_a_product(
    logged_in, airflow_services, catalogs, screenshots, downloads
):
    browser = logged_in
    open_pipelines(browser, airflow_services)
    for theme in ("light", "dark"):
        set_theme(browser, theme)
        screenshot(browser, screenshots, f"pipelines-{theme}")
    browser.set_window_size(*PHONE)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]
    browser.save_screenshot(str(screenshots / "pipelines-phone.png"))
    browser.set_window_size(1280, 960)
    set_theme(browser, "light")

    fill_training_set_form(browser, "Training set from the pages", catalogs["good"])
    wait_for(browser, lambda: "/pzserver/ui/processes/" in browser.current_url, "the new process's page")
    assert browser.find_element("id", "process-name").text == "Training set from the pages"
    assert "crossmatch.radius_arcsec" in browser.find_element("id", "process-params").text
    assert wait_for_end(browser, "the training set's run to end") == "Successful", browser.find_element(
        "id", "content").text
    tasks = browser.find_element("id", "tasks").text
    assert "failed" not in tasks and "success" in tasks
    for theme in ("light", "dark"):
        set_theme(browser, theme)
        screenshot(browser, screenshots, f"process-successful-{theme}")
    set_theme(browser, "light")

    browser.find_element("id", "open-output").click()
    wait_for(browser, lambda: visible(browser, "id", "product-name"), "the output product's page")
    assert browser.find_element("id", "product-name").text == "Training set from the pages"
    browser.find_element("id", "download-main-file").click()
    assert wait_for_download(downloads, "training_set.parquet", browser)[:4] == b"PAR1"

    browser.get(f"{airflow_services.url}/pzserver/ui/processes/")
    wait_for(browser, lambda: visible(browser, "id", "processes"), "the processes list")
    first = browser.find_element("css selector", "#processes tbody tr").text
    assert first.startswith("Training set from the pages Successful Training Set Maker")
    for theme in ("light", "dark"):
        set_theme(browser, theme)
        screenshot(browser, screenshots, f"processes-{theme}")
    set_theme(browser, "light")


def test_a_failing_request_shows_its_error_and_a_running_one_stops(logged_in, airflow_services, catalogs,
                                                                    screenshots):
    browser = logged_in
    open_pipelines(browser, airflow_services)
    fill_training_set_form(browser, "From broken positions (pages)", catalogs["broken"])
    wait_for(browser, lambda: "/pzserver/ui/processes/" in browser.current_url, "the failing process's page")
    failing_url = browser.current_url

    open_pipelines(browser, airflow_services)
    fill_training_set_form(browser, "Stopped from its page", catalogs["good"])
    stop = wait_for(browser, lambda: visible(browser, "id", "stop-process"), "the stop button")
    stop.click()
    wait_for(browser, lambda: process_status(browser) == "Stopped", "the stopped process")
    assert "stop-process" not in browser.page_source

    browser.get(failing_url)
    assert wait_for_end(browser, "the failing run to end") == "Failed"
    error = browser.find_element("id", "process-error").text
    assert "ra must be numeric" in error, error
    # The run's failure callback ends the process a moment before Airflow records the task's state and log.
    log = wait_for(browser, lambda: browser.refresh() or visible(browser, "id", "task-log"), "the task's log").text
    assert "ra must be numeric" in log and "Traceback" not in log and "/site-packages/" not in log
    assert "2dfgrs.csv, column 'name'" in error and "2dfgrs.csv, column 'name'" in log
    assert str(airflow_services.state_dir) not in error + log and "NumExpr" not in log and "::group" not in log
    for theme in ("light", "dark"):
        set_theme(browser, theme)
        screenshot(browser, screenshots, f"process-failed-{theme}")
    set_theme(browser, "light")


@pytest.mark.parametrize("case", ["missing-product", "radius-out-of-range", "hidden-release"])
def test_a_bad_form_says_why_next_to_the_field_and_starts_nothing(logged_in, airflow_services, catalogs, case):
    browser = logged_in
    before = process_count(browser, airflow_services)
    open_pipelines(browser, airflow_services)
    if case == "missing-product":
        fill_training_set_form(browser, "No input (pages)", None)
        field, expected = "inputs", "Choose at least one input product"
    elif case == "radius-out-of-range":
        fill_training_set_form(browser, "Too wide (pages)", catalogs["good"], radius="61")
        field, expected = "crossmatch-radius_arcsec", "61 is out of range: must be > 0 and ≤ 60"
    else:
        # A release this (admin) user may see, then one no user sees: a hand-made option, as a forged post sends.
        browser.execute_script("var option = document.createElement('option'); option.value = 'no-such-release';"
                               "document.getElementById('training_set_maker-release').append(option);")
        fill_training_set_form(browser, "Hidden release (pages)", catalogs["good"], release="no-such-release")
        field, expected = "release", "release 'no-such-release' does not exist or is not visible to you"
    message = wait_for(browser, lambda: visible(browser, "id", f"training_set_maker-{field}-error"),
                       f"the message next to {field}")
    assert expected in message.text
    assert browser.find_element("id", f"training_set_maker-{field}").get_attribute("aria-invalid") == "true"
    assert process_count(browser, airflow_services) == before


def test_another_users_processes_are_hidden_on_the_pages_and_over_the_api(logged_in, airflow_services, releases,
                                                                         catalogs, screenshots):
    browser = logged_in
    browser.get(f"{airflow_services.url}/pzserver/ui/processes/")
    wait_for(browser, lambda: visible(browser, "id", "processes"), "the admin's processes")
    admins_process = browser.find_element("css selector", "#processes tbody tr").get_attribute("data-process-id")
    token = pz_token(airflow_services, "erin")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Token {token}"}})
    try:
        browser.get(f"{airflow_services.url}/pzserver/ui/processes/")
        wait_for(browser, lambda: visible(browser, "id", "process-count"), "erin's processes")
        assert browser.find_element("css selector", ".username").text == "erin"
        assert browser.find_element("id", "process-count").text.startswith("0 processes")
        browser.get(f"{airflow_services.url}/pzserver/ui/processes/{admins_process}/")
        assert wait_for(browser, lambda: browser.find_element("css selector", "h1").text, "the page") == "Not found"
        open_pipelines(browser, airflow_services)
        releases_offered = browser.find_element("id", "training_set_maker-release").text
        assert "DC2 sample" in releases_offered and "DP9 embargoed" not in releases_offered
        assert "(pages)" not in browser.find_element("id", "training_set_maker-inputs").text  # admin's own products
        for theme in ("light", "dark"):
            set_theme(browser, theme)
            browser.set_window_size(*PHONE)
            browser.save_screenshot(str(screenshots / f"pipelines-phone-{theme}.png"))
            browser.set_window_size(1280, 960)
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    api = f"{airflow_services.url}/pzserver/api/processes/{admins_process}/"
    assert httpx.get(api, headers={"Authorization": f"Token {token}"}, timeout=30).status_code == 404
    assert httpx.get(f"{api}stop/", headers={"Authorization": f"Token {token}"}, timeout=30).status_code == 404


def test_a_hostile_markdown_description_runs_no_script(logged_in, airflow_services, crossmatch_sample):
    browser = logged_in
    hostile = ("Made for **tests**.\n\n<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">\n\n"
               "[click me](javascript:window.pwned=3) [paper](https://arxiv.org/abs/2306.00000)")
    with airflow_services.client() as client:
        product_id = publish(client, crossmatch_sample.reference, "Hostile description (pages)",
                             {"ra": "RA", "dec": "Dec", "z": "z"}, description=hostile)
    browser.get(f"{airflow_services.url}/pzserver/ui/products/{product_id}/")
    description = wait_for(browser, lambda: visible(browser, "id", "product-description"), "the description")
    assert browser.execute_script("return window.pwned === undefined")
    assert "<script>window.pwned = 1</script>" in description.text
    links = [link.get_attribute("href") for link in description.find_elements("css selector", "a")]
    assert links == ["https://arxiv.org/abs/2306.00000"]
    assert description.find_elements("css selector", "strong")[0].text == "tests"


def test_an_admin_starts_a_pz_compute_run_from_the_pz_compute_page(logged_in, airflow_services, releases,
                                                                   screenshots):
    from fixtures.airflow import wait_for_dag
    from selenium.webdriver.support.ui import Select

    browser = logged_in
    with airflow_services.client() as client:
        wait_for_dag(client, "pz_compute")
    browser.get(f"{airflow_services.url}/pzserver/ui/compute/")
    params = wait_for(browser, lambda: visible(browser, "id", "compute-params"), "the reprocessing form")
    Select(browser.find_element("id", "compute-release")).select_by_value("dc2-sample")
    params.clear()
    params.send_keys('{"partition_rows": 0}')
    browser.find_element("id", "start-compute-run").click()
    error = wait_for(browser, lambda: visible(browser, "id", "compute-params-error"), "the message on the params")
    assert "partition_rows: 0 is less than the minimum of 1" in error.text

    browser.find_element("id", "compute-params").clear()
    browser.find_element("id", "compute-params").send_keys('{"estimators": ["fzboost"]}')
    browser.find_element("id", "start-compute-run").click()
    wait_for(browser, lambda: visible(browser, "id", "run-started"), "the started run")
    run_id = browser.find_element("css selector", "#run-started code").text
    try:
        browser.get(f"{airflow_services.url}/pzserver/ui/compute/")
        run = wait_for(browser, lambda: visible(browser, "css selector", f"article[data-run-id='{run_id}']"),
                       "the run on the page")
        section = run.find_element("xpath", "./ancestor::section")
        assert section.find_element("css selector", "h2").text.startswith("DC2 sample")
        for theme in ("light", "dark"):
            set_theme(browser, theme)
            screenshot(browser, screenshots, f"compute-{theme}")
        set_theme(browser, "light")
    finally:  # the run would take the two cores from the other tests
        with airflow_services.client() as client:
            client.patch(f"/api/v2/dags/pz_compute/dagRuns/{run_id}", json={"state": "failed"})
