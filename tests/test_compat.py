"""
Probe tests of L{twisted_lb.compat}: each private attribute of Twisted it
uses is still there and still means what it did. A failure here means a
Twisted release changed it: fix compat.py, not the callers.
"""

from __future__ import annotations

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.web import client as web_client

from twisted_lb.compat import listening_port, quiet_pool_factory, raise_listen_errors

# --- operator experience -----------------------------------------------------


def test_pool_makes_connection_factories_with_its_factory_attribute() -> None:
    """HTTPConnectionPool calls self._factory(quiescentCallback, metadata) per connection."""
    pool = web_client.HTTPConnectionPool(MemoryReactorClock(), persistent=False)
    assert pool._factory is web_client._HTTP11ClientFactory
    pool._factory = quiet_pool_factory  # type: ignore[assignment]
    factory = pool._factory(lambda p: None, "metadata")
    assert isinstance(factory, web_client._HTTP11ClientFactory)
    assert isinstance(factory, Factory) and factory.noisy is False
    # And a plain one is noisy: what the quiet one is for.
    assert web_client._HTTP11ClientFactory(lambda p: None, "m").noisy


def test_endpoint_service_keeps_its_listen_outcome() -> None:
    """StreamServerEndpointService keeps listen()'s Deferred in _waitingForPort."""
    reactor = MemoryReactorClock()
    service = StreamServerEndpointService(TCP4ServerEndpoint(reactor, 8080), Factory())
    assert listening_port(service) is None
    service.startService()
    assert service._waitingForPort is not None and service._waitingForPort.called
    port = listening_port(service)
    assert port is not None and port.getHost().port == 8080
    service.stopService()
    assert listening_port(service) is None


class _Refusing:
    """A server endpoint whose listen fails at once, as a port in use does."""

    def listen(self, factory: Factory):
        from twisted.internet import defer

        return defer.fail(CannotListenError("127.0.0.1", 8080, OSError(98, "in use")))


def test_endpoint_service_raises_listen_errors_when_told() -> None:
    """_raiseSynchronously makes privilegedStartService raise the listen failure."""
    assert StreamServerEndpointService._raiseSynchronously is False
    service = StreamServerEndpointService(_Refusing(), Factory())
    raise_listen_errors(service)
    with pytest.raises(CannotListenError):
        service.privilegedStartService()
