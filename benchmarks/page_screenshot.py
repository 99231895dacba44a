"""The assistant page in use, in headless Chromium: remakes docs/assistant_page.png.

    .venv/bin/python -m benchmarks.page_screenshot [-o docs/assistant_page.png] [--task abnormality_detection]

Run from the repository root: it starts the real ``radlite serve`` on a free loopback port with
its default routes (the merged fine-tuned embedded default, models/smollm2-135m-radlite-F16.gguf,
where `radlite demo` has made it; else the base with the shipped adapter), pastes a report into
the page, picks the task, presses Answer and saves the window at a kiosk's 1280x800.
tests/test_page.py drives the page with the same helpers.

Selenium over Debian's chromium and chromium-driver (apt-get install chromium chromium-driver):
the driver comes from the browser's own source package, so their versions match, and nothing is
downloaded at run time (Playwright fetches a browser build of its own, which an offline kiosk or
CI cannot). Driving Chromium's DevTools protocol directly would need a WebSocket client the
standard library lacks, and clicks, typing and waits written by hand; WebDriver gives real input
events and explicit waits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
KIOSK = (1280, 800)
# A chest CT report as a radiologist dictates it (written for this picture; no patient's).
REPORT = """CT CHEST WITH CONTRAST

CLINICAL HISTORY: 64-year-old with cough and weight loss.

FINDINGS: There is a 3.1 cm spiculated mass in the right upper lobe with associated right hilar
lymphadenopathy. Small right pleural effusion with adjacent compressive atelectasis. The heart is
normal in size. No pericardial effusion. No pneumothorax. Degenerative changes of the thoracic spine.

IMPRESSION: Right upper lobe mass with hilar adenopathy, suspicious for primary lung malignancy.
Small right pleural effusion."""


def find_chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) on PATH, or None."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chromium(size: tuple[int, int] = KIOSK):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if found is None:
        raise RuntimeError("no Chromium with chromedriver on PATH: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    # Chromium will not start its sandbox as root (CI, kiosk images); a container's /dev/shm is tiny
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    # an explicit driver path: Selenium Manager, which would try to download one, is never asked
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    # the window size includes no browser frame in headless mode, but pin the viewport itself:
    # the layout is judged at exactly the kiosk's screen
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
    return driver


def shown(driver) -> dict:
    """What the page shows: the status line and the answer (heading, table rows, raw text, note)."""
    return driver.execute_script("""
      const out = document.getElementById("out"), st = document.getElementById("status");
      const q = (s) => out.querySelector(s);
      return {status: st.textContent, error: st.className === "error",
              task: q("h3") && q("h3").textContent, text: q("pre") && q("pre").textContent,
              rows: q("table") ? [...q("table").rows].map((r) => [...r.cells].map((c) => c.textContent)) : null,
              meta: q("p.note") && q("p.note").textContent};""")


def ask(driver, report: str, task: str, timeout: float = 60.0) -> dict:
    """Paste the report, pick the task, press Answer; wait until the page has answered or erred."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))  # the page loads the task list itself
    box = driver.find_element(By.ID, "report")
    box.clear()
    if report:
        box.send_keys(report)
    Select(driver.find_element(By.ID, "task")).select_by_value(task)
    go = driver.find_element(By.ID, "go")
    go.click()  # the handler disables the button before its first await, so the wait below cannot pass early
    wait.until(lambda d: go.is_enabled() and d.find_element(By.ID, "status").text != "answering…")
    return shown(driver)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-o", "--output", default="docs/assistant_page.png")
    p.add_argument("--task", default="abnormality_detection")
    p.add_argument("-t", "--threads", type=int, default=2)
    args = p.parse_args(argv)

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "radlite_edge.cli", "serve", "--port", str(port),
                               "-t", str(args.threads)], stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120  # the default routes may export the adapter once
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"radlite serve did not start:\n{server.stderr.read()}") from None
                time.sleep(0.3)
        with urllib.request.urlopen(base + "/v1/tasks") as r:
            route = next(t for t in json.load(r)["tasks"] if t["task"] == args.task)
        print(f"serving {args.task} with {route['model']}" + (f" + {route['adapter']}" if route["adapter"] else ""))
        driver = headless_chromium()
        driver.get(base + "/")
        seen = ask(driver, REPORT, args.task, timeout=600)  # a shared or small CPU may take a minute
        if seen["error"] or seen["task"] != args.task:
            raise SystemExit(f"the page did not answer: {seen['status']!r}")
        # typing leaves the report scrolled to its end: show its beginning, as a clinician sees it after pasting
        driver.execute_script("document.getElementById('report').scrollTop = 0")
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.output)
        print(json.dumps(seen, indent=1))
        print(f"wrote {args.output}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
