"""
A real proxy in front of members that break AJP on purpose
(L{twisted_lb.testing.FaultyAJPMember}).

For every fault: the client gets a clear 502/504, or -- once the response
has started -- a response that visibly fails (connection cut, incomplete
body), never a silently short 200; the broken connection is closed, not
pooled; and the next request on a healthy path succeeds.
"""

from __future__ import annotations

import time

from twisted.internet import defer

from twisted_lb.testing import Fault, FaultyAJPMember, body_pattern

from .support import FaultyMemberCase, Result, raw_exchange, wait_until

SIZE = 20_000
TO_FAULTY = {b"Cookie": [b"JSESSIONID=0123456789ABCDEF.faulty"]}
POST_BODY = bytes((i * 7) % 256 for i in range(30_000))


class _ProxyCase(FaultyMemberCase):
    """A proxy in front of one faulty member and, when asked, a healthy one."""

    size = SIZE

    @defer.inlineCallbacks
    def start(self, fault=Fault.NONE, healthy=False, member_options=None, **faulty_options):
        faulty_options.setdefault("body_size", SIZE)
        self.faulty = FaultyAJPMember(fault, **faulty_options).start()
        self.addCleanup(self.faulty.stop)
        members = [(self.faulty.url, "faulty")]
        self.healthy = None
        if healthy:
            self.healthy = FaultyAJPMember(Fault.NONE, body_size=SIZE).start()
            self.addCleanup(self.healthy.stop)
            members.append((self.healthy.url, "healthy"))
        yield self.start_cluster(members, member_options)

    def fetch(self, path="/app", method=b"GET", headers=TO_FAULTY, body=None) -> defer.Deferred:
        return super().fetch(path, method, headers, body)

    def assert_not_silently_short(self, result: Result, size: int = SIZE) -> None:
        """A complete 200 is a whole 200."""
        if result.complete and result.status == 200:
            self.assertEqual(len(result.body), size)
            self.assertEqual(result.body, body_pattern(size))

    @defer.inlineCallbacks
    def assert_connection_dropped(self):
        """Nothing of the faulty member stays open or pooled."""
        yield super().assert_connection_dropped()
        # The member may have closed first: the proxy's side learns it a turn later.
        yield self.assert_soon(
            lambda: (self.pool.idle_count, self.pool.open_count) == (0, 0),
            lambda: f"pool: {self.pool.idle_count} idle, {self.pool.open_count} open",
        )


# -- one faulty member: every fault, one request --------------------------------------------------

#: fault -> (expected status, or None for an aborted response; member put in error)
SINGLE = {
    Fault.WRONG_MAGIC: (502, False),
    Fault.OVERSIZED_PACKET: (502, False),
    Fault.LENGTH_BEYOND_PACKET: (502, False),
    Fault.TRUNCATED_PACKET: (502, True),
    Fault.UNKNOWN_MESSAGE_TYPE: (502, False),
    Fault.BAD_HEADER_CODE: (502, False),
    Fault.SEND_HEADERS_TWICE: (None, False),
    Fault.NO_END_RESPONSE: (None, False),
    Fault.SHORT_BODY: (None, False),
    Fault.STALL_MID_BODY: (None, False),
    Fault.RESET_MID_BODY: (None, False),
    Fault.STALL_BEFORE_HEADERS: (504, False),
    Fault.SECRET_REJECTED: (502, True),
    Fault.INVALID_STATUS: (502, False),
    Fault.CRLF_IN_HEADER_NAME: (502, False),
    Fault.NUL_IN_HEADER_VALUE: (502, False),
    Fault.LF_IN_HEADER_VALUE: (502, False),
}


class SingleFaultTests(_ProxyCase):
    """One member, one faulty answer, then a good one."""

    @defer.inlineCallbacks
    def check(self, fault, status, in_error, **faulty_options):
        yield self.start(**faulty_options)
        self.faulty.schedule(fault)
        result = yield self.fetch()
        if status is None:
            self.assert_aborted(result)
        else:
            self.assertEqual(result.status, status, (fault, result.error))
            self.assertTrue(result.complete)
            self.assertIn(b"could not answer", result.body)
        self.assert_not_silently_short(result)
        # The attempt's end is accounted (in flight, then errors) once it settled.
        yield self.assert_member_idle()
        # Counted, not read from in_error: the prober may readmit it at once.
        self.assertEqual(self.member.errors > 0, in_error, fault)
        self.assertEqual([r.fault for r in self.faulty.requests], [fault])
        self.assertEqual(self.faulty.proxy_errors, [])
        yield self.assert_connection_dropped()
        yield self.assert_next_request_fine()
        return result


def _single(fault, status, in_error):
    def test(self):
        return self.check(
            fault, status, in_error, content_length=fault is not Fault.NO_END_RESPONSE
        )

    outcome = "an aborted response" if status is None else str(status)
    test.__doc__ = f"{fault.name}: {outcome}, connection dropped, next request fine."
    test.__name__ = f"test_{fault.name.lower()}"
    return test


for _fault, (_status, _in_error) in SINGLE.items():
    setattr(SingleFaultTests, f"test_{_fault.name.lower()}", _single(_fault, _status, _in_error))


class SpecificFaultTests(_ProxyCase):
    """Faults with an outcome of their own."""

    @defer.inlineCallbacks
    def test_stall_before_headers_is_504_in_time_member_not_in_error(self):
        """A slow application gets 504 after the member timeout (1 s) and stays in service."""
        yield self.start()
        self.faulty.schedule(Fault.STALL_BEFORE_HEADERS)
        result = yield self.fetch()
        self.assertEqual(result.status, 504)
        self.assertGreaterEqual(result.seconds, 0.9)
        self.assertLess(result.seconds, 2.5)
        self.assertEqual(self.member.errors, 0)
        yield self.assert_connection_dropped()
        self.assertEqual(self.faulty.closed_by_proxy, 1)
        yield self.assert_next_request_fine()

    @defer.inlineCallbacks
    def test_no_end_response_with_content_length(self):
        """All declared bytes then a close: the client has the whole body or an error."""
        yield self.start()
        self.faulty.schedule(Fault.NO_END_RESPONSE)
        result = yield self.fetch()
        self.assertIn(result.status, (None, 200))
        self.assertEqual(result.body, body_pattern(len(result.body)))
        self.assert_not_silently_short(result)
        yield self.assert_connection_dropped()
        yield self.assert_next_request_fine()

    @defer.inlineCallbacks
    def test_no_body_despite_content_length(self):
        """Content-Length 1, END_RESPONSE without a body byte: not a short 200, no hang."""
        yield self.start(body_size=1)
        self.faulty.schedule(Fault.SHORT_BODY)
        result = yield self.fetch()
        self.assert_aborted(result)
        self.assertLess(result.seconds, 2)
        yield self.assert_connection_dropped()

    @defer.inlineCallbacks
    def test_head_keeps_content_length_without_body(self):
        """HEAD: the member's Content-Length comes back, no body, the connection is reused."""
        yield self.start()
        result = yield self.fetch(method=b"HEAD")
        self.assertEqual((result.status, result.body), (200, b""))
        self.assertTrue(result.complete)
        result = yield self.fetch()
        self.assertEqual(result.body, body_pattern(SIZE))
        self.assertEqual([r.connection for r in self.faulty.requests], [1, 1])

    @defer.inlineCallbacks
    def test_short_body_without_content_length(self):
        """Fewer bytes than needed cannot be seen without Content-Length; the answer is whole."""
        yield self.start(content_length=False)
        self.faulty.schedule(Fault.SHORT_BODY)
        result = yield self.fetch()
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, body_pattern(SIZE // 2))

    @defer.inlineCallbacks
    def test_reuse_zero_closes_the_connection(self):
        """END_RESPONSE reuse=0: the answer is whole and the next request opens a new connection."""
        yield self.start()
        self.faulty.schedule(Fault.REUSE_ZERO)
        result = yield self.fetch()
        self.assertEqual((result.status, result.body), (200, body_pattern(SIZE)))
        self.assertTrue(result.complete)
        yield self.assert_connection_dropped()
        self.assertEqual(self.faulty.closed_by_proxy, 1)
        yield self.assert_next_request_fine()
        self.assertEqual(self.pool.opened, 2)
        self.assertEqual(self.member.errors, 0)

    @defer.inlineCallbacks
    def test_data_after_end_response_drops_the_connection(self):
        """A packet after END_RESPONSE: the answer was whole, the connection is dropped."""
        yield self.start()
        self.faulty.schedule(Fault.DATA_AFTER_END_RESPONSE)
        result = yield self.fetch()
        self.assertEqual((result.status, result.body), (200, body_pattern(SIZE)))
        yield self.assert_connection_dropped()
        self.assertEqual(self.faulty.closed_by_proxy, 1)
        yield self.assert_next_request_fine()
        self.assertEqual(self.member.errors, 0)

    @defer.inlineCallbacks
    def test_get_body_chunk_after_body_ended(self):
        """A further ask after the whole body is answered with the empty packet only."""
        yield self.start()
        for method, body in ((b"POST", POST_BODY), (b"GET", None)):
            self.faulty.schedule(Fault.GET_BODY_CHUNK_AFTER_BODY_ENDED)
            result = yield self.fetch(method=method, body=body)
            self.assertEqual((result.status, result.body), (200, body_pattern(SIZE)))
            self.assertEqual(self.faulty.requests[-1].body, body or b"")
        self.assertEqual(self.faulty.extra_body_bytes, 0)
        self.assertEqual(self.faulty.proxy_errors, [])
        # The exchange ended cleanly: the connection was kept.
        self.assertEqual([r.connection for r in self.faulty.requests], [1, 1])

    @defer.inlineCallbacks
    def test_head_with_body(self):
        """
        A 20 MB body to a HEAD: the client gets the headers and no body byte
        (its connection stays in step), quickly, and the member connection is
        dropped instead of read to the end.
        """
        yield self.start()
        self.faulty.schedule(Fault.HEAD_WITH_BODY)
        started = time.monotonic()
        result = yield self.fetch(method=b"HEAD")
        self.assertEqual(result.status, 200)
        self.assertEqual(result.body, b"")
        # The same client connection serves the next request in step.
        follow = yield self.fetch()
        self.assertEqual((follow.status, follow.body), (200, body_pattern(SIZE)))
        self.assertLess(time.monotonic() - started, 3)
        self.assertLess(self.faulty.bytes_sent, 4 * 1024 * 1024)
        self.assertEqual(self.faulty.proxy_errors, [])
        self.assertEqual(self.faulty.requests[0].connection, 1)
        self.assertEqual(self.faulty.requests[1].connection, 2)
        self.assertEqual(self.member.errors, 0)

    @defer.inlineCallbacks
    def test_secret_rejected_is_502_logged_and_member_in_error(self):
        """Tomcat's 403 + reuse=0: a 502 (not the 403 page), a log line naming the secret."""
        yield self.start(secret="right", member_options={"secret": "wrong"})
        result = yield self.fetch()
        self.assertEqual(result.status, 502)
        self.assertNotIn(b"HTTP Status 403", result.body)
        self.assertEqual(self.member.errors, 1)
        self.assertIn("secret", self.logs.text())
        self.assertEqual(self.faulty.requests[0].forward.secret, b"wrong")
        yield self.assert_connection_dropped()

    @defer.inlineCallbacks
    def test_no_cpong_alone_is_503(self):
        """A hung member (no CPONG) and nobody else: 503 after the ping timeout, in error."""
        yield self.start(Fault.NO_CPONG)
        result = yield self.fetch()
        self.assertEqual(result.status, 503)
        self.assertLess(result.seconds, 2)
        self.assertTrue(self.member.in_error)
        self.assertEqual(self.faulty.requests, [])
        yield self.assert_connection_dropped()


class BadHeadTests(_ProxyCase):
    """A response head that cannot be passed on: a 502 on every lane, logged once."""

    @defer.inlineCallbacks
    def test_bad_heads_are_502_on_both_lanes(self):
        """
        An invalid status, CR LF in a header name, NUL or LF in a value: the
        fast lane (a simple GET), twisted.web's lane (HTTP/1.0, a POST) all
        answer 502 without a byte of the member's head; the member
        connection is dropped each time; one log line each says why.
        """
        yield self.start()
        port = int(self.base.rsplit(":", 1)[1])
        requests = {
            "fast lane": b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "twisted.web": b"GET /app HTTP/1.0\r\nHost: x\r\n\r\n",
            "twisted.web POST": (
                b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                b"Connection: close\r\n\r\nabc"
            ),
        }
        faults = {
            Fault.INVALID_STATUS: "status 65000 is outside 100-599",
            Fault.CRLF_IN_HEADER_NAME: "holds CR",
            Fault.NUL_IN_HEADER_VALUE: "holds NUL",
            Fault.LF_IN_HEADER_VALUE: "holds LF",
        }
        for fault, words in faults.items():
            for lane, request in requests.items():
                self.logs.lines.clear()
                self.faulty.schedule(fault)
                answer = yield raw_exchange(port, request)
                head = answer.split(b"\r\n\r\n", 1)[0]
                self.assertRegex(answer[:13], rb"^HTTP/1\.[01] 502 ", (fault, lane, answer[:200]))
                self.assertNotIn(b"smuggled", answer, (fault, lane))
                self.assertNotIn(b"65000", head, (fault, lane))
                self.assertNotIn(b"\x00", answer, (fault, lane))
                self.assertIn(b"could not answer", answer)
                logged = [line for line in self.logs.lines if "cannot be passed on" in line]
                self.assertEqual(len(logged), 1, (fault, lane, self.logs.lines))
                self.assertIn(words, logged[0])
                yield self.assert_connection_dropped()
        self.assertEqual(self.member.errors, 0)
        yield self.assert_member_idle()
        yield self.assert_next_request_fine()


# -- a faulty and a healthy member: failover and replay rules -------------------------------------

#: Faults that strike before any response byte.
BEFORE_RESPONSE = (
    Fault.WRONG_MAGIC,
    Fault.TRUNCATED_PACKET,
    Fault.UNKNOWN_MESSAGE_TYPE,
    Fault.STALL_BEFORE_HEADERS,
    Fault.SECRET_REJECTED,
)


class FailoverTests(_ProxyCase):
    """Which requests go to the healthy member after the faulty one failed."""

    @defer.inlineCallbacks
    def test_get_fails_over_before_any_response_byte(self):
        """A GET without body goes to the healthy member after any failure before the response."""
        yield self.start(healthy=True)
        for i, fault in enumerate(BEFORE_RESPONSE, 1):
            self.balancer.record_success(self.member)
            self.faulty.schedule(fault)
            result = yield self.fetch()
            self.assertEqual((result.status, result.body), (200, body_pattern(SIZE)), fault)
            self.assertEqual(len(self.faulty.requests), i, fault)
            self.assertEqual(len(self.healthy.requests), i, fault)
        # The proxy dropped every connection to the faulty member; the member
        # sees the last close a moment later (real sockets, a busy machine).
        closed = yield defer.Deferred.fromCoroutine(wait_until(lambda: self.faulty.open_connections == 0))
        self.assertTrue(closed, f"{self.faulty.open_connections} connection(s) still open")
        self.assertEqual(self.pool.idle_count, 0)

    @defer.inlineCallbacks
    def test_post_with_body_is_never_replayed(self):
        """A POST whose body went out is not sent to another member, whatever failed."""
        yield self.start(healthy=True)
        for fault in BEFORE_RESPONSE:
            self.balancer.record_success(self.member)
            before = len(self.faulty.requests)
            self.faulty.schedule(fault)
            result = yield self.fetch(method=b"POST", body=POST_BODY)
            self.assertIn(result.status, (502, 504), fault)
            self.assertEqual(len(self.faulty.requests), before + 1, fault)
            self.assertEqual(self.faulty.requests[-1].body, POST_BODY, fault)
            self.assertEqual(self.healthy.requests, [], fault)

    @defer.inlineCallbacks
    def test_post_fails_over_when_cping_unanswered(self):
        """A POST that never left the proxy (no CPONG) goes to the healthy member."""
        yield self.start(healthy=True)
        self.faulty.schedule(Fault.NO_CPONG)
        result = yield self.fetch(method=b"POST", body=POST_BODY)
        self.assertEqual(result.status, 200)
        self.assertEqual(self.faulty.requests, [])
        self.assertEqual(self.healthy.requests[0].body, POST_BODY)
        self.assertEqual(self.member.errors, 1)

    @defer.inlineCallbacks
    def test_no_cpong_get_fails_over_silently(self):
        """A GET on a new connection to a hung member: no error to the client, member in error."""
        yield self.start(Fault.NO_CPONG, healthy=True)
        result = yield self.fetch()
        self.assertEqual((result.status, result.body), (200, body_pattern(SIZE)))
        self.assertTrue(result.complete)
        self.assertLess(result.seconds, 2)
        self.assertTrue(self.member.in_error)
        self.assertEqual(self.faulty.cpings, 1)
        self.assertEqual(self.faulty.requests, [])
        self.assertEqual(len(self.healthy.requests), 1)
        yield self.assert_connection_dropped()
        # The prober keeps it out while it stays hung; the cluster keeps serving.
        for _ in range(3):
            result = yield self.fetch()
            self.assertEqual(result.status, 200)
        self.assertTrue(self.member.in_error)

    @defer.inlineCallbacks
    def test_response_started_is_never_replayed(self):
        """Once the response started, a GET is not sent elsewhere: the client sees the cut."""
        yield self.start(healthy=True)
        for fault in (Fault.RESET_MID_BODY, Fault.STALL_MID_BODY, Fault.SEND_HEADERS_TWICE):
            self.faulty.schedule(fault)
            result = yield self.fetch()
            self.assert_aborted(result)
            self.assertEqual(self.healthy.requests, [], fault)
        self.assertEqual(self.member.errors, 0)
        yield self.assert_connection_dropped()
