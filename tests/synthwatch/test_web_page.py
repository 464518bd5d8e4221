"""The analyst's web page in a real headless browser (Debian's chromium, driven by Selenium) against
the real service: token, upload, verdict, nearest fakes, the Models view, and a screenshot."""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.synthwatch.serving import TOKEN

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(f"BROWSER TEST SKIPPED: no {'chromium' if CHROMIUM is None else 'chromedriver'} on PATH, so the "
                "web page was NOT tested. Install them with `apt-get install chromium chromium-driver` "
                "(.ci/run does this where apt-get exists).", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once a browser is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as shown  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WINDOW = (1280, 1100)
# `make docs-pictures` sets this: the docs' pictures are this test's screenshots of the real page.
PICTURES = os.environ.get("SYNTHWATCH_DOCS_PICTURES")
WAIT_S = 60  # a first /detect loads the backbone; 2 shared cores are slow


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _open_with_token(driver, base, token):
    driver.get(f"{base}/")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def _wait(driver, condition):
    return WebDriverWait(driver, WAIT_S).until(condition)


def _text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def _page_problems(driver) -> list[str]:
    """Script errors and refused loads (Content-Security-Policy) the browser logged."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Uncaught" in entry["message"] or "Content Security Policy" in entry["message"]]


def test_upload_shows_the_verdict_and_the_nearest_fakes_as_the_api_does(browser, trained_service, tmp_path):
    base, _, originals = trained_service
    image = sorted((originals / "synthetic" / "gen-a").rglob("*.png"))[0]
    expected = httpx.post(f"{base}/detect", params={"k": 5}, headers={"Authorization": f"Bearer {TOKEN}"},
                          files={"file": (image.name, image.read_bytes())}, timeout=60).json()["results"][0]
    _open_with_token(browser, base, TOKEN)
    _wait(browser, lambda d: _text(d, "token-state") == "token accepted")
    browser.find_element(By.ID, "file").send_keys(str(image))
    _wait(browser, shown.visibility_of_element_located((By.ID, "result")))
    _wait(browser, lambda d: d.execute_script(
        "const images = [...document.querySelectorAll('#neighbors img')];"
        "return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0);"))

    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.get_attribute("data-synthetic") == str(expected["synthetic"]).lower()
    assert verdict.text == ("Likely AI-generated" if expected["synthetic"] else "Not flagged: likely real")
    assert _text(browser, "score-line") == (f"score {expected['score']:.4f} {'≥' if expected['synthetic'] else '<'} "
                                            f"threshold {expected['threshold']:.4f}")
    attribution = _text(browser, "attribution")
    assert all(f"{entry['generator']} {entry['probability']:.3f}" in attribution
               for entry in expected["attribution"]["top"])
    captions = [c.text.splitlines() for c in browser.find_elements(By.CSS_SELECTOR, "#neighbors figcaption")]
    assert captions == [[n["generator"], f"similarity {n['score']:.3f}"] for n in expected["neighbors"]]
    assert len(captions) == 5 and _page_problems(browser) == []

    screenshot = tmp_path / "detect.png"
    assert browser.save_screenshot(str(screenshot))
    _assert_not_blank(screenshot.read_bytes())
    _keep_for_docs(screenshot, "analyst-page.png")


def test_an_image_dropped_on_the_page_is_scored(browser, trained_service):
    base, _, originals = trained_service
    image = sorted((originals / "real").rglob("*.png"))[0]
    _open_with_token(browser, base, TOKEN)
    _wait(browser, lambda d: _text(d, "token-state") == "token accepted")
    browser.execute_script(  # what a drag from the desktop delivers: a DataTransfer holding the file
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const files = new DataTransfer();"
        "files.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));"
        "document.getElementById('drop').dispatchEvent("
        "  new DragEvent('drop', {dataTransfer: files, bubbles: true, cancelable: true}));",
        base64.b64encode(image.read_bytes()).decode())
    _wait(browser, shown.visibility_of_element_located((By.ID, "result")))
    assert _text(browser, "query-name") == "dropped.png" and _text(browser, "verdict")
    assert _page_problems(browser) == []


def test_the_models_view_shows_the_champion_its_checks_and_the_audit(browser, trained_service):
    base, _, _ = trained_service
    registry = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    champion = registry["champion"]
    checks = httpx.get(f"{base}/models/{champion}",
                       headers={"Authorization": f"Bearer {TOKEN}"}).json()["gate"]["checks"]
    _open_with_token(browser, base, TOKEN)
    browser.find_element(By.ID, "tab-models").click()
    details = _wait(browser, shown.visibility_of_element_located(
        (By.CSS_SELECTOR, f"#model-details .model[data-version='{champion}']")))

    assert _text(browser, "champion-line") == f"Champion: {champion}"
    assert f"{champion} ★ champion" in _text(browser, "models-table")
    rows = [r.text for r in details.find_elements(By.CSS_SELECTOR, "table.checks tbody tr")]
    assert len(rows) == len(checks) >= 4
    for row, check in zip(rows, checks):
        assert row.startswith(f"{check['name']} {'passed' if check['passed'] else 'failed'} {check['value']:.4f} "
                              f"{check['threshold']:.4f}")
    audit = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")]
    assert len(audit) == 3 and all(champion in line for line in audit)
    assert _page_problems(browser) == []


def test_a_versions_report_opens_from_the_models_view(browser, trained_service, tmp_path):
    base, store, _ = trained_service
    champion = httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {TOKEN}"}).json()["champion"]
    _open_with_token(browser, base, TOKEN)
    browser.find_element(By.ID, "tab-models").click()
    button = _wait(browser, shown.element_to_be_clickable(
        (By.CSS_SELECTOR, f"#model-details .model[data-version='{champion}'] button.report")))
    page = browser.current_window_handle
    button.click()
    _wait(browser, lambda driver: len(driver.window_handles) == 2)
    browser.switch_to.window(next(handle for handle in browser.window_handles if handle != page))
    try:
        _wait(browser, lambda driver: driver.title == "synthwatch evaluation")
        assert champion in browser.page_source and browser.current_url.startswith("blob:")
        assert "AUROC" in browser.find_element(By.TAG_NAME, "body").text
        body = browser.find_element(By.TAG_NAME, "body")
        assert body.value_of_css_property("font-size") == "14px"  # the report's inline styles applied (not 16px)
        assert _page_problems(browser) == []
        roc = browser.find_element(By.CSS_SELECTOR, "svg#roc")  # the held-out generators' ROC curves
        assert roc.size["width"] > 300 and roc.size["height"] > 150
        if PICTURES:
            browser.execute_script("arguments[0].scrollIntoView()", roc)
            roc.screenshot(str(tmp_path / "report-roc.png"))
            _keep_for_docs(tmp_path / "report-roc.png", "report-roc.png")
    finally:
        browser.close()
        browser.switch_to.window(page)


def test_a_wrong_token_shows_the_services_401_message(browser, trained_service, tmp_path):
    base, _, originals = trained_service
    _open_with_token(browser, base, "not-the-token")
    error = _wait(browser, shown.visibility_of_element_located((By.ID, "error")))
    assert error.text.startswith("401: Expected Authorization: Bearer <token> with the service's token.")
    browser.find_element(By.ID, "file").send_keys(str(sorted((originals / "real").rglob("*.png"))[0]))
    _wait(browser, lambda d: "Scoring" not in _text(d, "status"))
    assert _text(browser, "error").startswith("401: ") and not browser.find_element(By.ID, "result").is_displayed()


def _keep_for_docs(screenshot: Path, name: str) -> None:
    """Copy a screenshot into the docs' pictures when `make docs-pictures` asks for them."""
    if PICTURES:
        Path(PICTURES).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, Path(PICTURES) / name)


def _assert_not_blank(png: bytes) -> None:
    """A page drawn, not a blank or single-colour screenshot."""
    with Image.open(io.BytesIO(png)) as image:
        assert image.width == WINDOW[0] and image.height > WINDOW[1] // 2
        pixels = np.asarray(image.convert("RGB"))
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 64 and pixels.std() > 10, (len(colours), pixels.std())
