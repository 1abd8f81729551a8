"""ProxyEPollReactor: Twisted's epoll reactor without the log context per I/O event."""

from __future__ import annotations

import sys

import pytest
from twisted.internet import protocol
from twisted.logger import globalLogPublisher

from twisted_lb.reactor import ProxyEPollReactor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll")


class Echo(protocol.Protocol):
    def dataReceived(self, data):  # noqa: N802
        self.transport.write(data)


class Client(protocol.Protocol):
    def __init__(self, reactor, rounds):
        self.reactor, self.rounds, self.got = reactor, rounds, []

    def connectionMade(self):  # noqa: N802
        self.transport.write(b"ping 0")

    def dataReceived(self, data):  # noqa: N802
        self.got.append(data)
        if len(self.got) == self.rounds:
            self.transport.loseConnection()
            self.reactor.stop()
        else:
            self.transport.write(b"ping %d" % len(self.got))


def run(reactor, seconds=10.0):
    timer = reactor.callLater(seconds, reactor.stop)
    reactor.run(installSignalHandlers=False)
    assert timer.active(), "the reactor had to be stopped by the time limit"
    timer.cancel()


def test_serves_tcp_round_trips():
    reactor = ProxyEPollReactor()
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
    client = Client(reactor, 50)
    protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
    run(reactor)
    assert client.got[-1] == b"ping 49" and len(client.got) == 50
    port.stopListening()


def test_an_error_escaping_an_event_is_logged_and_the_loop_goes_on():
    reactor = ProxyEPollReactor()
    real = reactor._doReadOrWrite
    failures = []

    def flaky(selectable, fd, event):
        if not failures:
            failures.append(fd)
            raise RuntimeError("bug in an event handler")
        return real(selectable, fd, event)

    reactor._doReadOrWrite = flaky
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")
        client = Client(reactor, 5)
        protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
        run(reactor)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(client.got) == 5
    logged = [e for e in events if e.get("log_failure") is not None]
    assert len(logged) == 1
    assert "bug in an event handler" in str(logged[0]["log_failure"].value)
    port.stopListening()
