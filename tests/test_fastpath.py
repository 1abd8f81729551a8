"""
The frontend's fast lane (twisted_lb.fastpath): which heads take it, how a
RawResponse frames answers, how the channel hands requests between the fast
lane and twisted.web's path on one connection (in memory), and the whole
proxy answering through it (real sockets, AJP nodes).
"""

from __future__ import annotations

import re
import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from twisted_lb.config.model import LimitsConfig
from twisted_lb.drain import ClientConnections
from twisted_lb.fastpath import FastRequest, RawResponse, SimpleHead, parse_simple_head
from twisted_lb.frontend import FrontendSite

from .integration.support import Node, start_proxy

GET = b"GET /app/x?a=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n"


class ParseSimpleHeadTests(SynchronousTestCase):
    def test_plain_get(self):
        head = parse_simple_head(GET, 100)
        assert head is not None
        self.assertEqual(head.method, b"GET")
        self.assertEqual(head.uri, b"/app/x?a=1")
        self.assertEqual(head.headers, [(b"host", b"example"), (b"user-agent", b"t")])
        self.assertTrue(head.keep_alive)

    def test_head_method(self):
        head = parse_simple_head(GET.replace(b"GET", b"HEAD", 1), 100)
        self.assertEqual(head.method if head else None, b"HEAD")

    def test_connection_close(self):
        for value in (b"close", b"Keep-Alive, Close"):
            data = GET.replace(b"\r\n\r\n", b"\r\nConnection: " + value + b"\r\n\r\n")
            head = parse_simple_head(data, 100)
            assert head is not None
            self.assertFalse(head.keep_alive, value)

    def test_not_simple(self):
        """Everything twisted.web's path has to judge is left to it."""
        cases = {
            "POST": GET.replace(b"GET", b"POST", 1),
            "DELETE": GET.replace(b"GET", b"DELETE", 1),
            "HTTP/1.0": GET.replace(b"HTTP/1.1", b"HTTP/1.0"),
            "body": GET.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
            "chunked": GET.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "upgrade": GET.replace(
                b"\r\n\r\n", b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            ),
            "expect": GET.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"),
            "two hosts": GET.replace(b"\r\n\r\n", b"\r\nHost: other\r\n\r\n"),
            "no host": b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
            "control char": GET.replace(b"User-Agent: t", b"User-Agent: t\x01"),
            "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
            "incomplete": GET[:-2],
            "pipelined": GET + GET,
            "head and body bytes": GET + b"x",
            "folded": GET.replace(b"User-Agent: t", b"User-Agent: t\r\n more"),
            "space before colon": GET.replace(b"User-Agent:", b"User-Agent :"),
            "HTTP/0.9": b"GET /\r\n\r\n",
        }
        for name, data in cases.items():
            self.assertIsNone(parse_simple_head(data, 100), name)

    def test_header_count_limit(self):
        data = GET.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 3 + b"\r\n")
        self.assertIsNotNone(parse_simple_head(data, 5))
        self.assertIsNone(parse_simple_head(data, 4))


class _Lane(Resource):
    """A resource with a fast lane: records heads; answers through twisted.web otherwise."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.fast: list[tuple[SimpleHead, RawResponse]] = []
        self.slow: list[bytes] = []
        self.take = True

    def serve_fast(self, channel: Any, head: SimpleHead) -> bool:
        if not self.take:
            return False
        info = channel.connection_info()
        response = RawResponse(channel, FastRequest(head, info.client), head.keep_alive)
        channel.fast_request_started(response)
        self.fast.append((head, response))
        return True

    def render(self, request: Any) -> bytes:
        self.slow.append(request.method + b" " + request.uri)
        request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain"])
        return b"slow"


class ChannelTests(SynchronousTestCase):
    def setUp(self):
        self.lane = _Lane()
        self.clock = MemoryReactorClock()
        self.connections = ClientConnections()
        self.site = FrontendSite(self.lane, LimitsConfig(), self.clock, self.connections)
        self.proto = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def answer(self, index: int = -1, body: bytes = b"hello", **headers: bytes) -> None:
        response = self.lane.fast[index][1]
        fields = [(b"Content-Length", b"%d" % len(body))] + [
            (k.replace("_", "-").encode(), v) for k, v in headers.items()
        ]
        response.start(200, fields)
        response.write(body)
        response.finish()

    def test_simple_get_takes_the_fast_lane(self):
        self.proto.dataReceived(GET)
        self.assertEqual(len(self.lane.fast), 1)
        self.assertEqual(self.lane.slow, [])
        self.assertTrue(self.proto._channel.busy)
        self.answer(Date=b"Mon, 01 Jan 2024 00:00:00 GMT")
        self.assertEqual(
            self.sent(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
            b"\r\nhello",
        )
        self.assertFalse(self.proto._channel.busy)
        self.assertFalse(self.transport.disconnecting)

    def test_keep_alive_then_other_requests(self):
        """The next request on the same connection is judged again: fast, slow, fast."""
        self.proto.dataReceived(GET)
        self.answer()
        self.sent()
        self.proto.dataReceived(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        self.assertEqual(self.lane.slow, [b"POST /p"])
        self.assertIn(b"\r\n\r\nslow", self.sent())
        self.proto.dataReceived(GET)
        self.assertEqual(len(self.lane.fast), 2)
        self.answer()
        self.assertTrue(self.sent().startswith(b"HTTP/1.1 200 OK\r\n"))

    def test_pipelined_request_waits_for_the_first(self):
        self.proto.dataReceived(GET)
        self.proto.dataReceived(GET.replace(b"/app/x?a=1", b"/second"))
        self.assertEqual(len(self.lane.fast), 1)
        self.assertEqual(self.sent(), b"")
        self.answer(body=b"one")
        self.assertEqual(len(self.lane.fast), 2)
        self.assertEqual(self.lane.fast[1][0].uri, b"/second")
        self.answer(body=b"two")
        out = self.sent()
        self.assertLess(out.index(b"one"), out.index(b"two"))

    def test_two_heads_in_one_read_go_to_twisted_web(self):
        self.proto.dataReceived(GET + GET)
        self.assertEqual(self.lane.fast, [])
        self.assertEqual(self.lane.slow, [b"GET /app/x?a=1", b"GET /app/x?a=1"])

    def test_head_in_pieces_goes_to_twisted_web(self):
        self.proto.dataReceived(GET[:10])
        self.proto.dataReceived(GET[10:])
        self.assertEqual(self.lane.fast, [])
        self.assertEqual(self.lane.slow, [b"GET /app/x?a=1"])

    def test_refused_by_the_resource_goes_to_twisted_web(self):
        self.lane.take = False
        self.proto.dataReceived(GET)
        self.assertEqual(self.lane.slow, [b"GET /app/x?a=1"])

    def test_connection_close(self):
        self.proto.dataReceived(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.answer()
        self.assertIn(b"Connection: close\r\n", self.sent())
        self.assertTrue(self.transport.disconnecting)

    def test_connection_close_among_options_on_twisted_webs_path(self):
        """
        C{close} anywhere in any Connection field ends the connection after the
        response; the request after it is not served (RFC 9112 9.6).
        """
        after = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
        for fields in (
            b"Connection: close, foo\r\n",
            b"Connection: foo\r\nConnection: Close\r\n",
            b"Connection: foo ,\tCLOSE \r\n",
        ):
            self.setUp()
            self.proto.dataReceived(
                b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + fields
                + b"\r\nhello" + after
            )
            self.assertEqual(self.lane.slow, [b"POST /a"], fields)
            self.assertIn(b"Connection: close\r\n", self.sent(), fields)
            self.assertTrue(self.transport.disconnecting, fields)

    def test_connection_options_without_close_keep_the_connection(self):
        self.proto.dataReceived(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Connection: foo, closed\r\n\r\nhello" + GET
        )
        self.assertEqual(self.lane.slow, [b"POST /a"])
        self.assertEqual(len(self.lane.fast), 1)  # the next request is read and served
        self.assertNotIn(b"Connection: close", self.sent())
        self.assertFalse(self.transport.disconnecting)

    def test_http_1_0_keep_alive_still_closes_on_twisted_webs_path(self):
        """As Twisted does: no persistent HTTP/1.0 connection, Keep-Alive or not."""
        self.proto.dataReceived(
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET
        )
        self.assertEqual(self.lane.slow, [b"GET /a"])
        self.assertTrue(self.transport.disconnecting)

    def test_chunked_when_the_member_gives_no_length(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(200, [(b"Content-Type", b"text/plain"), (b"Transfer-Encoding", b"x")])
        response.write(b"abc")
        response.write(b"de")
        response.finish()
        out = self.sent()
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertNotIn(b"Transfer-Encoding: x", head)
        self.assertRegex(head.decode(), r"\r\nDate: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT")
        self.assertEqual(body, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    def test_parts_written_as_one_chunk_or_as_they_are(self):
        """write_parts: the views of one member read, framed as one chunk (or not at all)."""
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(200, [])
        segment = memoryview(b"..abc..de..")
        response.write_parts([segment[2:5], segment[7:9]])
        response.write_parts([b""])
        response.finish()
        self.assertTrue(self.sent().endswith(b"\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"))
        self.assertEqual(response.bytes_written, 5)

    def test_parts_with_a_length(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(200, [(b"Content-Length", b"5")])
        response.write_parts([memoryview(b"abc"), b"de"])
        response.finish()
        head, _, body = self.sent().partition(b"\r\n\r\n")
        self.assertEqual(body, b"abcde")
        self.assertNotIn(b"chunked", head)

    def test_head_request_has_no_body(self):
        self.proto.dataReceived(GET.replace(b"GET", b"HEAD", 1))
        response = self.lane.fast[0][1]
        response.start(200, [(b"Content-Length", b"10"), (b"Date", b"d")])
        response.write(b"0123456789")
        response.finish()
        self.assertEqual(self.sent(), b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nDate: d\r\n\r\n")

    def test_not_modified_has_no_body_nor_chunking(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(304, [(b"ETag", b'"x"'), (b"Date", b"d")])
        response.finish()
        self.assertEqual(self.sent(), b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nDate: d\r\n\r\n')

    def test_member_header_line_breaks_never_reach_the_client(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(200, [(b"X-A", b"a\r\nSet-Cookie: evil"), (b"Content-Length", b"0")])
        response.finish()
        head = self.sent()
        self.assertIn(b"X-A: a Set-Cookie: evil\r\n", head)
        self.assertEqual(len(re.findall(rb"\r\n", head)), 5)  # status, 3 fields, end

    def test_fields_the_member_lists_in_connection_are_dropped(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(
            200,
            [
                (b"X-Internal", b"secret"),
                (b"Connection", b"keep-alive, X-Internal"),
                (b"Connection", b"x-other"),
                (b"X-Other", b"2"),
                (b"X-Kept", b"1"),
                (b"Content-Length", b"0"),
            ],
        )
        response.finish()
        head = self.sent()
        self.assertNotIn(b"X-Internal", head)
        self.assertNotIn(b"X-Other", head)
        self.assertNotIn(b"Connection:", head)
        self.assertIn(b"X-Kept: 1\r\n", head)
        self.assertEqual(len(re.findall(rb"\r\n", head)), 5)  # status, 3 fields, end

    def test_keep_alive_or_close_alone_leave_the_rest(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        response.start(200, [(b"Connection", b"close"), (b"X-Kept", b"1"), (b"Content-Length", b"0")])
        response.finish()
        head = self.sent()
        self.assertIn(b"X-Kept: 1\r\n", head)
        self.assertNotIn(b"Connection:", head)

    def test_error_page(self):
        self.proto.dataReceived(GET)
        self.lane.fast[0][1].error(503, "no member")
        out = self.sent()
        self.assertTrue(out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"))
        self.assertTrue(out.endswith(b"\r\n\r\n503 Service Unavailable\nno member\n"))
        self.assertEqual(self.lane.fast[0][1].request.code, 503)

    def test_client_gone_mid_request(self):
        self.proto.dataReceived(GET)
        response = self.lane.fast[0][1]
        gone = []
        response.on_client_gone(lambda: gone.append(True))
        self.proto.connectionLost(None)
        self.assertEqual(gone, [True])
        self.assertTrue(response.gone)
        response.start(200, [])
        response.write(b"late")
        response.finish()  # nothing to write to, nothing raised

    def test_graceful_stop_closes_after_the_response(self):
        self.proto.dataReceived(GET)
        self.connections.start_closing()
        self.assertFalse(self.transport.disconnecting)
        self.answer()
        self.assertIn(b"Connection: close\r\n", self.sent())
        self.assertTrue(self.transport.disconnecting)

    def test_idle_timeout_off_while_answering_and_back_after(self):
        self.proto.dataReceived(GET)
        self.clock.advance(LimitsConfig().idle_timeout + 1)
        self.assertFalse(self.transport.disconnecting)
        self.answer()
        self.clock.advance(LimitsConfig().idle_timeout + 1)
        self.assertTrue(self.transport.disconnecting)


class ThroughTheProxyTests(TestCase):
    """The whole proxy, AJP nodes, raw sockets: what a client sees of the fast lane."""

    timeout = 20

    @defer.inlineCallbacks
    def setUp(self):
        self.node = Node("node1")
        self.addCleanup(self.node.stop)
        self.log = self.mktemp()
        self.proxy, base = yield defer.Deferred.fromCoroutine(
            start_proxy([self.node], access_log=self.log)
        )
        self.addCleanup(self.proxy.stopService)
        self.port = int(base.rsplit(":", 1)[1])

    def talk(self, *writes: bytes) -> defer.Deferred[bytes]:
        """Send each write on one connection; read until it is quiet for 0.5 s or closed."""

        def run() -> bytes:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                for data in writes:
                    s.sendall(data)
                out = b""
                try:
                    while chunk := s.recv(65536):
                        out += chunk
                except TimeoutError:
                    pass
                return out

        return deferToThread(run)

    @defer.inlineCallbacks
    def test_keep_alive_gets_and_a_post_on_one_connection(self):
        get = b"GET /counter HTTP/1.1\r\nHost: x\r\n\r\n"
        post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping"
        out = yield self.talk(get, get + post + get)
        statuses = re.findall(rb"HTTP/1.1 (\d+)", out)
        self.assertEqual(statuses, [b"200"] * 4, out[:500])
        self.assertNotIn(b"Server:", out)
        with open(self.log) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 4)
        self.assertIn('"GET /counter HTTP/1.1" 200 ', lines[0])
        self.assertIn(f"member={self.node.url}", lines[0])
        self.assertIn('"POST /echo HTTP/1.1" 200 ', lines[2])

    @defer.inlineCallbacks
    def test_unknown_route_and_unsafe_path_answered_by_twisted_web(self):
        out = yield self.talk(b"GET /a/../../etc HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:200])

