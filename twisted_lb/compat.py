"""
The one place where twisted_lb touches private attributes of Twisted or
Autobahn. Each section says which release it was written against; each
function has a probe in C{tests/test_compat.py} that fails loudly when a
release changes what it relies on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.protocols.tls import TLSMemoryBIOProtocol

__all__ = [
    "tls_write_now",
    "autobahn_feed",
    "autobahn_fail",
    "autobahn_take_received",
    "autobahn_put_received",
]


# ---------------------------------------------------------------------------
# Autobahn (26.11.1): the WebSocket frame relay (twisted_lb.websocket).
#
# Autobahn does the opening and closing handshakes of both legs of a tunnel;
# between them the relay reads the bytes itself. It hands Autobahn the bytes
# from a close frame on, takes the bytes Autobahn buffered past a handshake,
# and lets Autobahn fail a connection with a close code.
# ---------------------------------------------------------------------------


def autobahn_feed(protocol: Any, data: bytes) -> None:
    """Let Autobahn's own parser process C{data} received on C{protocol}."""
    protocol._dataReceived(data)


def autobahn_take_received(protocol: Any) -> bytes:
    """The bytes C{protocol} received and has not processed; it forgets them."""
    data: bytes = protocol.data
    protocol.data = b""
    return data


def autobahn_put_received(protocol: Any, data: bytes) -> None:
    """Replace the bytes C{protocol} received and has not processed yet."""
    protocol.data = data


def autobahn_fail(protocol: Any, code: int, reason: str) -> None:
    """
    Fail C{protocol}'s WebSocket connection as Autobahn does on a protocol
    violation: a close frame with C{code}, then the close handshake.
    """
    protocol._fail_connection(code, reason)


# --- end of the Autobahn section --------------------------------------------


# ---------------------------------------------------------------------------
# Twisted (26.10.0): a TLS write that reaches the socket at once
# (twisted_lb.websocket's relay).
#
# Twisted's TLS transport (BufferingTLSTransport) keeps small writes for a
# later turn of the reactor (callLater(0)) to encrypt them together, and the
# TCP transport under it buffers the encrypted bytes until a further turn
# finds the socket writable: two turns of latency per relayed frame, and a
# copy. The relay writes once per read anyway, so it encrypts at once
# (after whatever Twisted still held, to keep the order) and sends the
# result at once when nothing else is queued; whatever the kernel does not
# take stays in the TCP buffer, where the reactor finds it as before.
# ---------------------------------------------------------------------------

_TCP_TRANSPORTS = frozenset({tcp.Server, tcp.Client})


def tls_write_now(transport: Any, data: bytes) -> None:
    """Write C{data} to C{transport}, a TLS transport, and send it at once when that is safe."""
    aggregator = getattr(transport, "_aggregator", None)
    if aggregator is not None:
        aggregator.flush()  # what Twisted held back goes first
    TLSMemoryBIOProtocol.write(transport, data)
    _flush_tcp(transport.transport)


def _flush_tcp(under: Any) -> None:
    """Send now the bytes buffered in C{under}, a TCP transport, when they are all that is queued."""
    if (
        type(under) in _TCP_TRANSPORTS
        and under._tempDataLen
        and not under.dataBuffer
        and under.connected
        and not under.disconnecting
        and not under._writeDisconnecting
    ):
        # What the reactor calls when the socket is writable: it sends what
        # it can, stops watching for writability once all is sent and
        # resumes a paused producer. An error is left for the reactor to
        # meet on its own next call (the socket stays watched then).
        under.doWrite()


# --- end of the Twisted TLS section -----------------------------------------
