"""
Golden-vector tests of the AJP codec: every vector is encoded to its exact
bytes and decoded whole, byte by byte and followed by the start of another
packet (the h11 segmentation drill).
"""

from __future__ import annotations

import pytest

from tests.ajp.helpers import ConnectionPair, bytes_fields_are_bytes, sender_role
from tests.ajp.vectors import VECTORS, Vector
from twisted_lb.ajp import NEED_DATA, AJPConnection, Role

_ids = [v.name for v in VECTORS]


def _ready(vector: Vector) -> tuple[AJPConnection, AJPConnection]:
    """
    Bring a pair to the state where the vector is legal.

    @param vector: the vector.
    @return: the sending and the receiving connection.
    """
    pair = ConnectionPair()
    pair.run(vector.prelude)
    role = sender_role(vector.event)
    return pair.conn(role), pair.peer(role)


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_encode(vector: Vector) -> None:
    """Sending the event produces exactly the vector's bytes."""
    sender, _ = _ready(vector)
    assert sender.send(vector.event) == vector.wire


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decode_whole(vector: Vector) -> None:
    """The whole vector decodes to its event and leaves nothing buffered."""
    _, receiver = _ready(vector)
    receiver.receive_data(vector.wire)
    event = receiver.next_event()
    assert event == vector.event
    assert bytes_fields_are_bytes(event)
    assert receiver.next_event() is NEED_DATA
    assert receiver.trailing_data == (b"", False)


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decode_byte_by_byte(vector: Vector) -> None:
    """Every strict prefix of the vector yields NEED_DATA, the whole one the event."""
    _, receiver = _ready(vector)
    for i in range(len(vector.wire) - 1):
        receiver.receive_data(vector.wire[i : i + 1])
        assert receiver.next_event() is NEED_DATA
    receiver.receive_data(vector.wire[-1:])
    assert receiver.next_event() == vector.event


@pytest.mark.parametrize("vector", VECTORS, ids=_ids)
def test_decode_with_trailing_bytes(vector: Vector) -> None:
    """A vector followed by the start of the next packet decodes and leaves that start buffered."""
    _, receiver = _ready(vector)
    follow = b"\x12\x34\x00" if receiver.role is Role.CONTAINER else b"\x41\x42\x00"
    receiver.receive_data(vector.wire + follow)
    assert receiver.next_event() == vector.event
    assert receiver.next_event() is NEED_DATA
    assert receiver.trailing_data == (follow, False)


def test_example_is_164_bytes() -> None:
    """The reference FORWARD_REQUEST example is a 0xa4-byte packet."""
    assert len(VECTORS[0].wire) == 0xA4
