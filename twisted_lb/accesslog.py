"""
The access log: Apache's combined format plus what a balancer adds (the
member that answered, whether the session's route changed, the attempts and
the upstream time), or the same fields as one JSON object per line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

__all__ = ["AccessLog", "AccessLogFile", "ACCESS_LOG_FORMATS", "STDOUT"]

#: The C{access_log} that means standard output (the demo's; with C{twistd -n}
#: each line lands in twistd's log).
STDOUT = "-"

#: The formats of the access log (the config key C{access_log_format}).
ACCESS_LOG_FORMATS = ("combined", "json")


def _quote(value: bytes | str | None) -> str:
    if value is None:
        return "-"
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


class AccessLog:
    """
    Writes one line per finished request to C{stream}; in the C{combined}
    format::

        127.0.0.1 - - [21/Nov/2026:13:14:00 +0000] "GET /app/ HTTP/1.1" 200 1024 "-" "curl/8"
            member=ajp://10.0.0.1:8009 route_changed=0 attempts=1 upstream_ms=3.2

    in the C{json} format::

        {"time": "2026-11-21T13:14:00Z", "client": "127.0.0.1", "method": "GET",
         "uri": "/app/", "protocol": "HTTP/1.1", "status": 200, "bytes": 1024,
         "referer": null, "user_agent": "curl/8", "member": "ajp://10.0.0.1:8009",
         "route_changed": false, "attempts": 1, "upstream_ms": 3.2}

    @param log_format: one of L{ACCESS_LOG_FORMATS}.
    """

    def __init__(self, stream: IO[str], log_format: str = "combined") -> None:
        if log_format not in ACCESS_LOG_FORMATS:
            raise ValueError(f"unknown access log format {log_format!r}")
        self._stream = stream
        self._line = self._combined if log_format == "combined" else self._json

    def __call__(self, entry: dict[str, Any]) -> None:
        self._stream.write(self._line(entry))
        self._stream.flush()

    @staticmethod
    def _combined(entry: dict[str, Any]) -> str:
        request = entry["request"]
        client = request.getClientAddress()
        headers = request.requestHeaders
        referer = headers.getRawHeaders(b"referer", [None])[0]
        agent = headers.getRawHeaders(b"user-agent", [None])[0]
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        return (
            f'{getattr(client, "host", "-")} - - [{stamp}] '
            f'"{_quote(request.method)} {_quote(request.uri)} {_quote(request.clientproto)}" '
            f'{entry["status"]} {entry["bytes"]} "{_quote(referer)}" "{_quote(agent)}" '
            f'member={entry["member"]} route_changed={int(entry["route_changed"])} '
            f'attempts={entry["attempts"]} upstream_ms={entry["upstream_seconds"] * 1000:.1f}\n'
        )

    @staticmethod
    def _json(entry: dict[str, Any]) -> str:
        request = entry["request"]
        headers = request.requestHeaders
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "client": getattr(request.getClientAddress(), "host", None),
            "method": _text(request.method),
            "uri": _text(request.uri),
            "protocol": _text(request.clientproto),
            "status": entry["status"],
            "bytes": entry["bytes"],
            "referer": _text(headers.getRawHeaders(b"referer", [None])[0]),
            "user_agent": _text(headers.getRawHeaders(b"user-agent", [None])[0]),
            "member": None if entry["member"] == "-" else entry["member"],
            "route_changed": bool(entry["route_changed"]),
            "attempts": entry["attempts"],
            "upstream_ms": round(entry["upstream_seconds"] * 1000, 1),
        }
        return json.dumps(record, separators=(", ", ": ")) + "\n"


class AccessLogFile(AccessLog):
    """
    An L{AccessLog} appending to a file that can be reopened (after a log
    rotation moved it away) and closed; or, when its path is L{STDOUT}
    (C{"-"}), writing to standard output.

    @ivar path: the file's name.
    @raise OSError: when the file cannot be opened.
    """

    def __init__(self, path: str, log_format: str = "combined") -> None:
        self.path = path
        self.log_format = log_format
        if path == STDOUT:
            # Looked up now: under twistd, its log (each line one event).
            super().__init__(sys.stdout, log_format)
            return
        super().__init__(open(path, "a", encoding="utf-8"), log_format)  # noqa: SIM115

    def reopen(self) -> None:
        """
        Open the file by its name again (a new file if it was moved away),
        then close the old one. Standard output stays as it is.

        @raise OSError: when the file cannot be opened; the old one is kept.
        """
        if self.path == STDOUT:
            return
        stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        old, self._stream = self._stream, stream
        old.close()

    def close(self) -> None:
        """Close the file (not standard output)."""
        if self.path != STDOUT:
            self._stream.close()
