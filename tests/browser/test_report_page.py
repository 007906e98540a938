"""report.html in a real browser: at 1366x768 the first screen shows the verdict, the three headline
numbers and the deciding chart without scrolling.

The report is built from synthetic step results (real result models; notebook 90 executed by
papermill, no vLLM), opened from disk in headless Chromium (system Chromium + chromedriver), the
viewport set to exactly 1366x768, and each element's bounding box checked against it. Screenshots:
test-artifacts/browser/ (the path is printed).
"""

from __future__ import annotations

import shutil

import pytest

from playbook.report import build_html
from playbook.runner import execute_step
from tests.support.decide_fixtures import load, make_run, sweep
from tests.support.report_fixtures import memory_and_quantization

pytestmark = [pytest.mark.browser]

WIDTH, HEIGHT = 1366, 768
FIRST_SCREEN = ["verdict", "headline-speedup", "headline-acceptance", "headline-concurrency", "deciding-chart"]
ALSO_VISIBLE = ["configuration", "launch"]


@pytest.fixture(scope="module")
def report_page(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"), sweep_result=sweep(), extra=memory_and_quantization(),
                   load_result=load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}))
    execute_step(run, "90_report", {"expected_peak_concurrency": 4, "mode": "managed", "target_model": "/models/target",
                                    "draft_model": "/models/draft"})
    return build_html(run)


def _box(driver, element_id: str) -> dict:
    return driver.execute_script(
        "const e = document.getElementById(arguments[0]); if (!e) return null;"
        "const r = e.getBoundingClientRect(); return {top: r.top, left: r.left, bottom: r.bottom, right: r.right,"
        "width: r.width, height: r.height, text: e.innerText};", element_id)


def test_first_screen_fits_1366x768_without_scrolling(report_page, driver, shots, tmp_path):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    driver.get(report_page.as_uri())
    driver.execute_script("window.scrollTo(0, 0)")
    view = driver.execute_script("return [window.innerWidth, window.innerHeight, window.scrollY]")
    assert view == [WIDTH, HEIGHT, 0], view
    shot = tmp_path / "report-first-screen.png"
    driver.save_screenshot(str(shot))
    kept = shots(driver, "first-screen")
    shutil.copy(shot, kept)
    print(f"\nscreenshot of the report's first screen: {kept}")
    boxes = {i: _box(driver, i) for i in FIRST_SCREEN + ALSO_VISIBLE}
    for element_id, box in boxes.items():
        assert box is not None, f"#{element_id} is missing from report.html"
        assert box["width"] > 0 and box["height"] > 0, f"#{element_id} is not rendered: {box}"
        assert box["top"] >= 0 and box["left"] >= 0, f"#{element_id} starts off screen: {box}"
        assert box["bottom"] <= HEIGHT and box["right"] <= WIDTH, f"#{element_id} needs scrolling at {WIDTH}x{HEIGHT}: {box}"
    assert "Verdict: GO WITH LIMITS" in boxes["verdict"]["text"]
    assert "1.30x" in boxes["headline-speedup"]["text"] and "1.15x to 1.45x" in boxes["headline-speedup"]["text"]
    assert "0.75" in boxes["headline-acceptance"]["text"] and "P10" in boxes["headline-acceptance"]["text"]
    assert "21% fewer" in boxes["headline-concurrency"]["text"]
    img = driver.execute_script(
        "const i = document.querySelector('#deciding-chart img'); return i && [i.complete, i.naturalWidth, "
        "i.getBoundingClientRect().height];")
    assert img and img[0] and img[1] > 300 and img[2] > 250, f"the deciding chart did not load or is too small: {img}"
