"""
A coverage-guided fuzz target (atheris / libFuzzer) for the AJP codec's
decoders, both roles.

The first byte of an input chooses the role that receives it and the
exchange it is in (fresh, after a FORWARD_REQUEST, after a chunked POST,
after SEND_HEADERS); the second byte how the rest is cut into reads; the rest
is the bytes on the wire. A finding is anything but L{AJPProtocolError}
escaping the codec, a C{next_event} loop that does not end, or an event
holding more bytes than the input (header names decoded from a code are
table constants and do not count).

Run it on demand (libFuzzer flags after the script)::

    python tests/fuzz/fuzz_ajp.py -runs=100000
    python tests/fuzz/fuzz_ajp.py -max_total_time=600 corpus_dir/

The test suite runs it briefly (C{tests/fuzz/test_fuzz_ajp.py}).
"""

from __future__ import annotations

import os
import sys

import atheris
import attrs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports(include=["twisted_lb.ajp"]):
    from twisted_lb.ajp import (
        NEED_DATA,
        AJPConnection,
        AJPProtocolError,
        ConnectionClosed,
        ForwardRequest,
        Role,
        SendHeaders,
    )
    from twisted_lb.ajp._constants import REQUEST_HEADER_NAMES, RESPONSE_HEADER_NAMES

#: Header names decoded from a 2-byte code: shared constants, not bytes the
#: input made the decoder allocate, so they do not count against its size.
_CODED_NAMES = {id(name) for table in (REQUEST_HEADER_NAMES, RESPONSE_HEADER_NAMES)
                for name in table.values()}

_GET = ForwardRequest(b"GET", b"/")
_POST = ForwardRequest(b"POST", b"/upload")
_OK = SendHeaders(200, b"200", ())
_PRELUDES: tuple[tuple[object, ...], ...] = ((), (_GET,), (_POST,), (_GET, _OK))
_PROXY_SENDS = (ForwardRequest,)


def _receiver(selector: int) -> AJPConnection:
    """The receiving end of a pair that went through one prelude."""
    role = Role.PROXY if selector & 1 else Role.CONTAINER
    proxy, container = AJPConnection(Role.PROXY), AJPConnection(Role.CONTAINER)
    for event in _PRELUDES[(selector >> 1) % len(_PRELUDES)]:
        sender, peer = (proxy, container) if isinstance(event, _PROXY_SENDS) else (container, proxy)
        peer.receive_data(sender.send(event))  # type: ignore[arg-type]
        assert peer.next_event() == event
    return proxy if role is Role.PROXY else container


def _size(event: object) -> int:
    """Bytes held by an event's fields."""
    total = 0
    for field in attrs.fields(type(event)):
        value = getattr(event, field.name)
        if isinstance(value, bytes):
            total += len(value)
        elif isinstance(value, tuple):
            total += sum(
                len(v)
                for pair in value
                for v in pair
                if isinstance(v, bytes) and id(v) not in _CODED_NAMES
            )
    return total


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    conn = _receiver(data[0])
    step = data[1] * 7 + 1
    wire = data[2:]
    try:
        for start in range(0, len(wire), step):
            conn.receive_data(wire[start : start + step])
            for _ in range(len(wire) + 2):
                event = conn.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
                if _size(event) > len(wire):
                    raise AssertionError(f"{event!r} holds more bytes than the input")
                if data[0] & 0x80:
                    # The bulk read of body chunks too, when the first byte says so.
                    if sum(len(d) for d in conn.next_body_data()) > len(wire):
                        raise AssertionError("next_body_data() holds more bytes than the input")
            else:
                raise AssertionError("next_event() does not terminate")
        conn.receive_data(b"")
        for _ in range(len(wire) + 2):
            event = conn.next_event()
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                break
        else:
            raise AssertionError("next_event() does not terminate after end of file")
    except AJPProtocolError:
        pass


def seeds() -> list[bytes]:
    """Inputs made of the codec's golden vectors, each in its exchange."""
    from tests.ajp.vectors import VECTORS

    out = []
    for vector in VECTORS:
        role = 1 if vector.wire[0] == 0x41 else 0
        prelude = next(
            (i for i, p in enumerate(_PRELUDES) if p == tuple(vector.prelude)), 0
        )
        out.append(bytes((role | prelude << 1, 255)) + vector.wire)
    return out


#: The seed inputs (L{seeds}, written by C{python tests/fuzz/fuzz_ajp.py --write-seeds}).
SEED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def main() -> None:
    argv = list(sys.argv)
    if argv[1:] == ["--write-seeds"]:
        os.makedirs(SEED_DIR, exist_ok=True)
        for i, seed in enumerate(seeds()):
            with open(os.path.join(SEED_DIR, f"vector{i:02d}"), "wb") as f:
                f.write(seed)
        return
    if not any(a.startswith("-seed_inputs=") for a in argv[1:]) and os.path.isdir(SEED_DIR):
        files = sorted(os.path.join(SEED_DIR, n) for n in os.listdir(SEED_DIR))
        argv.insert(1, "-seed_inputs=" + ",".join(files))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
