"""
The one place that touches private attributes of Twisted (and Autobahn).

Every name used here is checked by a probe in C{tests/test_compat.py} that
fails loudly when a release renames or removes it. Each part is a clearly
separated block, owned by the module that needs it.
"""

from __future__ import annotations

from typing import Any

from twisted.web._http2 import H2Connection

__all__ = ["H2Connection", "switch_to_http2"]


# ---------------------------------------------------------------------------
# HTTP/2 (twisted_lb.http2): the HTTP/1.1-or-HTTP/2 switch of twisted.web
# (_GenericHTTPChannelProtocol) and Twisted's H2Connection.
# ---------------------------------------------------------------------------


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
