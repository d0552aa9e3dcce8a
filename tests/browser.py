"""Open a local HTML page in a real headless Chromium (Debian's `chromium` and `chromium-driver`, installed by
scripts/test.sh; never downloaded) with every request that is not a file or inline data blocked, and report
what a user would see: errors, images that did not load, the requests the page made, a screenshot."""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@dataclass
class PageVisit:
    errors: list[str]  # console errors and uncaught exceptions
    broken_images: list[str]
    requests: list[str]  # every URL the page asked for
    section_ids: list[str]
    screenshot_colours: int  # distinct colours in the first screen: a blank page has one or two


def visit(page: Path) -> PageVisit:
    if not (CHROMIUM and DRIVER):
        pytest.fail("chromium and chromium-driver are not installed; scripts/test.sh installs them (apt)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium must never fetch a driver or a browser
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1600", "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        driver.get(page.resolve().as_uri())
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        sections = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        colours = len(set(shot.resize((300, 400)).getdata()))
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
    finally:
        driver.quit()
    return PageVisit(errors, broken, requests, sections, colours)
