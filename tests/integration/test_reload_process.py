"""
A real C{twistd -n lbproxy --config FILE} process: edit the file and send
SIGHUP (the change is served; a broken file is refused and the running
configuration stays), then SIGTERM with a slow request in flight (it
completes, new connections are refused, the process exits in time). The AJP
members run in the test process, on 127.0.0.1.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.interop.proxy_process import ProxyClient, ProxyProcess, free_port, toml_config
from twisted_lb.testing import Fault, FaultyAJPMember

from .support import Node
from .test_reload import refused, sleep


class TwistdReloadAndStopTests(TestCase):
    timeout = 90

    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        self.slow = FaultyAJPMember(Fault.NONE).start()
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)
        self.port = free_port()

    @defer.inlineCallbacks
    def tearDown(self):
        self.proxy.stop(timeout=5)
        for node in self.nodes:
            yield node.stop()
        yield self.slow.stop()

    def config_text(self, members, **top) -> str:
        return toml_config(
            listen=[self.port],
            members=members,
            path="/",
            # One process: this is about ProxyService under twistd (tests/workers covers
            # signals forwarded to workers).
            top={"workers": 1, "shutdown_timeout": 10, "log_format": "json", **top},
        )

    @defer.inlineCallbacks
    def wait_for_log(self, text: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.proxy.log():
                return
            yield sleep(0.1)
        self.fail(f"{text!r} not in the log:\n{self.proxy.log()[-5000:]}")

    @defer.inlineCallbacks
    def test_sighup_reloads_and_sigterm_drains(self):
        n1, n2 = self.nodes
        self.proxy = ProxyProcess(
            self.directory, self.config_text([{"url": n1.url, "route": "node1"}])
        )
        yield deferToThread(self.proxy.start, [self.port])
        client = ProxyClient(self.port)
        self.addCleanup(client.close)
        result = yield deferToThread(client.get, "/echo")
        self.assertEqual(json.loads(result.body)["node"], "node1")

        # SIGHUP with an edited file: node2 replaces node1.
        self.proxy.config_path.write_text(
            self.config_text([{"url": n2.url, "route": "node2"}, {"url": self.slow.url, "route": "slow", "loadfactor": 1}])
        )
        self.proxy.process.send_signal(signal.SIGHUP)
        yield self.wait_for_log("members added: app/node2, app/slow")
        seen = set()
        for _ in range(4):
            result = yield deferToThread(client.get, "/echo")
            self.assertEqual(result.status, 200)
            seen.add(json.loads(result.body)["node"] if result.body.startswith(b"{") else "slow")
        self.assertIn("node2", seen)
        self.assertNotIn("node1", seen)

        # SIGHUP with a broken file: refused with file, key and problem; still served.
        self.proxy.config_path.write_text(self.config_text([{"url": n1.url, "lodfactor": 2}]))
        self.proxy.process.send_signal(signal.SIGHUP)
        yield self.wait_for_log("unknown key 'lodfactor'")
        log = self.proxy.log()
        self.assertIn("reload refused, the running configuration stays", log)
        self.assertIn(f"{self.proxy.config_path}: balancers.app.members[0]", log)
        self.assertEqual((yield deferToThread(client.get, "/echo")).status, 200)

        # The log is JSON, one object per line.
        lines = [json.loads(line) for line in self.proxy.log_path.read_text().splitlines()]
        self.assertTrue(any(e.get("log_namespace") == "twisted_lb.reload" for e in lines))
        self.assertTrue(all("text" in e for e in lines))

        # SIGTERM with a slow request in flight.
        self.slow.schedule(Fault.STALL_BEFORE_HEADERS)
        slow_client = ProxyClient(self.port)
        self.addCleanup(slow_client.close)
        pending = deferToThread(slow_client.get, "/slow", headers={"Cookie": "JSESSIONID=x.slow"})
        yield sleep(0.5)
        self.proxy.process.send_signal(signal.SIGTERM)
        yield sleep(0.5)
        self.assertTrue(refused(self.port))
        self.assertIsNone(self.proxy.process.poll())
        sent_at = time.monotonic()
        self.slow.answer_stalled()
        result = yield pending
        self.assertEqual(result.status, 200)
        self.assertEqual(result.header("Connection"), "close")
        while self.proxy.process.poll() is None and time.monotonic() - sent_at < 5:
            yield sleep(0.1)
        # twistd ends by the signal that stopped it, as a supervisor expects.
        self.assertEqual(self.proxy.process.poll(), -signal.SIGTERM)
        self.assertIn("stopping: 1 requests in flight", self.proxy.log())
        self.assertLess(time.monotonic() - sent_at, 3)

    @defer.inlineCallbacks
    def test_json_log_rotates_on_sigusr1_and_reopens_on_sighup(self):
        """twistd installs its SIGUSR1 rotation only for its own text log; the JSON one gets both."""
        n1, _ = self.nodes
        self.proxy = ProxyProcess(
            self.directory, self.config_text([{"url": n1.url, "route": "node1"}])
        )
        yield deferToThread(self.proxy.start, [self.port])
        log_path = self.proxy.log_path
        rotated = log_path.with_name(log_path.name + ".1")
        self.proxy.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not rotated.exists() and time.monotonic() < deadline:
            yield sleep(0.1)
        self.assertTrue(rotated.exists())
        self.assertIn("listening on", rotated.read_text())
        self.assertIsNone(self.proxy.process.poll())
        # A log rotation tool moved the file away: SIGHUP reloads and writes a new one.
        moved = log_path.with_name("moved.log")
        log_path.rename(moved)
        self.proxy.process.send_signal(signal.SIGHUP)
        yield self.wait_for_log("SIGHUP: reloading")
        self.assertNotIn("SIGHUP: reloading", moved.read_text())
        self.assertEqual((yield deferToThread(ProxyClient(self.port).get, "/echo")).status, 200)
