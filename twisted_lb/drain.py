"""
Graceful stop: the client connections of the proxy's listeners, and waiting
for the requests in flight to finish.

When the proxy stops, it stops listening at once, closes the keep-alive
connections that are idle, answers every request still arriving on an open
connection with C{Connection: close} (as nginx and HAProxy do when they stop),
waits up to C{shutdown_timeout} for requests and WebSockets in flight, and
only then cuts what is left.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

__all__ = ["ClientConnections", "TrackedChannel", "wait_until"]

_CLOSE = [b"close"]


class ClientConnections:
    """
    The open HTTP/1.x client connections of a proxy's listeners.

    @ivar closing: whether the proxy is stopping: every request from now on
        is answered with C{Connection: close}.
    """

    def __init__(self) -> None:
        self._channels: weakref.WeakSet[TrackedChannel] = weakref.WeakSet()
        self.closing = False

    def add(self, channel: TrackedChannel) -> None:
        self._channels.add(channel)

    def discard(self, channel: TrackedChannel) -> None:
        self._channels.discard(channel)

    def __len__(self) -> int:
        return len(self._channels)

    def busy(self) -> int:
        """How many connections have a request in flight (or half received)."""
        return sum(1 for c in list(self._channels) if c.busy)

    def start_closing(self) -> None:
        """
        From now on close connections once their response is written, and
        close those that are idle now.
        """
        self.closing = True
        for channel in list(self._channels):
            channel.close_when_idle()

    def close_all(self, abort: bool = False) -> None:
        """Close every connection (C{abort}: at once, dropping what is unsent)."""
        for channel in list(self._channels):
            transport: Any = channel.transport
            if transport is None:
                continue
            if abort:
                transport.abortConnection()
            else:
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
