"""
The balancer manager in a real headless browser (Debian's chromium driven by
Playwright) against a real proxy process (C{twistd -n lbproxy --demo} on free
loopback ports, stopped by PID): the page lists both nodes, clicking
"Disable" changes the member's state on the page and the traffic follows
(every request then reaches the other node, even one whose session named the
disabled node); draining keeps sticky users and shows them as pinned.

Skipped when chromium or Playwright is missing, unless C{LB_REQUIRE_BROWSER=1}
(CI), which turns the skip into a failure.  With C{LB_SCREENSHOT_DIR} set, the
screenshots of the operations guide are written there
(C{LB_SCREENSHOT_DIR=docs/images}).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..interop.tomcat import _insecure_tls_context, _port_accepts, free_port

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.integration


def _require_browser() -> None:
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Python playwright is not installed"
    if missing is None and not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("LB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LB_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


class Demo:
    """C{twistd -n lbproxy --demo} on free ports, in a directory of its own."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.https, self.http, self.admin = free_port(), free_port(), free_port()
        self.log = directory / "twistd.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-n", "--pidfile=", "--logfile", str(self.log), "lbproxy", "--demo",
             "--demo-dir", str(directory),
             "--demo-https", f"tcp:{self.https}:interface=127.0.0.1",
             "--demo-http", f"tcp:{self.http}:interface=127.0.0.1",
             "--demo-admin", f"tcp:{self.admin}:interface=127.0.0.1"],
            cwd=directory, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not all(_port_accepts(p) for p in (self.https, self.admin)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the demo did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def session(self, cookie: str | None = None) -> dict:
        """One request through the proxy on a new connection; the node's JSON answer."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.https, timeout=10,
                                           context=_insecure_tls_context())
        try:
            conn.request("GET", "/session", headers={"Cookie": f"JSESSIONID={cookie}"} if cookie else {})
            response = conn.getresponse()
            assert response.status == 200, response.status
            return json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    _require_browser()
    running = Demo(tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def page(tmp_path: Path, demo: Demo):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1500, "height": 560},
        )
        try:
            # Keep the page still while the test clicks (auto-refresh is the page's default).
            context.add_init_script("localStorage.setItem('lb-refresh', 'off')")
            yield context.new_page()
        finally:
            context.close()


def _shot(page, name: str) -> None:
    directory = os.environ.get("LB_SCREENSHOT_DIR")
    if directory:
        page.screenshot(path=str(Path(directory) / name), full_page=True)


def _state(page, route: str) -> str:
    return page.locator(f'tr[data-route="{route}"] [data-state]').get_attribute("data-state")


def test_disable_in_the_browser_moves_the_traffic(demo: Demo, page) -> None:
    first = {demo.session()["node"] for _ in range(4)}
    assert first == {"node1", "node2"}
    node1_session = next(s for s in iter(demo.session, None) if s["node"] == "node1")["session"]
    node2_session = next(s for s in iter(demo.session, None) if s["node"] == "node2")["session"]

    page.goto(f"http://127.0.0.1:{demo.admin}/")
    assert page.title() == "twisted_lb balancer manager"
    assert _state(page, "node1") == "active" and _state(page, "node2") == "active"

    # Live charts per member, from the proxy's own counters, updating under load.
    page.wait_for_selector("[data-chart] canvas")
    assert page.locator("[data-chart] canvas").count() >= 2
    chart = "[data-chart][data-requests]"
    page.wait_for_selector(chart)

    def charted() -> int:
        return sum(int(v) for v in page.eval_on_selector_all(
            chart, "els => els.map(e => e.getAttribute('data-requests'))"))

    before = charted()
    for _ in range(12):
        demo.session()
    page.wait_for_function(
        f"""() => Array.from(document.querySelectorAll('{chart}'))
                 .reduce((n, e) => n + Number(e.getAttribute('data-requests')), 0) >= {before + 12}""",
        timeout=15000,
    )
    assert charted() >= before + 12
    _shot(page, "manager.png")

    page.click('tr[data-route="node1"] button[data-action="disable"]')
    page.wait_for_selector('tr[data-route="node1"] [data-state="disabled"]')
    assert "demo / node1: status disabled" in page.locator('[role="status"]').inner_text()
    assert _state(page, "node2") == "active"
    assert {demo.session()["node"] for _ in range(6)} == {"node2"}
    assert demo.session(node1_session)["node"] == "node2"  # disabled: sticky users fail over
    _shot(page, "manager-disabled.png")

    # Drain node2 with node1 back: new sessions go to node1, node2's session stays there.
    page.click('tr[data-route="node1"] button[data-action="enable"]')
    page.wait_for_selector('tr[data-route="node1"] [data-state="active"]')
    page.click('tr[data-route="node2"] button[data-action="drain"]')
    page.wait_for_selector('tr[data-route="node2"] [data-state="draining"]')
    assert {demo.session()["node"] for _ in range(4)} == {"node1"}
    assert demo.session(node2_session)["node"] == "node2"
    page.reload()
    row = page.locator('tr[data-route="node2"]').inner_text()
    assert "1 session(s) in the last 10 min" in row
    _shot(page, "manager-draining.png")

    # A load factor typed into the page.
    page.fill('input[aria-label="load factor of node1"]', "3")
    page.click('tr[data-route="node1"] button[data-action="loadfactor"]')
    page.wait_for_selector('[role="status"]')
    assert page.locator('input[aria-label="load factor of node1"]').input_value() == "3"

    # The page says what runs, and the last check in words.
    about = page.locator("#about").inner_text()
    assert about.startswith("twisted_lb ") and "demo.toml" in about and " · up " in about
    assert "ok=" not in page.content()

    # "Reload configuration" works in the demo (it used to answer 409): it reads demo.toml again.
    page.click('button:has-text("Reload configuration")')
    status = page.locator('[role="status"]')
    status.wait_for()
    assert status.inner_text().startswith("configuration reloaded")
    assert "last reload" in page.locator("#about").inner_text()

    # Disabling the last member that takes new requests asks first.
    page.click('tr[data-route="node2"] button[data-action="enable"]')
    page.wait_for_selector('tr[data-route="node2"] [data-state="active"]')
    page.click('tr[data-route="node1"] button[data-action="disable"]')
    page.wait_for_selector('tr[data-route="node1"] [data-state="disabled"]')
    page.click('tr[data-route="node2"] button[data-action="disable"]')
    question = page.locator('[role="alertdialog"]')
    question.wait_for()
    assert "node2 is the last member of balancer demo that takes new requests" in question.inner_text()
    assert _state(page, "node2") == "active"  # nothing done yet
    _shot(page, "manager-confirm.png")
    page.click('[role="alertdialog"] button[data-confirm="yes"]')
    page.wait_for_selector('tr[data-route="node2"] [data-state="disabled"]')
    for route in ("node1", "node2"):
        page.click(f'tr[data-route="{route}"] button[data-action="enable"]')
        page.wait_for_selector(f'tr[data-route="{route}"] [data-state="active"]')
    assert {demo.session()["node"] for _ in range(6)} == {"node1", "node2"}
