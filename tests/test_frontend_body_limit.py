"""
The frontend's request-body limit (C{max_body_bytes}, L{twisted_lb.frontend}),
in memory: a C{Content-Length} over the limit is a 413 before any
C{100 Continue} and before the body is read, a chunked body is cut with a 413
as soon as it passes the limit, a body at the limit is served, 0 is no limit,
and the fast lane is untouched. The same through the whole proxy on real
sockets is in C{tests/robustness/test_frontend_limits.py}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from twisted_lb.config.model import LimitsConfig
from twisted_lb.fastpath import FastRequest, RawResponse, SimpleHead
from twisted_lb.frontend import FrontendSite

_413 = b"HTTP/1.1 413 Content Too Large\r\n"


def _post(length: int, *fields: bytes) -> bytes:
    head = b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % length
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def _chunked_head(*fields: bytes) -> bytes:
    head = b"POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    return head + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Recorder(Resource):
    """Records the bodies of the requests dispatched to it, and the fast-lane heads."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.fast: list[SimpleHead] = []

    def serve_fast(self, channel: Any, head: SimpleHead) -> bool:
        self.fast.append(head)
        response = RawResponse(channel, FastRequest(head, None), head.keep_alive)
        channel.fast_request_started(response)
        response.start(200, [(b"Content-Length", b"2")])
        response.write(b"ok")
        response.finish()
        return True

    def render(self, request: Any) -> bytes:
        self.bodies.append(request.content.read())
        return b"ok"


class BodyLimitTests(SynchronousTestCase):
    def connect(self, limit: int = 1000) -> None:
        self.resource = _Recorder()
        site = FrontendSite(self.resource, LimitsConfig(max_body_bytes=limit), MemoryReactorClock())
        self.proto = site.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        #: The bodies the refused request must not add to.
        self.dispatched: list[bytes] = []

    def assert_refused(self) -> bytes:
        """The answer is a plain-text 413 alone, the connection closing, nothing dispatched."""
        out = self.transport.value()
        self.assertTrue(out.startswith(_413), out)
        self.assertIn(b"Content-Type: text/plain; charset=utf-8\r\n", out)
        self.assertIn(b"Connection: close\r\n", out)
        self.assertTrue(out.endswith(b"\r\n\r\nthe request body is larger than 1000 bytes\n"), out)
        self.assertEqual(out.count(b"HTTP/1.1 "), 1, out)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.bodies, self.dispatched)
        return out

    def test_content_length_over_the_limit(self):
        """A Content-Length of 50 MB: 413 on the head alone; what follows is not read."""
        self.connect()
        self.proto.dataReceived(_post(52_428_800))
        self.assert_refused()
        self.proto.dataReceived(b"x" * 100_000)
        self.assert_refused()
        # twisted.web never saw the length: no spool file was made.
        self.assertIsNone(self.proto._channel.requests[-1].content)

    def test_expect_100_continue_is_refused_without_continue(self):
        """With Expect: 100-continue the client gets the 413 and no 100 Continue."""
        self.connect()
        self.proto.dataReceived(_post(1001, b"Expect: 100-continue"))
        out = self.assert_refused()
        self.assertNotIn(b"100 Continue", out)

    def test_expect_100_continue_within_the_limit_continues(self):
        """A body within the limit still gets its 100 Continue, then its answer."""
        self.connect()
        self.proto.dataReceived(_post(1000, b"Expect: 100-continue"))
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.proto.dataReceived(b"y" * 1000)
        self.assertEqual(self.resource.bodies, [b"y" * 1000])
        self.assertIn(b"HTTP/1.1 200 OK\r\n", self.transport.value())

    def test_body_at_the_limit_passes(self):
        """Content-Length equal to the limit: served, whole, on a connection kept open."""
        self.connect()
        self.proto.dataReceived(_post(1000) + b"z" * 1000)
        self.assertEqual(self.resource.bodies, [b"z" * 1000])
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertFalse(self.transport.disconnecting)

    def test_chunked_body_crossing_the_limit(self):
        """Chunks are counted as they arrive: the read that passes the limit gets the 413."""
        self.connect()
        self.proto.dataReceived(_chunked_head())
        for _ in range(9):
            self.proto.dataReceived(_chunk(b"a" * 100))
        self.assertEqual(self.transport.value(), b"")
        self.proto.dataReceived(_chunk(b"a" * 100) + _chunk(b"b"))
        self.assert_refused()
        # The rest of the body and its end change nothing.
        self.proto.dataReceived(_chunk(b"c" * 500) + b"0\r\n\r\n")
        self.assert_refused()

    def test_chunked_body_crossing_the_limit_in_one_read(self):
        """A whole chunked body past the limit in one read, with its end: 413, not dispatched."""
        self.connect()
        self.proto.dataReceived(
            _chunked_head(b"Expect: 100-continue")
            + _chunk(b"a" * 600)
            + _chunk(b"b" * 600)
            + b"0\r\n\r\n"
        )
        out = self.transport.value()
        # The 100 Continue came before anything of the body was known.
        self.assertTrue(out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n" + _413), out)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.resource.bodies, [])

    def test_chunked_body_at_the_limit_passes(self):
        """A chunked body of exactly the limit is served whole."""
        self.connect()
        self.proto.dataReceived(
            _chunked_head() + _chunk(b"a" * 400) + _chunk(b"b" * 600) + b"0\r\n\r\n"
        )
        self.assertEqual(self.resource.bodies, [b"a" * 400 + b"b" * 600])
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertFalse(self.transport.disconnecting)

    def test_zero_is_no_limit(self):
        """max_body_bytes = 0: a huge Content-Length is taken (100 Continue), chunks uncounted."""
        self.connect(limit=0)
        self.proto.dataReceived(_post(10**12, b"Expect: 100-continue"))
        self.assertEqual(self.transport.value(), b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.connect(limit=0)
        self.proto.dataReceived(_chunked_head() + _chunk(b"a" * 5000) + b"0\r\n\r\n")
        self.assertEqual(self.resource.bodies, [b"a" * 5000])

    def test_default_is_apaches_one_gib(self):
        """The default is Apache's LimitRequestBody default, 1 GiB."""
        self.assertEqual(LimitsConfig().max_body_bytes, 1 << 30)
        self.connect(limit=LimitsConfig().max_body_bytes)
        self.proto.dataReceived(_post((1 << 30) + 1))
        self.assertTrue(self.transport.value().startswith(_413))

    def test_next_request_after_a_body_is_limited_too(self):
        """On a kept-alive connection each request is checked; a GET still takes the fast lane."""
        self.connect()
        self.proto.dataReceived(_post(3) + b"abc")
        self.assertEqual(self.resource.bodies, [b"abc"])
        self.dispatched = [b"abc"]
        self.transport.clear()
        self.proto.dataReceived(b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(len(self.resource.fast), 1)
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))
        self.transport.clear()
        self.proto.dataReceived(_post(2000))
        self.assert_refused()
