"""
The reactor the proxy's worker processes run: Twisted's epoll reactor
without the legacy log context around each I/O event.

Twisted's C{EPollReactor} wraps every readable or writable event in
C{twisted.python.log.callWithLogger}, which asks the connection for its
C{logPrefix()} and pushes a context dictionary, so that a legacy
C{log.msg()} made while handling the event carries that prefix as its
C{system}. A proxy handles two or more such events per request, and the
wrapping is a measurable share of a small request (see docs/performance.md).
twisted_lb logs through C{twisted.logger} with its own fields and does not
use that context, so L{ProxyEPollReactor} dispatches events directly.
What changes: a legacy C{log.msg()} from code running in an I/O event shows
C{"-"} as its system instead of the connection's prefix; an error escaping
the event handler is still logged (now with the prefix in the event).

L{install} is what C{python -m twisted_lb.worker} calls; a single-process
proxy can choose it with C{twistd --reactor=lbepoll} (see
C{twisted/plugins/twisted_lb_reactor.py}). Linux only (epoll).
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.main import installReactor
from twisted.logger import Logger

__all__ = ["ProxyEPollReactor", "install"]

_log = Logger()


class ProxyEPollReactor(EPollReactor):
    """An epoll reactor that calls each event's handler without a log context."""

    def doPoll(self, timeout: float | None) -> None:  # noqa: N802 (Twisted's name)
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except InterruptedError:
            return
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        handle = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:
                continue  # removed by an earlier event of this batch
            try:
                handle(selectable, fd, event)
            except Exception:
                _log.failure("unhandled error in an I/O event of {prefix}", prefix=_prefix(selectable))

    doIteration = doPoll


def _prefix(selectable: Any) -> str:
    try:
        return str(selectable.logPrefix())
    except Exception:
        return repr(selectable)


def install() -> ProxyEPollReactor:
    """Install L{ProxyEPollReactor} as the global reactor (before anything imports one)."""
    reactor = ProxyEPollReactor()
    installReactor(reactor)
    return reactor
