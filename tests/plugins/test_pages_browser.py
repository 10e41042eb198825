"""The PZ Server pages in a real headless Chromium against the running api-server: log in through Airflow's
login page, upload a spec-z catalog through the wizard inside the Airflow UI's frame, associate its columns,
publish it, find it with the search, open its page, download it, share and delete it; and a validation report
page with its plots. Screenshots of each page in light and dark mode go to var/screenshots/.

The browser, the login and the helpers are tests/fixtures/browser.py's.
"""

from __future__ import annotations

import io
import zipfile

import httpx
from fixtures.browser import screenshot, set_theme, visible, wait_for, wait_for_download
from fixtures.reports import PLOT_NAMES, write_report_folder

PRODUCT_NAME = "Browser test spec-z"
CATALOG_CSV = "galaxy_id,ra,dec,zspec_final,zspec_err\n" + "".join(
    f"{index},{150.0 + index * 0.01:.2f},{2.0 + index * 0.005:.3f},{0.05 + index * 0.03:.2f},0.0005\n"
    for index in range(20)
)


def test_the_pages_are_in_the_airflow_navigation(airflow_services):
    with airflow_services.client() as client:
        plugins = client.get("/api/v2/plugins").json()["plugins"]
    [plugin] = [plugin for plugin in plugins if plugin["name"] == "pzserver"]
    views = {view["name"]: view for view in plugin["external_views"]}
    assert set(views) == {"Rubin products", "User products", "Upload a product", "Pipelines", "Processes",
                          "PZ Compute"}
    assert {view["category"] for view in views.values()} == {"PZ Server"}
    assert views["Upload a product"]["href"] == "/pzserver/ui/upload/"
    assert views["Upload a product"]["url_route"] == "pzserver-upload"
    assert views["Pipelines"]["href"] == "/pzserver/ui/pipelines/"
    assert views["Processes"]["href"] == "/pzserver/ui/processes/"


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
    frame = wait_for(browser, lambda: visible(browser, By.CSS_SELECTOR, "iframe[title='Upload a product']"),
                     "the Airflow UI's frame of the upload wizard")
    browser.switch_to.frame(frame)
    wait_for(browser, lambda: visible(browser, By.ID, "display_name"), "the wizard's first step")
    browser.find_element(By.ID, "display_name").send_keys(PRODUCT_NAME)
    Select(browser.find_element(By.ID, "product_type")).select_by_value("redshift_catalog")
    browser.find_element(By.ID, "description").send_keys("Twenty galaxies uploaded by the browser test.")
    browser.find_element(By.ID, "details-next").click()
    wait_for(browser, lambda: visible(browser, By.ID, "main_file"), "the files step").send_keys(str(catalog))
    browser.find_element(By.ID, "files-upload").click()
    wait_for(browser, lambda: visible(browser, By.CSS_SELECTOR, "#association tbody tr"), "the columns step")

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
    wait_for(browser, lambda: visible(browser, By.ID, "step-done"), "the published step")
    assert browser.find_element(By.ID, "done-name").text == PRODUCT_NAME
    browser.switch_to.default_content()

    # Found with the search, among the user products.
    browser.get(f"{url}/pzserver/ui/products/user/")
    search = wait_for(browser, lambda: visible(browser, By.ID, "search"), "the search box")
    search.send_keys("browser test")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(browser, lambda: "search=browser+test" in browser.current_url, "the search results")
    links = browser.find_elements(By.CSS_SELECTOR, "#products a.product-link")
    assert [link.text for link in links] == [PRODUCT_NAME]
    set_theme(browser, "light")
    screenshot(browser, screenshots, "user-products-light")
    links[0].click()

    # The product page: metadata, columns and their association, preview.
    wait_for(browser, lambda: visible(browser, By.ID, "product-name"), "the product page")
    assert browser.find_element(By.ID, "product-name").text == PRODUCT_NAME
    def metadata(term: str) -> str:
        return browser.find_element(By.XPATH, f"//dl[@id='metadata']/dt[.='{term}']/following-sibling::dd[1]").text

    assert metadata("Type").startswith("Reference Redshift Catalog") and metadata("Rows") == "20"
    columns = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#columns tbody tr")]
    assert columns[1].startswith("ra RA") and "pos.eq.ra;meta.main" in columns[1]
    assert columns[3].startswith("zspec_final z") and "src.redshift" in columns[3]
    assert columns[0].startswith("galaxy_id galaxy")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")) == 20  # one preview page: every row
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
    wait_for(browser, lambda: visible(browser, By.ID, "product-name"), "the shared page")
    assert browser.find_element(By.ID, "product-name").text == PRODUCT_NAME

    # Delete, confirmed on the page.
    browser.find_element(By.ID, "delete-product").click()
    wait_for(browser, lambda: visible(browser, By.ID, "delete-confirmed"), "the delete confirmation").click()
    wait_for(browser, lambda: "/products/user/" in browser.current_url, "the listing after the delete")
    notice = wait_for(browser, lambda: visible(browser, By.CSS_SELECTOR, ".notice"), "the deletion notice")
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
    wait_for(browser, lambda: visible(browser, By.CSS_SELECTOR, "#products a.product-link"), "the Rubin products")
    browser.find_element(By.LINK_TEXT, "DC2 validation (browser test)").click()
    wait_for(browser, lambda: visible(browser, By.ID, "open-report"), "the report link").click()
    wait_for(browser, lambda: visible(browser, By.ID, "point-metrics"), "the report page")
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

