"""
Writes that reach the socket at once.

Twisted's TCP transports buffer every C{write()} and send it on a later turn
of the reactor, after registering the socket for writability: per write, two
C{epoll_ctl} calls and one more loop turn. For a proxy, where a request is one
write to the member and one to the client, that is a good part of what a
small request costs.

L{send_now} sends straight away when the transport is a plain TCP connection
with nothing buffered, and hands whatever the kernel did not take (or any
error) to C{transport.write()}, so Twisted's buffering, flow control
(producers are paused and resumed as usual) and error handling carry on
exactly as before. Any other transport (TLS, in-memory test transports, a
TCP connection with data already queued) simply gets C{transport.write()}.

It relies on the buffer attributes of C{twisted.internet.abstract.FileDescriptor}
(C{dataBuffer}, C{offset}, C{_tempDataLen}); if a Twisted release drops them,
L{DIRECT} is false and every call is a plain C{write()}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import abstract, tcp

__all__ = ["send_now", "send_parts_now", "DIRECT"]

#: At most this many buffers per C{sendmsg} (Linux allows 1024).
_MAX_PARTS = 256

#: Whether this Twisted's TCP transports have the buffer attributes
#: L{send_now} checks; when not, it always falls back to C{write()}.
DIRECT = all(
    hasattr(abstract.FileDescriptor, name) for name in ("dataBuffer", "offset")
) and "_tempDataLen" in abstract.FileDescriptor.__init__.__code__.co_names

#: The transport classes sent to directly (exact types: a subclass may
#: change how writes work).
_TCP = frozenset({tcp.Server, tcp.Client}) if DIRECT else frozenset()


def _direct(transport: Any) -> bool:
    """
    Whether bytes may go straight to C{transport}'s socket: a plain TCP
    transport (not TLS), connected, not closing, with nothing waiting in its
    buffer (so the order of bytes is kept).
    """
    return (
        type(transport) in _TCP
        and not transport._tempDataLen
        and not transport.dataBuffer
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport.TLS
    )


def send_now(transport: Any, data: bytes) -> None:
    """Write C{data} to C{transport}, sending it at once when that is safe."""
    if _direct(transport):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # Let Twisted meet the error on its own write and close the
            # connection the usual way (connectionLost with the reason).
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def send_parts_now(transport: Any, parts: list[bytes | memoryview]) -> None:
    """
    Write the concatenation of C{parts} to C{transport}: one C{sendmsg} of
    all of them when that is safe (no join, no copy of the parts), else
    joined into one C{write()}. Only bytes the kernel did not take are
    copied (into Twisted's buffer), so the parts may be views of buffers
    the caller reuses afterwards.
    """
    if len(parts) <= _MAX_PARTS and _direct(transport):
        try:
            sent = transport.socket.sendmsg(parts)
        except OSError:
            sent = 0  # EAGAIN, or an error Twisted meets on its own write
        total = sum(len(p) for p in parts)
        if sent == total:
            return
        rest = []
        for part in parts:
            n = len(part)
            if sent >= n:
                sent -= n
                continue
            rest.append(part[sent:] if sent else part)
            sent = 0
        parts = rest
    transport.write(b"".join(parts))
