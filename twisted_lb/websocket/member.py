"""
The backend of a C{ws://} or C{wss://} member: probes it, opens the
member side of a tunnel (an Autobahn client connection) that reports
through the tunnel it serves, and sends the plain requests of a WebSocket
route to the same node over C{http://} or C{https://} (as Apache httpd
2.4.47+ does), so that a page and its WebSocket share one mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.types import ConnectingRequest
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_lb.backends.connect_probe import ConnectProbe
from twisted_lb.backends.http import HTTPBackend
from twisted_lb.backends.tls_policy import MemberTLSPolicy
from twisted_lb.compat import autobahn_put_received, autobahn_take_received
from twisted_lb.config.model import ConfigError, MemberConfig
from twisted_lb.errors import (
    BackendProtocolError,
    BackendTimeout,
    ConnectFailed,
    ResponseNeverReceived,
    TLSFailed,
)
from twisted_lb.exchange import Exchange, ResponseSink, member_path
from twisted_lb.quiet import QuietFactory

from .handshake import MemberAnswer, read_answer, without_extensions
from .relay import RelaySide

__all__ = [
    "WSMember",
    "MemberSideOwner",
    "TunnelBackend",
    "UpgradeRefused",
    "UpstreamRequest",
    "http_member",
]

_log = Logger()


@attrs.frozen
class UpstreamRequest:
    """
    The upgrade request a tunnel sends to its member.

    @ivar resource: the path and query on the member (its own path first).
    @ivar protocols: the subprotocols the client offered.
    @ivar extensions: the C{Sec-WebSocket-Extensions} the client offered,
        offered to the member as they are.
    @ivar headers: further request headers (Cookie, Authorization,
        X-Forwarded-*...), one value each.
    @ivar origin: the client's Origin, if any.
    @ivar useragent: the client's User-Agent, if any.
    @ivar host: C{(host, port)} for the Host header instead of the member's
        address (the route's C{preserve_host}).
    @ivar timeout: seconds to wait for the member's answer instead of the
        member's C{timeout} (the route's C{timeout}).
    """

    resource: str
    protocols: tuple[str, ...] = ()
    extensions: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict, eq=False)
    origin: str | None = None
    useragent: str | None = None
    host: tuple[str, int] | None = None
    timeout: float | None = None


class UpgradeRefused(Exception):
    """
    The member answered the upgrade with another status than 101: the
    application said no (403 for a bad Origin, 404...), the member is fine,
    and the client gets that status.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"member answered the upgrade with {status} {reason}")
        self.status = status
        self.reason = reason


class MemberSideOwner(Protocol):
    """
    What the member side of a tunnel tells the tunnel it serves (a
    L{twisted_lb.websocket.bridge.Tunnel}), and what L{WSMember} asks of
    the tunnels through it.
    """

    def member_opened(self, upstream: MemberSide) -> None:
        """The member accepted the upgrade on C{upstream}."""

    def close_frame(
        self, side: Any, code: int | None, reason: bytes | None, default: Callable[[Any, Any], Any]
    ) -> Any:
        """A close frame arrived on C{side}; C{default} is Autobahn's own handling of it."""

    def closed(self, side: Any) -> None:
        """C{side}'s connection is gone."""

    def shutdown(self) -> defer.Deferred[None]:
        """Close both sides (1001) and fire when they are gone."""


class MemberSide(RelaySide, WebSocketClientProtocol):  # type: ignore[misc]  # Autobahn's own bases disagree
    """
    The connection from the proxy to the member.

    @ivar tunnel: the tunnel this connection serves.
    @ivar opened: fires with this protocol once the member accepted the
        upgrade, or fails with L{AttemptFailed} or L{UpgradeRefused}.
    @ivar answer: what of the member's 101 answer the client gets.
    """

    tunnel: MemberSideOwner
    opened: defer.Deferred[MemberSide]
    answer: MemberAnswer
    answered = False
    _answer_head: bytes | None = None
    tls_policy: MemberTLSPolicy | None = None
    _failure: Exception | None = None
    _lost_reason: BaseException | None = None

    def dataReceived(self, data: bytes) -> None:
        self.answered = True
        super().dataReceived(data)

    def processHandshake(self) -> None:
        """
        Keep the member's answer as it came, and let Autobahn check it
        without its C{Sec-WebSocket-Extensions}: the extensions are the
        client's and the member's business (Autobahn would refuse those it
        did not offer itself); L{onConnect} checks them.
        """
        if self._answer_head is None:
            data = autobahn_take_received(self)
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self._answer_head = data[: end + 4]
                data = without_extensions(self._answer_head) + data[end + 4 :]
            autobahn_put_received(self, data)
        super().processHandshake()

    def onConnect(self, response: object) -> None:
        assert self._answer_head is not None
        try:
            self.answer = read_answer(self._answer_head, self.factory.extensions)
        except ValueError as e:
            self._failure = BackendProtocolError(f"invalid upgrade answer: {e}")
            raise

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self._lost_reason = reason.value
        super().connectionLost(reason)

    def handshake_timed_out(self, seconds: float) -> None:
        """The member did not answer the upgrade in time."""
        self._failure = BackendTimeout(f"no answer to the upgrade within {seconds:g}s")
        if self.transport is not None:
            self.transport.abortConnection()

    def onConnecting(self, transport_details: object) -> ConnectingRequest | None:
        host = self.factory.host_header
        if host is None:
            return None  # Autobahn's request: Host is the member's address
        factory = self.factory
        return ConnectingRequest(
            host=host[0],
            port=host[1],
            resource=factory.resource,
            headers=factory.headers,
            useragent=factory.useragent,
            origin=factory.origin,
            protocols=factory.protocols,
        )

    def onOpen(self) -> None:
        if not self.opened.called:
            self.tunnel.member_opened(self)
            self.opened.callback(self)

    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> Any:
        return self.tunnel.close_frame(self, code, reasonRaw, super().onCloseFrame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.opened.called:
            self.tunnel.closed(self)
        else:
            self.opened.errback(self._handshake_failure())

    def _handshake_failure(self) -> Exception:
        if self._failure is not None:
            return self._failure
        status_line = getattr(self, "http_status_line", None)
        if status_line:
            parts = status_line.split(None, 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                status = 0
            if 200 <= status <= 599 and status != 101:
                return UpgradeRefused(status, parts[2] if len(parts) > 2 else "")
        if self.answered:
            return BackendProtocolError(f"invalid upgrade answer: {self.wasNotCleanReason}")
        lost = self._lost_reason
        if isinstance(lost, SSL.Error):
            why = self.tls_policy.verify_failure() if self.tls_policy is not None else None
            return TLSFailed(f"TLS handshake failed: {why or lost}")
        return ResponseNeverReceived(f"connection closed before the upgrade was answered: {lost}")


class TunnelBackend(Protocol):
    """
    What the WebSocket bridge needs of a member's backend to open tunnels
    there (L{WSMember}; its plain requests go through its
    L{twisted_lb.dispatch.RequestBackend} side).

    @ivar member: the member's configuration (its C{timeout} is a tunnel's
        idle timeout when nothing else sets one).
    @ivar tunnels: the open tunnels through the member (the bridge adds and
        removes them; closing the backend shuts them down).
    """

    member: MemberConfig
    tunnels: set[MemberSideOwner]

    async def connect(
        self, tunnel: MemberSideOwner, request: UpstreamRequest, options: Mapping[str, Any]
    ) -> MemberSide:
        """
        Open the member side of C{tunnel}; returns once the member accepted
        the upgrade.

        @raise AttemptFailed: the member did not accept it.
        @raise UpgradeRefused: the member answered with another status.
        """


class _MemberFactory(WebSocketClientFactory):
    protocol = MemberSide
    #: No "Starting factory"/"Stopping factory" line per WebSocket to the member.
    noisy = False
    tunnel: MemberSideOwner
    tls_policy: MemberTLSPolicy | None = None
    host_header: tuple[str, int] | None = None
    extensions: str | None = None

    def buildProtocol(self, addr: object) -> MemberSide:
        proto: Any = super().buildProtocol(addr)  # type: ignore[arg-type]
        proto.tunnel = self.tunnel
        proto.tls_policy = self.tls_policy
        proto.opened = defer.Deferred(lambda _: proto.dropConnection(abort=True))
        return proto


class WSMember:
    """
    A C{ws://} or C{wss://} member.

    @ivar member: its configuration.
    @ivar tunnels: the open tunnels through it.
    @ivar http: the backend of the same node over C{http(s)://}, for the
        plain requests of the route.
    """

    def __init__(self, reactor: Any, member: MemberConfig, *, x_forwarded: bool = True) -> None:
        """
        @param x_forwarded: add C{X-Forwarded-For/-Proto/-Host} to the plain
            requests sent to the node (the bridge adds them to upgrades).
        @raise ConfigError: a TLS file of a C{wss://} member is not usable.
        """
        self.member = member
        self._reactor = reactor
        self._secure = member.scheme == "wss"
        self.tls: MemberTLSPolicy | None = None
        if self._secure:
            try:
                self.tls = MemberTLSPolicy(member)
            except (OSError, ValueError, SSL.Error) as e:
                raise ConfigError("<config>", f"members.{member.url}.tls", str(e)) from None
        host = f"[{member.host}]" if ":" in member.host else member.host
        self.base_url = f"{member.scheme}://{host}:{member.port}{member.path}"
        self._path = member.path.encode("utf-8")
        self.tunnels: set[MemberSideOwner] = set()
        self._connecting: set[defer.Deferred[Any]] = set()
        try:
            self.http = HTTPBackend(reactor, http_member(member), x_forwarded=x_forwarded)
        except (OSError, ValueError, SSL.Error) as e:
            raise ConfigError("<config>", f"members.{member.url}.tls", str(e)) from None

    def _endpoint(self) -> Any:
        endpoint: Any = HostnameEndpoint(
            self._reactor, self.member.host, self.member.port, timeout=self.member.connectiontimeout
        )
        if self.tls is not None:
            endpoint = wrapClientTLS(self.tls.creator, endpoint)
        return endpoint

    async def probe(self) -> bool:
        """Whether the member accepts a connection (and completes TLS for C{wss})."""
        factory = QuietFactory.forProtocol(lambda: ConnectProbe(self._secure))
        try:
            proto = await self._endpoint().connect(factory)
        except Exception:
            return False
        ready = proto.ready.addTimeout(self.member.connectiontimeout, self._reactor)
        try:
            ok = await ready is None
        except defer.CancelledError:
            if proto.transport is not None:
                proto.transport.abortConnection()
            return False
        if proto.transport is not None:
            proto.transport.loseConnection()
        return ok

    async def send(self, exchange: Exchange, sink: ResponseSink) -> None:
        """
        Send a plain request (not an upgrade) to the node over C{http://}
        (C{https://} for a C{wss://} member), as Apache's C{mod_proxy_wstunnel}
        hands plain requests on to C{mod_proxy_http} since httpd 2.4.47.
        """
        await self.http.send(exchange, sink)

    def url(self, resource: str) -> str:
        """
        The member URL for C{resource}, the path and query below the member's
        own path (see L{member_path}).
        """
        own = self._path
        below = member_path(own, resource.encode("latin-1"))[len(own) :]
        return self.base_url + below.decode("latin-1")

    async def connect(
        self, tunnel: MemberSideOwner, request: UpstreamRequest, options: Mapping[str, Any]
    ) -> MemberSide:
        """
        Open the member side of C{tunnel} and wait until the member accepted
        the upgrade.

        @param options: Autobahn protocol options (sizes, close handling).
        @raise AttemptFailed: connect failure, timeout, no or a broken answer.
        @raise UpgradeRefused: the member answered with another status.
        """
        headers = dict(request.headers)
        if request.extensions is not None:
            headers["Sec-WebSocket-Extensions"] = request.extensions
        factory = _MemberFactory(
            url=self.url(request.resource),
            protocols=list(request.protocols),
            headers=headers,
            origin=request.origin,
            useragent=request.useragent or "",
            reactor=self._reactor,
        )
        factory.setProtocolOptions(**options)
        factory.tunnel = tunnel
        factory.tls_policy = self.tls
        factory.host_header = request.host
        factory.extensions = request.extensions
        connecting = self._endpoint().connect(factory)
        self._connecting.add(connecting)
        try:
            proto: MemberSide = await connecting
        except defer.CancelledError:
            raise
        except Exception as e:
            raise ConnectFailed(f"{self.member.name}: {e}") from None
        finally:
            self._connecting.discard(connecting)
        timeout = request.timeout or self.member.timeout
        timer = self._reactor.callLater(timeout, proto.handshake_timed_out, timeout)
        self._connecting.add(proto.opened)
        try:
            return await proto.opened
        finally:
            self._connecting.discard(proto.opened)
            if timer.active():
                timer.cancel()

    def close(self) -> defer.Deferred[None]:
        """Shut every tunnel through this member down (close code 1001)."""
        for d in list(self._connecting):
            d.cancel()
        pending = [t.shutdown() for t in list(self.tunnels)]
        pending.append(defer.maybeDeferred(self.http.close))
        return defer.gatherResults(pending).addCallback(lambda _: None)


def http_member(member: MemberConfig) -> MemberConfig:
    """
    The C{http://} (for C{ws://}) or C{https://} (for C{wss://}) member on
    the same host, port and path, with the same settings.
    """
    scheme = "https" if member.scheme == "wss" else "http"
    # ws:// and http:// share their default port (80), wss:// and https:// theirs (443).
    return attrs.evolve(member, url=scheme + member.url[len(member.scheme) :])
