"""
The one place that reaches into private attributes of Twisted, Autobahn or
pyOpenSSL. Each use has a probe in C{tests/test_compat.py} that fails
loudly when a release changes what it relies on.

Sections belong to the parts of twisted_lb that need them; keep each in its
own commented block, saying which release it was written against.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import tcp
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.web import client as _web_client

from twisted_lb.sendnow import send_now

try:
    from twisted.web._http2 import H2Connection
except ImportError:  # twisted[http2] (h2, priority) is not installed: HTTP/2 is never offered
    H2Connection = object  # type: ignore[assignment,misc]

__all__ = [
    "quiet_pool_factory",
    "listening_port",
    "raise_listen_errors",
]


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
# -- TLS session id (pyOpenSSL) ----------------------------------------------
#
# pyOpenSSL has no accessor for a session's id, and the bindings it uses
# (cryptography's) do not export SSL_SESSION_get_id. i2d_SSL_SESSION does:
# the DER form of a session (OpenSSL's SSL_SESSION_ASN1) starts
# SEQUENCE { version INTEGER, ssl_version INTEGER, cipher OCTET STRING,
# session_id OCTET STRING, master_key OCTET STRING, ... }; the id is read
# from it and the rest (the master key) is dropped at once. Used for AJP's
# ssl_session attribute (Apache's SSL_SESSION_ID).


def _der_item(data: bytes, offset: int) -> tuple[int, int, int]:
    """The tag, the start of the value and its end, of the DER item at C{offset}."""
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, offset, end


def tls_session_id(connection: Any) -> bytes | None:
    """
    The id of the TLS session of a pyOpenSSL C{Connection}, in upper-case
    hex as Apache's C{SSL_SESSION_ID}, or C{None} when there is none.
    """
    from OpenSSL.SSL import _ffi, _lib

    session = _lib.SSL_get_session(connection._ssl)
    if session == _ffi.NULL:
        return None
    size = _lib.i2d_SSL_SESSION(session, _ffi.NULL)
    if size <= 0:
        return None
    buffer = _ffi.new("unsigned char[]", size)
    pointer = _ffi.new("unsigned char **", buffer)
    if _lib.i2d_SSL_SESSION(session, pointer) != size:
        return None
    der = bytes(_ffi.buffer(buffer, size))
    try:
        tag, offset, end = _der_item(der, 0)
        if tag != 0x30:
            return None
        for expected in (0x02, 0x02, 0x04):  # version, ssl_version, cipher
            tag, _, offset = _der_item(der, offset)
            if tag != expected:
                return None
        tag, start, stop = _der_item(der, offset)
    except (ValueError, IndexError):
        return None
    finally:
        _ffi.memmove(buffer, b"\0" * size, size)
    if tag != 0x04 or start == stop:
        return None
    return der[start:stop].hex().upper().encode("ascii")


# -- end of TLS session id -----------------------------------------------------


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
# Twisted (26.10.0) and pyOpenSSL (26.4): the TLS legs of the WebSocket relay
# (twisted_lb.websocket.relay), a TLS write and a TLS read without detours.
#
# Write: Twisted's TLS transport (BufferingTLSTransport) keeps small writes
# for a later turn of the reactor (callLater(0)) to encrypt them together,
# and the TCP transport under it buffers the encrypted bytes until a further
# turn finds the socket writable (two epoll_ctl calls a write). The relay
# writes once per read anyway, so it encrypts at once (after whatever Twisted
# still held, to keep the order) and sends the record straight to the socket
# when nothing else is queued there (twisted_lb.sendnow); whatever the
# kernel does not take goes to the TCP transport's buffer as before.
#
# Read: Twisted's TLS transport reads the decrypted bytes until pyOpenSSL
# raises WantReadError, then asks the outgoing BIO for bytes, which raises
# WantReadError again when there are none: two exceptions a received record,
# more than the decryption costs. The relay's read asks OpenSSL how many
# bytes wait in each memory BIO instead (BIO_get_mem_data), and hands
# anything unusual (a record not yet complete, close_notify, an error, a
# handshake) to Twisted's own code.
# ---------------------------------------------------------------------------

_TCP_TRANSPORTS = frozenset({tcp.Server, tcp.Client})

#: The largest plaintext of one TLS record (what Twisted encrypts per call too).
_TLS_RECORD = 2**14

_bio_get_mem_data = SSL._lib.BIO_get_mem_data  # type: ignore[attr-defined]
_NULL = SSL._ffi.NULL  # type: ignore[attr-defined]


def _bio_pending(bio: Any) -> int:
    """The bytes waiting in C{bio}, a memory BIO of a pyOpenSSL C{Connection}."""
    return int(_bio_get_mem_data(bio, _NULL))


def _tls_ready(transport: Any) -> bool:
    """Whether C{transport} is a TLS connection in its plain steady state (handshake done, open)."""
    return bool(
        transport._handshakeDone
        and not transport._appSendBuffer
        and not transport._lostTLSConnection
        and not transport.disconnecting
    )


def tls_write_now(transport: Any, data: bytes) -> None:
    """Write C{data} to C{transport}, a TLS transport, and send it at once when that is safe."""
    aggregator = getattr(transport, "_aggregator", None)
    if aggregator is not None:
        aggregator.flush()  # what Twisted held back goes first
    under = transport.transport
    if not _tls_ready(transport):
        TLSMemoryBIOProtocol.write(transport, data)
        _flush_tcp(under)
        return
    connection = transport._tlsConnection
    size = len(data)
    done = 0
    try:
        while done < size:
            done += connection.send(data[done : done + _TLS_RECORD] if size > _TLS_RECORD else data)
    except SSL.Error:
        # A renegotiation wants to read first, or the connection broke:
        # Twisted buffers the rest or ends the connection, as for any write.
        _send_encrypted(transport, connection, under)
        TLSMemoryBIOProtocol.write(transport, data[done:])
        _flush_tcp(under)
        return
    _send_encrypted(transport, connection, under)


def _send_encrypted(transport: Any, connection: Any, under: Any) -> None:
    """Send what C{connection} encrypted, straight to the socket when nothing else is queued."""
    waiting = _bio_pending(connection._from_ssl)
    if waiting:
        send_now(under, connection.bio_read(waiting))


def tls_read_directly(transport: Any) -> None:
    """
    Have C{transport}, a TLS transport, hand the bytes it decrypts to its
    protocol without the exceptions of Twisted's read loop (see above).
    """
    transport.dataReceived = _DirectTLSRead(transport)


class _DirectTLSRead:
    """C{dataReceived} of one TLS transport (see L{tls_read_directly})."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def __call__(self, data: bytes) -> None:
        transport = self._transport
        if not _tls_ready(transport):
            TLSMemoryBIOProtocol.dataReceived(transport, data)
            return
        connection = transport._tlsConnection
        connection.bio_write(data)
        incoming = connection._into_ssl
        while not transport._lostTLSConnection:
            try:
                plain = connection.recv(2**15)
            except SSL.WantReadError:
                break  # the rest of a record is still on its way
            except SSL.Error:
                # close_notify or a broken record: Twisted's own handling
                # (it reads again and meets the same condition).
                transport._flushReceiveBIO()
                return
            if not transport._aborted:
                transport.wrappedProtocol.dataReceived(plain)
            if not connection.pending() and not _bio_pending(incoming):
                break
        if _bio_pending(connection._from_ssl):  # an alert or a key update to answer
            transport._flushSendBIO()


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


#: The private names used above, checked by tests/test_compat.py.
TLS_TRANSPORT_PRIVATE = (
    "_tlsConnection",
    "_handshakeDone",
    "_appSendBuffer",
    "_lostTLSConnection",
    "_aborted",
    "_flushReceiveBIO",
    "_flushSendBIO",
)
PYOPENSSL_CONNECTION_PRIVATE = ("_into_ssl", "_from_ssl")


# --- end of the Twisted TLS section -----------------------------------------

# ---------------------------------------------------------------------------
# HTTP members (twisted_lb.backends.http), Twisted 26.10: the response parser
# of twisted.web's HTTP/1.1 client (twisted.web._newclient).
#
# Twisted's Headers replace CR and LF inside a field with spaces as they
# store it; a member's raw field is seen only by the parser's
# headerReceived, on the parser HTTP11ClientProtocol keeps in _parser while
# a response is read.
# ---------------------------------------------------------------------------


def on_raw_response_field(protocol: Any, check: Any) -> None:
    """
    Have C{check(name, value)} called with each raw header field of the
    response C{protocol} (an C{HTTP11ClientProtocol} whose request was just
    issued) reads, before Twisted stores it; an exception C{check} raises
    fails the response as a broken one (C{ResponseFailed}) and closes the
    connection.
    """
    parser = protocol._parser
    if parser is None:
        return
    store = parser.headerReceived

    def checked(name: bytes, value: bytes) -> None:
        check(name, value)
        store(name, value)

    parser.headerReceived = checked


# --- end of the HTTP members section ----------------------------------------


# -- HTTP/2 stream -> connection (Twisted) --------------------------------------
#
# A request over HTTP/2 has an H2Stream as its channel, whose transport is
# None: the TLS connection (for AJP's SSL attributes) is its H2Connection's,
# which Twisted keeps in the private _conn.


def h2_connection_of(channel: Any) -> Any | None:
    """
    The C{H2Connection} of a request's channel when it is Twisted's
    C{H2Stream}, else C{None}.
    """
    return getattr(channel, "_conn", None)


# -- end of HTTP/2 stream -> connection ------------------------------------------


# ---------------------------------------------------------------------------
# Twisted (26.10.0): twisted.web's HTTPChannel, whose connection the fast lane
# (twisted_lb.frontend) borrows between two requests: it checks that the
# channel holds nothing of a request, marks the channel busy while it
# answers (so that what arrives meanwhile is held, as twisted.web holds
# pipelined requests), and hands the held bytes back afterwards.
# ---------------------------------------------------------------------------

#: The private names of C{twisted.web.http.HTTPChannel} used below (the probe
#: test checks each one on a live channel).
HTTP_CHANNEL_PRIVATE_NAMES = (
    "_HTTPChannel__first_line",
    "_buffer",
    "_handlingRequest",
    "_waitingForTransport",
    "_networkProducer",
    "_dataBuffer",
)


def channel_between_requests(channel: Any) -> bool:
    """
    Whether C{channel} holds nothing of a request: reading lines, no partial
    line, no request object, waiting for a request line.
    """
    return bool(
        channel.line_mode
        and not channel._handlingRequest
        and not channel._buffer
        and not channel.requests
        and channel._HTTPChannel__first_line
    )


def channel_expects_request_line(channel: Any) -> bool:
    """Whether C{channel}'s next line is a request line (not a header)."""
    return bool(channel._HTTPChannel__first_line)


def channel_hold(channel: Any) -> None:
    """Mark C{channel} busy with a request: what arrives meanwhile is held."""
    channel._handlingRequest = True


def channel_hold_bytes(channel: Any, data: bytes) -> None:
    """Hold C{data} (the next request's) until L{channel_release}; stop reading meanwhile."""
    channel._dataBuffer.append(data)
    if channel.transport is not None:
        channel.transport.pauseProducing()


def channel_resume_reading(channel: Any) -> None:
    """Read again from C{channel}'s client, unless the client is not reading its answers."""
    if not channel._waitingForTransport:
        channel._networkProducer.resumeProducing()


def channel_release(channel: Any) -> bytes:
    """The channel is free for the next request: the bytes held for it."""
    channel._handlingRequest = False
    data = b"".join(channel._dataBuffer)
    channel._dataBuffer = []
    return data


# --- end of the HTTPChannel section --------------------------------------------


# --- operator experience: quiet client factories, listening ports ----------
# Read from Twisted 26.10.


class _QuietHTTP11ClientFactory(_web_client._HTTP11ClientFactory):
    """Twisted's factory of one pooled HTTP connection, without its log lines."""

    noisy = False


def quiet_pool_factory(quiescent_callback: Any, metadata: Any) -> Any:
    """
    What L{twisted.web.client.HTTPConnectionPool} calls (its private
    C{_factory}) to make the factory of each new connection: Twisted's own,
    with C{noisy = False}, so that a connection (a health check's, say) logs
    no "Starting factory"/"Stopping factory" lines. Assign it to a pool's
    C{_factory}.
    """
    return _QuietHTTP11ClientFactory(quiescent_callback, metadata)


def raise_listen_errors(service: StreamServerEndpointService) -> None:
    """
    Make C{service} raise what C{listen} raises (a port in use) from
    C{privilegedStartService}/C{startService}, instead of only logging it:
    Twisted's private C{_raiseSynchronously}, which twistd's own C{strports}
    services set.
    """
    service._raiseSynchronously = True


def listening_port(service: StreamServerEndpointService) -> IListeningPort | None:
    """
    The port a started L{StreamServerEndpointService} listens on, or C{None}
    when it is not listening (yet, or any more, or it could not).

    Twisted keeps the C{listen} outcome in the private C{_waitingForPort}.
    """
    waiting = getattr(service, "_waitingForPort", None)
    if waiting is None or not waiting.called:
        return None
    port = getattr(waiting, "result", None)
    return port if IListeningPort.providedBy(port) else None


# --- end of operator experience ---------------------------------------------
