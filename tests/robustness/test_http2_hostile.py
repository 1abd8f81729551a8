"""
Hostile HTTP/2 clients against a real C{twistd -n lbproxy} process over TLS,
with the C{h2} library as the client and raw frames where a well-behaved
client would not send them. Each test checks the answer, that nothing
reached the member that must not, that a normal client is served in under a
second meanwhile, and the proxy's memory (RSS) before and after.
"""

from __future__ import annotations

import select
import time
from pathlib import Path
from typing import Any

import psutil
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests.interop.proxy_process import ProxyProcess, free_port, toml_config
from twisted_lb.testing import Fault, FaultyAJPMember
from twisted_lb.tls import h2_available, make_self_signed

from .h2_client import H2Client, timed_get
from .support import sleep

#: GOAWAY and RST_STREAM error codes (RFC 9113 section 7).
NO_ERROR, ENHANCE_YOUR_CALM, REFUSED_STREAM = 0x0, 0xB, 0x7
MiB = 1024 * 1024


class HostileHTTP2Case(TestCase):
    """A proxy process with one TLS listener in front of one L{FaultyAJPMember}."""

    timeout = 60
    limits: dict[str, Any] = {}
    #: more keys of the member's table
    member_options: dict[str, Any] = {}

    @defer.inlineCallbacks
    def setUp(self):
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        self.member = FaultyAJPMember(body_size=100).start()
        self.addCleanup(self.member.stop)
        directory = Path(self.mktemp()).resolve()
        directory.mkdir(parents=True)
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        self.port = free_port()
        text = toml_config(
            tls_listen=[self.port],
            cert=cert,
            key=key,
            members=[{"url": self.member.url, "route": "m1", **self.member_options}],
            top={"workers": 1},
        )
        if self.limits:
            text += "[limits]\n" + "".join(f"{k} = {v!r}\n" for k, v in self.limits.items())
        self.proxy = ProxyProcess(directory, text)
        self.addCleanup(self.proxy.stop, 5)
        yield deferToThread(self.proxy.start, [self.port])
        # Warm up (first TLS handshake, imports), so the RSS before is a fair baseline.
        status, _ = yield deferToThread(timed_get, self.port)
        self.assertEqual(status, 200)
        self.warm_requests = len(self.member.requests)

    def rss(self) -> int:
        pid = self.proxy.pid
        assert pid is not None
        return int(psutil.Process(pid).memory_info().rss)

    @defer.inlineCallbacks
    def normal_clients_during(self, attack: defer.Deferred[Any], count: int = 3):
        """
        Serve C{count} normal clients one after the other while C{attack}
        runs (started already); return the slowest time, and the attack's result.
        """
        times = []
        for _ in range(count):
            yield sleep(0.2)
            status, seconds = yield deferToThread(timed_get, self.port)
            self.assertEqual(status, 200)
            times.append(seconds)
        result = yield attack
        return max(times), result

    def assert_logged(self, text: str) -> None:
        log = self.proxy.log()
        self.assertIn(text, log, log[-3000:])


def continuation_flood(port: int, seconds: float = 8.0, limit: int = 512 * MiB) -> dict[str, Any]:
    """
    HEADERS without END_HEADERS, then 16 KiB CONTINUATION frames for as long
    as the server takes them (at most C{seconds} or C{limit} bytes).
    """
    client = H2Client(port)
    client.ack_settings = False
    stream = client.next_stream()
    started = time.monotonic()
    sent = 0
    chunk = client.continuation_frame(stream, b"\x00" * 16384)
    if client.send(client.headers_frame(stream, client.head_block(b"/app/x"), end_headers=False)):
        while time.monotonic() - started < seconds and sent < limit:
            # Read what the server says while it still can be read: once it
            # aborts, what was unread is lost.
            if client.goaway is None and select.select([client.conn], [], [], 0)[0]:
                client.read_once()
            if not client.send(chunk):
                break
            sent += len(chunk)
    cut_after = time.monotonic() - started
    client.read(lambda: False, 2.0)  # what the server said, until it closed
    client.close()
    return {"sent": sent, "cut_after": cut_after, "goaway": client.goaway, "closed": client.closed}


class ContinuationFloodTests(HostileHTTP2Case):
    def test_continuation_flood_is_cut_at_the_head_limit(self):
        """
        A CONTINUATION flood (CVE-2024-27316 class) ends with GOAWAY
        (ENHANCE_YOUR_CALM) once the header block passes max_header_bytes (16 KiB):
        the proxy stops reading and closes, its memory does not grow, a normal
        client is served meanwhile, and nothing reaches the member. (Before: GOAWAY
        after about 1 MB, then the connection stayed open and every byte was buffered.)
        """
        return self._flood()

    @defer.inlineCallbacks
    def _flood(self):
        before = self.rss()
        attack = deferToThread(continuation_flood, self.port)
        slowest, flood = yield self.normal_clients_during(attack)
        yield sleep(0.5)
        after = self.rss()
        print(
            f"\ncontinuation flood: {flood['sent'] / MiB:.1f} MiB taken by the socket before the "
            f"cut ({flood['cut_after']:.2f} s), RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB, "
            f"slowest normal client {slowest * 1000:.0f} ms"
        )
        self.assertEqual(flood["goaway"], (ENHANCE_YOUR_CALM, 0), flood)
        self.assertTrue(flood["closed"], flood)
        # What the sockets' buffers take before the proxy's abort, not what it read.
        self.assertLess(flood["sent"], 64 * MiB, flood)
        self.assertLess(flood["cut_after"], 5.0, flood)
        self.assertLess(after - before, 16 * MiB)
        self.assertLess(slowest, 1.0)
        # The warm-up and the normal clients' requests only.
        self.assertEqual(len(self.member.requests), self.warm_requests + 3)
        self.assert_logged("larger than 16384 bytes")


class HeadTimeoutTests(HostileHTTP2Case):
    limits = {"header_timeout": 1.0, "header_timeout_max": 2.0}

    @defer.inlineCallbacks
    def test_header_block_that_does_not_complete_is_cut(self):
        """A header block left open (no END_HEADERS, then silence) ends the connection after
        header_timeout, as a slow HTTP/1.1 head gets a 408."""

        def stall() -> dict[str, Any]:
            client = H2Client(self.port)
            client.ack_settings = False
            stream = client.next_stream()
            block = client.head_block(b"/app/x")
            client.send(client.headers_frame(stream, block, end_headers=False))
            started = time.monotonic()
            client.read(lambda: client.closed, 5.0)
            client.close()
            return {
                "goaway": client.goaway,
                "closed": client.closed,
                "after": time.monotonic() - started,
            }

        result = yield deferToThread(stall)
        self.assertEqual(result["goaway"], (ENHANCE_YOUR_CALM, 0), result)
        self.assertTrue(result["closed"], result)
        self.assertGreater(result["after"], 0.9)
        self.assertLess(result["after"], 1.0 + 1.0 + 1.5)  # the timeout, the grace, slack
        self.assertEqual(len(self.member.requests), self.warm_requests)
        self.assert_logged("a request head did not arrive in time")


def post_head(client: H2Client, stream: int, length: int | None = None) -> bytes:
    """HEADERS of a POST whose body is still to come."""
    extra = [(b"content-length", b"%d" % length)] if length is not None else []
    block = client.head_block(b"/app/upload", b"POST", extra)
    return client.headers_frame(stream, block, end_stream=False)


class StreamLimitTests(HostileHTTP2Case):
    limits = {"body_timeout": 2.0, "max_body_bytes": 1000, "max_headers": 20}

    @defer.inlineCallbacks
    def test_slow_post_streams_get_408(self):
        """50 POST streams on one connection sending a byte per stream every 0.5 s: each gets
        408 (and RST_STREAM NO_ERROR) within body_timeout plus what its bytes earned, while a
        normal client is served; no member sees any of them."""

        def slow_posts() -> dict[str, Any]:
            client = H2Client(self.port)
            streams = [client.next_stream() for _ in range(50)]
            client.send(b"".join(post_head(client, s, 500) for s in streams))
            started = time.monotonic()
            while time.monotonic() - started < 6 and len(client.responses) < len(streams):
                client.send(
                    b"".join(
                        client.data_frame(s, b"x") for s in streams if s not in client.responses
                    )
                )
                client.read(lambda: False, 0.5)
            client.read(lambda: all(s in client.resets for s in streams), 1.0)
            client.close()
            return {
                "statuses": [client.responses.get(s) for s in streams],
                "resets": [client.resets.get(s) for s in streams],
                "latest": max(client.response_at.values(), default=started) - started,
            }

        before = self.rss()
        slowest, result = yield self.normal_clients_during(deferToThread(slow_posts))
        after = self.rss()
        print(
            f"\n50 slow POST streams: 408 after at most {result['latest']:.2f} s "
            f"(body_timeout 2 s), RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB, "
            f"slowest normal client {slowest * 1000:.0f} ms"
        )
        self.assertEqual(result["statuses"], [408] * 50)
        self.assertEqual(result["resets"], [NO_ERROR] * 50)
        self.assertGreater(result["latest"], 1.9)
        self.assertLess(result["latest"], 2.0 + 1.5)
        self.assertLess(slowest, 1.0)
        self.assertEqual(len(self.member.requests), self.warm_requests + 3)
        self.assert_logged("HTTP/2 request bodies too slow")

    @defer.inlineCallbacks
    def test_streams_beyond_the_limit_are_refused(self):
        """SETTINGS say 100 concurrent streams; the 101st to 110th are refused with
        REFUSED_STREAM, the connection goes on and the first stream is served."""

        def many_streams() -> dict[str, Any]:
            client = H2Client(self.port)
            streams = [client.next_stream() for _ in range(110)]
            client.send(b"".join(post_head(client, s, 1) for s in streams))
            client.read(lambda: len(client.resets) >= 10, 3.0)
            client.send(client.data_frame(streams[0], b"x", end_stream=True))
            client.read(lambda: streams[0] in client.ended, 3.0)
            settings = [f for f in client.frames if type(f).__name__ == "SettingsFrame"][0]
            client.close()
            return {
                "max_streams": settings.settings.get(3),
                "resets": client.resets,
                "first": client.responses.get(streams[0]),
                "refused": streams[100:],
                "goaway": client.goaway,
            }

        result = yield deferToThread(many_streams)
        self.assertEqual(result["max_streams"], 100)
        self.assertEqual(result["resets"], {s: REFUSED_STREAM for s in result["refused"]})
        self.assertEqual(result["first"], 200)
        self.assertIsNone(result["goaway"])
        self.assertEqual(len(self.member.requests), self.warm_requests + 1)

    @defer.inlineCallbacks
    def test_bodies_over_max_body_bytes_get_413(self):
        """A Content-Length over max_body_bytes gets 413 at once; a body without one gets
        413 when it grows past it; too many header fields get 431; no member sees them,
        and the connection still serves a GET."""

        def too_large() -> dict[str, Any]:
            client = H2Client(self.port)
            declared, streamed, fields = (
                client.next_stream(),
                client.next_stream(),
                client.next_stream(),
            )
            client.send(post_head(client, declared, 5000))
            client.send(post_head(client, streamed))
            client.send(client.data_frame(streamed, b"x" * 600))
            client.send(client.data_frame(streamed, b"x" * 600))
            many = [(b"x-field-%d" % i, b"v") for i in range(21)]
            client.send(client.headers_frame(fields, client.head_block(b"/app/x", extra=many)))
            client.read(lambda: len(client.responses) == 3, 3.0)
            get = client.get(b"/app/after")
            client.read(lambda: get in client.ended, 3.0)
            client.close()
            return {
                "statuses": [client.responses.get(s) for s in (declared, streamed, fields, get)],
                "body": client.bodies.get(declared, b""),
            }

        result = yield deferToThread(too_large)
        self.assertEqual(result["statuses"], [413, 413, 431, 200])
        self.assertIn(b"larger than 1000 bytes", result["body"])
        self.assertEqual(len(self.member.requests), self.warm_requests + 1)
        self.assert_logged("413 for")


def rapid_resets(port: int, pairs: int) -> dict[str, Any]:
    """
    HEADERS (a whole GET) then RST_STREAM (CANCEL) for stream after stream, each
    pair in one write, on one connection; then read until the server closes.
    """
    client = H2Client(port)
    sent = 0
    for _ in range(pairs):
        stream = client.next_stream()
        pair = client.headers_frame(stream, client.head_block(b"/app/reset")) + client.rst_frame(
            stream
        )
        if not client.send(pair):
            break
        sent += 1
    client.read(lambda: client.closed, 5.0)
    client.close()
    return {
        "sent": sent,
        "goaway": client.goaway,
        "closed": client.closed,
        "answered": len(client.responses),
    }


class RapidResetTests(HostileHTTP2Case):
    @defer.inlineCallbacks
    def test_rapid_reset_reaches_no_member(self):
        """CVE-2023-44487: 1 000+ streams opened and reset at once, 250 per connection: none
        reaches the member (a reset stream is never dispatched), every connection ends with
        GOAWAY (ENHANCE_YOUR_CALM) past the reset allowance, and normal clients are served."""

        def attack() -> list[dict[str, Any]]:
            return [rapid_resets(self.port, 250) for _ in range(5)]

        before = self.rss()
        slowest, runs = yield self.normal_clients_during(deferToThread(attack))
        after = self.rss()
        sent = sum(r["sent"] for r in runs)
        print(
            f"\nrapid reset: {sent} HEADERS+RST_STREAM pairs on {len(runs)} connections, "
            f"{len(self.member.requests) - self.warm_requests - 3} reached the member, "
            f"RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB, slowest normal client "
            f"{slowest * 1000:.0f} ms"
        )
        self.assertGreaterEqual(sent, 1000)
        for run in runs:
            self.assertEqual(run["goaway"][0], ENHANCE_YOUR_CALM, run)
            self.assertTrue(run["closed"], run)
        self.assertEqual(len(self.member.requests), self.warm_requests + 3)
        self.assertLess(slowest, 1.0)
        self.assertLess(after - before, 16 * MiB)
        self.assert_logged("resets streams too fast")


class ResetWhileWaitingTests(HostileHTTP2Case):
    member_options = {"max": 1}

    @defer.inlineCallbacks
    def test_stream_reset_while_waiting_for_a_connection_is_not_sent(self):
        """A request dispatched to a member whose only connection is busy, then reset by
        the client: when the connection comes free, the request is not sent."""
        self.member.schedule(Fault.STALL_BEFORE_HEADERS)
        client = yield deferToThread(H2Client, self.port)
        self.addCleanup(client.close)
        slow = yield deferToThread(client.get, b"/app/slow")
        self.assertTrue(
            (yield wait_for(lambda: len(self.member.requests) == self.warm_requests + 1))
        )
        cancelled = yield deferToThread(client.get, b"/app/cancelled")
        yield sleep(0.3)  # dispatched: waiting for the member's one connection
        yield deferToThread(client.send, client.rst_frame(cancelled))
        yield sleep(0.2)
        self.assertEqual(self.member.answer_stalled(), 1)
        answered = yield deferToThread(client.read, lambda: slow in client.ended, 3.0)
        self.assertTrue(answered)
        self.assertEqual(client.responses[slow], 200)
        yield sleep(0.5)
        paths = [r.forward.req_uri for r in self.member.requests[self.warm_requests :]]
        self.assertEqual(len(paths), 1, paths)
        # The connection is still there for the next request.
        self.assertEqual((yield deferToThread(timed_get, self.port))[0], 200)


async def _wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await sleep(0.05)
    return True


def wait_for(predicate: Any, timeout: float = 3.0) -> defer.Deferred[bool]:
    return defer.Deferred.fromCoroutine(_wait_for(predicate, timeout))
