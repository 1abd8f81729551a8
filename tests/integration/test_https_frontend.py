"""
The HTTPS frontend on a real loopback socket: TLS 1.2 or newer only, and
HTTP/2 offered over ALPN when the C{h2} package is installed, with a real
HTTP/2 request reaching a demo node through the proxy.

The clients are blocking pyOpenSSL sockets run in a thread, so that the
proxy's reactor serves them meanwhile.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.internet import defer, reactor, task, threads
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web import http

from twisted_lb.config.model import (
    BalancerConfig,
    ConfigError,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.drain import wait_until
from twisted_lb.service import ProxyService
from twisted_lb.testing import Fault, FaultyAJPMember
from twisted_lb.tls import h2_available, make_self_signed

from .support import Node, tls_client


def h2_get(port: int, path: str) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One GET over HTTP/2: the negotiated protocol, the response headers and body."""
    answer = h2_exchange(port, path)
    return answer["negotiated"], answer["headers"], answer["body"]


def h2_exchange(port: int, path: str, until_closed: bool = False) -> dict[str, Any]:
    """
    One GET over HTTP/2 (blocking: run it in a thread): the negotiated
    protocol, the response headers and body, the GOAWAY the server sent
    before the stream ended (C{(error code, last stream id)}) if any, and,
    with C{until_closed}, whether the server then closed the connection.
    """
    import h2.config
    import h2.connection
    from hyperframe.frame import (
        DataFrame,
        Frame,
        GoAwayFrame,
        HeadersFrame,
        RstStreamFrame,
        SettingsFrame,
    )

    conn = tls_client(port, alpn=[b"h2", b"http/1.1"])
    try:
        answer: dict[str, Any] = {"negotiated": conn.get_alpn_proto_negotiated(), "goaway": None}
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        h2c.initiate_connection()
        stream = h2c.get_next_available_stream_id()
        h2c.send_headers(
            stream,
            [
                (":method", "GET"),
                (":path", path),
                (":authority", f"127.0.0.1:{port}"),
                (":scheme", "https"),
            ],
            end_stream=True,
        )
        conn.sendall(h2c.data_to_send())
        # Frames are read here rather than by h2, which accepts nothing more once a GOAWAY
        # came, while RFC 9113 has the streams it names answered; h2 still decodes HPACK.
        headers: dict[bytes, bytes] = {}
        body = b""
        ended = False
        buffer = b""
        while not ended:
            data = conn.recv(65536)
            if not data:
                raise AssertionError("connection closed before the stream ended")
            buffer += data
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9 : 9 + length]))
                buffer = buffer[9 + length :]
                if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                    conn.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
                elif isinstance(frame, GoAwayFrame):
                    if answer["goaway"] is None:
                        answer["goaway"] = (frame.error_code, frame.last_stream_id)
                elif isinstance(frame, RstStreamFrame) and frame.stream_id == stream:
                    raise AssertionError(f"stream reset: {frame.error_code!r}")
                elif isinstance(frame, HeadersFrame) and frame.stream_id == stream:
                    headers = dict(h2c.decoder.decode(frame.data, raw=True))
                    ended = "END_STREAM" in frame.flags
                elif isinstance(frame, DataFrame) and frame.stream_id == stream:
                    body += frame.data
                    ended = "END_STREAM" in frame.flags
        answer.update(headers=headers, body=body)
        if until_closed:
            answer["closed"] = _closed_by_peer(conn)
        return answer
    finally:
        conn.close()


def _closed_by_peer(conn: SSL.Connection) -> bool:
    """Read until the server closes (C{True}) or the socket's read timeout passes (C{False})."""
    try:
        while conn.recv(65536):
            pass
    except SSL.ZeroReturnError:  # a TLS close_notify
        return True
    except SSL.WantReadError:  # the read timeout passed
        return False
    except SSL.SysCallError as e:  # (-1, 'Unexpected EOF'): closed without close_notify
        return e.args[0] in (-1, errno.ECONNRESET)
    return True


async def _port(service: ProxyService) -> int:
    port = await service.listening[0]._waitingForPort
    return port.getHost().port


class HTTPSFrontendTests(TestCase):
    timeout = 30

    def setUp(self):
        directory = Path(tempfile.mkdtemp())
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(self.cert, self.key)
        self.node = Node("node1")
        return self.start_proxy()

    @defer.inlineCallbacks
    def start_proxy(self, http2=True):
        tls = TLSConfig(str(self.cert), str(self.key))
        config = ProxyConfig(
            listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", tls=tls, http2=http2),),
            balancers=(BalancerConfig("cluster", (MemberConfig(url=self.node.url, route="node1"),)),),
            routes=(RouteConfig("/", "cluster"),),
        )
        self.proxy = ProxyService(config, reactor)
        self.proxy.startService()
        self.port = yield defer.Deferred.fromCoroutine(_port(self.proxy))

    @defer.inlineCallbacks
    def tearDown(self):
        yield self.proxy.stopService()
        yield self.node.stop()

    def in_thread(self, f: Any, *args: Any, **kw: Any) -> defer.Deferred[Any]:
        return threads.deferToThread(f, *args, **kw)

    @defer.inlineCallbacks
    def test_tls_1_1_client_is_refused(self):
        error = yield self.assertFailure(
            self.in_thread(tls_client, self.port, max_version=SSL.TLS1_1_VERSION), SSL.Error
        )
        self.assertIn("protocol version", str(error))
        # The same client allowed TLS 1.2 gets in: the version was the reason.
        conn = yield self.in_thread(tls_client, self.port, max_version=SSL.TLS1_2_VERSION)
        self.assertEqual(conn.get_protocol_version_name(), "TLSv1.2")
        conn.close()

    @defer.inlineCallbacks
    def test_http_1_1_is_negotiated_for_clients_without_h2(self):
        conn = yield self.in_thread(tls_client, self.port, alpn=[b"http/1.1"])
        self.assertEqual(conn.get_alpn_proto_negotiated(), b"http/1.1")
        conn.close()

    @defer.inlineCallbacks
    def test_http2_over_alpn_reaches_the_member(self):
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        negotiated, headers, body = yield self.in_thread(h2_get, self.port, "/session")
        self.assertEqual(negotiated, b"h2")
        self.assertEqual(headers[b":status"], b"200")
        self.assertEqual(json.loads(body)["node"], "node1")
        self.assertIn(b"JSESSIONID=", headers[b"set-cookie"])

    @defer.inlineCallbacks
    def test_h2_is_not_offered_when_the_listener_turns_it_off(self):
        """http2 = false on the listener: a client offering h2 gets HTTP/1.1."""
        yield self.proxy.stopService()
        yield self.start_proxy(http2=False)
        conn = yield self.in_thread(tls_client, self.port, alpn=[b"h2", b"http/1.1"])
        self.assertEqual(conn.get_alpn_proto_negotiated(), b"http/1.1")
        conn.close()

    @defer.inlineCallbacks
    def test_h2_is_not_offered_when_twisted_cannot_serve_it(self):
        """
        With h2 but without priority (no twisted[http2]) twisted.web cannot speak HTTP/2: a
        client offering h2 must get HTTP/1.1, not h2 and a dropped connection.
        """
        yield self.proxy.stopService()
        self.patch(http, "H2_ENABLED", False)
        self.assertFalse(h2_available())
        yield self.start_proxy()
        conn = yield self.in_thread(tls_client, self.port, alpn=[b"h2", b"http/1.1"])
        self.assertEqual(conn.get_alpn_proto_negotiated(), b"http/1.1")
        conn.close()


def test_certificate_that_is_not_pem_is_a_configuration_error(tmp_path: Path) -> None:
    """A certificate file that is not PEM stops start-up with the file, key and problem
    (it used to escape as a raw OpenSSL error)."""
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", tls=TLSConfig(str(cert), str(cert))),),
        balancers=(BalancerConfig("app", (MemberConfig(url="ajp://127.0.0.1:8009", route="a"),)),),
        routes=(RouteConfig("/", "app"),),
    )
    with pytest.raises(ConfigError) as raised:
        ProxyService(config, reactor)
    assert raised.value.key == "listen[0].tls"
    assert str(cert) in raised.value.problem and "not a PEM certificate" in raised.value.problem


class HTTP2GracefulStopTests(TestCase):
    """Stopping with an HTTP/2 stream in flight: GOAWAY first, the stream answered, then close."""

    timeout = 30

    @defer.inlineCallbacks
    def test_stop_sends_goaway_and_answers_the_open_stream(self):
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        slow = FaultyAJPMember(Fault.NONE).start()
        self.addCleanup(slow.stop)
        directory = Path(tempfile.mkdtemp())
        cert, key = directory / "cert.pem", directory / "key.pem"
        make_self_signed(cert, key)
        proxy = ProxyService(
            ProxyConfig(
                listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", tls=TLSConfig(str(cert), str(key))),),
                balancers=(BalancerConfig("app", (MemberConfig(url=slow.url, route="slow"),)),),
                routes=(RouteConfig("/", "app"),),
                shutdown_timeout=10,
            ),
            reactor,
        )
        proxy.startService()
        port = yield defer.Deferred.fromCoroutine(_port(proxy))
        slow.schedule(Fault.STALL_BEFORE_HEADERS)
        pending = threads.deferToThread(h2_exchange, port, "/slow", until_closed=True)
        in_flight = yield wait_until(reactor, lambda: proxy.connections.busy() == 1, 5)
        self.assertTrue(in_flight, "the HTTP/2 stream is not counted in flight")

        done: list[object] = []
        stopped = proxy.stopService().addBoth(done.append)
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(done, [])  # it waits for the open stream
        slow.answer_stalled()
        answer = yield pending
        self.assertEqual(answer["negotiated"], b"h2")
        self.assertEqual(answer["headers"][b":status"], b"200")
        # The first GOAWAY of a graceful shutdown: no error, no new stream; stream 1 is answered.
        self.assertEqual(answer["goaway"], (0, 2**31 - 1))
        self.assertTrue(answer["closed"])
        yield stopped
        gone = yield wait_until(reactor, lambda: len(proxy.connections) == 0, 5)
        self.assertTrue(gone, "the HTTP/2 connection is still tracked")


def _https_get(
    port: int, path: str, client_cert: Path | None = None, client_key: Path | None = None
) -> bytes:
    """One HTTP/1.1 GET over TLS, optionally with a client certificate; the whole answer."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if client_cert is not None:
        context.use_certificate_file(str(client_cert))
        context.use_privatekey_file(str(client_key or client_cert))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(True)  # pyOpenSSL blocks on a blocking socket; SO_RCVTIMEO bounds it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
    conn = SSL.Connection(context, sock)
    conn.set_connect_state()
    try:
        conn.do_handshake()
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        sock.close()


class TLSAttributeTests(TestCase):
    """
    What an AJP member learns of the client's TLS connection: as Apache's
    mod_proxy_ajp sends it, the protocol, cipher, key size, session id
    and, when the client presented one, its certificate chain (Tomcat's
    jakarta.servlet.request.* attributes).
    """

    timeout = 30
    mode = "optional_no_ca"

    def setUp(self) -> defer.Deferred[None]:
        directory = Path(tempfile.mkdtemp())
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"
        self.client_cert, self.client_key = directory / "client.pem", directory / "client-key.pem"
        make_self_signed(self.cert, self.key)
        make_self_signed(self.client_cert, self.client_key, "client.example")
        self.member = FaultyAJPMember().start()
        self.addCleanup(self.member.stop)
        tls = TLSConfig(
            str(self.cert),
            str(self.key),
            client_certificates=self.mode,
            client_ca=None if self.mode == "optional_no_ca" else str(self.client_cert),
        )
        self.proxy = ProxyService(
            ProxyConfig(
                listeners=(ListenerConfig("tcp:0:interface=127.0.0.1", tls=tls),),
                balancers=(BalancerConfig("app", (MemberConfig(url=self.member.url, route="n1"),)),),
                routes=(RouteConfig("/", "app"),),
            ),
            reactor,
        )
        self.proxy.startService()
        return defer.Deferred.fromCoroutine(_port(self.proxy)).addCallback(self._started)

    def _started(self, port: int) -> None:
        self.port = port

    def tearDown(self) -> defer.Deferred[None]:
        return self.proxy.stopService()

    @defer.inlineCallbacks
    def test_client_certificate_and_tls_attributes(self):
        answer = yield threads.deferToThread(
            _https_get, self.port, "/app", self.client_cert, self.client_key
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
        forward = self.member.requests[-1].forward
        self.assertTrue(forward.is_ssl)
        self.assertEqual(forward.ssl_cert, self.client_cert.read_bytes())
        self.assertIsNotNone(forward.ssl_cipher)
        self.assertIn(forward.ssl_key_size, (128, 256))
        # TLS 1.3 (the client's default here) gives every session an id.
        self.assertRegex(forward.ssl_session or b"", rb"^[0-9A-F]{64}$")
        attributes = dict(forward.request_attributes)
        self.assertEqual(attributes[b"AJP_SSL_PROTOCOL"], b"TLSv1.3")

    @defer.inlineCallbacks
    def test_no_certificate_presented(self):
        answer = yield threads.deferToThread(_https_get, self.port, "/app")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
        forward = self.member.requests[-1].forward
        self.assertIsNone(forward.ssl_cert)
        self.assertIsNotNone(forward.ssl_key_size)


    @defer.inlineCallbacks
    def test_http2_streams_get_the_connections_tls_details(self):
        """An HTTP/2 request's channel is a stream without transport: the connection's are used."""
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        negotiated, headers, _ = yield threads.deferToThread(h2_get, self.port, "/app")
        self.assertEqual((negotiated, headers[b":status"]), (b"h2", b"200"))
        forward = self.member.requests[-1].forward
        self.assertEqual(forward.protocol, b"HTTP/2.0")
        self.assertIsNotNone(forward.ssl_cipher)
        self.assertIn(forward.ssl_key_size, (128, 256))
        self.assertRegex(forward.ssl_session or b"", rb"^[0-9A-F]{64}$")
        self.assertEqual(dict(forward.request_attributes)[b"AJP_SSL_PROTOCOL"], b"TLSv1.3")


class RequiredClientCertificateTests(TLSAttributeTests):
    """C{require} with the client's CA: a client without a certificate does not get in."""

    mode = "require"

    @defer.inlineCallbacks
    def test_http2_streams_get_the_connections_tls_details(self):
        """The HTTP/2 test client presents no certificate: it does not get in either."""
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        yield self.assertFailure(threads.deferToThread(h2_get, self.port, "/app"), Exception)
        self.assertEqual(self.member.requests, [])

    @defer.inlineCallbacks
    def test_no_certificate_presented(self):
        failed = yield threads.deferToThread(_https_get, self.port, "/app").addErrback(
            lambda f: f.value
        )
        if isinstance(failed, bytes):
            # TLS 1.3: the refusal arrives as an alert after the client's handshake ended.
            self.assertEqual(failed, b"")
        else:
            self.assertIsInstance(failed, SSL.Error)
        self.assertEqual(self.member.requests, [])


class HTTP2ProtocolTests(HTTPSFrontendTests):
    @defer.inlineCallbacks
    def test_http2_reaches_ajp_as_http_2_0(self):
        """AJP's protocol field says HTTP/2.0 for an HTTP/2 client (as mod_proxy_ajp does)."""
        if not h2_available():
            raise SkipTest("the h2 package is not installed: HTTP/2 is not offered")
        negotiated, headers, body = yield self.in_thread(h2_get, self.port, "/echo")
        self.assertEqual(negotiated, b"h2")
        self.assertEqual(json.loads(body)["protocol"], "HTTP/2.0")
