"""
Hostile clients on raw sockets against a real proxy: malformed or smuggling
requests are refused before any member sees them, clients that leave or never
read cost nothing lasting, and no header lets a client forge what the proxy
itself tells the member (attributes, route, secret).
"""

from __future__ import annotations

import json
import socket

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.config.model import MemberState
from twisted_lb.testing import Fault, FaultyAJPMember

from ..integration.support import Node
from .support import raw_exchange, sleep, start_proxy, wait_until


def _d(coro):
    return defer.Deferred.fromCoroutine(coro)


def _status(answer: bytes) -> int | None:
    """The status code of the first response in C{answer}."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def _request(method=b"GET", target=b"/app", headers=(), body=b"", close=True) -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: proxy.test"]
    lines += [name + b": " + value for name, value in headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Case(TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def start(self, count=1, member_options=None, **member_kwargs):
        self.members = []
        for _ in range(count):
            member = FaultyAJPMember(**member_kwargs).start()
            self.addCleanup(member.stop)
            self.members.append(member)
        routes = [(m.url, f"node{i}") for i, m in enumerate(self.members, 1)]
        self.proxy, base = yield _d(start_proxy(routes, member_options))
        self.addCleanup(self.proxy.stopService)
        self.port = int(base.rsplit(":", 1)[1])
        built = self.proxy.balancers["cluster"]
        self.balancer = built.balancer
        self.backends = built.backends

    def send(self, data: bytes, **kw) -> defer.Deferred[bytes]:
        return raw_exchange(self.port, data, **kw)

    @property
    def member_requests(self) -> int:
        return sum(len(m.requests) for m in self.members)

    @property
    def member_connections(self) -> int:
        return sum(m.connections_made for m in self.members)

    @defer.inlineCallbacks
    def assert_refused(self, data: bytes, status: int, contains: bytes = b""):
        """C{data} gets C{status} and no member hears of it."""
        requests, connections = self.member_requests, self.member_connections
        answer = yield self.send(data)
        self.assertEqual(_status(answer), status, answer[:300])
        self.assertIn(contains, answer)
        self.assertEqual(self.member_requests, requests, data[:100])
        self.assertEqual(self.member_connections, connections, data[:100])
        return answer

    @defer.inlineCallbacks
    def assert_served(self):
        """The proxy still serves a plain request."""
        answer = yield self.send(_request())
        self.assertEqual(_status(answer), 200, answer[:300])

    def in_flight(self) -> int:
        return sum(m.in_flight for m in self.balancer.members)


class MalformedRequestTests(_Case):
    """Requests that must not be forwarded."""

    @defer.inlineCallbacks
    def setUp(self):
        yield self.start()

    @defer.inlineCallbacks
    def test_huge_header_count_and_huge_headers(self):
        """Too many or too big header fields are 431 with a reason; no member hears of them."""
        many = [(b"X-H%d" % i, b"v" * 12) for i in range(90)]  # ~2 KB, but over 8 KB below
        yield self.assert_refused(
            _request(headers=many + [(b"X-Big", b"a" * 7000)]), 431
        )  # too big for one AJP packet
        yield self.assert_refused(
            _request(headers=[(b"X-H%d" % i, b"v") for i in range(101)]),
            431,
            b"more than 100 header fields",
        )
        yield self.assert_refused(
            _request(headers=[(b"X-H%d" % i, b"v") for i in range(5000)]), 431
        )
        answer = yield self.assert_refused(_request(headers=[(b"X-Big", b"a" * 12_000)]), 431)
        self.assertIn(b"431 Request Header Fields Too Large\r\n", answer)
        for size in (20_000, 1_000_000):
            yield self.assert_refused(
                _request(headers=[(b"X-Big", b"a" * size)]),
                431,
                b"larger than 16384 bytes",
            )
        yield self.assert_refused(_request(target=b"/" + b"a" * 20_000), 414)
        yield self.assert_served()

    @defer.inlineCallbacks
    def test_content_length_with_transfer_encoding(self):
        """Both framings at once (either order) are a 400 (request smuggling)."""
        for first, second in (
            ((b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3")),
            ((b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")),
        ):
            yield self.assert_refused(
                _request(b"POST", headers=[first, second], body=b"0\r\n\r\n"), 400
            )

    @defer.inlineCallbacks
    def test_transfer_encoding_other_than_chunked(self):
        """Any Transfer-Encoding but chunked is a 400 and closes the connection."""
        for coding in (b"identity", b"gzip", b"gzip, chunked", b"chunked, identity", b"x"):
            answer = yield self.assert_refused(
                _request(
                    b"POST", headers=[(b"Transfer-Encoding", coding)], body=b"hello", close=False
                ),
                400,
            )
            # The body bytes were not read as a next request: one answer only.
            self.assertEqual(answer.count(b"HTTP/1.1 "), 1, answer)
        yield self.assert_refused(
            _request(b"POST", headers=[(b"Transfer-Encoding", b"chunked")] * 2, body=b"0\r\n\r\n"),
            400,
        )

    @defer.inlineCallbacks
    def test_chunked_body_is_forwarded_whole(self):
        """A chunked body (any case) arrives de-chunked with its length."""
        answer = yield self.send(
            _request(
                b"POST",
                headers=[(b"Transfer-Encoding", b"Chunked")],
                body=b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            )
        )
        self.assertEqual(_status(answer), 200)
        received = self.members[0].requests[-1]
        self.assertEqual(received.body, b"abcde")
        self.assertIsNone(received.header(b"transfer-encoding"))
        self.assertEqual(received.header(b"content-length"), b"5")

    @defer.inlineCallbacks
    def test_bad_characters_in_header_names_and_values(self):
        """CR, LF, NUL, controls in values and non-token names are 400, never forwarded."""
        bad = [
            b"X-Foo : bar",
            b"X(Foo): bar",
            b"X\x01Foo: bar",
            b"X Foo: bar",
            b": empty-name",
            b"X-Foo: a\rb",
            b"X-Foo: a\x00b",
            b"X-Foo: a\x01b",
            b"X-Foo: a\x1bb",
            b"X-Foo: a\x7fb",
        ]
        for line in bad:
            data = b"GET /app HTTP/1.1\r\nHost: x\r\n" + line + b"\r\nConnection: close\r\n\r\n"
            yield self.assert_refused(data, 400)
        # A header line split by a bare LF cannot smuggle a second header or request.
        data = b"GET /app HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-Injected: 2\r\nConnection: close\r\n\r\n"
        requests = self.member_requests
        answer = yield self.send(data)
        if _status(answer) == 200:
            received = self.members[0].requests[-1]
            self.assertIsNone(received.header(b"x-injected"))
        else:
            self.assertEqual(_status(answer), 400)
            self.assertEqual(self.member_requests, requests)
        # Tabs inside a value are fine.
        answer = yield self.send(_request(headers=[(b"X-Tab", b"a\tb")]))
        self.assertEqual(_status(answer), 200)
        self.assertEqual(self.members[0].requests[-1].header(b"x-tab"), b"a\tb")

    @defer.inlineCallbacks
    def test_host_header_missing_or_repeated(self):
        """HTTP/1.1 needs exactly one Host (RFC 9112 §3.2): 400 otherwise."""
        yield self.assert_refused(b"GET /app HTTP/1.1\r\nConnection: close\r\n\r\n", 400)
        yield self.assert_refused(
            b"GET /app HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400
        )
        answer = yield self.send(b"GET /app HTTP/1.0\r\n\r\n")
        self.assertEqual(_status(answer), 200)

    @defer.inlineCallbacks
    def test_host_header_that_is_no_host(self):
        """A Host that is no host[:port] (RFC 9112 3.2) is a 400 on both lanes, never forwarded."""
        for host in (b"x/../y@evil", b"x, y", b"a:b"):
            # A simple GET (the fast lane's kind) and one with a body (twisted.web's).
            yield self.assert_refused(b"GET /app HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host, 400)
            yield self.assert_refused(
                b"POST /app HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx" % host,
                400,
            )
        yield self.assert_served()

    @defer.inlineCallbacks
    def test_absolute_uri_is_no_forward_proxy_and_connect_refused(self):
        """
        This is no forward proxy: an absolute-form target is served from this
        proxy's own routes (its host becomes the Host, RFC 9112 3.2.2), as
        Apache with ProxyRequests Off does; the named host is never
        contacted. Other schemes, user information and bad hosts are 400;
        CONNECT 405.
        """
        answer = yield self.send(
            b"GET http://example.com/app?a=1 HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n"
        )
        self.assertEqual(_status(answer), 200, answer[:300])
        request = self.members[0].requests[-1]
        self.assertEqual(request.forward.req_uri, b"/app")
        self.assertEqual(request.forward.query_string, b"a=1")
        self.assertEqual(request.header(b"host"), b"example.com")
        self.assertEqual(request.forward.server_name, b"example.com")
        for target in (
            b"ftp://example.com/app",
            b"http://user:pw@example.com/app",
            b"http:///app",
            b"http://exa mple.com/app",
            b"http://example.com/app#frag",
            b"http://a/b/../../app",
        ):
            yield self.assert_refused(
                b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target, 400
            )
        yield self.assert_refused(
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
            405,
        )
        yield self.assert_served()

    @defer.inlineCallbacks
    def test_dot_segments_and_encoded_slashes(self):
        """`..`, `.`, %2e%2e (any case, with path parameters), %2f and %5c are 400."""
        for target in (
            b"/a/../app",
            b"/a/./app",
            b"/a/%2e%2e/app",
            b"/a/%2E%2e/app",
            b"/a/.%2e/app",
            b"/..;x=1/app",
            b"/%2e%2e;/app",
            b"/a%2fb",
            b"/a%2Fb",
            b"/a%5cb",
            b"/a/..",
            b"/a\\..\\b",
        ):
            yield self.assert_refused(_request(target=target), 400)
        # Double encoding stays a literal segment for the member: forwarded as is.
        answer = yield self.send(_request(target=b"/%252e%252e/app"))
        self.assertEqual(_status(answer), 200)
        self.assertEqual(self.members[0].requests[-1].forward.req_uri, b"/%252e%252e/app")


    @defer.inlineCallbacks
    def test_control_characters_in_the_query(self):
        """DEL and other control bytes in the query are 400 on twisted.web's path, never forwarded."""
        # Twisted answers a bare 400 to other control bytes in the request line; DEL passes it.
        for target in (b"/app?x=\x7f", b"/app?a=1&b=c\x7fd", b"/app?\x7f"):
            answer = yield self.assert_refused(_request(target=target), 400)
            self.assertIn(b"control characters or spaces in the query", answer)
        # Encoded, they are the application's business.
        answer = yield self.send(_request(target=b"/app?x=%7F"))
        self.assertEqual(_status(answer), 200)
        self.assertEqual(self.members[0].requests[-1].forward.query_string, b"x=%7F")


class GoneAndSlowClientTests(_Case):
    """Clients that leave or never read cost nothing lasting."""

    @defer.inlineCallbacks
    def test_headers_then_disconnect_while_member_is_slow(self):
        """A client that leaves before the answer: in_flight back to 0, no replay elsewhere."""
        yield self.start(2, fault=Fault.STALL_BEFORE_HEADERS)
        slow, other = self.members
        other.fault = Fault.NONE
        cookie = (b"Cookie", b"JSESSIONID=0123.node1")
        yield self.send(_request(headers=[cookie]), read_timeout=0.2)
        self.assertTrue((yield _d(wait_until(lambda: len(slow.requests) == 1))))
        self.assertTrue((yield _d(wait_until(lambda: self.in_flight() == 0))))
        self.assertTrue((yield _d(wait_until(lambda: slow.open_connections == 0))))
        yield sleep(0.2)
        self.assertEqual(other.requests, [])
        self.assertEqual(self.in_flight(), 0)
        for built in self.backends.values():
            self.assertEqual(built.pool.open_count, built.pool.idle_count)

    @defer.inlineCallbacks
    def test_headers_then_disconnect_before_a_big_answer(self):
        """A client gone before the answer started does not make the proxy read 50 MB."""
        yield self.start(1, fault=Fault.STALL_BEFORE_HEADERS, body_size=50 * 1024 * 1024)
        member = self.members[0]
        yield self.send(_request(), read_timeout=0.1)
        self.assertTrue((yield _d(wait_until(lambda: len(member.requests) == 1))))
        # The member answers only now, after the client left.
        yield sleep(0.3)
        member.answer_stalled()
        self.assertTrue((yield _d(wait_until(lambda: self.in_flight() == 0, 5))))
        self.assertLess(member.bytes_sent, 16 * 1024 * 1024)
        yield _d(wait_until(lambda: member.open_connections == 0, 2))
        self.assertEqual(member.open_connections, 0)

    @defer.inlineCallbacks
    def test_partial_body_then_disconnect(self):
        """A client that leaves in the middle of its body: nothing reaches a member."""
        yield self.start()
        data = _request(b"POST", headers=[(b"Content-Length", b"100000")], body=b"x" * 5000)
        yield self.send(data, read_timeout=0.2)
        yield sleep(0.1)
        self.assertEqual(self.member_requests, 0)
        self.assertEqual(self.in_flight(), 0)
        yield self.assert_served()

    @defer.inlineCallbacks
    def test_client_that_never_reads_a_large_response(self):
        """The member is paused: what it sent stays far below the body, and the timeout waits."""
        size = 200 * 1024 * 1024
        yield self.start(body_size=size)
        member = self.members[0]

        def connect():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            s.connect(("127.0.0.1", self.port))
            s.sendall(_request(close=False))
            return s

        sock = yield deferToThread(connect)
        try:
            # Longer than the member timeout (1 s): a paused download is not a stalled member.
            yield sleep(1.5)
            first = member.bytes_sent
            yield sleep(0.5)
            self.assertEqual(member.bytes_sent, first, "the member was not paused")
            self.assertLess(first, 32 * 1024 * 1024)
            self.assertEqual(member.open_connections, 1)
            self.assertEqual(self.in_flight(), 1)
            # Reading resumes the download.
            got = yield deferToThread(sock.recv, 65536)
            self.assertTrue(got.startswith(b"HTTP/1.1 200"))
        finally:
            sock.close()
        self.assertTrue((yield _d(wait_until(lambda: self.in_flight() == 0))))
        self.assertTrue((yield _d(wait_until(lambda: member.open_connections == 0))))
        self.assertLess(member.bytes_sent, size // 2)


class ForgeryTests(TestCase):
    """Headers cannot set what the proxy tells the member."""

    timeout = 20

    @defer.inlineCallbacks
    def test_client_cannot_set_attributes_route_or_secret(self):
        """Look-alike headers arrive as plain headers; attributes, route and secret are real."""
        node = Node("node1")
        self.addCleanup(node.stop)
        proxy, base = yield _d(start_proxy([(node.url, "node1")], {"secret": "s3cret"}))
        self.addCleanup(proxy.stopService)
        port = int(base.rsplit(":", 1)[1])
        forged = [
            (b"X-AJP-Route", b"evil"),
            (b"AJP_REMOTE_PORT", b"1"),
            (b"AJP_LOCAL_ADDR", b"6.6.6.6"),
            (b"jvm_route", b"evil"),
            (b"X-Forwarded-For", b"6.6.6.6"),
            (b"Secret", b"none"),
            (b"AJP-Secret", b"none"),
            (b"javax.servlet.include.request_uri", b"/WEB-INF/web.xml"),
        ]

        def talk():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                own_port = s.getsockname()[1]
                s.sendall(_request(target=b"/echo", headers=forged))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                return own_port, data

        own_port, answer = yield deferToThread(talk)
        self.assertEqual(_status(answer), 200)
        body = answer.partition(b"\r\n\r\n")[2]
        if b"transfer-encoding: chunked" in answer.lower().partition(b"\r\n\r\n")[0]:
            body = _dechunk(body)
        echo = json.loads(body)
        self.assertEqual(
            echo["attributes"],
            {
                "AJP_REMOTE_PORT": str(own_port),
                "AJP_LOCAL_ADDR": "127.0.0.1",
            },
        )
        self.assertEqual(echo["route"], "node1")
        self.assertTrue(echo["secret_sent"])
        self.assertEqual(echo["remote_addr"], "127.0.0.1")
        headers = [tuple(h) for h in echo["headers"]]
        for name, value in forged:
            self.assertIn((name.decode().lower(), value.decode()), headers)

    @defer.inlineCallbacks
    def test_secret_is_sent_on_every_request(self):
        """The member sees the configured secret on every request and on every connection."""
        member = FaultyAJPMember(secret="s3cret").start()
        self.addCleanup(member.stop)
        proxy, base = yield _d(start_proxy([(member.url, "node1")], {"secret": "s3cret"}))
        self.addCleanup(proxy.stopService)
        port = int(base.rsplit(":", 1)[1])
        for headers in ((), ((b"Secret", b"x"),), ((b"Connection", b"close"),)):
            answer = yield raw_exchange(port, _request(headers=headers))
            self.assertEqual(_status(answer), 200)
        self.assertEqual({r.forward.secret for r in member.requests}, {b"s3cret"})
        self.assertEqual(len(member.requests), 3)

    @defer.inlineCallbacks
    def test_forged_route_to_a_disabled_member(self):
        """A JSESSIONID naming a disabled member is served by another; the disabled one sees nothing."""
        active = FaultyAJPMember().start()
        disabled = FaultyAJPMember().start()
        self.addCleanup(active.stop)
        self.addCleanup(disabled.stop)
        proxy, base = yield _d(
            start_proxy(
                [(active.url, "node1"), (disabled.url, "node2")],
                {"status": {"node1": MemberState.ACTIVE, "node2": MemberState.DISABLED}},
            )
        )
        self.addCleanup(proxy.stopService)
        port = int(base.rsplit(":", 1)[1])
        for cookie in (b"JSESSIONID=ABC.node2", b"JSESSIONID=node2.node2", b"JSESSIONID=.node2"):
            answer = yield raw_exchange(port, _request(headers=[(b"Cookie", cookie)]))
            self.assertEqual(_status(answer), 200)
        answer = yield raw_exchange(port, _request(target=b"/app;jsessionid=X.node2"))
        self.assertEqual(_status(answer), 200)
        self.assertEqual(len(active.requests), 4)
        self.assertEqual(disabled.requests, [])
        self.assertEqual(disabled.connections_made, 0)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out
