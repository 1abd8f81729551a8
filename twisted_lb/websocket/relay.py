"""
The frame relay between the two connections of a tunnel.

Autobahn does each leg's opening handshake. From then on the bytes one leg
receives go to a L{Relay}, which checks frame headers with a
L{FrameScanner} and writes the bytes to the other leg as they came: a
client's frames keep the mask the client chose (the proxy is the member's
client, and the key is as unpredictable as the client made it), a member's
frames go out unmasked as they arrived, frames of an extension the two ends
agreed on keep their RSV bits and payload (the proxy never inflates), and a
large frame is passed on piece by piece as it arrives. Nothing is assembled,
so a tunnel holds at most a read's worth of bytes plus what the kernel and
the transports buffer before they pause the other leg.

At a close frame the relay hands the leg back to Autobahn, which does the
close handshake; at a broken frame header (or a message over the size
limit) the tunnel fails the leg with the code the protocol prescribes and
hands it back to Autobahn too.
"""

from __future__ import annotations

from typing import Any, Protocol

from autobahn.websocket.protocol import WebSocketProtocol
from twisted.protocols.tls import TLSMemoryBIOProtocol

from twisted_lb.compat import autobahn_feed, tls_write_now
from twisted_lb.sendnow import send_now

from .frames import FrameScanner

__all__ = ["Relay", "RelayOwner", "RelaySide"]

_OPEN = WebSocketProtocol.STATE_OPEN

#: Bytes asked of the socket per read (Twisted's default is 64 KiB); also
#: how much a connection buffers before it pauses the other leg.
READ_SIZE = 256 * 1024


class RelayOwner(Protocol):
    """What a L{Relay} tells the tunnel it serves (a L{twisted_lb.websocket.bridge.Tunnel})."""

    def activity(self) -> None:
        """Bytes came from a leg: the tunnel is not idle."""

    def broken(self, side: Any, code: int, reason: str) -> None:
        """
        A frame header from C{side} broke the protocol (or a message went
        over the size limit): fail C{side} with C{code} and C{reason}.
        """


class RelaySide:
    """
    Mixed into both Autobahn protocols of a tunnel, before them in the bases:
    received bytes go to the relay once there is one, else to Autobahn; and
    Nagle is off.

    Autobahn (26.x) means to set C{TCP_NODELAY} in C{connectionMade}, but
    reads the option before it copied the factory's options onto the
    protocol, so the call fails with C{AttributeError} and is silently
    skipped.
    """

    transport: Any
    relay: Relay | None = None

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[misc]
        transport = self.transport
        if transport is not None:
            try:
                transport.setTcpNoDelay(True)
            except (AttributeError, OSError):  # not a TCP connection
                pass
            # Fewer, larger reads of a stream of frames (as AJP connections do).
            layers: tuple[Any, ...] = (transport, getattr(transport, "transport", None))
            for layer in layers:
                if hasattr(layer, "bufferSize"):
                    layer.bufferSize = READ_SIZE

    def dataReceived(self, data: bytes) -> None:
        relay = self.relay
        if relay is None:
            autobahn_feed(self, data)
        else:
            relay.data_received(data)


def _is_tls(side: Any) -> bool:
    return side is not None and isinstance(side.transport, TLSMemoryBIOProtocol)


class Relay:
    """
    The frames one leg of a tunnel receives, passed on to the other leg.

    @ivar source: the leg read from.
    @ivar target: the leg written to.
    @ivar octets: bytes read from C{source}.
    """

    __slots__ = ("source", "target", "scanner", "octets", "_tunnel", "_waiting", "_tls")

    def __init__(
        self, tunnel: RelayOwner, source: Any, target: Any, scanner: FrameScanner, *, wait: bool = False
    ) -> None:
        """
        @param wait: keep what arrives (and stop reading) until L{release}:
            the target has not had its own handshake yet.
        """
        self._tunnel = tunnel
        self.source = source
        self.target = target
        self._tls = _is_tls(target)
        self.scanner = scanner
        self.octets = 0
        self._waiting: list[bytes] | None = [] if wait else None

    @property
    def mid_frame(self) -> bool:
        """Whether the bytes written to the target so far end inside a frame."""
        return self.scanner.mid_frame

    def data_received(self, data: bytes) -> None:
        """Bytes from the source: pass on every whole or partial frame up to a close or an error."""
        if self._waiting is not None:
            self._waiting.append(data)
            self.source.transport.pauseProducing()
            return
        self.octets += len(data)
        self._tunnel.activity()
        buffer, end, stop = self.scanner.scan(data)
        if end:
            target = self.target
            if target.state == _OPEN:
                if self._tls:
                    tls_write_now(target.transport, buffer if end == len(buffer) else buffer[:end])
                else:
                    send_now(target.transport, buffer if end == len(buffer) else buffer[:end])
        if stop is not None:
            # Autobahn reads this leg from now on: the close frame and the
            # close handshake, or (after the tunnel failed the leg) whatever
            # comes until the peer's close frame, in frames Autobahn bounds.
            source = self.source
            source.relay = None
            if stop.code is not None:
                self._tunnel.broken(source, stop.code, stop.reason)
            autobahn_feed(source, buffer[end:])

    def release(self, target: Any) -> None:
        """The target is open: pass on what waited, and read again."""
        self.target = target
        self._tls = _is_tls(target)
        waiting, self._waiting = self._waiting, None
        for data in waiting or ():
            if self.source.relay is not self:
                break
            self.data_received(data)
        transport = self.source.transport
        if transport is not None:
            transport.resumeProducing()
