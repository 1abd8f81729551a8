"""The cluster package's pieces that need no etcd: merging, keys, the instance list, start-up without a store."""

from __future__ import annotations

import json

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from tests.interop.tomcat import free_port
from twisted_lb.cluster.etcd import KeyValue
from twisted_lb.cluster.instances import Instances
from twisted_lb.cluster.shared import _parse_state_key, merge_change, state_key
from twisted_lb.config import ConfigError, load_toml_text
from twisted_lb.service import ProxyService


def test_merge_change_follows_the_state_file() -> None:
    """Status and load factor merge; an added or removed member replaces what was there."""
    assert merge_change(None, {"status": "draining"}) == {"status": "draining"}
    assert merge_change({"status": "draining"}, {"loadfactor": 2.0}) == {
        "status": "draining",
        "loadfactor": 2.0,
    }
    assert merge_change({"status": "draining"}, {"removed": True}) == {"removed": True}
    assert merge_change({"removed": True}, {"status": "active"}) == {"status": "active"}
    added = {"url": "ajp://h:8009", "loadfactor": 1.0}
    assert merge_change({"status": "disabled"}, added) == added
    assert merge_change(added, {"status": "standby"}) == {**added, "status": "standby"}


def test_state_keys_encode_balancer_and_route() -> None:
    key = state_key("/twisted_lb/x", "my app", "ajp://10.0.0.3:8009")
    assert key == "/twisted_lb/x/state/my%20app/ajp%3A%2F%2F10.0.0.3%3A8009"
    assert _parse_state_key("/twisted_lb/x", key) == ("my app", "ajp://10.0.0.3:8009")
    assert _parse_state_key("/twisted_lb/x", "/twisted_lb/x/instances/a") is None
    assert _parse_state_key("/twisted_lb/x", "/twisted_lb/x/state/a/b/c") is None


def _kv(key: str, info: dict) -> KeyValue:
    return KeyValue(key=key, value=json.dumps(info).encode(), mod_revision=1)


def test_instances_gone_and_disagreements() -> None:
    instances = Instances(None, "/p", reactor, None, lambda ok, why: None, "a")  # type: ignore[arg-type]
    views = {"a": "ok", "b": "error: connection refused", "c": "ok"}
    for name, view in views.items():
        info = {
            "name": name,
            "address": f"http://{name}",
            "version": "1",
            "started": 0.0,
            "health": {"app": {"node1": view, "node2": "ok"}},
        }
        instances.seen(f"/p/instances/{name}", _kv(f"/p/instances/{name}", info))
    described = instances.describe()
    assert [i["name"] for i in described["instances"]] == ["a", "b", "c"]
    assert [i["this"] for i in described["instances"]] == [True, False, False]
    assert described["disagreements"] == [{"balancer": "app", "route": "node1", "views": views}]
    instances.seen("/p/instances/b", None)  # its lease ended
    described = instances.describe()
    assert described["instances"][1]["gone_since"] is not None
    assert described["disagreements"] == []  # gone instances do not count
    # A full reload that no longer has c: c is gone too.
    instances.resync({"/p/instances/a", "/p/state/app/node1"})
    assert instances.describe()["instances"][2]["gone_since"] is not None


class StoreDownAtStartTests(TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_serves_with_the_file_when_the_store_never_answers(self):
        """Start-up waits timeout x endpoints + 1 s for the store, refuses reloads meanwhile, then serves."""
        port = free_port()
        text = f"""
workers = 1
[[listen]]
endpoint = "tcp:{port}:interface=127.0.0.1"
[balancers.app]
[[balancers.app.members]]
url = "ajp://127.0.0.1:1"
route = "node1"
[[routes]]
path = "/"
balancer = "app"
[cluster]
etcd = ["http://127.0.0.1:{free_port()}"]
prefix = "/t"
timeout = 0.5
"""
        config = load_toml_text(text, "<t>")
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertFalse(service.listening[0].running)
        with self.assertRaises(ConfigError) as e:
            service.reload(config)
        self.assertIn("waiting for the shared store", str(e.exception))
        started = reactor.seconds()
        yield service.cluster.ready
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertTrue(service.listening[0].running)
        self.assertIs(service.cluster.shared.up, False)
        self.assertIn("unreachable", service.cluster.shared.problem)
        self.flushLoggedErrors()
