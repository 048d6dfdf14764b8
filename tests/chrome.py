"""Debian's headless Chromium for tests, driven by Selenium through Debian's chromedriver
(no browser download): the `browser` fixture, and screenshots under
test-artifacts/screenshots/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); .ci/run installs them",
)

if CHROMIUM and CHROMEDRIVER:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=420,900",  # a phone-sized window
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))


AXE = Path(__file__).resolve().parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"phone": 390, "desktop": 1280}
SCHEMES = ("light", "dark")


def each_view(driver: webdriver.Chrome) -> Iterator[tuple[str, str]]:
    """Set the browser to each colour scheme at each width in turn: (device, scheme)."""
    for scheme in SCHEMES:
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        for device, width in VIEWPORTS.items():
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
            )
            yield device, scheme


needs_axe = pytest.mark.skipif(
    not AXE.is_file(),
    reason="needs axe-core from npm: npm ci --prefix tests/browser (.ci/run installs it)",
)


def axe_violations(driver: webdriver.Chrome) -> list[tuple[str, str, list[str]]]:
    """axe-core's violations on the page loaded: (rule, impact, the first elements)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found: list[tuple[str, str, list[str]]] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => [v.id, v.impact, v.nodes.slice(0, 3).map(n => n.target.join(' '))])));"
    )
    return found
