"""
The one place that touches private attributes of Twisted (and Autobahn).

Every name used here is checked by a probe in C{tests/test_compat.py} that
fails loudly when a release renames or removes it. Each part is a clearly
separated block, owned by the module that needs it.
"""

from __future__ import annotations

from typing import Any

try:
    from twisted.web._http2 import H2Connection
except ImportError:  # twisted[http2] (h2, priority) is not installed: HTTP/2 is never offered
    H2Connection = object  # type: ignore[assignment,misc]

__all__ = ["H2Connection", "H2ConnectionBase", "H2_CONNECTION_PRIVATE", "switch_to_http2"]


# ---------------------------------------------------------------------------
# HTTP/2 (twisted_lb.http2): the HTTP/1.1-or-HTTP/2 switch of twisted.web
# (_GenericHTTPChannelProtocol) and Twisted's H2Connection.
# ---------------------------------------------------------------------------


#: The private names of C{twisted.web._http2.H2Connection} used below (the
#: probe test checks each one).
H2_CONNECTION_PRIVATE = (
    "_requestReceived",
    "_requestDataReceived",
    "_requestEnded",
    "_requestAborted",
    "_handleWindowUpdate",
    "_handlePriorityUpdate",
    "_tryToWriteControlData",
    "_requestDone",
)


class H2ConnectionBase(H2Connection):
    """
    Twisted's C{H2Connection} with the private handlers it dispatches h2's
    events to, and its stream bookkeeping, behind public names: a subclass
    (L{twisted_lb.http2.LimitedH2Connection}) reads h2's events itself and
    decides which of them Twisted gets to see.
    """

    def open_stream(self, event: Any) -> None:
        """Create the stream and request of a C{RequestReceived} event."""
        self._requestReceived(event)

    def stream_data(self, event: Any) -> None:
        """Hand a C{DataReceived} event's body bytes to its stream's request."""
        self._requestDataReceived(event)

    def stream_ended(self, event: Any) -> None:
        """A C{StreamEnded} event: the request is complete and is processed now."""
        self._requestEnded(event)

    def stream_reset(self, event: Any) -> None:
        """A C{StreamReset} event: the stream's request loses its client."""
        self._requestAborted(event)

    def window_updated(self, event: Any) -> None:
        """A C{WindowUpdated} event: resume what flow control held back."""
        self._handleWindowUpdate(event)

    def priority_updated(self, event: Any) -> None:
        """A C{PriorityUpdated} event: reorder the streams' responses."""
        self._handlePriorityUpdate(event)

    def flush_control(self) -> bool:
        """
        Write what h2 has to send (or buffer it behind a slow client).

        @return: C{False} if the connection was aborted because the client
            reads nothing of its control frames.
        """
        return bool(self._tryToWriteControlData())

    def forget_stream(self, stream_id: int) -> None:
        """Drop Twisted's state for a stream that is over."""
        self._requestDone(stream_id)


def switch_to_http2(generic: Any, connection: Any) -> None:
    """
    Make C{connection} serve a TLS connection that negotiated C{h2}, in
    place of the HTTP/1.1 channel of twisted.web's switch
    (C{_GenericHTTPChannelProtocol}), as that switch does itself with
    Twisted's own C{H2Connection}.

    @param generic: the C{_GenericHTTPChannelProtocol}, before it saw any byte.
    @param connection: the HTTP/2 connection (an C{H2Connection}) that takes over.
    """
    channel = generic._channel
    network_producer = channel._networkProducer
    network_producer.unregisterProducer()
    channel.setTimeout(None)
    transport = channel.transport
    connection.requestFactory = generic._requestFactory
    connection.site = generic._site
    connection.factory = generic._factory
    connection.timeOut = generic._timeOut
    connection.callLater = generic._callLater
    generic._channel = connection
    generic._negotiatedProtocol = b"h2"
    connection.makeConnection(transport)
    network_producer.registerProducer(connection, True)
