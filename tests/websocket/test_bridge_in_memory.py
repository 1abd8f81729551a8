"""
The WebSocket bridge in memory (see L{tests.websocket.memory}): the client,
the proxy's resource and the members talk over C{StringTransport}s, and time
is a C{MemoryReactorClock}.
"""

from __future__ import annotations

from .memory import WS_PATH, Harness


def _open(h: Harness, **kw):
    client, link = h.open_client(**kw)
    h.settle()
    assert client.opened, bytes(link.received[link.left])[:300]
    return client, link


def test_upgrade_is_accepted_only_after_the_member_accepted():
    h = Harness()
    client, link = h.open_client()
    h.network.pump()
    # The proxy is connecting to a member; the client has no answer yet.
    assert len(h.reactor.tcpClients) == 1
    assert link.received[link.left] == b""
    assert not client.opened
    h.settle()
    answer = bytes(link.received[link.left])
    assert answer.startswith(b"HTTP/1.1 101 ")
    # The member greeted as soon as it accepted, before the client had its 101: kept, in order.
    assert client.opened and client.messages == [(b"hello from a", False)]


def test_member_messages_and_close_before_the_clients_101_are_kept():
    """A member that talks and closes at once: the client gets all of it, after its 101."""
    h = Harness()
    h.member(9001).burst = [b"one", b"two"]
    h.member(9001).close_at_open = (4003, "short visit")
    client, link = h.open_client()
    h.settle()
    assert client.opened
    assert client.messages == [(b"hello from a", False), (b"one", False), (b"two", False)]
    assert client.close_info == (4003, "short visit")


def test_messages_relayed_in_order_both_ways():
    h = Harness()
    h.member(9001).echo = False
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    up = [(f"c{i}".encode() * (i + 1), bool(i % 3 == 0)) for i in range(60)]
    down = [(f"m{i}".encode() * (60 - i), bool(i % 2)) for i in range(60)]
    for (a, a_bin), (b, b_bin) in zip(up, down, strict=True):
        client.sendMessage(a, a_bin)
        peer.sendMessage(b, b_bin)
    h.settle()
    assert peer.messages == up
    assert client.messages == [(b"hello from a", False)] + down


def test_subprotocol_and_request_headers_reach_the_member():
    h = Harness()
    client, _ = _open(
        h,
        path=WS_PATH + "/sub?x=1",
        protocols=["other", "chat"],
        headers={"Cookie": "a=b", "Authorization": "Bearer t", "Origin": "https://app.example"},
    )
    (peer,) = h.member(9001).peers
    request = peer.request
    assert request.path == WS_PATH + "/sub"
    assert request.params == {"x": ["1"]}
    assert request.protocols == ["other", "chat"]
    assert request.headers["cookie"] == "a=b"
    assert request.headers["authorization"] == "Bearer t"
    assert request.origin == "https://app.example"
    assert request.headers["x-forwarded-for"] == "127.0.0.1"
    assert request.headers["host"] == "127.0.0.1:9001"
    assert client.subprotocol == "chat"


def test_session_route_picks_the_member():
    h = Harness()
    client, _ = _open(h, headers={"Cookie": "JSESSIONID=ABC.b"})
    assert client.messages == [(b"hello from b", False)]
    assert h.member(9001).peers == []


def test_preserve_host_and_x_forwarded_off():
    h = Harness(route={"preserve_host": True}, x_forwarded=False)
    _open(h, headers={"X-Forwarded-For": "10.9.9.9"})
    (peer,) = h.member(9001).peers
    assert peer.request.headers["host"] == "127.0.0.1:8080"
    assert peer.request.headers["x-forwarded-for"] == "10.9.9.9"
    assert "x-forwarded-proto" not in peer.request.headers


def test_client_close_code_and_reason_reach_the_member():
    h = Harness()
    client, link = _open(h)
    (peer,) = h.member(9001).peers
    client.sendClose(4001, "bye")
    h.settle()
    assert peer.close_info == (4001, "bye")
    assert client.close_info == (4001, "bye")
    assert h.built.balancer.members[0].in_flight == 0


def test_member_close_code_and_reason_reach_the_client():
    h = Harness()
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    peer.sendClose(4002, "done here")
    h.settle()
    assert client.close_info == (4002, "done here")
    assert peer.close_info == (4002, "done here")


def test_member_refusal_is_the_clients_answer():
    h = Harness()
    h.member(9001).refuse = (403, "Forbidden")
    client, link = h.open_client()
    h.settle()
    answer = bytes(link.received[link.left])
    assert answer.startswith(b"HTTP/1.1 403 Forbidden"), answer[:200]
    assert not client.opened
    # The application said no: the member is fine and nobody else was asked.
    assert not h.built.balancer.members[0].in_error
    assert len(h.reactor.tcpClients) == 1


def test_unanswered_upgrade_goes_to_the_next_member_after_the_timeout():
    h = Harness(member_timeout=30.0, route={"timeout": 2.0})
    h.silent.add(9001)
    client, link = h.open_client()
    h.settle()
    assert not client.opened
    h.reactor.advance(1.9)
    h.settle()
    assert not client.opened and len(h.reactor.tcpClients) == 1
    h.reactor.advance(0.2)
    h.settle()
    assert client.messages == [(b"hello from b", False)]


def test_a_paused_side_pauses_the_other():
    h = Harness()
    h.member(9001).echo = False
    client, client_link = _open(h)
    (peer,) = h.member(9001).peers
    (member_link,) = [link for link in h.network.links if link is not client_link]
    to_client, to_member = client_link.right, member_link.left  # the proxy's two transports
    # The proxy's writes to the client back up: its transport pauses its producer ...
    to_client.producer.pauseProducing()
    # ... and the proxy stops reading from the member.
    assert to_member.producerState == "paused"
    for i in range(20):
        peer.sendMessage(b"x%d" % i)
    h.settle()
    assert client.messages == [(b"hello from a", False)]
    assert member_link.right.value()  # waiting with the member, not in the proxy
    to_client.producer.resumeProducing()
    h.settle()
    assert client.messages[1:] == [(b"x%d" % i, False) for i in range(20)]
    # And the other way.
    to_member.producer.pauseProducing()
    assert to_client.producerState == "paused"
    client.sendMessage(b"up")
    h.settle()
    assert peer.messages == []
    to_member.producer.resumeProducing()
    h.settle()
    assert peer.messages == [(b"up", False)]


def test_idle_timeout_runs_on_the_clock():
    h = Harness(member_timeout=30.0)
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    h.reactor.advance(29)
    client.sendMessage(b"still here")  # activity restarts the timer
    h.settle()
    h.reactor.advance(29.9)
    h.settle()
    assert client.close_info is None
    h.reactor.advance(0.2)
    h.settle()
    assert client.close_info == (1001, "idle timeout")
    assert peer.close_info == (1001, "idle timeout")


def test_route_timeout_is_the_idle_timeout():
    h = Harness(member_timeout=30.0, route={"timeout": 5.0})
    client, _ = _open(h)
    h.reactor.advance(5.1)
    h.settle()
    assert client.close_info == (1001, "idle timeout")


def test_message_over_the_size_limit_closes_both_sides_with_1009():
    h = Harness(ws_max_message_size=1024)
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    client.sendMessage(b"y" * 1024)  # at the limit: relayed
    h.settle()
    assert peer.messages == [(b"y" * 1024, False)]
    client.sendMessage(b"z" * 1025)
    h.settle()
    assert client.close_info is not None and client.close_info[0] == 1009
    assert peer.close_info is not None and peer.close_info[0] == 1009
    assert peer.messages == [(b"y" * 1024, False)]


def test_too_big_from_the_member_is_1009_for_both():
    h = Harness(ws_max_message_size=1024)
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    peer.sendMessage(b"w" * 4096, isBinary=True)
    h.settle()
    assert client.close_info is not None and client.close_info[0] == 1009
    assert peer.close_info is not None and peer.close_info[0] == 1009
    assert client.messages == [(b"hello from a", False)]


# -- frames, not messages ------------------------------------------------------------------


def _member_link(h: Harness, client_link):
    (link,) = [link for link in h.network.links if link is not client_link]
    return link


def test_frames_pass_byte_for_byte_both_ways():
    """
    The client's masked frames reach the member as the client sent them
    (same mask), fragments and pings included; the member's frames reach
    the client as the member sent them.
    """
    h = Harness()
    h.member(9001).echo = False
    client, client_link = _open(h)
    member_link = _member_link(h, client_link)
    (peer,) = h.member(9001).peers
    sent_before = len(client_link.left.value())
    assert sent_before == 0
    client.beginMessage(isBinary=True)
    client.sendMessageFrame(b"part one ")
    client.sendPing(b"are you there")
    client.sendMessageFrame(b"part two")
    client.endMessage()
    upstream = client_link.left.value()  # what the client wrote, before the proxy read it
    received_before = len(member_link.received[member_link.right])
    h.settle()
    assert bytes(member_link.received[member_link.right])[received_before:] == upstream
    assert peer.messages == [(b"part one part two", True)]
    down_before = len(client_link.received[client_link.left])
    peer.sendMessage(("é" * 100).encode())
    downstream = member_link.right.value()
    h.settle()
    assert bytes(client_link.received[client_link.left])[down_before:].startswith(downstream)
    assert client.messages[-1] == ("é".encode() * 100, False)


def test_a_large_frame_is_passed_on_before_it_is_whole():
    h = Harness()
    h.member(9001).echo = False
    client, client_link = _open(h)
    member_link = _member_link(h, client_link)
    before = len(member_link.received[member_link.right])
    # One binary frame declaring 10 MB, of which 100 kB arrived so far.
    head = bytes([0x82, 0x80 | 127]) + (10_000_000).to_bytes(8, "big") + b"\0\0\0\0"
    client_link.left.write(head + b"q" * 100_000)
    h.settle()
    assert len(member_link.received[member_link.right]) - before == len(head) + 100_000


def test_an_unmasked_frame_from_the_client_is_1002_for_both_and_not_passed_on():
    h = Harness()
    client, client_link = _open(h)
    member_link = _member_link(h, client_link)
    (peer,) = h.member(9001).peers
    before = len(member_link.received[member_link.right])
    client_link.left.write(b"\x81\x05hello")
    h.settle()
    h.reactor.advance(2)
    h.settle()
    assert client.close_info is not None and client.close_info[0] == 1002
    assert peer.close_info is not None and peer.close_info[0] == 1002
    assert b"hello" not in bytes(member_link.received[member_link.right])[before:]
    assert peer.messages == []


def test_rsv_bits_without_an_extension_are_1002():
    h = Harness()
    client, client_link = _open(h)
    (peer,) = h.member(9001).peers
    client_link.left.write(b"\xc1\x85\0\0\0\0hello")  # RSV1 set, nothing negotiated
    h.settle()
    assert client.close_info is not None and client.close_info[0] == 1002
    assert peer.messages == []


def test_close_during_a_relayed_frame_ends_the_connection_instead():
    """
    The member closes while a frame from it is half relayed to the client:
    a close frame cannot be written there, so the client's connection ends.
    """
    h = Harness()
    h.member(9001).echo = False
    client, client_link = _open(h)
    member_link = _member_link(h, client_link)
    member_link.right.write(bytes([0x82, 126]) + (1000).to_bytes(2, "big") + b"r" * 10)
    h.settle()
    assert not client_link.right.disconnecting
    member_link.right.loseConnection()
    h.settle()
    assert client_link.lost
    assert client.close_info is not None and client.close_info[0] == 1006


# -- the handshake: extensions and the member's 101 headers ------------------------------


def _deflate_options():
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateOfferAccept,
        PerMessageDeflateResponse,
        PerMessageDeflateResponseAccept,
    )

    def accept_offer(offers):
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                return PerMessageDeflateOfferAccept(offer)
        return None

    client = {
        "perMessageCompressionOffers": [PerMessageDeflateOffer()],
        "perMessageCompressionAccept": lambda response: (
            PerMessageDeflateResponseAccept(response) if isinstance(response, PerMessageDeflateResponse) else None
        ),
    }
    member = {"perMessageCompressionAccept": accept_offer}
    return client, member


def test_permessage_deflate_is_agreed_end_to_end_and_frames_stay_compressed():
    h = Harness()
    client_options, member_options = _deflate_options()
    h.member(9001).setProtocolOptions(**member_options)
    client, client_link = h.open_client(options=client_options)
    h.settle()
    assert client.opened
    (peer,) = h.member(9001).peers
    assert "permessage-deflate" in peer.request.headers["sec-websocket-extensions"]
    assert [e.EXTENSION_NAME for e in client.websocket_extensions_in_use] == ["permessage-deflate"]
    member_link = _member_link(h, client_link)
    text = "compress me " * 500
    before = len(member_link.received[member_link.right])
    client.sendMessage(text.encode())
    h.settle()
    relayed = bytes(member_link.received[member_link.right])[before:]
    assert relayed[0] & 0x40  # RSV1: compressed, not inflated by the proxy
    assert len(relayed) < len(text) // 4
    assert peer.messages == [(text.encode(), False)]
    assert client.messages[-1] == (text.encode(), False)  # the echo, compressed by the member


def test_no_extension_unless_the_member_agrees():
    h = Harness()
    client_options, _ = _deflate_options()
    client, _ = h.open_client(options=client_options)
    h.settle()
    assert client.opened and client.websocket_extensions_in_use == []
    assert "sec-websocket-extensions" not in client.response.headers


def test_the_members_101_headers_reach_the_client():
    h = Harness()
    h.member(9001).answer_headers = {
        "Set-Cookie": ["a=1; Path=/", "b=2; Path=/"],
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Keep-Alive": "timeout=5",
    }
    client, link = _open(h)
    head = bytes(link.received[link.left]).split(b"\r\n\r\n")[0].decode()
    lines = head.split("\r\n")
    assert "Set-Cookie: a=1; Path=/" in lines and "Set-Cookie: b=2; Path=/" in lines
    assert "X-Frame-Options: DENY" in lines
    assert "X-Content-Type-Options: nosniff" in lines
    assert not any(line.lower().startswith("keep-alive") for line in lines)


def test_an_extension_nobody_offered_is_502():
    h = Harness()
    h.member(9001).answer_headers = {"Sec-WebSocket-Extensions": "permessage-deflate"}
    client, link = h.open_client()
    h.settle()
    h.reactor.advance(2)
    h.settle()
    assert not client.opened
    assert bytes(link.received[link.left]).startswith(b"HTTP/1.1 502 ")


# -- the close handshake through the tunnel -----------------------------------------------


def test_what_the_member_sends_before_answering_a_close_reaches_the_client():
    """
    The client's close goes to the member, and the client is answered with
    the member's answer: a message the member sent before it still arrives.
    """
    h = Harness()
    h.member(9001).last_words = b"last words"
    client, _ = _open(h)
    (peer,) = h.member(9001).peers
    client.sendClose(4001, "bye")
    h.settle()
    assert client.messages[-1] == (b"last words", False)
    assert client.close_info == (4001, "bye")
    assert peer.close_info == (4001, "bye")


def test_a_close_never_answered_is_dropped_after_an_idle_period():
    h = Harness(member_timeout=30.0)
    client, client_link = _open(h, options={"closeHandshakeTimeout": 0})  # the client waits
    member_link = _member_link(h, client_link)
    (peer,) = h.member(9001).peers
    # The member stops reading: the client's close waits for an answer that never comes.
    member_link.right.pauseProducing()
    client.sendClose(1000)
    h.settle()
    assert client.close_info is None and not client_link.lost
    h.reactor.advance(29)
    h.settle()
    assert not client_link.lost
    h.reactor.advance(1.1)  # no answer for an idle period: the member is dropped,
    h.settle()  # and the client answered
    assert member_link.left.disconnecting  # the proxy's end of the member connection
    assert client_link.lost
    assert client.close_info == (1000, None)


def test_no_usable_member_is_503():
    """Every member in error before the upgrade: 503 (as for a request), nobody is connected."""
    h = Harness()
    for member in h.built.balancer.members:
        h.built.balancer.record_failure(member, "down")
    client, link = h.open_client()
    h.settle()
    answer = bytes(link.received[link.left])
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert not client.opened
    assert h.reactor.tcpClients == []
    assert [m.in_flight for m in h.built.balancer.members] == [0, 0]
