"""
The AJP/1.3 connection, sans-IO (after h11's C{Connection}).

Which message may come when is decided by the table in
L{twisted_lb.ajp._state}; this module adds the guards the table cannot
express and keeps the per-exchange counters (body grants, Content-Length).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import ClassVar, Literal

from . import _decode, _encode
from ._constants import (
    BODY_OVERHEAD,
    CHUNK_OVERHEAD,
    CONTAINER_MAGIC,
    DEFAULT_PACKET_SIZE,
    MAX_PACKET_SIZE,
    MIN_PACKET_SIZE,
    PROXY_MAGIC,
    SEND_BODY_CHUNK,
)
from ._framing import PacketReader
from ._state import (
    CLOSABLE,
    CONTAINER_PAUSED,
    MESSAGE_NAMES,
    NEED_DATA,
    TRANSITIONS,
    Role,
    State,
    _Sentinel,
)
from .errors import AJPProtocolError, LocalProtocolError, RemoteProtocolError
from .events import (
    ConnectionClosed,
    CPing,
    CPong,
    EndResponse,
    Event,
    ForwardRequest,
    GetBodyChunk,
    Ping,
    RequestBody,
    SendBodyChunk,
    SendHeaders,
    Shutdown,
)

__all__ = ["AJPConnection"]

_P, _C = Role.PROXY, Role.CONTAINER


_ENCODERS: dict[type, Callable[[object, int], bytes]] = {
    RequestBody: lambda e, size: _encode.encode_request_body(e),  # type: ignore[arg-type]
    SendBodyChunk: lambda e, size: _encode.encode_send_body_chunk(e),  # type: ignore[arg-type]
    GetBodyChunk: lambda e, size: _encode.encode_get_body_chunk(e),  # type: ignore[arg-type]
    SendHeaders: _encode.encode_send_headers,  # type: ignore[dict-item]
    EndResponse: lambda e, size: _encode.encode_end_response(e),  # type: ignore[arg-type]
    CPing: lambda e, size: _encode.CPING_PACKET,
    CPong: lambda e, size: _encode.CPONG_PACKET,
    Shutdown: lambda e, size: _encode.SHUTDOWN_PACKET,
    Ping: lambda e, size: _encode.PING_PACKET,
}


class AJPConnection:
    """
    One end of an AJP/1.3 connection: bytes in, events out; events in,
    bytes out.  It performs no I/O.

    Receiving::

        conn.receive_data(data)          # b"" means end of file
        while (event := conn.next_event()) is not NEED_DATA:
            ...

    Sending: C{transport.write(conn.send(event))}.

    A L{LocalProtocolError} from L{send} leaves the connection unchanged; a
    L{RemoteProtocolError} from L{next_event} puts it in L{State.ERROR} for
    good.

    Deliberate choices:
      - A proxy sends a body packet only against a grant: one right after a
        FORWARD_REQUEST whose Content-Length is above 0, one per
        GET_BODY_CHUNK.  After the empty end-of-body packet only empty
        packets may follow (answering further asks, as httpd does), and
        never more bytes than the Content-Length.
      - A FORWARD_REQUEST with a Transfer-Encoding header is refused: AJP
        has no chunked framing, so the caller drops the header, sends no
        Content-Length and answers each GET_BODY_CHUNK.
      - END_RESPONSE before SEND_HEADERS is a protocol error.  END_RESPONSE
        with reuse=1 while a granted body packet is still unsent leads to
        L{State.MUST_CLOSE}: the container might still wait for it.
      - A proxy drops empty SEND_BODY_CHUNKs (flushes) arriving after
        END_RESPONSE, until the next other message (mod_jk bug 49413).
    """

    def __init__(self, role: Role, packet_size: int = DEFAULT_PACKET_SIZE) -> None:
        """
        @param role: which end we are.
        @param packet_size: the maximum packet size, header included; it
            must equal the peer's (Tomcat C{packetSize}).
        @raise ValueError: if C{packet_size} is outside 8192..65536.
        """
        if not isinstance(role, Role):
            raise TypeError(f"role must be a Role, not {role!r}")
        if (
            not isinstance(packet_size, int)
            or isinstance(packet_size, bool)
            or not MIN_PACKET_SIZE <= packet_size <= MAX_PACKET_SIZE
        ):
            raise ValueError(
                f"packet_size must be an integer in {MIN_PACKET_SIZE}..{MAX_PACKET_SIZE}, "
                f"not {packet_size!r}"
            )
        self._role = role
        self._peer = _C if role is _P else _P
        self._packet_size = packet_size
        self._max_body = packet_size - BODY_OVERHEAD
        self._max_chunk = packet_size - CHUNK_OVERHEAD
        self._reader = PacketReader(CONTAINER_MAGIC if role is _P else PROXY_MAGIC, packet_size)
        self._state = State.IDLE
        self._eof = False
        # A proxy drops empty SEND_BODY_CHUNKs that trail END_RESPONSE.
        self._flush_tolerated = False
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        """
        Forget everything about the current exchange.
        """
        # Body packets the container may receive: the size limit of each.
        self._grants: deque[int] = deque()
        self._content_length: int | None = None
        self._body_length = 0
        self._body_ended = False
        self._requested = 0
        self._response_started = False

    @property
    def role(self) -> Role:
        """
        Which end we are.
        """
        return self._role

    @property
    def packet_size(self) -> int:
        """
        The maximum packet size, header included.
        """
        return self._packet_size

    @property
    def state(self) -> State:
        """
        The state of the current exchange.
        """
        return self._state

    @property
    def reusable(self) -> bool:
        """
        Whether the exchange is complete and END_RESPONSE had reuse=1, so
        that L{start_next_cycle} may be called.
        """
        return self._state is State.DONE and not self._grants

    @property
    def body_packets_allowed(self) -> int:
        """
        How many request body packets may be sent (proxy) or are expected
        (container) now: one after a FORWARD_REQUEST with a Content-Length
        above 0 until the first body packet, plus one per GET_BODY_CHUNK.
        """
        return len(self._grants)

    @property
    def requested_body_length(self) -> int:
        """
        The length asked by the last GET_BODY_CHUNK, clamped to
        C{packet_size - 6}; 0 before any.
        """
        return self._requested

    @property
    def response_started(self) -> bool:
        """
        Whether SEND_HEADERS was sent or received in this exchange.
        """
        return self._response_started

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """
        The received bytes not yet parsed, and whether end of file was seen.
        """
        return self._reader.buffered(), self._eof

    def receive_data(self, data: bytes) -> None:
        """
        Add received bytes; nothing is parsed until L{next_event}.

        @param data: the bytes, or C{b""} for end of file.
        @raise LocalProtocolError: if data follows end of file.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("received data after end of file")
        elif data:
            self._reader.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event | Literal[_Sentinel.NEED_DATA]:
        """
        Parse the next message.

        A container expecting no body packet does not parse bytes that
        arrive while it owes an answer (CPONG) or before the next cycle; it
        returns L{NEED_DATA} for them.

        @return: the next event, L{NEED_DATA}, or L{ConnectionClosed} (again
            and again) once the peer closed between exchanges.
        @raise RemoteProtocolError: if the peer broke the protocol, including
            closing the connection within a packet or an exchange.
        """
        if self._state is State.ERROR:
            raise RemoteProtocolError("the connection is in the ERROR state")
        try:
            while True:
                event = self._read_event()
                if event is not None:
                    return event
        except RemoteProtocolError:
            self._state = State.ERROR
            raise

    def next_body_data(self) -> list[bytes | memoryview]:
        """
        For a proxy whose response has started: the data of the
        SEND_BODY_CHUNK packets at the front of what was received, in order,
        read in one call without an event per packet (flushes, which carry
        no data, are skipped). Stops before anything else, which
        L{next_event} then returns. The same checks apply as to the events.

        @return: the chunks' data (memoryviews of the received bytes when a
            packet came whole), possibly empty.
        @raise RemoteProtocolError: as L{next_event}.
        """
        if self._role is not _P or self._state is not State.IN_EXCHANGE or not self._response_started:
            return []
        chunks: list[bytes | memoryview] = []
        next_payload = self._reader.next_payload
        max_chunk = self._max_chunk
        try:
            while (payload := next_payload(SEND_BODY_CHUNK)) is not None:
                data = _decode.send_body_chunk_data(payload)
                if len(data) > max_chunk:
                    raise RemoteProtocolError(
                        f"SEND_BODY_CHUNK of {len(data)} bytes, at most {max_chunk} fit"
                    )
                if data:
                    chunks.append(data)
        except RemoteProtocolError:
            self._state = State.ERROR
            raise
        return chunks

    def _read_event(self) -> Event | Literal[_Sentinel.NEED_DATA] | None:
        """
        Parse at most one packet.

        @return: as L{next_event}, or C{None} for a dropped packet.
        """
        state = self._state
        if state is State.CLOSED:
            return ConnectionClosed()
        reader = self._reader
        container = self._role is _C
        body = container and bool(self._grants)
        if container and not body and state in CONTAINER_PAUSED and len(reader):
            return NEED_DATA
        payload = reader.next_payload()
        if payload is None:
            return self._end_of_file() if self._eof else NEED_DATA
        event: Event
        if not container:
            event = _decode.decode_container_message(payload)
            if self._flush_tolerated:
                if type(event) is SendBodyChunk and not event.data:
                    return None
                self._flush_tolerated = False
        elif body:
            event = _decode.decode_request_body(payload)
        else:
            event = _decode.decode_proxy_message(payload)
        etype = type(event)
        new_state = TRANSITIONS.get((self._peer, state, etype))
        if new_state is None:
            raise RemoteProtocolError(f"unexpected {MESSAGE_NAMES[etype]} in state {state.name}")
        if etype is ForwardRequest:
            self._begin_exchange(_decode.content_length_of(event.headers))  # type: ignore[union-attr]
        else:
            self._APPLIERS[etype](self, event, RemoteProtocolError, new_state)
        return event

    def _end_of_file(self) -> ConnectionClosed:
        """
        Handle end of file once every complete packet was parsed.

        @return: L{ConnectionClosed} if the peer closed between exchanges.
        @raise RemoteProtocolError: if it closed within a packet or exchange.
        """
        if len(self._reader):
            raise RemoteProtocolError("connection closed in the middle of a packet")
        if self._state not in CLOSABLE:
            raise RemoteProtocolError(f"connection closed in state {self._state.name}")
        self._state = State.CLOSED
        return ConnectionClosed()

    def send(self, event: Event) -> bytes:
        """
        Encode an event, checking that it is allowed now.

        @param event: the event to send.
        @return: the bytes to write to the transport.
        @raise RequestTooLarge: if a L{ForwardRequest} does not fit in one
            packet (the state is unchanged).
        @raise LocalProtocolError: if the event is not allowed in the current
            state or cannot be encoded; nothing changes.
        """
        etype = type(event)
        new_state = TRANSITIONS.get((self._role, self._state, etype))
        if new_state is None:
            raise LocalProtocolError(
                f"a {self._role.name} cannot send {MESSAGE_NAMES.get(etype, etype.__name__)} "
                f"in state {self._state.name}"
            )
        if etype is ForwardRequest:
            data, length = _encode.encode_forward_request(event, self._packet_size)  # type: ignore[arg-type]
            self._begin_exchange(length)
            return data
        try:
            data = _ENCODERS[etype](event, self._packet_size)
        except (TypeError, ValueError) as e:
            raise LocalProtocolError(f"cannot encode {MESSAGE_NAMES[etype]}: {e}") from e
        self._APPLIERS[etype](self, event, LocalProtocolError, new_state)
        return data

    def start_next_cycle(self) -> None:
        """
        Reset to L{State.IDLE} after a reusable exchange.

        @raise LocalProtocolError: unless L{reusable}.
        """
        if not self.reusable:
            raise LocalProtocolError(
                f"cannot start a new cycle in state {self._state.name}"
                + (" with body packets outstanding" if self._grants else "")
            )
        self._reset_exchange()
        self._state = State.IDLE

    # Guards and state updates, shared by send() and next_event().  Each one
    # raises before changing anything.

    def _begin_exchange(self, content_length: int | None) -> None:
        """
        @param content_length: the request's Content-Length, if any; above 0
            the first body packet follows unasked.
        """
        self._content_length = content_length
        if content_length:
            self._grants.append(self._max_body)
        self._state = State.IN_EXCHANGE

    def _apply_simple(self, event: Event, error: type[AJPProtocolError], state: State) -> None:
        """
        Move to the table's state (CPING, CPONG, SHUTDOWN, PING).
        """
        self._state = state

    def _apply_request_body(
        self, event: RequestBody, error: type[AJPProtocolError], state: State
    ) -> None:
        """
        Spend one grant on a body packet.
        """
        n = len(event.data)
        if not self._grants:
            raise error("request body packet the container did not ask for")
        limit = self._grants[0]
        if n > limit:
            raise error(f"request body packet of {n} bytes, only {limit} allowed")
        if n and self._body_ended:
            raise error("request body data after the end-of-body packet")
        total = self._body_length + n
        if self._content_length is not None and total > self._content_length:
            raise error(f"request body longer than its Content-Length {self._content_length}")
        self._grants.popleft()
        self._body_length = total
        if not n:
            self._body_ended = True
        self._state = state

    def _apply_get_body_chunk(
        self, event: GetBodyChunk, error: type[AJPProtocolError], state: State
    ) -> None:
        """
        Grant one body packet of at most the requested length.
        """
        self._requested = min(event.length, self._max_body)
        self._grants.append(self._requested)

    def _apply_send_headers(
        self, event: SendHeaders, error: type[AJPProtocolError], state: State
    ) -> None:
        """
        Start the response, once.
        """
        if self._response_started:
            raise error("SEND_HEADERS after the response started")
        self._response_started = True

    def _apply_send_body_chunk(
        self, event: SendBodyChunk, error: type[AJPProtocolError], state: State
    ) -> None:
        """
        Accept body bytes of a started response.
        """
        if not self._response_started:
            raise error("SEND_BODY_CHUNK before SEND_HEADERS")
        if len(event.data) > self._max_chunk:
            raise error(
                f"SEND_BODY_CHUNK of {len(event.data)} bytes, at most {self._max_chunk} fit"
            )

    def _apply_end_response(
        self, event: EndResponse, error: type[AJPProtocolError], state: State
    ) -> None:
        """
        End the exchange.  A proxy that still holds grants will never send
        those packets, so the connection cannot be reused; a container keeps
        its grants and reads the body packets still in flight.
        """
        if not self._response_started:
            raise error("END_RESPONSE before SEND_HEADERS")
        reuse = event.reuse
        if self._role is _P:
            reuse = reuse and not self._grants
            self._grants.clear()
            self._flush_tolerated = True
        self._state = state if reuse else State.MUST_CLOSE

    _APPLIERS: ClassVar[dict[type, Callable[..., None]]] = {
        RequestBody: _apply_request_body,
        SendBodyChunk: _apply_send_body_chunk,
        GetBodyChunk: _apply_get_body_chunk,
        SendHeaders: _apply_send_headers,
        EndResponse: _apply_end_response,
        CPing: _apply_simple,
        CPong: _apply_simple,
        Shutdown: _apply_simple,
        Ping: _apply_simple,
    }
