"""
Graceful stop: the client connections of the proxy's listeners, and waiting
for the requests in flight to finish.

When the proxy stops, it stops listening at once, closes the keep-alive
connections that are idle, answers every request still arriving on an open
connection with C{Connection: close} (as nginx and HAProxy do when they stop),
sends every HTTP/2 connection a GOAWAY (no new stream; the streams already
opened are answered), waits up to C{shutdown_timeout} for requests, streams
and WebSockets in flight, and only then cuts what is left.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

__all__ = ["ClientConnections", "TrackedChannel", "wait_until"]

_CLOSE = [b"close"]
_log = Logger()


class ClientConnections:
    """
    The open client connections of a proxy's listeners: HTTP/1.x channels,
    and the HTTP/2 connections (Twisted's C{H2Connection}) that took some over.

    @ivar closing: whether the proxy is stopping: every request from now on
        is answered with C{Connection: close}, every HTTP/2 connection gets a
        GOAWAY.
    """

    def __init__(self) -> None:
        self._channels: weakref.WeakSet[TrackedChannel] = weakref.WeakSet()
        self._h2: weakref.WeakSet[Any] = weakref.WeakSet()
        self.closing = False

    def add(self, channel: TrackedChannel) -> None:
        self._channels.add(channel)

    def discard(self, channel: TrackedChannel) -> None:
        self._channels.discard(channel)

    def add_h2(self, connection: Any) -> None:
        """An HTTP/2 connection (a C{twisted.web._http2.H2Connection}) serves a client now."""
        self._h2.add(connection)
        if self.closing:
            _go_away(connection)

    def discard_h2(self, connection: Any) -> None:
        self._h2.discard(connection)

    def __len__(self) -> int:
        return len(self._channels) + len(self._h2)

    def busy(self) -> int:
        """How many requests are in flight: HTTP/1.x connections with one (or one half
        received), and the open streams of the HTTP/2 connections."""
        return sum(1 for c in list(self._channels) if c.busy) + sum(
            len(c.streams) for c in list(self._h2)
        )

    def start_closing(self) -> None:
        """
        From now on close connections once their response is written, and
        close those that are idle now.
        """
        self.closing = True
        for channel in list(self._channels):
            channel.close_when_idle()
        for connection in list(self._h2):
            _go_away(connection)

    def close_all(self, abort: bool = False) -> None:
        """Close every connection (C{abort}: at once, dropping what is unsent)."""
        for connection in list(self._h2):
            _close_h2(connection, abort)
        for channel in list(self._channels):
            transport: Any = channel.transport
            if transport is None:
                continue
            if abort:
                transport.abortConnection()
            else:
                transport.loseConnection()


#: The first GOAWAY of a graceful HTTP/2 shutdown (RFC 9113, 6.8): no error,
#: last stream 2^31-1: "open no new stream", while every stream the client has
#: opened, even one crossing this frame, is still answered.
_GOAWAY_SOON = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x7f\xff\xff\xff\x00\x00\x00\x00"


def _go_away(connection: Any) -> None:
    """
    Tell an HTTP/2 client to open no new stream (the first GOAWAY of a
    graceful shutdown); close the connection now if no stream is open.
    """
    transport = connection.transport
    if transport is None:
        return
    transport.write(_GOAWAY_SOON)
    if not connection.streams:
        _close_h2(connection)


def _close_h2(connection: Any, abort: bool = False) -> None:
    """Close an HTTP/2 connection: the final GOAWAY (naming the last stream
    answered), then the connection (C{abort}: at once)."""
    transport = connection.transport
    if transport is None:
        return
    if abort:
        transport.abortConnection()
        return
    try:
        connection.conn.close_connection()
        transport.write(connection.conn.data_to_send())
    except Exception as e:  # h2 refuses a second close: the connection is closing already
        _log.debug("no final GOAWAY to {peer}: {error}", peer=transport.getPeer(), error=e)
    # The connection is the transport's producer; TLS closes only once none is left.
    transport.unregisterProducer()
    transport.loseConnection()


class TrackedChannel(HTTPChannel):
    """
    An L{HTTPChannel} its site's L{ClientConnections} knows of; when the
    proxy is stopping, no response on it keeps the connection alive.
    """

    def _connections(self) -> ClientConnections | None:
        return getattr(getattr(self, "site", None), "connections", None)

    def connectionMade(self) -> None:
        super().connectionMade()
        connections = self._connections()
        if connections is not None:
            connections.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        connections = self._connections()
        if connections is not None:
            connections.discard(self)
        super().connectionLost(reason)

    @property
    def closing(self) -> bool:
        """Whether the proxy is stopping (no response keeps the connection open)."""
        connections = self._connections()
        return connections is not None and connections.closing

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        if self.closing:
            request.responseHeaders.setRawHeaders(b"connection", _CLOSE)
            return False
        return bool(super().checkPersistence(request, version))

    @property
    def _http2(self) -> bool:
        """Whether HTTP/2 took this TLS connection over (Twisted's H2Connection serves it)."""
        return getattr(self.transport, "negotiatedProtocol", None) == b"h2"

    @property
    def busy(self) -> bool:
        """A request is in flight or half received on this HTTP/1.x connection."""
        return self.transport is not None and bool(self.requests)

    def close_when_idle(self) -> None:
        """Close now if idle; else after the responses in flight (C{Connection: close})."""
        if self.transport is None or self._http2:
            # Taken over by a WebSocket tunnel or by HTTP/2: closed at the end.
            return
        if not self.requests:
            self.loseConnection()
            return
        self.persistent = False
        for request in self.requests:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"connection", _CLOSE)


def wait_until(
    reactor: Any, done: Callable[[], bool], timeout: float, poll: float = 0.05
) -> defer.Deferred[bool]:
    """
    Fire with C{True} as soon as C{done()} is true (checked every C{poll}
    seconds), or with C{False} after C{timeout} seconds.
    """
    result: defer.Deferred[bool] = defer.Deferred()
    deadline = reactor.seconds() + timeout

    def check() -> None:
        if done():
            result.callback(True)
        elif reactor.seconds() >= deadline:
            result.callback(False)
        else:
            reactor.callLater(poll, check)

    check()
    return result
