"""
The one module that touches private attributes of Twisted or Autobahn.

Each use is in a block of its own, says which release it was read from, and
has a probe test in C{tests/test_compat.py} that fails loudly when a release
changes it.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.interfaces import IListeningPort
from twisted.web import client as _web_client

__all__ = ["quiet_pool_factory", "listening_port", "raise_listen_errors"]


# --- operator experience: quiet client factories, listening ports ----------
# Read from Twisted 26.10.


class _QuietHTTP11ClientFactory(_web_client._HTTP11ClientFactory):
    """Twisted's factory of one pooled HTTP connection, without its log lines."""

    noisy = False


def quiet_pool_factory(quiescent_callback: Any, metadata: Any) -> Any:
    """
    What L{twisted.web.client.HTTPConnectionPool} calls (its private
    C{_factory}) to make the factory of each new connection: Twisted's own,
    with C{noisy = False}, so that a connection (a health check's, say) logs
    no "Starting factory"/"Stopping factory" lines. Assign it to a pool's
    C{_factory}.
    """
    return _QuietHTTP11ClientFactory(quiescent_callback, metadata)


def raise_listen_errors(service: StreamServerEndpointService) -> None:
    """
    Make C{service} raise what C{listen} raises (a port in use) from
    C{privilegedStartService}/C{startService}, instead of only logging it:
    Twisted's private C{_raiseSynchronously}, which twistd's own C{strports}
    services set.
    """
    service._raiseSynchronously = True


def listening_port(service: StreamServerEndpointService) -> IListeningPort | None:
    """
    The port a started L{StreamServerEndpointService} listens on, or C{None}
    when it is not listening (yet, or any more, or it could not).

    Twisted keeps the C{listen} outcome in the private C{_waitingForPort}.
    """
    waiting = getattr(service, "_waitingForPort", None)
    if waiting is None or not waiting.called:
        return None
    port = getattr(waiting, "result", None)
    return port if IListeningPort.providedBy(port) else None


# --- end of operator experience ---------------------------------------------
