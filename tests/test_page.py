"""The assistant's page (GET /) used in headless Chromium against `radlite serve` on loopback.

Chromium and its driver come from Debian (`make test` installs them where apt-get can); without
them, or without selenium, these tests skip and say why.
"""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium is not installed (it is in the test extra: pip install -e '.[test]')")

from benchmarks.page_screenshot import KIOSK, ask, find_chromium, headless_chromium  # noqa: E402
from radlite_edge.routes import Route, Routes  # noqa: E402
from tests.test_serve import KEY, REPORTS, Live, live  # noqa: E402,F401  (live: the fixture, over this module's routes)

if find_chromium() is None:
    pytest.skip("no Chromium with chromedriver on PATH (apt-get install chromium chromium-driver; `make test` "
                "does it where apt-get is available)", allow_module_level=True)

# m_staging first: the page selects the first task by itself, so the others prove the picker is used
TASKS = ("m_staging", "radiology_nli", "abnormality_detection")


def rows_of(fields: dict) -> list[list[str]]:
    """The table the page draws from an answer's fields (its rule, in Python): labels, changes or
    entities one per row, else each field; objects as compact JSON, the rest as text."""
    def cell(v) -> str:
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

    if "labels" in fields:
        pairs = fields["labels"].items()
    elif "changes" in fields:
        pairs = [(c["finding"], c["change"]) for c in fields["changes"]]
    elif "entities" in fields:
        pairs = [(e["text"], e["type"]) for e in fields["entities"]]
    else:
        pairs = fields.items()
    return [[cell(k), cell(v)] for k, v in pairs]


@pytest.fixture(scope="module")
def routes(tiny_gguf) -> Routes:
    base = tiny_gguf("tiny-qwen2", "f32")
    return Routes({t: Route(t, base) for t in TASKS}, source="page test routes")


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium(KIOSK)
    yield driver
    driver.quit()


def _open(browser, server: Live):
    browser.get(f"http://127.0.0.1:{server.port}/")
    return browser


def test_the_page_shows_the_answer_the_api_gives(live, browser):
    page = _open(browser, live)
    for task, report in (("abnormality_detection", REPORTS[0]), ("radiology_nli", REPORTS[2])):
        seen = ask(page, report, task)
        status, api = live.call("POST", f"/v1/tasks/{task}", {"report": report, "truncate": False})
        assert status == 200 and not seen["error"] and seen["status"] == "", seen["status"]
        assert seen["task"] == api["task"] == task
        assert seen["rows"] == rows_of(api["fields"]) and seen["rows"]
        assert seen["text"] == api["text"]
        route = api["route"]
        assert seen["meta"].startswith(f"{route['model']} · {route['decoding']} · {api['prompt_tokens']} prompt + "
                                       f"{api['tokens']} answer tokens · ")
        assert re.search(r" · \d+\.\d\d s$", seen["meta"])  # seconds to the hundredth, not the server's 4 places
    # at the kiosk's 1280x800: nothing scrolls sideways, and the button and the answer start on screen
    layout = page.execute_script("""
      const box = (id) => document.getElementById(id).getBoundingClientRect();
      return {wide: document.documentElement.scrollWidth, view: [innerWidth, innerHeight],
              go: box("go").bottom, out: box("out").top, key: document.getElementById("keyrow").hidden};""")
    assert layout["view"] == list(KIOSK) and layout["wide"] <= KIOSK[0]
    assert layout["go"] < KIOSK[1] and layout["out"] < KIOSK[1]
    assert layout["key"]  # loopback needs no key: the page does not ask for one


def test_a_bad_request_shows_the_servers_message_and_no_stale_answer(live, browser):
    page = _open(browser, live)
    assert ask(page, REPORTS[1], "m_staging")["task"] == "m_staging"  # an answer on screen, to go stale
    for report, code in (("", 400), ("x" * 1500, 413)):  # empty; over the server's 1000 characters
        seen = ask(page, report, "m_staging")
        status, api = live.call("POST", "/v1/tasks/m_staging", {"report": report, "truncate": False})
        assert status == code and seen["error"]
        assert seen["status"] == api["error"]["message"]  # the server's own words, e.g. "report" must be non-empty
        assert seen["task"] is None and seen["rows"] is None  # the previous report's answer is gone


def test_with_an_api_key_the_page_asks_for_it_then_answers(routes, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    server = Live(routes, api_key=KEY)
    try:
        page = _open(browser, server)
        status = page.find_element(By.ID, "status")
        WebDriverWait(page, 20).until(lambda d: status.text)
        assert status.text == "enter the API key, then answer" and page.find_element(By.ID, "keyrow").is_displayed()
        key = page.find_element(By.ID, "key")
        key.send_keys("wrong-key-0000000000")
        page.find_element(By.ID, "go").click()  # a wrong key: no task list, so nothing is sent
        WebDriverWait(page, 20).until(lambda d: d.find_element(By.ID, "go").is_enabled())
        assert status.text == "enter the API key, then answer" and not page.find_elements(By.CSS_SELECTOR, "#task option")
        key.clear()
        key.send_keys(KEY + Keys.TAB)  # leaving the field loads the tasks, so one is picked before answering
        seen = ask(page, REPORTS[1], "m_staging")
        reply, api = server.call("POST", "/v1/tasks/m_staging", {"report": REPORTS[1]},
                                 {"Authorization": f"Bearer {KEY}"})
        assert reply == 200 and not seen["error"] and seen["task"] == "m_staging"
        assert seen["rows"] == rows_of(api["fields"]) and seen["text"] == api["text"]
    finally:
        server.stop()
