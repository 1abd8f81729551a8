"""
A real proxy in front of an HTTP/1.1 member that breaks the protocol on
purpose (L{twisted_lb.testing.FaultyHTTPMember}).

For every fault: the client gets a clear 502/504, or -- once the response
has started -- a response that visibly fails, never a silently short 200
nor bytes of another response; the broken connection is closed, not pooled;
the failure is logged; and the next request through the same member is
served whole.
"""

from __future__ import annotations

from twisted.internet import defer

from twisted_lb.testing import FaultyHTTPMember, HTTPFault

from .support import FaultyMemberCase, raw_exchange, wait_until

SIZE = 20_000
POST_BODY = bytes((i * 7) % 256 for i in range(2 * 1024 * 1024))


class _ProxyCase(FaultyMemberCase):
    """A proxy in front of one faulty HTTP member."""

    size = SIZE

    @defer.inlineCallbacks
    def start(self, fault=HTTPFault.NONE, **member_options):
        member_options.setdefault("body_size", SIZE)
        self.faulty = FaultyHTTPMember(fault, **member_options).start()
        self.addCleanup(self.faulty.stop)
        yield self.start_cluster([(self.faulty.url, "faulty")])

    @defer.inlineCallbacks
    def assert_connection_dropped(self, by_proxy=True):
        """Nothing of the faulty exchange stays open or pooled; who closed it."""
        yield super().assert_connection_dropped()
        self.assertEqual(self.faulty.closed_by_proxy, int(by_proxy))


#: fault -> (status, or None for an aborted response; words the log must hold)
SINGLE = {
    HTTPFault.GARBAGE_STATUS_LINE: (502, ("broken response head",)),
    HTTPFault.SHORT_BODY: (None, ("mid-response",)),
    HTTPFault.HUGE_HEADER: (502, ("broken response head",)),
    HTTPFault.MANY_HEADERS: (502, ("10001 fields", "limits: 200 fields")),
    HTTPFault.BAD_CHUNKED: (None, ("mid-response",)),
    HTTPFault.STALL_BEFORE_HEADERS: (504, ("did not answer within 1 s",)),
    HTTPFault.STALL_MID_BODY: (None, ("sent nothing for 1 s",)),
    HTTPFault.INVALID_STATUS: (502, ("cannot be passed on: status 65000 is outside 100-599",)),
    HTTPFault.NUL_IN_HEADER_VALUE: (502, ("cannot be passed on: header value b'X-Nul' holds NUL",)),
    HTTPFault.BARE_CR_IN_HEADER_VALUE: (
        502,
        ("cannot be passed on: header value b'X-Split' holds CR",),
    ),
}


class SingleFaultTests(_ProxyCase):
    """One faulty answer: a clear error, the connection dropped, then a good answer."""

    @defer.inlineCallbacks
    def check(self, fault, status, words):
        yield self.start()
        self.faulty.schedule(fault)
        result = yield self.fetch()
        if status is None:
            self.assert_aborted(result)
        else:
            self.assertEqual(result.status, status, (fault, result.error))
            self.assertTrue(result.complete)
            self.assertIn(b"could not answer", result.body)
        self.assertEqual([r.fault for r in self.faulty.requests], [fault])
        yield self.assert_member_idle()
        self.assert_logged(*words)
        yield self.assert_connection_dropped(by_proxy=fault is not HTTPFault.SHORT_BODY)
        # The member may have closed first: the proxy's side learns it a turn later.
        yield self.assert_soon(
            lambda: self.pool._connections == {}, lambda: f"pooled: {self.pool._connections}"
        )
        yield self.assert_next_request_fine()
        return result


def _single(fault, status, words):
    def test(self):
        return self.check(fault, status, words)

    outcome = "an aborted response" if status is None else str(status)
    test.__doc__ = f"{fault.name}: {outcome}, logged, connection dropped, next request fine."
    return test


for _fault, (_status, _words) in SINGLE.items():
    setattr(SingleFaultTests, f"test_{_fault.name.lower()}", _single(_fault, _status, _words))


class SpecificFaultTests(_ProxyCase):
    """Faults with an outcome of their own."""

    @defer.inlineCallbacks
    def test_stall_before_headers_is_504_within_the_timeout(self):
        """A slow application: 504 after the member timeout (1 s), the member stays in service."""
        yield self.start()
        self.faulty.schedule(HTTPFault.STALL_BEFORE_HEADERS)
        result = yield self.fetch()
        self.assertEqual(result.status, 504)
        self.assertGreaterEqual(result.seconds, 0.9)
        self.assertLess(result.seconds, 2.5)
        self.assertEqual(self.member.errors, 0)
        yield self.assert_connection_dropped()
        yield self.assert_next_request_fine()

    @defer.inlineCallbacks
    def test_bad_heads_are_502_on_both_lanes(self):
        """
        An invalid status, a NUL or a bare CR in a value: the fast lane and
        twisted.web's lane (HTTP/1.0) both answer 502 with nothing of the
        member's head, log it once, and close the member connection.
        """
        yield self.start()
        port = int(self.base.rsplit(":", 1)[1])
        requests = {
            "fast lane": b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "twisted.web": b"GET /app HTTP/1.0\r\nHost: x\r\n\r\n",
        }
        faults = (
            HTTPFault.INVALID_STATUS,
            HTTPFault.NUL_IN_HEADER_VALUE,
            HTTPFault.BARE_CR_IN_HEADER_VALUE,
        )
        for fault in faults:
            for lane, request in requests.items():
                self.logs.lines.clear()
                closed = self.faulty.closed_by_proxy
                self.faulty.schedule(fault)
                answer = yield raw_exchange(port, request)
                self.assertRegex(answer[:13], rb"^HTTP/1\.[01] 502 ", (fault, lane, answer[:200]))
                self.assertNotIn(b"65000", answer)
                self.assertNotIn(b"\x00", answer)
                self.assertNotIn(b"X-Nul", answer)
                self.assertNotIn(b"smuggled", answer)
                logged = [line for line in self.logs.lines if "cannot be passed on" in line]
                self.assertEqual(len(logged), 1, (fault, lane, self.logs.lines))
                yield wait_until(lambda: self.faulty.open_connections == 0)
                self.assertEqual(self.faulty.closed_by_proxy, closed + 1)
        yield self.assert_member_idle()

    @defer.inlineCallbacks
    def test_long_body_does_not_leak_into_the_next_response(self):
        """Bytes past the Content-Length never reach a client; the connection is not reused."""
        yield self.start()
        self.faulty.schedule(HTTPFault.LONG_BODY)
        result = yield self.fetch()
        self.assert_whole(result)
        for _ in range(3):
            follow = yield self.fetch()
            self.assert_whole(follow)
            self.assertNotIn(b"leaked!", follow.body)
        self.assertEqual(len(self.faulty.requests), 4)
        self.assertNotEqual(self.faulty.requests[1].connection, 1)
        self.assertEqual(self.faulty.closed_by_proxy, 1)
        self.assert_logged("after the response")

    @defer.inlineCallbacks
    def test_informational_responses_are_skipped(self):
        """100 Continue and 103 Early Hints before the answer: the client gets the 200, whole."""
        yield self.start()
        self.faulty.schedule(HTTPFault.INFORMATIONAL_FIRST)
        result = yield self.fetch()
        self.assert_whole(result)
        yield self.assert_next_request_fine(new_connection=False)
        self.assertEqual(self.member.errors, 0)

    @defer.inlineCallbacks
    def test_head_with_body(self):
        """1 MiB of body to a HEAD: headers only to the client; none of it leaks later."""
        yield self.start()
        self.faulty.schedule(HTTPFault.HEAD_WITH_BODY)
        result = yield self.fetch(method=b"HEAD")
        self.assertEqual((result.status, result.body), (200, b""))
        self.assertTrue(result.complete)
        for _ in range(3):
            follow = yield self.fetch()
            self.assert_whole(follow)
        self.assertEqual(self.member.errors, 0)
        self.assertNotEqual(self.faulty.requests[1].connection, 1)

    @defer.inlineCallbacks
    def test_answer_before_the_request_body(self):
        """An answer before the member read the 2 MiB body: the client gets it whole."""
        yield self.start()
        self.faulty.schedule(HTTPFault.ANSWER_BEFORE_BODY)
        result = yield self.fetch(method=b"POST", body=POST_BODY)
        self.assert_whole(result)
        self.assertEqual(self.member.errors, 0)
        # The request body was still going out: that connection is given up.
        yield self.assert_next_request_fine()

    @defer.inlineCallbacks
    def test_reject_before_the_request_body(self):
        """413 + close before the body was read: the client gets the 413 or a 502, never a hang."""
        yield self.start()
        self.faulty.schedule(HTTPFault.REJECT_BEFORE_BODY)
        result = yield self.fetch(method=b"POST", body=POST_BODY)
        self.assertIn(result.status, (413, 502), result.error)
        self.assertTrue(result.complete)
        self.assertLess(result.seconds, 2)
        self.assertEqual(len(self.faulty.requests), 1)
        yield self.assert_next_request_fine()

    @defer.inlineCallbacks
    def test_idle_keep_alive_connection_closed_by_the_member(self):
        """The member closes an idle pooled connection: the next request opens a new one."""
        yield self.start()
        self.faulty.schedule(HTTPFault.CLOSE_AFTER_RESPONSE)
        self.assert_whole((yield self.fetch()))
        yield defer.Deferred.fromCoroutine(wait_until(lambda: self.faulty.open_connections == 0))
        yield self.assert_next_request_fine()
        self.assertEqual(self.member.errors, 0)

    @defer.inlineCallbacks
    def test_keep_alive_race_is_retried_on_a_new_connection(self):
        """
        The member closes a pooled connection just as the next GET arrives on
        it: the GET is sent again on a new connection, the client never sees
        the race, and the member is not put in error.
        """
        yield self.start()
        self.faulty.schedule(HTTPFault.CLOSE_ON_NEXT_REQUEST)
        self.assert_whole((yield self.fetch()))
        result = yield self.fetch()
        self.assert_whole(result)
        self.assertEqual([r.connection for r in self.faulty.requests], [1, 1, 2])
        self.assertEqual(self.member.errors, 0)
        self.assertFalse(self.member.in_error)

    @defer.inlineCallbacks
    def test_keep_alive_race_with_a_body_is_not_replayed(self):
        """The same race under a POST with a body: a 502, never a second POST."""
        yield self.start()
        self.faulty.schedule(HTTPFault.CLOSE_ON_NEXT_REQUEST)
        self.assert_whole((yield self.fetch()))
        result = yield self.fetch(method=b"POST", body=b"x" * 1000)
        self.assertEqual(result.status, 502)
        self.assertEqual([r.method for r in self.faulty.requests], [b"GET", b"POST"])
        yield self.assert_next_request_fine()
