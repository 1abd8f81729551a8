"""
The WebSocket bridge: a client's upgrade request is accepted only after a
member of the balancer accepted it, then frames, close codes and
backpressure pass between the two connections.

One L{Tunnel} serves one client. The balancer's dispatcher opens it at a
member by the same loop as a plain request (session route first, then the
balancer's method; a member that cannot be reached is put in error and the
next one is tried; see L{twisted_lb.dispatch}). The tunnel offers the
member the extensions the client offered and gives the client the member's
answer and its other 101 headers, relays frames both ways (see L{relay}),
and ends both sides together.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.server import Request
from zope.interface import implementer

from twisted_lb.balancer import Member
from twisted_lb.compat import autobahn_fail, autobahn_take_received
from twisted_lb.dispatch import Dispatcher
from twisted_lb.errors import AttemptFailed, NoUsableMember, status_for
from twisted_lb.exchange import Exchange
from twisted_lb.http_rules import FORWARDING_FIELDS, forwarding_headers

from .frames import FrameScanner, rsv_rules
from .member import MemberSide, TunnelBackend, UpgradeRefused, UpstreamRequest
from .relay import Relay, RelaySide

__all__ = ["WebSocketBridge", "Tunnel", "DEFAULT_MAX_MESSAGE_SIZE"]

_log = Logger()

#: The largest message relayed when nothing else is configured: no limit
#: (frames are relayed as they arrive, so a message's size costs no memory).
DEFAULT_MAX_MESSAGE_SIZE = 0

#: What Autobahn itself may read in one frame or message: after the opening
#: handshake it only ever parses close frames (at most 125 bytes), and
#: whatever a peer sends after its close frame.
_AUTOBAHN_MAX_PAYLOAD = 64 * 1024

_OPEN = WebSocketProtocol.STATE_OPEN
_CLOSED = WebSocketProtocol.STATE_CLOSED
_CLOSING = WebSocketProtocol.STATE_CLOSING

#: Request headers not passed on: the member connection makes its own.
_OWN_HEADERS = frozenset(
    {
        b"host",
        b"origin",
        b"user-agent",
        b"pragma",
        b"cache-control",
        b"content-length",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
    }
)
_XFF = b"x-forwarded-for"

#: Close codes sent when a side vanished without a close frame (1006 can
#: never be sent): the member's loss is an error on the server side (1011),
#: the client's loss means it went away (1001).
_MEMBER_LOST = (1011, b"member connection lost")
_CLIENT_LOST = (1001, b"client went away")
_IDLE = (1001, b"idle timeout")
_SHUTDOWN = (1001, b"proxy shutting down")

_REASONS = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@implementer(IPushProducer)
class _Throttle:
    """Pauses reading on one connection while the other cannot write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        """Ending a side is the tunnel's business, not the transport's."""


def _valid_close(code: int | None, reason: bytes | None) -> bool:
    """Whether a close frame's code and reason are valid (RFC 6455 section 7.4)."""
    if code is not None and not (
        3000 <= code <= 4999 or code in WebSocketProtocol.CLOSE_STATUS_CODES_ALLOWED
    ):
        return False
    if reason:
        try:
            reason.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


class ClientSide(RelaySide, WebSocketServerProtocol):  # type: ignore[misc]  # Autobahn's own bases disagree
    """The connection from the client to the proxy."""

    tunnel: Tunnel

    def onConnect(self, request: ConnectionRequest) -> Any:
        return self.tunnel.open(self, request.protocols)

    def onOpen(self) -> None:
        self.tunnel.client_opened()

    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> Any:
        return self.tunnel.close_frame(self, code, reasonRaw, super().onCloseFrame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.tunnel.closed(self)


class _ForOneTunnel:
    """The factory C{WebSocketResource} asks for the one protocol of a tunnel."""

    def __init__(self, factory: WebSocketServerFactory, tunnel: Tunnel) -> None:
        self._factory = factory
        self._tunnel = tunnel

    def buildProtocol(self, addr: object) -> ClientSide:
        proto: Any = self._factory.buildProtocol(addr)  # type: ignore[arg-type]
        proto.tunnel = self._tunnel
        return proto


class Tunnel:
    """
    One client's WebSocket through the proxy.

    @ivar client: the client side.
    @ivar upstream: the member side, once the member accepted.
    @ivar member: the member serving it.
    @ivar finished: fires when both sides are closed.
    """

    def __init__(self, bridge: WebSocketBridge, exchange: Exchange) -> None:
        self.bridge = bridge
        self.exchange = exchange
        self.client: ClientSide | None = None
        self.upstream: MemberSide | None = None
        self.member: Member | None = None
        self.finished: defer.Deferred[None] = defer.Deferred()
        self._protocols: list[str] = []
        #: Close frames for the client before it had its 101.
        self._to_client: deque[tuple[int | None, bytes]] = deque()
        self._client_open = False
        self._throttled = False
        self._client_gone = False
        self._bridge_closed: set[object] = set()
        #: Sides whose close frame waits for the other side's answer, with
        #: Autobahn's handling of it.
        self._unanswered: dict[Any, tuple[Callable[[Any, Any], Any], int | None, bytes | None]] = {}
        self._idle: Any = None
        self._idle_seconds = 0.0
        self._last_activity = 0.0
        self._seconds: Callable[[], float] = bridge.reactor.seconds
        #: Frames from the client to the member, and back.
        self._up: Relay | None = None
        self._down: Relay | None = None

    # -- opening ---------------------------------------------------------

    def open(
        self, client: ClientSide, protocols: list[str]
    ) -> defer.Deferred[tuple[str | None, dict[str, list[str]]]]:
        """
        Connect a member; fires with the subprotocol it chose and the
        headers of its answer the client gets (its extensions, cookies...).
        """
        self.client = client
        return defer.Deferred.fromCoroutine(self._open(protocols))

    async def _open(self, protocols: list[str]) -> tuple[str | None, dict[str, list[str]]]:
        self._protocols = protocols
        try:
            await self.bridge.dispatcher.open_tunnel(self.exchange, self)
        except UpgradeRefused as e:
            raise ConnectionDeny(e.status, e.reason or "Refused") from None
        except (AttemptFailed, NoUsableMember) as e:
            raise self._deny(e) from None
        upstream, member = self.upstream, self.member
        assert upstream is not None and member is not None
        if self._client_gone:
            upstream.dropConnection(abort=True)
            raise ConnectionDeny(503, "Client Gone")
        self.bridge.members[member].tunnels.add(self)
        headers: dict[str, list[str]] = {}
        answer = upstream.answer
        for name, value in answer.headers:
            headers.setdefault(name, []).append(value)
        if answer.extensions is not None:
            headers["Sec-WebSocket-Extensions"] = [answer.extensions]
        return upstream.websocket_protocol_in_use, headers

    @property
    def client_gone(self) -> bool:
        """Whether the client left before the tunnel was over."""
        return self._client_gone

    async def open_at(self, member: Member) -> None:
        """
        Open the member side at C{member} (the dispatcher's attempt):
        returns once the member accepted the upgrade.

        @raise AttemptFailed: the member did not accept it.
        @raise UpgradeRefused: the member answered with another status.
        """
        bridge = self.bridge
        request = bridge.upstream_request(self.exchange, self._protocols)
        upstream = await bridge.members[member].connect(self, request, bridge.options)
        self.member = member
        self.upstream = upstream

    def traffic(self) -> tuple[int, int]:
        """The bytes read from the member and from the client."""
        down, up = self._down, self._up
        return (down.octets if down is not None else 0, up.octets if up is not None else 0)

    def _deny(self, error: Exception) -> ConnectionDeny:
        status = status_for(error)
        _log.warn(
            "WebSocket {uri} refused with {status} ({balancer}): {error}",
            uri=self.exchange.path[:200].decode("latin-1"), status=status,
            balancer=self.bridge.balancer.name, error=error,
        )
        return ConnectionDeny(status, _REASONS.get(status, "Bad Gateway"))

    def _scanner(self, upstream: MemberSide, *, masked: bool) -> FrameScanner:
        """A frame scanner for one direction, with the extensions the member agreed to."""
        return FrameScanner(
            masked=masked, rsv=rsv_rules(upstream.answer.extension_names),
            max_message_size=self.bridge.max_message_size,
        )

    def member_opened(self, upstream: MemberSide) -> None:
        """
        The member accepted: its frames are read by a relay from now on,
        kept until the client has its 101.
        """
        self._down = upstream.relay = Relay(
            self, upstream, None, self._scanner(upstream, masked=False), wait=True
        )
        early = autobahn_take_received(upstream)
        if early:
            self._down.data_received(early)

    def client_opened(self) -> None:
        """The client got its 101: start relaying, throttling and the idle timer."""
        client, upstream = self.client, self.upstream
        assert client is not None and upstream is not None
        self._client_open = True
        self._up = client.relay = Relay(self, client, upstream, self._scanner(upstream, masked=True))
        early = autobahn_take_received(client)
        to_client: Any = client.transport
        to_member: Any = upstream.transport
        # Each side pauses reading on the other while its own writes are
        # buffered; the client side first forgets twisted.web's HTTP channel,
        # which registered itself as the producer of that connection.
        to_client.unregisterProducer()
        to_client.registerProducer(_Throttle(to_member), True)
        to_member.registerProducer(_Throttle(to_client), True)
        self._throttled = True
        assert self.member is not None
        timeout = (
            self.bridge.idle_timeout
            or self.exchange.timeout
            or self.bridge.members[self.member].member.timeout
        )
        self._idle_seconds = timeout
        self._last_activity = self._seconds()
        self._idle = self.bridge.reactor.callLater(timeout, self._idle_check)
        assert self._down is not None
        self._down.release(client)
        while self._to_client:
            self._close(client, self._to_client.popleft())
        if early and client.relay is self._up:
            self._up.data_received(early)

    # -- relaying --------------------------------------------------------

    def activity(self) -> None:
        """
        Something came from either side: the tunnel is not idle. Only the
        time is noted; the idle timer looks at it when it fires (resetting
        a timer per message costs more).
        """
        self._last_activity = self._seconds()

    def broken(self, side: Any, code: int, reason: str) -> None:
        """
        A frame header from C{side} broke the protocol (or a message went
        over the size limit): fail that side with C{code}, and close the
        other with the same code, as a direct connection would have.
        """
        who = "client" if side is self.client else "member"
        _log.warn(
            "WebSocket closed with {code}: the {who} sent {reason} ({balancer})",
            code=code, who=who, reason=reason, balancer=self.bridge.balancer.name,
        )
        self._bridge_closed.add(side)
        if side.state == _OPEN and self._writing_mid_frame(side):
            side.dropConnection(abort=False)
        else:
            autobahn_fail(side, code, reason)
        self._close(self._other(side), (code, reason.encode("utf-8")[:123]))

    def _writing_mid_frame(self, side: Any) -> bool:
        """Whether the frames relayed to C{side} stopped inside a frame (no frame of ours fits now)."""
        relay = self._up if side is self.upstream else self._down
        return relay is not None and relay.mid_frame

    def _idle_check(self) -> None:
        """The idle timer fired: close the tunnel, or wait for the rest of the time."""
        seconds = self._idle_seconds
        left = self._last_activity + seconds - self._seconds()
        if left > 0.001:  # more than float noise left
            self._idle = self.bridge.reactor.callLater(left, self._idle_check)
            return
        # Sides still closing after a whole idle period (a peer that never
        # answered a close frame, which Autobahn does not time here: a
        # relayed close may wait behind much data) are dropped; open ones
        # are closed, and checked again after another period.
        sides = [side for side in (self.client, self.upstream) if side is not None]
        for side in sides:
            if side.state == _CLOSING:
                side.dropConnection(abort=True)
                self._answer(self._other(side))
        closing = False
        for side in sides:
            if side.state == _OPEN and side in self._unanswered:
                self._answer(side)
            elif side.state not in (_CLOSED, _CLOSING):
                if not closing:
                    _log.info("WebSocket idle for {seconds}s; closing", seconds=seconds)
                closing = True
                self._close(side, _IDLE)
        if closing and not self.finished.called:
            self._idle = self.bridge.reactor.callLater(seconds, self._idle_check)

    # -- closing ---------------------------------------------------------

    def _other(self, side: object) -> Any:
        return self.upstream if side is self.client else self.client

    def _close(self, side: Any, close: tuple[int | None, bytes | None]) -> None:
        """Send a close frame on C{side} when it is open."""
        if side is None:
            return
        code, reason = close
        if side is self.client and not self._client_open:
            self._to_client.append((code, reason or b""))
            return
        if side.state == _OPEN:
            self._bridge_closed.add(side)
            if self._writing_mid_frame(side):
                # A close frame now would land inside a frame: end the connection instead.
                side.dropConnection(abort=False)
            else:
                side.sendCloseFrame(code=code, reasonUtf8=(reason or None) if code is not None else None)
        self._unthrottle()

    def close_frame(
        self, side: Any, code: int | None, reason: bytes | None, default: Callable[[Any, Any], Any]
    ) -> Any:
        """
        A close frame arrived on C{side}. The answer to a close we sent
        completes that side's handshake (and answers the close the other
        side sent, if it waits for one). A close C{side} starts goes on to
        the other side, and C{side} is answered when the other side
        answered, as a direct connection would be: frames the other side
        sent before its answer still reach C{side}.

        @param default: Autobahn's own handling of the close frame.
        """
        other = self._other(side)
        if side.state == _CLOSING:  # the answer to a close we sent
            result = default(code, reason)
            self._answer(other)
            return result
        if not _valid_close(code, reason) or other is None or other.state != _OPEN:
            # Autobahn fails a bad close frame itself (1002, 1007); with
            # nobody to pass it to, the close is answered at once.
            result = default(code, reason)
            if not result:  # a true result: Autobahn failed the side
                text = side.remoteCloseReason
                self._close(other, (side.remoteCloseCode, text.encode("utf-8") if text else None))
            return result
        self._unanswered[side] = (default, code, reason)
        self._close(other, (code, reason))
        return None

    def _answer(self, side: Any) -> None:
        """Answer the close C{side} sent, if it waits for an answer."""
        waiting = self._unanswered.pop(side, None)
        if waiting is None or side.state != _OPEN:
            return
        default, code, reason = waiting
        if self._writing_mid_frame(side):
            side.dropConnection(abort=False)  # no close frame fits there now
        else:
            default(code, reason)

    def closed(self, side: Any) -> None:
        """One side's connection is gone."""
        if side is not self.client and side is not self.upstream:
            return
        if side is self.client:
            self._client_gone = True
        other = self._other(side)
        if other in self._unanswered:
            self._answer(other)
        elif other is not None and other.state not in (_CLOSED, _CLOSING):
            local = side.localCloseCode
            if local is not None and side not in self._bridge_closed:
                # Autobahn failed this side (1009 too big, 1002, 1007): say so.
                self._close(other, (local, side.localCloseReason))
            else:
                self._close(other, _CLIENT_LOST if side is self.client else _MEMBER_LOST)
        self._unthrottle()
        client_done = self.client is None or self.client.state == _CLOSED
        upstream_done = self.upstream is None or self.upstream.state == _CLOSED
        if client_done and upstream_done:
            self._finish()

    def _unthrottle(self) -> None:
        """Closing: each side reads again whatever the other does (once)."""
        if not self._throttled:
            return
        self._throttled = False
        for side in (self.client, self.upstream):
            transport = side.transport if side is not None else None
            if transport is not None:
                transport.unregisterProducer()
                transport.resumeProducing()

    def _finish(self) -> None:
        if self.finished.called:
            return
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if self.member is not None:
            self.bridge.members[self.member].tunnels.discard(self)
        # The dispatcher that opened the tunnel reports its end to the balancer.
        self.finished.callback(None)

    def shutdown(self) -> defer.Deferred[None]:
        """Close both sides (1001) and fire when they are gone."""
        for side in (self.client, self.upstream):
            self._close(side, _SHUTDOWN)
        return self.finished


class WebSocketBridge:
    """
    The WebSocket side of one balancer of C{ws://}/C{wss://} members.

    @ivar dispatcher: opens each tunnel at a member (the balancer's attempt
        loop, shared with the plain requests).
    @ivar balancer: the balancer that decides which member serves each tunnel.
    @ivar members: the tunnel backend of each member.
    @ivar idle_timeout: seconds without a frame before a tunnel is closed;
        C{None} uses the route's C{timeout}, else the member's (as Apache's
        tunnel does).
    @ivar max_message_size: the largest message relayed (1009 beyond it);
        0 for no limit.
    @ivar x_forwarded: add C{X-Forwarded-For/-Proto/-Host} to the upgrade
        request; without it the client's own are passed on unchanged.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        members: Mapping[Member, TunnelBackend],
        reactor: Any,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float | None = None,
        x_forwarded: bool = True,
    ) -> None:
        self.dispatcher = dispatcher
        self.balancer = dispatcher.balancer
        self.members = dict(members)
        self.reactor = reactor
        self.idle_timeout = idle_timeout
        self.x_forwarded = x_forwarded
        self.max_message_size = max_message_size
        self.options: dict[str, Any] = {
            "maxMessagePayloadSize": _AUTOBAHN_MAX_PAYLOAD,
            "maxFramePayloadSize": _AUTOBAHN_MAX_PAYLOAD,
            "openHandshakeTimeout": 0,  # the tunnel times the member itself
            # A relayed close may wait behind much data in flight: the
            # tunnel's idle timer ends a close handshake that never ends.
            "closeHandshakeTimeout": 0,
            "echoCloseCodeReason": True,
            "failByDrop": False,  # send 1009/1002 before dropping
        }
        self._factory = WebSocketServerFactory(server="", reactor=reactor)
        self._factory.protocol = ClientSide
        self._factory.setProtocolOptions(**self.options)

    def render(self, request: Request, exchange: Exchange) -> bytes | int:
        """
        Hand C{request}'s connection to a new tunnel: Autobahn's resource
        takes the transport away from C{twisted.web} and replays the request
        into the tunnel's server protocol.
        """
        tunnel = Tunnel(self, exchange)
        return WebSocketResource(_ForOneTunnel(self._factory, tunnel)).render(request)

    def upstream_request(self, exchange: Exchange, protocols: list[str]) -> UpstreamRequest:
        """
        The upgrade request for the member: the mapped path and query, the
        client's subprotocols and end-to-end headers, X-Forwarded-* as for
        HTTP members, and the route's Host and timeout choices.
        """
        resource = exchange.path.decode("latin-1")
        if exchange.query is not None:
            resource += "?" + exchange.query.decode("latin-1")
        grouped: dict[bytes, list[bytes]] = {}
        origin = useragent = None
        extensions: list[bytes] = []
        forwarded_for: list[bytes] = []
        x_forwarded = self.x_forwarded
        for name, value in exchange.headers:
            if name == b"sec-websocket-extensions":
                extensions.append(value)
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"user-agent":
                useragent = value.decode("latin-1")
            elif x_forwarded and name in FORWARDING_FIELDS:
                if name == _XFF:
                    forwarded_for.append(value)
            elif name not in _OWN_HEADERS:
                grouped.setdefault(name, []).append(value)
        if x_forwarded:
            for name, value in forwarding_headers(exchange, forwarded_for):
                grouped[name] = [value]
        headers = {
            name.decode("latin-1"): (b"; " if name == b"cookie" else b", ").join(values).decode("latin-1")
            for name, values in grouped.items()
        }
        host = None
        if exchange.preserve_host and exchange.host:
            host = split_host(exchange.host, 443 if exchange.is_ssl else 80)
        return UpstreamRequest(
            resource=resource,
            protocols=tuple(protocols),
            extensions=b", ".join(extensions).decode("latin-1") if extensions else None,
            headers=headers,
            origin=origin,
            useragent=useragent,
            host=host,
            timeout=exchange.timeout,
        )


def split_host(host: bytes, default_port: int) -> tuple[str, int]:
    """
    C{(name, port)} of a Host header value; C{default_port} when it names
    none. An IPv6 literal keeps its brackets.
    """
    text = host.decode("idna" if not host.isascii() else "ascii")
    if text.startswith("["):
        end = text.find("]")
        name, rest = (text[: end + 1], text[end + 1 :]) if end > 0 else (text, "")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = text.partition(":")
    return name, int(port) if port.isdigit() else default_port
