"""
Each HTTP rule (twisted_lb.http_rules, routing, exchange) applied the same on
every HTTP/1.1 lane of the proxy, on real sockets in front of an AJP member:
the fast lane (a GET whose head comes in one read), the streamed-body lane (a
POST with its body) and twisted.web's path (the same GET with its head in two
reads). Refused requests get the same status on every lane and reach no
member; forwarded ones lose their hop-by-hop fields on every lane.
"""

from __future__ import annotations

import socket
import time

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from twisted_lb.testing import FaultyAJPMember

from .robustness.support import start_proxy

LANES = ("fast", "stream", "twisted.web")


def _request(lane: str, target: bytes, fields: bytes) -> list[bytes]:
    """The writes of one request on C{lane}: C{fields} are header lines, each ending in CRLF."""
    if lane == "stream":
        return [b"POST %s HTTP/1.1\r\n%sContent-Length: 3\r\n\r\nabc" % (target, fields)]
    head = b"GET %s HTTP/1.1\r\n%s\r\n" % (target, fields)
    if lane == "fast":
        return [head]
    return [head[:10], head[10:]]


def _talk(port: int, writes: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        for i, data in enumerate(writes):
            if i:
                time.sleep(0.1)  # its own read
            s.sendall(data)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer and (chunk := s.recv(65536)):
                answer += chunk
        except TimeoutError:
            pass
        return answer


#: name: (target, header lines) of requests every lane refuses with 400.
REFUSED = {
    "two hosts": (b"/app", b"Host: a\r\nHost: b\r\n"),
    "no host": (b"/app", b""),
    "host that is no host": (b"/app", b"Host: x/../y@evil\r\n"),
    "control character in a value": (b"/app", b"Host: a\r\nX-A: b\x01c\r\n"),
    "dot segments": (b"/app/../etc/passwd", b"Host: a\r\n"),
    "encoded slash": (b"/app/a%2fb", b"Host: a\r\n"),
    "control character in the query": (b"/app?a=\x7f", b"Host: a\r\n"),
    "absolute form with user information": (b"http://user@evil.example/app", b"Host: a\r\n"),
    "absolute form of another scheme": (b"ftp://evil.example/app", b"Host: a\r\n"),
}


class EveryLaneTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.member = FaultyAJPMember().start()
        self.addCleanup(self.member.stop)
        self.proxy, base = yield defer.Deferred.fromCoroutine(
            start_proxy([(self.member.url, "node1")])
        )
        self.addCleanup(self.proxy.stopService)
        self.port = int(base.rsplit(":", 1)[1])
        # Which lane took each request (the fast and streamed-body lanes are the site's).
        self.taken: list[str] = []
        site = self.proxy.listening[0].factory
        for attribute, lane in (("fast_lane", "fast"), ("stream_lane", "stream")):
            serve = getattr(site, attribute)

            def counted(*args, serve=serve, lane=lane):
                taken = serve(*args)
                if taken:
                    self.taken.append(lane)
                return taken

            setattr(site, attribute, counted)

    @defer.inlineCallbacks
    def test_refused_alike_on_every_lane(self):
        for name, (target, fields) in REFUSED.items():
            for lane in LANES:
                answer = yield deferToThread(_talk, self.port, _request(lane, target, fields))
                self.assertTrue(answer.startswith(b"HTTP/1.1 400 "), (name, lane, answer[:200]))
        self.assertEqual(self.member.requests, [])

    @defer.inlineCallbacks
    def test_hop_by_hop_fields_dropped_on_every_lane(self):
        fields = b"Host: a\r\nKeep-Alive: 5\r\nTE: trailers\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n"
        for lane in LANES:
            answer = yield deferToThread(_talk, self.port, _request(lane, b"/app", fields))
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), (lane, answer[:200]))
            received = self.member.requests[-1]
            for name in (b"keep-alive", b"te", b"connection", b"x-secret"):
                self.assertIsNone(received.header(name), (lane, name))
            self.assertEqual(received.header(b"x-kept"), b"2", lane)
        self.assertEqual(
            [r.forward.method for r in self.member.requests], [b"GET", b"POST", b"GET"]
        )

    @defer.inlineCallbacks
    def test_methods_without_a_body_take_the_fast_lane(self):
        """DELETE and a POST without a body: the fast lane; the POST says its body is empty."""
        for method in (b"DELETE", b"POST"):
            head = b"%s /app HTTP/1.1\r\nHost: a\r\n\r\n" % method
            answer = yield deferToThread(_talk, self.port, [head])
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), (method, answer[:200]))
        self.assertEqual(self.taken, ["fast", "fast"])
        delete, post = self.member.requests
        self.assertEqual(
            (delete.forward.method, delete.header(b"content-length")), (b"DELETE", None)
        )
        self.assertEqual((post.forward.method, post.header(b"content-length")), (b"POST", b"0"))
