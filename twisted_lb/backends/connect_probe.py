"""
One connection that only says whether a member can be reached: connected
and, for a TLS member, the handshake done with the member's certificate
checks. Background probes and TCP health checks use it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["ConnectProbe"]


@implementer(IHandshakeListener)
class ConnectProbe(Protocol):
    """
    @ivar ready: fires with C{None} once connected (with TLS: once the
        handshake is done), or with the L{Failure} that ended the connection
        first. Closing the connection is the caller's business.
    """

    def __init__(self, tls: bool) -> None:
        self._tls = tls
        self.ready: defer.Deferred[Failure | None] = defer.Deferred()

    def connectionMade(self) -> None:
        if not self._tls:
            self._fire(None)

    def handshakeCompleted(self) -> None:
        self._fire(None)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._fire(reason)

    def _fire(self, outcome: Failure | None) -> None:
        if not self.ready.called:
            self.ready.callback(outcome)
