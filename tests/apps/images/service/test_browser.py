"""The web page in a real headless Chromium (Debian's chromium + chromium-driver), against a live server.

The screenshot is kept as an artifact in runs/test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[4] / "runs" / "test-artifacts"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


@pytest.fixture
def browser(tmp_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _cards(driver: webdriver.Chrome) -> list[tuple[str, str]]:
    """(point id, class name) of every result card, read in one script so a re-render cannot interleave."""
    cards = driver.execute_script(
        "return [...document.querySelectorAll('#results .card')]"
        ".map(c => [c.dataset.id, c.querySelector('.class-name').textContent])"
    )
    return [tuple(card) for card in cards]


@pytest.mark.slow
def test_upload_a_photo_see_similar_cars_and_search_from_a_result(browser, live_server, indexed_run):
    record = indexed_run[1][7]
    browser.get(live_server + "/")
    browser.find_element(By.ID, "file").send_keys(record.path)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: _cards(d))
    cards = _cards(browser)
    assert cards[0][1] == record.class_name  # the photo itself is indexed, so it comes first
    assert all(name for _, name in cards) and {name for _, name in cards} <= {r.class_name for r in indexed_run[1]}
    wait.until(lambda d: d.execute_script("return document.querySelector('#results .card img').naturalWidth") > 0)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "browser_search.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000

    clicked_id, clicked_name = cards[1]
    browser.find_elements(By.CSS_SELECTOR, "#results .card")[1].click()
    wait.until(lambda d: d.find_element(By.ID, "query-caption").text == clicked_name)
    wait.until(lambda d: _cards(d) and clicked_id not in [card_id for card_id, _ in _cards(d)])

    browser.find_element(By.ID, "random").click()
    wait.until(lambda d: "similar cars" in d.find_element(By.ID, "status").text)
    assert _cards(browser)
