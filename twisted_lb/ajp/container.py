"""
The container side of AJP on Twisted: a thin adapter that serves AJP
requests with a Python callable, the way Tomcat serves them with servlets.

It powers the built-in demo nodes and the fault-injection members of the
tests; real Tomcat stays the judge of interoperability.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import attrs
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from . import (
    NEED_DATA,
    AJPConnection,
    AJPProtocolError,
    ConnectionClosed,
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    RequestBody,
    Role,
    SendBodyChunk,
    SendHeaders,
)

__all__ = ["ContainerRequest", "ContainerResponse", "AJPContainerProtocol", "AJPContainerFactory"]

_log = Logger()


#: Methods whose request without a Content-Length is read as a body of
#: unknown length.
_UNKNOWN_LENGTH_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})


@attrs.frozen
class ContainerRequest:
    """
    A complete request as the container received it.

    @ivar forward: the FORWARD_REQUEST.
    @ivar body: the whole request body.
    """

    forward: ForwardRequest
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header C{name} (case-insensitive), or C{None}."""
        return self.forward.header(name)


@attrs.frozen
class ContainerResponse:
    """
    What the application answers.

    @ivar body: the body as an iterable of chunks, sent as the client reads.
    """

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: Iterable[bytes] = ()


Application = Callable[[ContainerRequest], ContainerResponse]


@implementer(IPullProducer)
class AJPContainerProtocol(Protocol):
    """Serves AJP requests on one connection with C{app}."""

    def __init__(self, app: Application, packet_size: int = 8192) -> None:
        self._app = app
        self._codec = AJPConnection(Role.CONTAINER, packet_size)
        self._chunk = packet_size - 8
        self._body_max = packet_size - 6
        self._forward: ForwardRequest | None = None
        self._body: list[bytes] = []
        self._body_left: int | None = None
        self._body_iter: Iterator[bytes] | None = None

    def dataReceived(self, data: bytes) -> None:
        try:
            self._codec.receive_data(data)
            while (event := self._codec.next_event()) is not NEED_DATA:
                self._handle(event)
        except AJPProtocolError as e:
            _log.warn("AJP container: protocol error from proxy: {error}", error=e)
            self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._body_iter = None

    def _handle(self, event: object) -> None:
        kind = type(event)
        if kind is CPing:
            self.transport.write(self._codec.send(CPong()))  # type: ignore[union-attr]
        elif kind is ForwardRequest:
            self._forward = event  # type: ignore[assignment]
            self._body = []
            length = event.header(b"content-length")  # type: ignore[attr-defined]
            if length is None and event.method in _UNKNOWN_LENGTH_METHODS:  # type: ignore[attr-defined]
                # A body of unknown length (chunked from the client): read it
                # as Tomcat does, asking until the empty packet.
                self._body_left = None
                self.transport.write(self._codec.send(GetBodyChunk(self._body_max)))  # type: ignore[union-attr]
                return
            self._body_left = int(length) if length else 0
            if not self._body_left:
                self._respond()
        elif kind is RequestBody:
            data = event.data  # type: ignore[attr-defined]
            self._body.append(data)
            if self._body_left is not None:
                self._body_left -= len(data)
            if not data or (self._body_left is not None and self._body_left <= 0):
                self._respond()
            else:
                ask = self._body_max if self._body_left is None else min(self._body_left, self._body_max)
                self.transport.write(self._codec.send(GetBodyChunk(ask)))  # type: ignore[union-attr]
        elif kind is ConnectionClosed:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _respond(self) -> None:
        forward, self._forward = self._forward, None
        assert forward is not None
        request = ContainerRequest(forward, b"".join(self._body))
        self._body = []
        try:
            response = self._app(request)
        except Exception:
            _log.failure("AJP container: application error")
            response = ContainerResponse(500, ((b"Content-Type", b"text/plain"),), (b"error\n",))
        self.transport.write(  # type: ignore[union-attr]
            self._codec.send(SendHeaders(response.status, b"%d" % response.status, response.headers))
        )
        if forward.method == b"HEAD":
            self._end()
            return
        self._body_iter = iter(response.body)
        self.transport.registerProducer(self, False)  # type: ignore[union-attr]

    def resumeProducing(self) -> None:
        it = self._body_iter
        if it is None:
            return
        try:
            data = next(it)
        except StopIteration:
            self._body_iter = None
            self.transport.unregisterProducer()  # type: ignore[union-attr]
            self._end()
            return
        send = self._codec.send
        step = self._chunk
        self.transport.writeSequence(  # type: ignore[union-attr]
            [send(SendBodyChunk(data[i : i + step])) for i in range(0, len(data), step)]
        )

    def stopProducing(self) -> None:
        self._body_iter = None

    def _end(self) -> None:
        self.transport.write(self._codec.send(EndResponse(True)))  # type: ignore[union-attr]
        self._codec.start_next_cycle()


class AJPContainerFactory(Factory):
    """Builds L{AJPContainerProtocol}s serving C{app}."""

    noisy = False

    def __init__(self, app: Application, packet_size: int = 8192) -> None:
        self.app = app
        self.packet_size = packet_size

    def buildProtocol(self, addr: object) -> AJPContainerProtocol:
        return AJPContainerProtocol(self.app, self.packet_size)
