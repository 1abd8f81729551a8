"""
The states of an AJP/1.3 connection and the table of legal messages.

Rule 1 (after h11's C{_state.py}): the L{TRANSITIONS} table here says which
event type each role may send in which state; the guards in
L{twisted_lb.ajp._connection} only add conditions a table cannot express (a
body packet needs a grant, SEND_HEADERS comes once, ...).

Rule 2: the same table serves both directions.  Sending looks up our own
role, receiving looks up the peer's, so a L{Role.PROXY} connection and a
L{Role.CONTAINER} connection fed each other's bytes always agree.

AJP runs one exchange at a time, so a single L{State} describes both sides.
"""

from __future__ import annotations

import enum

from .events import (
    CPing,
    CPong,
    EndResponse,
    ForwardRequest,
    GetBodyChunk,
    Ping,
    RequestBody,
    SendBodyChunk,
    SendHeaders,
    Shutdown,
)

__all__ = [
    "CLOSABLE",
    "CONTAINER_PAUSED",
    "MESSAGE_NAMES",
    "NEED_DATA",
    "TRANSITIONS",
    "Role",
    "State",
]


class Role(enum.Enum):
    """
    Which end of the AJP connection we are.
    """

    #: The web server side: sends FORWARD_REQUEST, CPING and body packets.
    PROXY = "proxy"
    #: The servlet container side (Tomcat): sends the response messages.
    CONTAINER = "container"

    # Members are singletons compared by identity: hash them in C, not by
    # Enum.__hash__ (Python code run twice per packet in TRANSITIONS.get).
    __hash__ = object.__hash__


class State(enum.Enum):
    """
    The state of the current exchange, shared by both ends.
    """

    #: No exchange: the proxy may send CPING or FORWARD_REQUEST.
    IDLE = "IDLE"
    #: CPING sent, CPONG not yet received.
    AWAIT_CPONG = "AWAIT_CPONG"
    #: FORWARD_REQUEST sent, END_RESPONSE not yet received.
    IN_EXCHANGE = "IN_EXCHANGE"
    #: END_RESPONSE with reuse=1: L{AJPConnection.start_next_cycle} may be
    #: called.
    DONE = "DONE"
    #: The exchange is over and the connection must be closed.
    MUST_CLOSE = "MUST_CLOSE"
    #: The peer closed the connection between exchanges.
    CLOSED = "CLOSED"
    #: The peer broke the protocol; the connection is unusable.
    ERROR = "ERROR"

    __hash__ = object.__hash__  # see Role


class _Sentinel(enum.Enum):
    """
    The type of L{NEED_DATA}.
    """

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return self.value

    __str__ = __repr__


#: Returned by L{AJPConnection.next_event} when more bytes are needed.
NEED_DATA = _Sentinel.NEED_DATA

_P, _C = Role.PROXY, Role.CONTAINER
_S = State

#: (sending role, state, event type) -> the state afterwards.  Guards in
#: C{_apply_*} may refuse the event or pick another state (END_RESPONSE with
#: reuse=0 leads to MUST_CLOSE).
TRANSITIONS: dict[tuple[Role, State, type], State] = {
    (_P, _S.IDLE, CPing): _S.AWAIT_CPONG,
    (_P, _S.IDLE, ForwardRequest): _S.IN_EXCHANGE,
    (_P, _S.IDLE, Shutdown): _S.MUST_CLOSE,
    (_P, _S.IDLE, Ping): _S.MUST_CLOSE,
    (_P, _S.IN_EXCHANGE, RequestBody): _S.IN_EXCHANGE,
    # Only reachable for a container still owed body packets it granted.
    (_P, _S.DONE, RequestBody): _S.DONE,
    (_P, _S.MUST_CLOSE, RequestBody): _S.MUST_CLOSE,
    (_C, _S.AWAIT_CPONG, CPong): _S.IDLE,
    (_C, _S.IN_EXCHANGE, GetBodyChunk): _S.IN_EXCHANGE,
    (_C, _S.IN_EXCHANGE, SendHeaders): _S.IN_EXCHANGE,
    (_C, _S.IN_EXCHANGE, SendBodyChunk): _S.IN_EXCHANGE,
    (_C, _S.IN_EXCHANGE, EndResponse): _S.DONE,
}

#: States in which a container that expects no body packet leaves received
#: bytes alone until it has sent its answer or started the next cycle.
CONTAINER_PAUSED = frozenset((_S.AWAIT_CPONG, _S.DONE, _S.MUST_CLOSE))
#: States in which the peer may close the connection without error.
CLOSABLE = frozenset((_S.IDLE, _S.DONE, _S.MUST_CLOSE))

MESSAGE_NAMES: dict[type, str] = {
    ForwardRequest: "FORWARD_REQUEST",
    RequestBody: "request body packet",
    SendHeaders: "SEND_HEADERS",
    SendBodyChunk: "SEND_BODY_CHUNK",
    GetBodyChunk: "GET_BODY_CHUNK",
    EndResponse: "END_RESPONSE",
    CPing: "CPING",
    CPong: "CPONG_REPLY",
    Shutdown: "SHUTDOWN",
    Ping: "PING",
}
