"""
twisted_lb's log output: Twisted's logger, as text or as JSON lines.

With C{log_format = "json"} in the configuration, C{twistd} writes every
event (its own, twisted_lb's, Twisted's) as one JSON object per line, made by
L{twisted.logger.eventAsJSON} plus a C{"text"} key with the formatted
message, so that a log shipper can index the fields and
L{twisted.logger.eventsFromJSONLogFile} can read the file back::

    {"log_namespace": "twisted_lb.service", "log_level": {"name": "info", ...},
     "log_time": 1763731200.5, "log_format": "reloaded {source}: {changes}",
     "source": "/etc/twisted_lb/site.toml", "changes": "...",
     "text": "reloaded /etc/twisted_lb/site.toml: ..."}

The file is twistd's C{--logfile} (standard output with C{-n} and no
C{--logfile}), rotated by twistd as usual (C{SIGUSR1} reopens it).
"""

from __future__ import annotations

import sys
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    eventAsJSON,
    formatEvent,
    textFileLogObserver,
)
from twisted.python import logfile

__all__ = ["LOG_FORMATS", "json_file_observer", "observer_for", "twistd_log_file"]

#: The formats of the log (the config key C{log_format}).
LOG_FORMATS = ("text", "json")


def _as_json_line(event: LogEvent) -> str:
    text = formatEvent(event)
    if "log_failure" in event:
        text += "\n" + event["log_failure"].getTraceback()
    return eventAsJSON(dict(event, text=text)) + "\n"


def json_file_observer(stream: IO[Any]) -> ILogObserver:
    """
    An observer writing each event to C{stream} as one JSON object per line
    (Twisted's L{eventAsJSON} plus C{"text"}, the formatted message and the
    traceback of a failure).
    """
    return FileLogObserver(stream, _as_json_line)  # type: ignore[return-value]


def observer_for(log_format: str, stream: IO[Any]) -> ILogObserver:
    """
    The observer writing to C{stream} in C{log_format} (one of
    L{LOG_FORMATS}).

    @raise ValueError: for an unknown format.
    """
    if log_format == "json":
        return json_file_observer(stream)
    if log_format == "text":
        return textFileLogObserver(stream)  # type: ignore[return-value]
    raise ValueError(f"unknown log format {log_format!r}")


def twistd_log_file(twistd_options: Any) -> IO[Any]:
    """
    The file twistd would log to, from its options: C{--logfile} (a
    L{logfile.LogFile}, which twistd rotates), or standard output for
    C{-}, or when C{-n} is given without C{--logfile}, else C{twistd.log}.
    """
    name = twistd_options.get("logfile") if twistd_options is not None else None
    nodaemon = twistd_options.get("nodaemon") if twistd_options is not None else True
    if name == "-" or (not name and nodaemon):
        return sys.stdout
    return logfile.LogFile.fromFullPath(name or "twistd.log")
