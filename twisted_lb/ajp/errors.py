"""
Exceptions raised by the AJP/1.3 codec.

The split follows h11: L{LocalProtocolError} means that I{we} asked the codec
to do something the protocol forbids, L{RemoteProtocolError} means that the
I{peer} sent something the protocol forbids.  Every exception carries a
C{status_hint}: the HTTP status a proxy should answer its client with when the
error ends the exchange.  Mapping to HTTP happens in exactly one place (the
proxy resource); the codec only supplies the hint.
"""

from __future__ import annotations

__all__ = [
    "AJPProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "RequestTooLarge",
]


class AJPProtocolError(Exception):
    """
    Base class of every error raised by the AJP codec.

    @ivar status_hint: the HTTP status that best describes the failure.
    """

    default_status_hint: int = 500

    def __init__(self, message: str, status_hint: int | None = None) -> None:
        """
        @param message: a human-readable description of the failure.
        @param status_hint: the HTTP status to suggest; C{None} selects the
            class default.
        """
        super().__init__(message)
        self.status_hint: int = self.default_status_hint if status_hint is None else status_hint


class LocalProtocolError(AJPProtocolError):
    """
    We misused the codec: the event is illegal in the current state, or it
    cannot be encoded.  The connection state is left unchanged.
    """

    default_status_hint = 500


class RemoteProtocolError(AJPProtocolError):
    """
    The peer broke the protocol (bad magic, oversized packet, unknown message
    type, bad header code, truncated field, trailing bytes inside a packet, or
    a message that is illegal in the current state).  The connection is then
    in the C{ERROR} state for good and must be closed.
    """

    default_status_hint = 502


class RequestTooLarge(LocalProtocolError):
    """
    A FORWARD_REQUEST does not fit in one AJP packet.

    AJP has no continuation packets, so the request cannot be sent at all.
    The status hint is 414 when the request URI (with its query string) alone
    is too big for the packet, 431 otherwise (headers or attributes).

    @ivar needed: the packet size, in bytes, the request would have needed.
    @ivar packet_size: the configured packet size.
    """

    default_status_hint = 431

    def __init__(self, needed: int, packet_size: int, status_hint: int | None = None) -> None:
        """
        @param needed: the size in bytes of the whole packet (header
            included) the request would have needed.
        @param packet_size: the configured maximum packet size.
        @param status_hint: 431 or 414; C{None} means 431.
        """
        super().__init__(
            f"FORWARD_REQUEST needs {needed} bytes but the packet size is only {packet_size}",
            status_hint,
        )
        self.needed: int = needed
        self.packet_size: int = packet_size
