"""
Probes for every private attribute of Twisted that L{twisted_lb.compat} uses:
each fails loudly, naming the attribute, when a release changes it.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import h2.config
import h2.connection
import h2.events
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import http
from twisted.web.server import Request, Site

from twisted_lb.compat import (
    H2_CONNECTION_PRIVATE,
    H2Connection,
    H2ConnectionBase,
    switch_to_http2,
)
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
        site = Site(None, reactor=MemoryReactorClock())  # type: ignore[arg-type]
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
        self.assertIsInstance(connection, H2Connection)

    def test_frontend_switches_a_negotiated_h2_connection(self):
        """FrontendSite's channel protocol switches on the first bytes of an h2 connection."""
        clock = MemoryReactorClock()
        site = FrontendSite(None, LimitsConfig(), clock, http2=True)  # type: ignore[arg-type]
        generic = site.buildProtocol(None)
        generic.makeConnection(_TLSLikeTransport())
        generic.dataReceived(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertIsInstance(generic._channel, LimitedH2Connection)
        self.assertIs(generic._channel.requestFactory, Request)


class H2ConnectionProbes(SynchronousTestCase):
    def test_private_handlers_exist(self):
        """Every private method H2ConnectionBase calls is still there, and is a method."""
        for name in H2_CONNECTION_PRIVATE:
            self.assertTrue(
                callable(getattr(H2Connection, name, None)), f"H2Connection.{name} is gone"
            )

    def test_connection_lost_takes_cancel_timeouts(self):
        """Twisted tears a connection down after its own errors with
        connectionLost(reason, _cancelTimeouts=False): LimitedH2Connection tells that apart."""
        parameters = inspect.signature(H2Connection.connectionLost).parameters
        self.assertIn("_cancelTimeouts", parameters)
        self.assertIn("_cancelTimeouts=False", inspect.getsource(H2Connection._terminate))

    def test_our_attribute_names_are_not_twisteds(self):
        """LimitedH2Connection's own attributes do not shadow any of Twisted's."""
        twisted_names = set(vars(H2Connection(MemoryReactorClock()))) | set(dir(H2Connection))
        ours = set(vars(LimitedH2Connection(LimitsConfig(), MemoryReactorClock())))
        ours -= set(vars(H2Connection(MemoryReactorClock())))
        self.assertTrue(ours)
        self.assertEqual(ours & twisted_names, set())
        base_methods = {n for n in vars(H2ConnectionBase) if not n.startswith("__")}
        self.assertEqual(base_methods & set(dir(H2Connection)), set())

    def test_handlers_serve_a_request(self):
        """The handlers behind open_stream, stream_data, stream_ended, stream_reset and
        forget_stream do what H2ConnectionBase says: a stream and its request are made,
        the body reaches it, the end processes it; a reset or forget drops the stream."""
        clock = MemoryReactorClock()
        processed: list[bytes] = []

        class Recording(Request):
            def process(self) -> None:
                processed.append(self.content.read())

        connection = H2ConnectionBase(clock)
        connection.requestFactory = Recording
        connection.site = Site(None)  # type: ignore[arg-type]
        transport = StringTransport()
        connection.makeConnection(transport)
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        head = [(":method", "POST"), (":path", "/"), (":authority", "x"), (":scheme", "https")]
        client.send_headers(1, head)
        client.send_data(1, b"body", end_stream=True)
        client.send_headers(3, head)
        events = connection.conn.receive_data(client.data_to_send())
        kinds: dict[type, object] = {}
        for event in events:
            kinds.setdefault(type(event), event)
        connection.open_stream(kinds[h2.events.RequestReceived])
        self.assertIn(1, connection.streams)
        connection.stream_data(kinds[h2.events.DataReceived])
        connection.stream_ended(kinds[h2.events.StreamEnded])
        self.assertEqual(processed, [b"body"])
        request_3 = [e for e in events if isinstance(e, h2.events.RequestReceived)][1]
        connection.open_stream(request_3)
        client.reset_stream(3)
        (reset,) = connection.conn.receive_data(client.data_to_send())
        connection.stream_reset(reset)
        self.assertNotIn(3, connection.streams)
        connection.forget_stream(1)
        self.assertNotIn(1, connection.streams)
        self.assertTrue(connection.flush_control())


def test_the_proxy_imports_without_h2() -> None:
    """Without twisted[http2] (h2, priority) the proxy still imports and offers no HTTP/2."""
    code = (
        "import sys; sys.modules['h2'] = sys.modules['priority'] = None\n"
        "import twisted_lb.compat, twisted_lb.frontend, twisted_lb.service\n"
        "from twisted_lb.tls import h2_available\n"
        "assert not h2_available()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
