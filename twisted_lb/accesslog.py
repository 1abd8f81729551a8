"""
The access log: Apache's combined format plus what a balancer adds (the
member that answered, whether the session's route changed, the attempts and
the upstream time).
"""

from __future__ import annotations

import time
from typing import IO, Any

__all__ = ["AccessLog"]


def _quote(value: bytes | str | None) -> str:
    if value is None:
        return "-"
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.replace("\\", "\\\\").replace('"', '\\"')


class AccessLog:
    """
    Writes one line per finished request to C{stream}::

        127.0.0.1 - - [21/Nov/2026:13:14:00 +0000] "GET /app/ HTTP/1.1" 200 1024 "-" "curl/8"
            member=ajp://10.0.0.1:8009 route_changed=0 attempts=1 upstream_ms=3.2
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, entry: dict[str, Any]) -> None:
        request = entry["request"]
        client = request.getClientAddress()
        headers = request.requestHeaders
        referer = headers.getRawHeaders(b"referer", [None])[0]
        agent = headers.getRawHeaders(b"user-agent", [None])[0]
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = (
            f'{getattr(client, "host", "-")} - - [{stamp}] '
            f'"{_quote(request.method)} {_quote(request.uri)} {_quote(request.clientproto)}" '
            f'{entry["status"]} {entry["bytes"]} "{_quote(referer)}" "{_quote(agent)}" '
            f'member={entry["member"]} route_changed={int(entry["route_changed"])} '
            f'attempts={entry["attempts"]} upstream_ms={entry["upstream_seconds"] * 1000:.1f}\n'
        )
        self._stream.write(line)
        self._stream.flush()
