"""
The WebSocket bridge in memory: a client, the proxy and members joined by
C{StringTransport}s under a C{MemoryReactorClock}, with a pump that moves
bytes like a socket pair would.

A L{Link} is one TCP connection. Bytes written on one end reach the other
end's protocol when L{Link.pump} runs, except while the receiving end's
transport is paused (a side that does not read leaves the bytes with the
sender, as the kernel would). Closing one end ends both once what was written
before has been delivered.
"""

from __future__ import annotations

from typing import Any

import txaio
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from twisted_lb.config.model import (
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.service import build_balancer, build_resource

PROXY = IPv4Address("TCP", "127.0.0.1", 8080)
WS_PATH = "/ws"


class SocketTransport(StringTransport):
    """
    A C{StringTransport} that behaves like Twisted's TCP and TLS transports
    where C{StringTransport} is stricter: a protocol may unregister a
    producer when none is registered (Autobahn does so when it drops a
    connection), and resuming a closing connection does nothing.
    """

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None

    def resumeProducing(self) -> None:
        if not self.disconnecting:
            super().resumeProducing()


class Link:
    """One connection between two protocols, in memory."""

    def __init__(self, left: Any, right: Any, left_address: Any, right_address: Any) -> None:
        self.left = SocketTransport(hostAddress=left_address, peerAddress=right_address)
        self.right = SocketTransport(hostAddress=right_address, peerAddress=left_address)
        self.left.protocol = left  # type: ignore[attr-defined]
        self.right.protocol = right  # type: ignore[attr-defined]
        #: Every byte delivered to each end.
        self.received: dict[StringTransport, bytearray] = {self.left: bytearray(), self.right: bytearray()}
        self.lost = False

    def connect(self) -> None:
        self.left.protocol.makeConnection(self.left)  # type: ignore[attr-defined]
        self.right.protocol.makeConnection(self.right)  # type: ignore[attr-defined]

    def pump(self) -> bool:
        """Deliver what each end wrote to the other (unless it is paused); whether anything moved."""
        moved = False
        for source, target in ((self.left, self.right), (self.right, self.left)):
            if target.producerState == "paused":
                continue
            data = source.value()
            if data:
                source.clear()
                self.received[target] += data
                target.protocol.dataReceived(data)  # type: ignore[attr-defined]
                moved = True
        if not self.lost and (self.left.disconnecting or self.right.disconnecting):
            if not self.left.value() and not self.right.value():
                self.lost = True
                for end in (self.left, self.right):
                    end.protocol.connectionLost(Failure(ConnectionDone()))  # type: ignore[attr-defined]
                moved = True
        return moved


class Network:
    """The links of one test, pumped together until nothing moves."""

    def __init__(self) -> None:
        self.links: list[Link] = []

    def add(self, link: Link) -> Link:
        self.links.append(link)
        link.connect()
        return link

    def pump(self, rounds: int = 1000) -> None:
        for _ in range(rounds):
            if not any([link.pump() for link in self.links]):
                return
        raise AssertionError("the links never went quiet")


# -- the peers ---------------------------------------------------------------


class MemberPeer(WebSocketServerProtocol):
    """A member: greets with its name on open unless told not to, echoes, records."""

    def onConnect(self, request: Any) -> Any:
        self.factory.peers.append(self)
        self.request = request
        self.messages: list[tuple[bytes, bool]] = []
        self.close_info: tuple[int | None, str | None] | None = None
        if self.factory.refuse is not None:
            raise ConnectionDeny(*self.factory.refuse)
        return ("chat" if "chat" in request.protocols else None), self.factory.answer_headers

    def onOpen(self) -> None:
        factory = self.factory
        if factory.greeting:
            self.sendMessage(b"hello from " + factory.name.encode())
        for payload in factory.burst:
            self.sendMessage(payload)
        if factory.close_at_open is not None:
            self.sendClose(*factory.close_at_open)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append((payload, isBinary))
        if self.factory.echo:
            self.sendMessage(payload, isBinary)

    def onCloseFrame(self, code: int | None, reasonRaw: bytes | None) -> Any:
        if self.factory.last_words is not None and self.state == self.STATE_OPEN:
            self.sendMessage(self.factory.last_words)
        return super().onCloseFrame(code, reasonRaw)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.close_info = (code, reason)


class ClientPeer(WebSocketClientProtocol):
    """The user's browser: records what it gets."""

    def onConnect(self, response: Any) -> None:
        self.subprotocol = response.protocol
        self.response = response

    def onOpen(self) -> None:
        self.opened = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append((payload, isBinary))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.close_info = (code, reason)


# -- the proxy ----------------------------------------------------------------


class Harness:
    """
    The proxy's resource for one balancer of two ws:// members (routes a and b)
    on C{/ws}, a client, and the members' side connected on demand.
    """

    def __init__(
        self,
        *,
        member_timeout: float = 30.0,
        route: dict[str, Any] | None = None,
        x_forwarded: bool = True,
        **balancer: Any,
    ) -> None:
        self.reactor = MemoryReactorClock()
        # Autobahn's timers too (conftest.py puts the global one back).
        txaio.config.loop = self.reactor
        self.network = Network()
        members = tuple(
            MemberConfig(url=f"ws://127.0.0.1:{9000 + i}", route=name, timeout=member_timeout)
            for i, name in enumerate(("a", "b"), start=1)
        )
        bconf = BalancerConfig("ws", members, **balancer)
        config = ProxyConfig(
            listeners=(ListenerConfig("tcp:8080"),),
            balancers=(bconf,),
            routes=(RouteConfig(WS_PATH, "ws", target_path=WS_PATH, **(route or {})),),
            x_forwarded=x_forwarded,
        )
        self.built = build_balancer(bconf, self.reactor, x_forwarded=x_forwarded)
        self.site = Site(build_resource(config, {"ws": self.built}))
        self.member_factories: dict[int, WebSocketServerFactory] = {}
        for port, name in ((9001, "a"), (9002, "b")):
            factory = WebSocketServerFactory(reactor=self.reactor)
            factory.protocol = MemberPeer
            factory.name = name
            factory.peers = []
            factory.refuse = None
            factory.answer_headers = {}
            factory.last_words = None
            factory.greeting = True
            factory.echo = True
            factory.burst = []
            factory.close_at_open = None
            self.member_factories[port] = factory
        self._connected = 0
        #: Member ports that accept connections and never answer.
        self.silent: set[int] = set()

    def member(self, port: int) -> WebSocketServerFactory:
        return self.member_factories[port]

    def open_client(
        self,
        path: str = WS_PATH,
        headers: dict[str, str] | None = None,
        protocols: list[str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[ClientPeer, Link]:
        """
        A client connection to the proxy (its upgrade request is written, not yet delivered).

        @param options: Autobahn protocol options of the client.
        """
        factory = WebSocketClientFactory(
            f"ws://127.0.0.1:8080{path}", headers=headers, protocols=protocols, reactor=self.reactor
        )
        factory.protocol = ClientPeer
        if options:
            factory.setProtocolOptions(**options)
        client: ClientPeer = factory.buildProtocol(PROXY)
        client.messages = []
        client.opened = False
        client.close_info = None
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        link = self.network.add(
            Link(client, channel, IPv4Address("TCP", "127.0.0.1", 50000), PROXY)
        )
        return client, link

    def connect_members(self) -> list[Link]:
        """Accept the connections the proxy opened to members since the last call."""
        links = []
        for host, port, factory, _timeout, _bind in self.reactor.tcpClients[self._connected :]:
            self._connected += 1
            member_address = IPv4Address("TCP", host, port)
            proxy_side = factory.buildProtocol(member_address)
            if port in self.silent:
                peer: Any = Protocol()
            else:
                peer = self.member_factories[port].buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
            links.append(
                self.network.add(
                    Link(proxy_side, peer, IPv4Address("TCP", "127.0.0.1", 40000 + port), member_address)
                )
            )
        return links

    def settle(self) -> None:
        """Pump, accept member connections, pump again, until nothing changes."""
        for _ in range(20):
            self.network.pump()
            self.reactor.advance(0)
            if not self.connect_members():
                self.network.pump()
                return
        raise AssertionError("connections kept coming")
