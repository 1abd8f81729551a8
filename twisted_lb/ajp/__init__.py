"""
A sans-IO AJP/1.3 codec: the protocol between a web server (the proxy) and a
servlet container such as Apache Tomcat.

It performs no I/O and imports nothing from Twisted; the Twisted adapter
feeds it bytes and writes out what it returns::

    conn = AJPConnection(Role.PROXY)
    transport.write(conn.send(ForwardRequest(b"GET", b"/app/", headers=...)))
    conn.receive_data(data)
    while (event := conn.next_event()) is not NEED_DATA:
        ...
"""

from __future__ import annotations

from ._connection import AJPConnection
from ._constants import DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, reason_phrase
from ._state import NEED_DATA, Role, State
from .errors import AJPProtocolError, LocalProtocolError, RemoteProtocolError, RequestTooLarge
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

__all__ = [
    "DEFAULT_PACKET_SIZE",
    "MAX_PACKET_SIZE",
    "NEED_DATA",
    "AJPConnection",
    "AJPProtocolError",
    "CPing",
    "CPong",
    "ConnectionClosed",
    "EndResponse",
    "Event",
    "ForwardRequest",
    "GetBodyChunk",
    "LocalProtocolError",
    "Ping",
    "RemoteProtocolError",
    "RequestBody",
    "RequestTooLarge",
    "Role",
    "SendBodyChunk",
    "SendHeaders",
    "Shutdown",
    "State",
    "reason_phrase",
]
