"""
A WebSocket member's 101 answer with NUL or a bare CR in a field never
reaches the client (Autobahn's client refuses such an answer; the tunnel
answers 502), as for every member's response head.
"""

from __future__ import annotations

from .memory import Harness


def test_a_101_header_with_nul_or_cr_is_502():
    """A member's 101 field holding NUL or a bare CR: 502, nothing of it passed on."""
    for value in ("a\x00b", "a\rSet-Cookie: smuggled=1"):
        h = Harness()
        h.member(9001).answer_headers = {"X-Bad": value}
        client, link = h.open_client()
        h.settle()
        h.reactor.advance(2)
        h.settle()
        assert not client.opened
        answer = bytes(link.received[link.left])
        assert answer.startswith(b"HTTP/1.1 502 "), answer[:100]
        assert b"smuggled" not in answer and b"\x00" not in answer
