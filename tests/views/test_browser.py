"""The dashboard and the report as a person sees them: headless Chromium (the system one) driven by selenium.

Screenshots go to the test's tmp dir, and also to ``$HPO_SCREENSHOT_DIR`` when set (that is how ``docs/`` is made).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from hpo.views.report import write_report
from tests.views.test_serving import serving, stop_server

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = (
            "needs Debian's chromium and chromium-driver, which `make test` installs where it may (root or "
            "passwordless sudo): apt-get install -y chromium chromium-driver"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)  # CI must run them
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="hpo-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(driver: Any, path: Path) -> None:
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("HPO_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["HPO_SCREENSHOT_DIR"]) / path.name)


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _wait_for_text(driver: Any, text: str, timeout: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_dashboard_shows_the_study_and_its_trials(browser: Any, tiny_study: Path, tmp_path: Path) -> None:
    n_trials = len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_study}/tiny/study.db").trials)
    with serving(["dashboard", "--study", "tiny", "--root", str(tiny_study), "--port", "0"], tiny_study) as (
        proc,
        where,
    ):
        assert where["url"].startswith(f"http://127.0.0.1:{where['port']}/dashboard/studies/")
        browser.get(where["url"].rsplit("/studies/", 1)[0])
        _wait_for_text(browser, "tiny")
        browser.get(where["url"])
        _wait_for_text(browser, "tiny (id=")
        _wait_for_text(browser, "Intermediate values")
        _screenshot(browser, tmp_path / "dashboard.png")
        browser.get(where["url"] + "/trials")
        listed = _wait_for_text(browser, f"{n_trials} Trials")
        assert all(f"Trial {n}\n" in listed for n in range(n_trials))
        assert _errors(browser) == []
        browser.get("about:blank")  # the dashboard polls its server, which is stopped next
        stop_server(proc, signal.SIGINT)


def test_report_renders_every_plot_offline(browser: Any, tiny_study: Path, tmp_path: Path) -> None:
    root = tmp_path / "studies"
    shutil.copytree(tiny_study / "tiny", root / "tiny")
    result = write_report("tiny", root=root, out=tmp_path / "report")
    browser.get_log("browser")  # only this page's messages count
    browser.get(result.index.as_uri())
    _wait_for_text(browser, "Study tiny")
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div'), d => "
        "[d.id, d.querySelectorAll('svg.main-svg').length, d.querySelectorAll('svg.main-svg path').length])"
    )
    assert [d[0] for d in drawn] == [f"plot-{key}" for key in result.plots]
    assert all(svgs >= 1 and paths >= 5 for _, svgs, paths in drawn), drawn
    assert _errors(browser) == []
    browser.execute_script("document.getElementById('optimization_history').scrollIntoView()")
    _screenshot(browser, tmp_path / "report.png")
