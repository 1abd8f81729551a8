"""
The two examples of docs/embedding.md run as written (only the port numbers
changed): the C{.tac} file under C{twistd -ny}, the "only the resource"
program under C{python}. Each serves a request from a demo AJP node in this
process, on 127.0.0.1, and is stopped by PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.integration.support import Node
from tests.interop.tomcat import free_port

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "embedding.md"


def example(name: str) -> str:
    """The python block of docs/embedding.md whose first line is C{# name}."""
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        if block.startswith(f"# {name}\n"):
            return block
    raise AssertionError(f"no example {name} in {DOC}")


def _get(url: str, timeout: float = 20.0) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class EmbeddingExamplesTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.node = Node("tomcat1")
        self.port = free_port()
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)

    def tearDown(self) -> defer.Deferred[None]:
        return self.node.stop()

    def source(self, name: str) -> str:
        text = example(name)
        assert "tcp:8080:interface=127.0.0.1" in text and "ajp://127.0.0.1:8009" in text
        return text.replace("tcp:8080:", f"tcp:{self.port}:").replace(
            "ajp://127.0.0.1:8009", self.node.url
        )

    @defer.inlineCallbacks
    def run_example(self, argv: list[str]):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        log = (self.directory / "out.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            status, body = yield deferToThread(_get, f"http://127.0.0.1:{self.port}/share/echo")
        finally:
            process.send_signal(signal.SIGTERM)
            yield deferToThread(process.wait, 15)
            log.close()
        output = (self.directory / "out.log").read_text()
        self.assertEqual(status, 200, output)
        echo = json.loads(body)
        self.assertEqual(echo["node"], "tomcat1")
        self.assertEqual(echo["uri"], "/echo")  # RouteConfig("/share", ...) maps /share/x to /x
        return output

    @defer.inlineCallbacks
    def test_tac_runs_under_twistd(self):
        (self.directory / "proxy.tac").write_text(self.source("proxy.tac"))
        output = yield self.run_example(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "-ny", "proxy.tac", "--pidfile="]
        )  # fmt: skip
        self.assertIn("ready: listening on 127.0.0.1:", output)

    @defer.inlineCallbacks
    def test_resource_in_own_site_runs_under_python(self):
        (self.directory / "site.py").write_text(self.source("site.py"))
        yield self.run_example([sys.executable, "site.py"])
