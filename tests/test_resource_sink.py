"""RequestSink: a member's response head written to a twisted.web request."""

from __future__ import annotations

from twisted.web.test.requesthelper import DummyRequest

from twisted_lb.resource import RequestSink


def test_fields_the_member_lists_in_connection_are_dropped() -> None:
    """Its own Connection header names fields for its hop only (RFC 9110 7.6.1)."""
    request = DummyRequest([b""])
    RequestSink(request).start(
        200,
        [
            (b"X-Internal", b"secret"),
            (b"Connection", b"keep-alive, X-Internal"),
            (b"Connection", b"x-other"),
            (b"X-Other", b"2"),
            (b"Keep-Alive", b"timeout=5"),
            (b"X-Kept", b"1"),
            (b"X-Kept", b"2"),
        ],
    )
    names = {name.lower() for name, _ in request.responseHeaders.getAllRawHeaders()}
    assert names == {b"x-kept"}
    assert request.responseHeaders.getRawHeaders(b"x-kept") == [b"1", b"2"]
    assert request.responseCode == 200
