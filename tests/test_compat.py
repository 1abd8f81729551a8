"""
Probes for every private attribute of Twisted that L{twisted_lb.compat} uses:
each fails loudly, naming the attribute, when a release changes it.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http
from twisted.web.server import Request, Site

from twisted_lb.compat import H2Connection, switch_to_http2
from twisted_lb.config.model import LimitsConfig
from twisted_lb.frontend import FrontendSite
from twisted_lb.http2 import LimitedH2Connection

# -- HTTP/2 (twisted_lb.http2) -----------------------------------------------------------------


class _TLSLikeTransport(StringTransport):
    """A transport that negotiated h2 over ALPN."""

    negotiatedProtocol = b"h2"


class HTTP2SwitchProbes(SynchronousTestCase):
    def test_generic_channel_protocol_attributes(self):
        """The attributes of twisted.web's HTTP/1.1-or-HTTP/2 switch that switch_to_http2
        reads and sets exist, with the values HTTPFactory gives them."""
        site = Site(None)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        for name in (
            "_channel",
            "_negotiatedProtocol",
            "_requestFactory",
            "_site",
            "_factory",
            "_timeOut",
            "_callLater",
        ):
            self.assertTrue(hasattr(generic, name), f"_GenericHTTPChannelProtocol.{name} is gone")
        self.assertIsInstance(generic._channel, http.HTTPChannel)
        self.assertIs(generic._site, site)
        self.assertIsNone(generic._negotiatedProtocol)
        generic.makeConnection(StringTransport())
        self.assertTrue(
            hasattr(generic._channel, "_networkProducer"), "HTTPChannel._networkProducer is gone"
        )

    def test_switch_to_http2_serves_with_our_connection(self):
        """After the switch, our connection is the channel, the transport's producer,
        has the site and sends its SETTINGS; the switch itself does nothing more."""
        clock = MemoryReactorClock()
        site = FrontendSite(None, LimitsConfig(), clock, http2=True)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        transport = _TLSLikeTransport()
        generic.makeConnection(transport)
        connection = LimitedH2Connection(LimitsConfig(), clock)
        switch_to_http2(generic, connection)
        self.assertIs(generic._channel, connection)
        self.assertEqual(generic._negotiatedProtocol, b"h2")
        self.assertIs(connection.site, site)
        self.assertIs(connection.requestFactory, site.requestFactory)
        self.assertEqual(connection.timeOut, site.timeOut)
        self.assertIs(transport.producer, connection)
        self.assertTrue(transport.value().startswith(b"\x00\x00"))  # a SETTINGS frame
        self.assertIs(H2Connection, type(connection).__mro__[1])

    def test_frontend_switches_a_negotiated_h2_connection(self):
        """FrontendSite's channel protocol switches on the first bytes of an h2 connection."""
        clock = MemoryReactorClock()
        site = FrontendSite(None, LimitsConfig(), clock, http2=True)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        generic.makeConnection(_TLSLikeTransport())
        generic.dataReceived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertIsInstance(generic._channel, LimitedH2Connection)
        self.assertIs(generic._channel.requestFactory, Request)
