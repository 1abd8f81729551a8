"""
The one place where twisted_lb touches private attributes of Twisted or
Autobahn. Each section says which release it was written against; each
function has a probe in C{tests/test_compat.py} that fails loudly when a
release changes what it relies on.
"""

from __future__ import annotations

from typing import Any

__all__ = [
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
