"""
Test helpers for the AJP codec: a PROXY/CONTAINER connection pair (after
h11's C{tests/helpers.py::ConnectionPair}).
"""

from __future__ import annotations

import attrs

from twisted_lb.ajp import (
    NEED_DATA,
    AJPConnection,
    CPing,
    Event,
    ForwardRequest,
    Ping,
    RequestBody,
    Role,
    Shutdown,
)

#: Events only the proxy sends; every other event is sent by the container.
PROXY_EVENTS = (ForwardRequest, RequestBody, CPing, Shutdown, Ping)


def sender_role(event: Event) -> Role:
    """
    @param event: an event.
    @return: the role that sends it.
    """
    return Role.PROXY if isinstance(event, PROXY_EVENTS) else Role.CONTAINER


def drain(conn: AJPConnection) -> list[object]:
    """
    Collect events until the connection needs data.

    @param conn: the connection.
    @return: the events.
    """
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if len(events) > 10_000:
            raise AssertionError("next_event() does not terminate")
    return events


def bytes_fields_are_bytes(event: object) -> bool:
    """
    Check that every bytes-like value inside an event is exactly C{bytes},
    or (a received body chunk's data) a read-only view of C{bytes}: nothing
    that can change under the receiver.

    @param event: an event.
    @return: whether no C{bytearray} or view of a mutable buffer hides in it.
    """

    def ok(value: object) -> bool:
        if isinstance(value, memoryview):
            return value.readonly and type(value.obj) is bytes
        if isinstance(value, bytearray):
            return False
        if isinstance(value, tuple):
            return all(ok(v) for v in value)
        return True

    return all(ok(getattr(event, f.name)) for f in attrs.fields(type(event)))


class ConnectionPair:
    """
    A PROXY connection and a CONTAINER connection wired back to back.
    """

    def __init__(self, packet_size: int = 8192) -> None:
        """
        @param packet_size: the packet size of both ends.
        """
        self.proxy = AJPConnection(Role.PROXY, packet_size)
        self.container = AJPConnection(Role.CONTAINER, packet_size)

    def conn(self, role: Role) -> AJPConnection:
        """
        @param role: a role.
        @return: our connection playing it.
        """
        return self.proxy if role is Role.PROXY else self.container

    def peer(self, role: Role) -> AJPConnection:
        """
        @param role: a role.
        @return: the connection playing the other role.
        """
        return self.container if role is Role.PROXY else self.proxy

    def send(self, event: Event, expect: object = "match") -> bytes:
        """
        Send an event from the right side and deliver it to the other.

        @param event: the event.
        @param expect: C{"match"} to require the other side to receive
            exactly C{[event]}, or the list of events to expect.
        @return: the bytes that travelled.
        """
        role = sender_role(event)
        data = self.conn(role).send(event)
        peer = self.peer(role)
        peer.receive_data(data)
        got = drain(peer)
        assert got == ([event] if expect == "match" else expect)
        assert self.proxy.state is self.container.state
        return data

    def run(self, events: tuple[Event, ...] | list[Event]) -> None:
        """
        Send several events in order, each received unchanged.

        @param events: the events.
        """
        for event in events:
            self.send(event)
