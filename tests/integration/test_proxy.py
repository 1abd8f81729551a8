"""
The proxy on real loopback sockets in front of two demo AJP nodes.
"""

from __future__ import annotations

import hashlib
import json
import socket

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from .support import Client, Node, start_proxy


def _json(body: bytes) -> dict:
    return json.loads(body.decode("utf-8"))


class ProxyTests(TestCase):
    """Requests through the proxy reach the nodes and come back whole."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.nodes = [Node("node1"), Node("node2")]
        self.proxy, self.base = yield defer.Deferred.fromCoroutine(start_proxy(self.nodes))
        self.client = Client()

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.client.close()
        yield self.proxy.stopService()
        for node in self.nodes:
            yield node.stop()

    def get(self, path, **kw):
        return defer.Deferred.fromCoroutine(self.client.request(self.base + path, **kw))

    @defer.inlineCallbacks
    def test_query_headers_and_client(self):
        """The node sees the path, query, headers, client address, route and secret slot."""
        status, headers, body = yield self.get(
            "/echo?a=1&b=%C3%A9", headers={b"X-Test": [b"one", b"two"]}
        )
        self.assertEqual(status, 200)
        echo = _json(body)
        self.assertEqual(echo["uri"], "/echo")
        self.assertEqual(echo["query"], "a=1&b=%C3%A9")
        self.assertEqual(echo["remote_addr"], "127.0.0.1")
        self.assertIn(["x-test", "one"], echo["headers"])
        self.assertIn(["x-test", "two"], echo["headers"])
        self.assertEqual(echo["route"], echo["node"])
        self.assertIn("AJP_REMOTE_PORT", echo["attributes"])
        self.assertEqual(echo["attributes"]["AJP_LOCAL_ADDR"], "127.0.0.1")
        self.assertFalse(echo["is_ssl"])
        self.assertIsNone(headers.getRawHeaders(b"server"))

    @defer.inlineCallbacks
    def test_hop_by_hop_headers_removed(self):
        """Connection, Keep-Alive, TE and headers named in Connection are not forwarded."""
        _, _, body = yield self.get(
            "/echo", headers={b"Connection": [b"keep-alive, X-Secret-Hop"], b"X-Secret-Hop": [b"1"],
                              b"TE": [b"trailers"]}
        )
        names = {n for n, _ in _json(body)["headers"]}
        self.assertFalse(names & {"connection", "x-secret-hop", "te", "keep-alive"})

    @defer.inlineCallbacks
    def test_round_robin_without_session(self):
        """Requests without a session alternate between the nodes (byrequests, equal weights)."""
        seen = []
        for _ in range(6):
            _, _, body = yield self.get("/echo")
            seen.append(_json(body)["node"])
        self.assertEqual(seen, ["node1", "node2"] * 3)

    @defer.inlineCallbacks
    def test_sticky_cookie_and_path_parameter(self):
        """A session stays on its node, by cookie and by ;jsessionid= path parameter."""
        _, headers, body = yield self.get("/session")
        first = _json(body)
        cookie = headers.getRawHeaders(b"set-cookie")[0].split(b";")[0]
        for i in range(2, 12):
            _, _, body = yield self.get("/session", headers={b"Cookie": [cookie]})
            self.assertEqual(_json(body), {**first, "counter": i})
        sid = first["session"]
        _, _, body = yield self.get(f"/session;jsessionid={sid}")
        self.assertEqual(_json(body)["node"], first["node"])

    @defer.inlineCallbacks
    def test_request_bodies_byte_exact(self):
        """POST bodies of many sizes reach the node byte for byte."""
        for size in (0, 1, 8186, 8187, 8192 + 1, 65536, 1024 * 1024):
            data = bytes((i * 7) % 256 for i in range(size))
            status, _, body = yield self.get("/echo", method=b"POST", body=data)
            self.assertEqual(status, 200)
            echo = _json(body)
            self.assertEqual((size, hashlib.sha256(data).hexdigest()),
                             (echo["body_length"], echo["body_sha256"]))

    @defer.inlineCallbacks
    def test_patch_method(self):
        """PATCH (outside AJP's method table) arrives as PATCH."""
        _, _, body = yield self.get("/echo", method=b"PATCH", body=b"{}")
        self.assertEqual(_json(body)["method"], "PATCH")

    @defer.inlineCallbacks
    def test_large_response_streams_with_content_length(self):
        """A 5 MB response arrives whole, with the node's Content-Length kept."""
        size = 5 * 1024 * 1024
        status, headers, body = yield self.get(f"/big?bytes={size}")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders(b"content-length"), [b"%d" % size])
        self.assertEqual(len(body), size)
        self.assertEqual(body[:502], bytes(i % 251 for i in range(502)))

    @defer.inlineCallbacks
    def test_connections_are_reused(self):
        """Twenty sequential requests use one pooled AJP connection per node."""
        for _ in range(20):
            yield self.get("/echo")
        built = self.proxy.balancers["cluster"]
        opened = [b.pool.opened for b in built.backends.values()]
        self.assertEqual(opened, [1, 1])

    @defer.inlineCallbacks
    def test_failover_and_readmission(self):
        """A stopped node is skipped without a failed request and readmitted by probing."""
        _, headers, body = yield self.get("/session")
        session = _json(body)
        cookie = headers.getRawHeaders(b"set-cookie")[0].split(b";")[0]
        down = next(n for n in self.nodes if n.name == session["node"])
        yield down.stop()
        for _ in range(5):
            status, _, body = yield self.get("/session", headers={b"Cookie": [cookie]})
            self.assertEqual(status, 200)
            self.assertNotEqual(_json(body)["node"], down.name)
        balancer = self.proxy.balancers["cluster"].balancer
        member = balancer.member_by_route(down.name)
        self.assertTrue(member.in_error)
        down.start()
        for _ in range(40):
            if not member.in_error:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertFalse(member.in_error)
        _, _, body = yield self.get("/session", headers={b"Cookie": [cookie]})
        self.assertEqual(_json(body)["node"], down.name)

    @defer.inlineCallbacks
    def test_all_down_is_503(self):
        """With every node down the client gets a 503, not a hang."""
        for node in self.nodes:
            yield node.stop()
        status, _, _ = yield self.get("/echo")
        self.assertEqual(status, 503)

    @defer.inlineCallbacks
    def test_oversized_headers_refused_locally(self):
        """A request head larger than an AJP packet is answered 431 and never sent."""
        before = sum(len(n.connections) for n in self.nodes)
        status, _, _ = yield self.get("/echo", headers={b"X-Big": [b"a" * 9000]})
        self.assertEqual(status, 431)
        self.assertEqual(sum(len(n.connections) for n in self.nodes), before)

    def _raw(self, data: bytes) -> bytes:
        port = int(self.base.rsplit(":", 1)[1])

        def talk():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                return s.recv(65536)

        from twisted.internet.threads import deferToThread

        return deferToThread(talk)

    @defer.inlineCallbacks
    def test_no_forward_proxy(self):
        """
        No open proxy: an absolute-form target is served from the proxy's own routes
        (RFC 9112 3.2.2; example.com is never contacted), a non-HTTP one is refused, and
        CONNECT too.
        """
        answer = yield self._raw(b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:40])
        self.assertIn(b"node", answer)
        answer = yield self._raw(b"GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:40])
        answer = yield self._raw(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 405"), answer[:40])

    @defer.inlineCallbacks
    def test_dot_segments_refused(self):
        """Paths with (encoded) dot segments or encoded slashes are refused with 400."""
        for path in (b"/a/../etc", b"/a/%2e%2e/etc", b"/a%2fb"):
            answer = yield self._raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(answer.startswith(b"HTTP/1.1 400"), (path, answer[:40]))


class AccessLogTests(TestCase):
    """The access log has one combined-format line per request, with the member."""

    timeout = 30

    @defer.inlineCallbacks
    def test_access_log_line(self):
        """A proxied request is logged with status, bytes, member and attempts."""
        path = self.mktemp()
        nodes = [Node("node1")]
        proxy, base = yield defer.Deferred.fromCoroutine(start_proxy(nodes, access_log=path))
        client = Client()
        try:
            yield defer.Deferred.fromCoroutine(
                client.request(base + "/echo?x=1", headers={b"User-Agent": [b"tester/1"]})
            )
        finally:
            yield client.close()
            yield proxy.stopService()
            yield nodes[0].stop()
        with open(path) as f:
            line = f.read().strip()
        self.assertRegex(
            line,
            r'^127\.0\.0\.1 - - \[.+\] "GET /echo\?x=1 HTTP/1\.1" 200 \d+ "-" "tester/1" '
            rf"member=ajp://127\.0\.0\.1:{nodes[0].port} route_changed=0 attempts=1 upstream_ms=",
        )
