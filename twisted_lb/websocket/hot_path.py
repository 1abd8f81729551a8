"""
What both sides of a tunnel change in Autobahn's per-message path: Nagle
off on every connection, and no work per message that the proxy never uses.

Autobahn (26.x) means to set C{TCP_NODELAY} in C{connectionMade}, but reads
the option before it copied the factory's options onto the protocol, so the
call fails with C{AttributeError} and is silently skipped: the member side
kept Nagle on. It also formats a debug log line (coloured type and peer
names) for every read and write whether debug logging is on or not, and
fires a C{"message"} event (a Deferred) per message for observers the proxy
never registers. Profiled on loopback, these were about a fifth of the
proxy's CPU per relayed message.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol

__all__ = ["HotPath"]

_OPEN = WebSocketProtocol.STATE_OPEN


class HotPath:
    """Mixed into an Autobahn Twisted protocol, before it in the bases."""

    transport: Any
    tcpNoDelay: bool
    failedByMe: bool
    message_data: Any
    message_is_binary: bool
    send_queue: Any
    state: int
    trafficStats: Any
    logOctets: bool
    _dataReceived: Any
    onMessage: Any

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[misc]
        if self.transport is not None:
            try:
                self.transport.setTcpNoDelay(self.tcpNoDelay)
            except (AttributeError, OSError):  # not a TCP connection
                pass

    def dataReceived(self, data: bytes) -> None:
        self._dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if sync or chopsize or self.send_queue or self.logOctets or self.state != _OPEN:
            super().sendData(data, sync, chopsize)  # type: ignore[misc]
            return
        self.transport.write(data)
        self.trafficStats.outgoingOctetsWireLevel += len(data)

    def onMessageEnd(self) -> None:
        if not self.failedByMe:
            self.onMessage(b"".join(self.message_data), self.message_is_binary)
        self.message_data = None
