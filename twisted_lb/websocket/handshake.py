"""
What of a member's 101 answer reaches the client: the extensions it agreed
to (the client offered them through the proxy, the member's answer decides)
and its other end-to-end headers (C{Set-Cookie}, C{X-Frame-Options}...).
Pure functions on bytes.
"""

from __future__ import annotations

import re

import attrs

from twisted_lb.exchange import HOP_BY_HOP, connection_options

__all__ = ["MemberAnswer", "extension_names", "read_answer", "without_extensions"]

_EXTENSIONS = b"sec-websocket-extensions"

#: The handshake's own fields: the proxy's WebSocket library writes them to
#: the client itself (or, for the extensions, from L{MemberAnswer.extensions}).
_HANDSHAKE = frozenset(
    {
        b"sec-websocket-accept",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
        _EXTENSIONS,
        b"content-length",
    }
)

_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@attrs.frozen
class MemberAnswer:
    """
    The parts of a member's 101 answer passed on to the client.

    @ivar extensions: the C{Sec-WebSocket-Extensions} value the member
        answered with, or C{None}.
    @ivar extension_names: the names of those extensions, in lower case.
    @ivar headers: the other end-to-end headers, as C{(name, value)} in order.
    """

    extensions: str | None
    extension_names: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]


def extension_names(value: str) -> list[str]:
    """The extension names in a C{Sec-WebSocket-Extensions} value, in lower case."""
    return [item.split(";", 1)[0].strip().lower() for item in value.split(",") if item.strip()]


def _lines(head: bytes) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in head.split(b"\r\n")[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        fields.append((name.strip(), value.strip(b" \t")))
    return fields


def without_extensions(head: bytes) -> bytes:
    """C{head} (a response head ending in an empty line) without its C{Sec-WebSocket-Extensions} lines."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [
        line for line in lines[1:] if line.partition(b":")[0].strip().lower() != _EXTENSIONS
    ]
    return b"\r\n".join(kept)


def read_answer(head: bytes, offered: str | None) -> MemberAnswer:
    """
    Read a member's 101 answer, already checked by the WebSocket library
    except for its C{Sec-WebSocket-Extensions} lines.

    @param offered: the C{Sec-WebSocket-Extensions} the client offered.
    @raise ValueError: the member agreed to an extension nobody offered, or
        its extensions line is malformed.
    """
    fields = _lines(head)
    hop = connection_options(value for name, value in fields if name.lower() == b"connection")
    agreed = []
    headers = []
    for name, value in fields:
        lower = name.lower()
        if lower == _EXTENSIONS:
            if _BAD_VALUE.search(value):
                raise ValueError("invalid character in Sec-WebSocket-Extensions")
            agreed.append(value.decode("latin-1"))
        elif lower not in _HANDSHAKE and lower not in HOP_BY_HOP and lower not in hop:
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
    extensions = ", ".join(agreed) if agreed else None
    names = extension_names(extensions) if extensions else []
    allowed = set(extension_names(offered)) if offered else set()
    for extension in names:
        if extension not in allowed:
            raise ValueError(
                f"the member agreed to the extension {extension!r}, which was not offered"
            )
    if len(set(names)) != len(names):
        raise ValueError("the member agreed to one extension twice")
    return MemberAnswer(extensions, tuple(names), tuple(headers))
