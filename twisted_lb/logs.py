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
C{--logfile}). twistd handles C{SIGUSR1} only for the log it makes itself,
so L{LogFileSignals} does it for this one: C{SIGUSR1} rotates it as twistd
rotates its text log, and C{SIGHUP} reopens it by name (after a log rotation
tool moved it away), each also passing the signal on to the handler that was
there before (the reload, or the supervisor that forwards it to workers).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from twisted.application.service import Service
from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    LogEvent,
    eventAsJSON,
    formatEvent,
    textFileLogObserver,
)
from twisted.python import logfile

__all__ = [
    "LOG_FORMATS",
    "LogFileSignals",
    "json_file_observer",
    "observer_for",
    "twistd_log_file",
]

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


class LogFileSignals(Service):
    """
    C{SIGUSR1} rotates a log file and C{SIGHUP} reopens it, for the JSON log
    twisted_lb writes in twistd's place (twistd installs its C{SIGUSR1}
    handler only for the text log it makes itself).

    Each signal is passed on to the handler installed before this service
    started (C{ReloadOnSignal}'s reload, the worker supervisor's forwarding),
    so that one signal still does everything it did. The handlers only
    schedule the work on the reactor (C{callFromThread}), as twistd does.

    @ivar log_file: a L{logfile.LogFile}.
    @ivar rotate: whether C{SIGUSR1} rotates (one process). With workers the
        supervisor takes C{SIGUSR1} for the balancer manager's changes (worker
        0 sends it after each one), so it must not rotate the log.
    """

    def __init__(self, log_file: logfile.LogFile, reactor: Any, *, rotate: bool = True) -> None:
        self.log_file = log_file
        self.reactor = reactor
        self.rotate = rotate
        self._previous: dict[int, Any] = {}

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        if threading.current_thread() is not threading.main_thread():
            return
        signals = (signal.SIGUSR1, signal.SIGHUP) if self.rotate else (signal.SIGHUP,)
        for signum in signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def stopService(self) -> None:  # noqa: N802 (Twisted's name)
        super().stopService()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        work: Callable[[], None] = (
            self.log_file.rotate if signum == signal.SIGUSR1 else self.log_file.reopen
        )
        self.reactor.callFromThread(work)
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
