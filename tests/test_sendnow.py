"""send_now: writes that reach the socket at once, over real loopback sockets."""

from __future__ import annotations

from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from twisted_lb.sendnow import DIRECT, send_now, send_parts_now


class Collect(protocol.Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.data = bytearray()
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.data += data
        if len(self.data) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.data))


class LoopbackTestCase(TestCase):
    """A client transport connected to a collecting server, over 127.0.0.1."""

    timeout = 20

    @defer.inlineCallbacks
    def connected(self, expected: int):
        """A client transport connected to a server collecting C{expected} bytes."""
        server = Collect(expected)
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(lambda: server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = yield protocol.ClientCreator(reactor, protocol.Protocol).connectTCP(
            "127.0.0.1", port.getHost().port
        )
        self.addCleanup(client.transport.abortConnection)
        return client.transport, server


class SendNowTests(LoopbackTestCase):

    def test_twisted_has_what_send_now_needs(self):
        """If a Twisted release changes its buffers, this says so (send_now would only write())."""
        self.assertTrue(DIRECT)

    @defer.inlineCallbacks
    def test_sent_at_once(self):
        """Nothing is left in Twisted's buffer: the kernel has the bytes before the next turn."""
        transport, server = yield self.connected(5)
        send_now(transport, b"hello")
        self.assertEqual((transport.dataBuffer, transport._tempDataLen), (b"", 0))
        self.assertFalse(transport in reactor.getWriters())
        self.assertEqual((yield server.done), b"hello")

    @defer.inlineCallbacks
    def test_order_kept_behind_buffered_data(self):
        """With bytes already queued by write(), send_now queues behind them."""
        transport, server = yield self.connected(6)
        transport.write(b"abc")
        send_now(transport, b"def")
        self.assertEqual(transport._tempDataLen, 6)
        self.assertEqual((yield server.done), b"abcdef")

    @defer.inlineCallbacks
    def test_partial_send_buffers_the_rest(self):
        """More than the socket takes: the rest goes to Twisted's buffer, all arrives in order."""
        size = 32 * 1024 * 1024
        data = bytes(range(256)) * (size // 256)
        transport, server = yield self.connected(size)
        send_now(transport, data)
        self.assertGreater(transport._tempDataLen, 0)
        self.assertLess(transport._tempDataLen, size)
        send_now(transport, b"!")
        server.expected += 1
        received = yield server.done
        self.assertEqual(len(received), size + 1)
        self.assertTrue(received == data + b"!")

    @defer.inlineCallbacks
    def test_closing_transport_falls_back_to_write(self):
        """After loseConnection, send_now does what write() does (nothing sent directly)."""
        transport, _ = yield self.connected(1)
        transport.loseConnection()
        send_now(transport, b"late")
        self.assertEqual(transport._tempDataBuffer, [b"late"])

    def test_other_transports_get_write(self):
        """In-memory (and TLS) transports just get write()."""
        transport = StringTransport()
        send_now(transport, b"x")
        send_now(transport, b"y")
        self.assertEqual(transport.value(), b"xy")


class SendPartsNowTests(LoopbackTestCase):
    @defer.inlineCallbacks
    def test_parts_sent_at_once_without_joining(self):
        """Views of a larger buffer go out in one sendmsg; nothing stays buffered."""
        transport, server = yield self.connected(11)
        segment = b"xxhello worldyy"
        view = memoryview(segment)
        send_parts_now(transport, [view[2:7], b" ", view[8:13]])
        self.assertEqual((transport.dataBuffer, transport._tempDataLen), (b"", 0))
        self.assertEqual((yield server.done), b"hello world")

    @defer.inlineCallbacks
    def test_partial_sendmsg_buffers_the_rest_in_order(self):
        """What the kernel did not take is copied into Twisted's buffer, in order."""
        part = bytes(range(256)) * 4096  # 1 MiB
        parts = [memoryview(part) for _ in range(32)]
        transport, server = yield self.connected(32 * len(part) + 1)
        send_parts_now(transport, parts)
        self.assertGreater(transport._tempDataLen, 0)
        send_parts_now(transport, [b"!"])
        received = yield server.done
        self.assertTrue(received == part * 32 + b"!")

    def test_other_transports_get_one_joined_write(self):
        transport = StringTransport()
        send_parts_now(transport, [b"a", memoryview(b"bc"), b""])
        self.assertEqual(transport.value(), b"abc")
