"""The PZ Server pages in a real headless Chromium against the running api-server: log in through Airflow's
login page, upload a spec-z catalog through the wizard inside the Airflow UI's frame, associate its columns,
publish it, find it with the search, open its page, download it, share and delete it; and a validation report
page with its plots. Screenshots of each page in light and dark mode go to the test's temporary folder.

Chromium and chromedriver are Debian's (scripts/ci/browser.sh installs them, as root) driven by selenium.
Without them, or without selenium, the tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.registry import unavailable
from fixtures.reports import PLOT_NAMES, write_report_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSER_SCRIPT = REPO_ROOT / "scripts" / "ci" / "browser.sh"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,960",
)
WAIT_S = 60
"""Longest wait for a page or an element: the api-server shares two cores with three other services."""

PRODUCT_NAME = "Browser test spec-z"
CATALOG_CSV = "galaxy_id,ra,dec,zspec_final,zspec_err\n" + "".join(
    f"{index},{150.0 + index * 0.01:.2f},{2.0 + index * 0.005:.3f},{0.05 + index * 0.03:.2f},0.0005\n"
    for index in range(20)
)


@pytest.fixture(scope="session")
def chromium() -> tuple[Path, Path]:
    """(chromium, chromedriver), installed by scripts/ci/browser.sh when missing and this is root."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        unavailable("selenium is not installed: install the pinned requirements (make install)")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.geteuid() != 0:
            unavailable(f"{CHROMIUM} and {CHROMEDRIVER} are missing and installing them needs root: "
                        f"run {BROWSER_SCRIPT.relative_to(REPO_ROOT)} as root")
        installed = subprocess.run([BROWSER_SCRIPT], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                   timeout=1200)
        assert installed.returncode == 0, f"browser.sh failed:\n{installed.stdout}\n{installed.stderr}"
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def browser(chromium, downloads: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A headless Chromium with a fresh profile, saving downloads to ``downloads`` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_binary = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    driver = webdriver.Chrome(service=Service(str(driver_binary)), options=options)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.set_page_load_timeout(WAIT_S)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def logged_in(browser, airflow_services):
    """The browser after logging in through Airflow's login page, which a page request redirects to."""
    from selenium.webdriver.common.by import By

    browser.get(f"{airflow_services.url}/pzserver/ui/products/user/")
    wait_for(browser, lambda: "/auth/login" in browser.current_url, "the redirect to Airflow's login page")
    assert "next=" in browser.current_url
    username = wait_for(browser, lambda: _visible(browser, By.NAME, "username"), "the login form")
    username.send_keys(airflow_services.username)
    browser.find_element(By.NAME, "password").send_keys(airflow_services.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(browser, lambda: browser.current_url.endswith("/pzserver/ui/products/user/"),
             "the way back from the login page to the page asked for")
    wait_for(browser, lambda: _visible(browser, By.CSS_SELECTOR, "h1"), "the user products page")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "User products"
    assert browser.find_element(By.CSS_SELECTOR, ".username").text.startswith(airflow_services.username)
    return browser


def wait_for(browser, condition, what: str, timeout_s: float = WAIT_S):
    """The first truthy value of ``condition()``; fails naming ``what`` (with the page) on a timeout."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        time.sleep(0.2)
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    raise AssertionError(f"waited {timeout_s:.0f} s for {what}; at {browser.current_url}; console errors: {errors}")


def _visible(browser, by: str, value: str):
    element = browser.find_element(by, value)
    return element if element.is_displayed() else None


def set_theme(browser, theme: str) -> None:
    """Click the toggle when the page does not show ``theme`` (it starts with the system's); check the page's
    background follows."""
    from selenium.webdriver.common.by import By

    toggle = browser.find_element(By.ID, "theme-toggle")
    if toggle.get_attribute("data-theme-now") != theme:
        toggle.click()
        assert browser.execute_script("return document.documentElement.dataset.theme") == theme
    wait_for(browser, lambda: browser.find_element(By.ID, "theme-toggle").get_attribute("data-theme-now") == theme,
             f"{theme} mode")
    background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(part) for part in background[background.index("(") + 1 : -1].split(",")[:3])
    assert (red + green + blue < 150) == (theme == "dark"), f"{theme} mode shows the background {background}"


def screenshot(browser, folder: Path, name: str) -> Path:
    """The whole page (the window grown to its height) as ``name``.png."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height + 120, 960), 4000))
    path = folder / f"{name}.png"
    assert browser.save_screenshot(str(path)), f"no screenshot of {name}"
    browser.set_window_size(1280, 960)
    return path


def wait_for_download(downloads: Path, name: str, browser) -> bytes:
    path = downloads / name
    wait_for(browser, lambda: path.exists() and not list(downloads.glob("*.crdownload")), f"the download of {name}")
    return path.read_bytes()


def test_the_pages_are_in_the_airflow_navigation(airflow_services):
    with airflow_services.client() as client:
        plugins = client.get("/api/v2/plugins").json()["plugins"]
    [plugin] = [plugin for plugin in plugins if plugin["name"] == "pzserver"]
    views = {view["name"]: view for view in plugin["external_views"]}
    assert set(views) == {"Rubin products", "User products", "Upload a product"}
    assert {view["category"] for view in views.values()} == {"PZ Server"}
    assert views["Upload a product"]["href"] == "/pzserver/ui/upload/"
    assert views["Upload a product"]["url_route"] == "pzserver-upload"


def test_a_catalog_is_uploaded_associated_published_found_downloaded_shared_and_deleted(
    logged_in, airflow_services, downloads, screenshots, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = logged_in
    url = airflow_services.url
    catalog = tmp_path / "browser_specz.csv"
    catalog.write_text(CATALOG_CSV)

    # The wizard inside the Airflow UI, in the frame its navigation entry opens.
    browser.get(f"{url}/plugin/pzserver-upload")
    frame = wait_for(browser, lambda: _visible(browser, By.CSS_SELECTOR, "iframe[title='Upload a product']"),
                     "the Airflow UI's frame of the upload wizard")
    browser.switch_to.frame(frame)
    wait_for(browser, lambda: _visible(browser, By.ID, "display_name"), "the wizard's first step")
    browser.find_element(By.ID, "display_name").send_keys(PRODUCT_NAME)
    Select(browser.find_element(By.ID, "product_type")).select_by_value("redshift_catalog")
    browser.find_element(By.ID, "description").send_keys("Twenty galaxies uploaded by the browser test.")
    browser.find_element(By.ID, "details-next").click()
    wait_for(browser, lambda: _visible(browser, By.ID, "main_file"), "the files step").send_keys(str(catalog))
    browser.find_element(By.ID, "files-upload").click()
    wait_for(browser, lambda: _visible(browser, By.CSS_SELECTOR, "#association tbody tr"), "the columns step")

    def association(column: str) -> tuple[str, str]:
        return (browser.find_element(By.NAME, f"alias-{column}").get_attribute("value"),
                browser.find_element(By.NAME, f"ucd-{column}").get_attribute("value"))

    assert association("ra") == ("RA", "pos.eq.ra;meta.main")  # suggested from the column names
    assert association("dec") == ("Dec", "pos.eq.dec;meta.main")
    assert association("zspec_final") == ("", "")
    browser.find_element(By.NAME, "alias-zspec_final").send_keys("z")  # written in; the UCD follows
    assert association("zspec_final") == ("z", "src.redshift")
    browser.find_element(By.NAME, "alias-zspec_err").send_keys("z_err")
    browser.find_element(By.NAME, "alias-galaxy_id").send_keys("galaxy")  # a role of the user's own
    browser.switch_to.default_content()
    screenshot(browser, screenshots, "upload-wizard-columns-in-airflow")
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Upload a product']"))
    browser.find_element(By.ID, "publish").click()
    wait_for(browser, lambda: _visible(browser, By.ID, "step-done"), "the published step")
    assert browser.find_element(By.ID, "done-name").text == PRODUCT_NAME
    browser.switch_to.default_content()

    # Found with the search, among the user products.
    browser.get(f"{url}/pzserver/ui/products/user/")
    search = wait_for(browser, lambda: _visible(browser, By.ID, "search"), "the search box")
    search.send_keys("browser test")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda: "search=browser+test" in browser.current_url, "the search results")
    links = browser.find_elements(By.CSS_SELECTOR, "#products a.product-link")
    assert [link.text for link in links] == [PRODUCT_NAME]
    set_theme(browser, "light")
    screenshot(browser, screenshots, "user-products-light")
    links[0].click()

    # The product page: metadata, columns and their association, preview.
    wait_for(browser, lambda: _visible(browser, By.ID, "product-name"), "the product page")
    assert browser.find_element(By.ID, "product-name").text == PRODUCT_NAME
    def metadata(term: str) -> str:
        return browser.find_element(By.XPATH, f"//dl[@id='metadata']/dt[.='{term}']/following-sibling::dd[1]").text

    assert metadata("Type").startswith("Reference Redshift Catalog") and metadata("Rows") == "20"
    columns = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#columns tbody tr")]
    assert columns[1].startswith("ra RA") and "pos.eq.ra;meta.main" in columns[1]
    assert columns[3].startswith("zspec_final z") and "src.redshift" in columns[3]
    assert columns[0].startswith("galaxy_id galaxy")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")) == 10
    set_theme(browser, "light")
    light = screenshot(browser, screenshots, "product-light")
    set_theme(browser, "dark")
    dark = screenshot(browser, screenshots, "product-dark")
    assert light.read_bytes() != dark.read_bytes()

    # Download: the product's ZIP and its main file.
    browser.find_element(By.ID, "download-product").click()
    internal_name = browser.find_element(By.ID, "share-link").get_attribute("value").rstrip("/").rsplit("/", 1)[-1]
    with zipfile.ZipFile(io.BytesIO(wait_for_download(downloads, f"{internal_name}.zip", browser))) as archive:
        assert archive.read("browser_specz.csv") == catalog.read_bytes()
    browser.find_element(By.ID, "download-main-file").click()
    assert wait_for_download(downloads, "browser_specz.csv", browser) == catalog.read_bytes()

    # Share: the link opens the same page.
    share_link = browser.find_element(By.ID, "share-link").get_attribute("value")
    browser.find_element(By.ID, "copy-share-link").click()
    wait_for(browser, lambda: browser.find_element(By.ID, "share-status").text, "the copy confirmation")
    browser.get(share_link)
    wait_for(browser, lambda: _visible(browser, By.ID, "product-name"), "the shared page")
    assert browser.find_element(By.ID, "product-name").text == PRODUCT_NAME

    # Delete, confirmed on the page.
    browser.find_element(By.ID, "delete-product").click()
    wait_for(browser, lambda: _visible(browser, By.ID, "delete-confirmed"), "the delete confirmation").click()
    wait_for(browser, lambda: "/products/user/" in browser.current_url, "the listing after the delete")
    notice = wait_for(browser, lambda: _visible(browser, By.CSS_SELECTOR, ".notice"), "the deletion notice")
    assert PRODUCT_NAME in notice.text
    with airflow_services.client() as client:
        found = client.get("/pzserver/api/products/", params={"product_name": "Browser test"}).json()
    assert found["count"] == 0


def test_a_validation_report_shows_its_metrics_and_plots(logged_in, airflow_services, screenshots, tmp_path):
    from selenium.webdriver.common.by import By

    browser = logged_in
    report = write_report_folder(tmp_path / "report")
    with airflow_services.client() as client:
        created = client.post("/pzserver/api/products/", json={
            "display_name": "DC2 validation (browser test)", "product_type": "validation_results",
            "official_product": True, "pz_code": "fzboost"})
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        for path in sorted(report.iterdir()):
            role = 0 if path.name == "metrics.json" else 2
            sent = client.post("/pzserver/api/product-files/", data={"product": str(product_id), "role": str(role)},
                               files={"file": (path.name, path.read_bytes())})
            assert sent.status_code == 201, sent.text
        assert client.patch(f"/pzserver/api/products/{product_id}/", json={"status": 1}).status_code == 200

    browser.get(f"{airflow_services.url}/pzserver/ui/products/official/")
    wait_for(browser, lambda: _visible(browser, By.CSS_SELECTOR, "#products a.product-link"), "the Rubin products")
    browser.find_element(By.LINK_TEXT, "DC2 validation (browser test)").click()
    wait_for(browser, lambda: _visible(browser, By.ID, "open-report"), "the report link").click()
    wait_for(browser, lambda: _visible(browser, By.ID, "point-metrics"), "the report page")
    primary = browser.find_element(By.CSS_SELECTOR, "#point-metrics tr.primary-estimate").text
    assert primary.startswith("zmode 2,000 ")
    images = browser.find_elements(By.CSS_SELECTOR, "#plots img")
    assert len(images) == len(PLOT_NAMES)
    for image in images:
        image.location_once_scrolled_into_view  # noqa: B018 (lazy images load when scrolled to)
    wait_for(browser, lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                                         image) for image in images), "the plots")
    assert "stage1_partition" in browser.find_element(By.ID, "checks").text
    set_theme(browser, "dark")
    screenshot(browser, screenshots, "validation-report-dark")
    set_theme(browser, "light")
    screenshot(browser, screenshots, "validation-report-light")


def test_an_anonymous_page_request_goes_to_the_login_and_an_api_call_gets_401(airflow_services):
    page = httpx.get(f"{airflow_services.url}/pzserver/ui/upload/", timeout=30)
    assert page.status_code == 307 and page.headers["location"] == "/auth/login?next=%2Fpzserver%2Fui%2Fupload%2F"
    assert httpx.get(f"{airflow_services.url}/pzserver/api/products/", timeout=30).status_code == 401

