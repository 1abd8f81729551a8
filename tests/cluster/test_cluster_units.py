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


def test_member_states_from_the_store_are_checked() -> None:
    """A value another writer left in the store is applied only if it is a member state."""
    from twisted_lb.cluster.shared import _decode

    def decode(raw: bytes) -> object:
        return _decode(KeyValue(key="/p/state/app/node1", value=raw, mod_revision=3))

    assert decode(b'{"status": "draining", "loadfactor": 2}') == {
        "status": "draining",
        "loadfactor": 2,
    }
    assert decode(b'{"url": "ajp://h:8009", "loadfactor": 1.5}') is not None
    assert decode(b'{"removed": true}') == {"removed": True}
    for bad in (
        b"not json",
        b"[1]",
        b'{"url": 5}',
        b'{"loadfactor": true}',
        b'{"loadfactor": "7"}',
        b'{"removed": 1}',
        b'{"evil": 1}',
    ):
        assert decode(bad) is None, bad


def _bare_watch(events: list) -> object:
    """A Watch that never sent its request: only its message handling is used."""
    from twisted_lb.cluster.etcd import Watch

    watch = Watch.__new__(Watch)
    watch.endpoint, watch.revision, watch.done = "http://e:2379", 0, defer.Deferred()
    watch._on_events = lambda batch, rev: events.append((batch, rev))
    watch._protocol, watch._ended, watch._request = None, False, defer.Deferred()
    return watch


def test_watch_messages_and_errors() -> None:
    """Events pass; errors, cancellations and malformed lines end the watch with a reason."""
    from twisted_lb.cluster.etcd import Compacted, EtcdError, StoreUnavailable, _LineStream

    events: list = []
    watch = _bare_watch(events)
    stream = _LineStream(watch)  # type: ignore[arg-type]
    kv = {"key": "L3Av", "value": "MQ==", "mod_revision": "7"}
    stream.dataReceived(b'{"result": {"created": true}}\n{"result": {"events": [{"kv": ')
    stream.dataReceived(json.dumps(kv).encode() + b"}]}}\n")
    assert [(b[0][0], b[0][1].key, b[0][1].value, rev) for b, rev in events] == [
        ("PUT", "/p/", b"1", 7)
    ]
    cases = [
        (b'{"error": {"grpc_code": 16, "message": "invalid auth token"}}', EtcdError),
        (b'{"error": "etcdserver: user name is empty", "code": 3}', EtcdError),
        (b'{"result": {"canceled": true, "compact_revision": "5"}}', Compacted),
        (b'{"result": {"canceled": true}}', StoreUnavailable),
        (b'{"result": {"events": [{"kv": 5}]}}', EtcdError),
        (b"[1, 2]", EtcdError),
        (b"not json", EtcdError),
    ]
    for line, error in cases:
        watch = _bare_watch([])
        watch._line(line)  # type: ignore[attr-defined]
        failures: list = []
        watch.done.addErrback(failures.append)  # type: ignore[attr-defined]
        assert failures and failures[0].check(error), (line, failures)


def test_watch_lines_are_bounded(monkeypatch) -> None:  # noqa: ANN001
    from twisted_lb.cluster import etcd

    monkeypatch.setattr(etcd, "MAX_WATCH_LINE", 1000)
    watch = _bare_watch([])
    stream = etcd._LineStream(watch)  # type: ignore[arg-type]
    stream.dataReceived(b"x" * 600)
    assert not watch.done.called  # type: ignore[attr-defined]
    stream.dataReceived(b"x" * 600)
    failures: list = []
    watch.done.addErrback(failures.append)  # type: ignore[attr-defined]
    assert failures and "too large" in failures[0].getErrorMessage()


class BoundedAnswerTests(TestCase):
    """An etcd answer larger than the limit is refused, not read into memory."""

    @defer.inlineCallbacks
    def test_answers_are_bounded(self):
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from twisted_lb.cluster import etcd

        class Big(Resource):
            isLeaf = True

            def render_POST(self, request):  # noqa: N802
                return b'{"header": {"revision": "1"}, "pad": "' + b"x" * 5000 + b'"}'

        port = reactor.listenTCP(0, Site(Big()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}"
        client = etcd.EtcdClient(reactor, [url], timeout=2.0)
        self.addCleanup(client.close)
        self.patch(etcd, "MAX_WATCH_LINE", 1000)
        with self.assertRaises(etcd.StoreUnavailable) as e:
            yield defer.Deferred.fromCoroutine(client.get("/k"))
        self.assertIn("larger than 1000 bytes", str(e.exception))
        self.patch(etcd, "MAX_WATCH_LINE", 10000)
        self.assertIsNone((yield defer.Deferred.fromCoroutine(client.get("/k"))))
