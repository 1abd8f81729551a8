"""
L{twisted_lb.http2}: the frame scanner, and L{LimitedH2Connection} on an
in-memory transport with a real h2 client on the other end.
"""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
from h2.settings import SettingCodes
from hpack import Decoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from twisted_lb.config.model import LimitsConfig
from twisted_lb.http2 import (
    CLOSE_GRACE,
    MAX_STREAMS,
    RESET_BURST,
    RESET_RATE,
    FrameScanner,
    LimitedH2Connection,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frames(data: bytes) -> list[Any]:
    """The frames in C{data}."""
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


class FrameScannerTests(SynchronousTestCase):
    def test_header_block_over_the_limit_is_found_at_its_frame(self):
        """The offset returned is where the frame that breaks the limit starts."""
        scanner = FrameScanner(100)
        headers = HeadersFrame(1, data=b"x" * 60).serialize()
        continuation = ContinuationFrame(1, data=b"y" * 60).serialize()
        data = PREFACE + headers + continuation
        self.assertEqual(scanner.feed(data), len(PREFACE) + len(headers))
        self.assertTrue(scanner.in_block)

    def test_split_reads_and_blocks_that_end(self):
        """Frame headers split across reads are followed; END_HEADERS closes the block,
        and the next block counts from zero."""
        scanner = FrameScanner(100)
        block = (
            HeadersFrame(1, data=b"x" * 60).serialize()
            + ContinuationFrame(1, data=b"y" * 30, flags=["END_HEADERS"]).serialize()
        )
        data = PREFACE + block + DataFrame(1, data=b"z" * 500).serialize()
        data += HeadersFrame(3, data=b"w" * 90, flags=["END_HEADERS"]).serialize()
        for i in range(len(data)):  # one byte at a time
            self.assertEqual(scanner.feed(data[i : i + 1]), 1)
        self.assertFalse(scanner.in_block)
        self.assertEqual(scanner.block_bytes, 90)

    def test_open_block_is_reported_until_its_end(self):
        scanner = FrameScanner(1000)
        scanner.feed(PREFACE + HeadersFrame(1, data=b"x" * 10).serialize())
        self.assertTrue(scanner.in_block)
        scanner.feed(ContinuationFrame(1, data=b"y", flags=["END_HEADERS"]).serialize()[:5])
        self.assertTrue(scanner.in_block)
        scanner.feed(ContinuationFrame(1, data=b"y", flags=["END_HEADERS"]).serialize()[5:])
        self.assertFalse(scanner.in_block)


class Connection:
    """A LimitedH2Connection on a StringTransport, and an h2 client for it."""

    def __init__(self, limits: LimitsConfig | None = None) -> None:
        self.clock = MemoryReactorClock()
        self.proto = LimitedH2Connection(limits or LimitsConfig(), self.clock)
        self.proto.site = Site(Resource())
        #: the paths of the requests handed to the site, in order.
        self.processed: list[bytes] = []
        #: the requests handed to the site, in order.
        self.requests: list[Request] = []
        processed, requests = self.processed, self.requests

        class Recording(Request):
            def process(self) -> None:
                processed.append(self.path)
                requests.append(self)

        self.proto.requestFactory = Recording
        # Lenient: a TCP transport may be paused after loseConnection.
        self.transport = StringTransport(lenient=True)
        self.proto.makeConnection(self.transport)
        self.transport.registerProducer(self.proto, True)
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.client.initiate_connection()

    def block(self) -> bytes:
        return bytes(
            self.client.encoder.encode(
                [
                    (b":method", b"GET"),
                    (b":path", b"/"),
                    (b":authority", b"x"),
                    (b":scheme", b"https"),
                ]
            )
        )

    def request(self, stream: int, path: bytes = b"/", end: bool = True, extra: Any = ()) -> None:
        """The client sends a request head (the whole request with C{end})."""
        headers = [
            (b":method", b"POST"),
            (b":path", path),
            (b":authority", b"x"),
            (b":scheme", b"https"),
        ]
        self.client.send_headers(stream, [*headers, *extra], end_stream=end)

    def deliver(self) -> None:
        """What the client has to send reaches the server, in one read."""
        self.proto.dataReceived(self.client.data_to_send())

    def sent(self) -> list[Any]:
        out = frames(self.transport.value())
        self.transport.clear()
        return out


class LimitedH2ConnectionTests(SynchronousTestCase):
    def test_continuation_flood_ends_with_goaway_and_close(self):
        """Past max_header_bytes: GOAWAY (ENHANCE_YOUR_CALM), reading stopped, closed,
        everything after dropped, aborted after the grace."""
        c = Connection(LimitsConfig(max_header_bytes=1000))
        data = c.client.data_to_send() + HeadersFrame(1, data=c.block()).serialize()
        data += ContinuationFrame(1, data=b"\0" * 1000).serialize()
        c.proto.dataReceived(data)
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([(g.error_code, g.last_stream_id) for g in goaway], [(11, 0)])
        self.assertTrue(c.transport.disconnecting)
        self.assertIsNone(c.transport.producer)
        self.assertEqual(c.transport.producerState, "paused")
        # What still arrives is dropped, whatever it is.
        c.proto.dataReceived(ContinuationFrame(1, data=b"\0" * 16000).serialize() * 10)
        self.assertEqual(c.proto.conn.incoming_buffer._data, bytearray())
        self.assertEqual(c.sent(), [])
        self.assertFalse(c.transport.disconnected)
        c.clock.advance(CLOSE_GRACE)
        self.assertTrue(c.transport.disconnected)

    def test_header_block_within_the_limit_is_served(self):
        """Below the limit nothing happens: the SETTINGS exchange goes on, no GOAWAY."""
        c = Connection(LimitsConfig(max_header_bytes=1000))
        block = c.block()
        c.proto.dataReceived(c.client.data_to_send())
        c.proto.dataReceived(HeadersFrame(1, data=block[:3]).serialize())
        c.proto.dataReceived(
            ContinuationFrame(1, data=block[3:], flags=["END_HEADERS"]).serialize()
        )
        self.assertFalse([f for f in c.sent() if isinstance(f, GoAwayFrame)])
        self.assertFalse(c.transport.disconnecting)

    def test_protocol_error_closes_for_good(self):
        """An h2 protocol error: h2's GOAWAY, then closed as after a limit."""
        c = Connection()
        c.proto.dataReceived(c.client.data_to_send() + DataFrame(1, data=b"x").serialize())
        sent = c.sent()
        self.assertEqual([f.error_code for f in sent if isinstance(f, GoAwayFrame)], [1])
        self.assertTrue(c.transport.disconnecting)
        self.assertIsNone(c.transport.producer)
        c.clock.advance(CLOSE_GRACE)
        self.assertTrue(c.transport.disconnected)

    def test_header_block_left_open_times_out(self):
        """A header block not completed in header_timeout (extended by min_rate, up to
        header_timeout_max) closes the connection."""
        c = Connection(LimitsConfig(header_timeout=5, header_timeout_max=8, min_rate=100))
        c.proto.dataReceived(c.client.data_to_send() + HeadersFrame(1, data=b"\x82").serialize())
        c.sent()
        c.clock.advance(4)
        c.proto.dataReceived(ContinuationFrame(1, data=b"\x84" * 200).serialize())
        c.clock.advance(2.5)  # 6.5 s: within 5 s + what 200-odd bytes earned
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(2)  # 8.5 s: past header_timeout_max
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [11])
        self.assertTrue(c.transport.disconnecting)

    def test_settings_advertise_streams_and_header_list_size(self):
        c = Connection(LimitsConfig(max_header_bytes=1000, max_headers=10))
        settings = [f for f in c.sent() if isinstance(f, SettingsFrame)][0].settings
        self.assertEqual(settings[SettingCodes.MAX_HEADER_LIST_SIZE], 1000 + 320)
        self.assertEqual(settings[SettingCodes.MAX_CONCURRENT_STREAMS], MAX_STREAMS)


class StreamTests(SynchronousTestCase):
    def test_request_is_handed_on_after_the_read(self):
        """A complete request reaches the site once the read that brought it is processed."""
        c = Connection()
        c.request(1, b"/a")
        c.deliver()
        self.assertEqual(c.processed, [])
        c.clock.advance(0)
        self.assertEqual(c.processed, [b"/a"])

    def test_stream_reset_in_the_same_read_is_never_handed_on(self):
        """Rapid reset: HEADERS then RST_STREAM in one read: the request never reaches the site."""
        c = Connection()
        c.request(1, b"/reset")
        c.client.reset_stream(1)
        c.request(3, b"/kept")
        c.deliver()
        c.clock.advance(0)
        self.assertEqual(c.processed, [b"/kept"])

    def test_resets_past_the_allowance_end_the_connection(self):
        """RESET_BURST resets at once are allowed, the next one ends the connection with
        GOAWAY (ENHANCE_YOUR_CALM); the allowance comes back at RESET_RATE per second."""
        c = Connection()
        c.deliver()
        for stream in range(1, 2 * RESET_BURST, 2):
            c.request(stream)
            c.client.reset_stream(stream)
        c.deliver()
        self.assertFalse(c.transport.disconnecting)
        c.clock.advance(1)
        for stream in range(2 * RESET_BURST + 1, 2 * RESET_BURST + 2 * int(RESET_RATE), 2):
            c.request(stream)
            c.client.reset_stream(stream)
        c.deliver()
        self.assertFalse(c.transport.disconnecting)
        stream = 2 * RESET_BURST + 2 * int(RESET_RATE) + 1
        c.request(stream)
        c.client.reset_stream(stream)
        c.deliver()
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [11])
        self.assertTrue(c.transport.disconnecting)
        c.clock.advance(0)
        self.assertEqual(c.processed, [])

    def test_streams_beyond_the_limit_are_refused(self):
        c = Connection()
        for stream in range(1, 2 * MAX_STREAMS + 4, 2):
            c.request(stream, end=False)
        c.deliver()
        resets = {f.stream_id: f.error_code for f in c.sent() if isinstance(f, RstStreamFrame)}
        self.assertEqual(resets, {2 * MAX_STREAMS + 1: 7, 2 * MAX_STREAMS + 3: 7})
        self.assertEqual(len(c.proto.streams), MAX_STREAMS)

    def test_slow_body_gets_408(self):
        """A body slower than body_timeout + min_rate: 408 and RST_STREAM (NO_ERROR)."""
        c = Connection(LimitsConfig(body_timeout=10, min_rate=100))
        c.request(1, end=False)
        c.deliver()
        c.sent()
        c.clock.advance(9)
        c.client.send_data(1, b"x" * 200)  # earns 2 s
        c.deliver()
        c.clock.advance(2.5)
        self.assertEqual(c.sent(), [])
        c.clock.advance(1)
        sent = c.sent()
        headers = [f for f in sent if isinstance(f, HeadersFrame)]
        self.assertEqual(len(headers), 1)
        self.assertIn((":status", "408"), Decoder().decode(headers[0].data))
        self.assertEqual(
            [(f.stream_id, f.error_code) for f in sent if isinstance(f, RstStreamFrame)], [(1, 0)]
        )
        self.assertNotIn(1, c.proto.streams)
        c.clock.advance(0)
        self.assertEqual(c.processed, [])

    def test_body_over_the_limit_gets_413(self):
        c = Connection(LimitsConfig(max_body_bytes=100))
        c.request(1, end=False, extra=[(b"content-length", b"101")])
        c.request(3, end=False)
        c.client.send_data(3, b"x" * 60)
        c.deliver()
        self.assertNotIn(1, c.proto.streams)
        self.assertIn(3, c.proto.streams)
        c.client.send_data(3, b"x" * 60)
        c.deliver()
        self.assertNotIn(3, c.proto.streams)
        resets = [(f.stream_id, f.error_code) for f in c.sent() if isinstance(f, RstStreamFrame)]
        self.assertEqual(resets, [(1, 0), (3, 0)])
        c.clock.advance(0)
        self.assertEqual(c.processed, [])

    def test_idle_connection_is_closed_unless_a_request_is_in_flight(self):
        c = Connection()
        c.proto.callLater = c.clock.callLater
        c.proto.setTimeout(60)
        c.request(1)
        c.deliver()
        c.clock.advance(0)
        c.sent()
        c.clock.advance(61)  # the request is still being answered
        self.assertFalse(c.transport.disconnecting)
        c.proto.forget_stream(1)
        c.clock.advance(61)
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [0])
        self.assertTrue(c.transport.disconnecting)

    def test_response_the_client_gives_no_window_for_is_closed_when_idle(self):
        """A response held back because the client opens no flow-control window: the
        connection is closed at idle_timeout (GOAWAY ENHANCE_YOUR_CALM)."""
        c = Connection()
        c.proto.callLater = c.clock.callLater
        c.proto.setTimeout(60)
        c.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c.request(1)
        c.deliver()
        c.clock.advance(0)
        c.requests[0].write(b"held back")
        c.clock.advance(0)
        c.sent()
        c.clock.advance(61)
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [11])
        self.assertTrue(c.transport.disconnecting)

    def test_client_that_reads_nothing_is_aborted_after_send_timeout(self):
        c = Connection(LimitsConfig(send_timeout=30))
        aborted: list[bool] = []
        c.transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        c.proto.pauseProducing()
        c.clock.advance(29)
        c.proto.resumeProducing()
        c.clock.advance(10)
        self.assertEqual(aborted, [])
        c.proto.pauseProducing()
        c.clock.advance(30)
        self.assertEqual(aborted, [True])

    def test_priority_flood_ends_the_connection_in_words(self):
        """PRIORITY frames for 1 001 streams never opened overflow Twisted's priority tree:
        GOAWAY (ENHANCE_YOUR_CALM), not an internal error."""
        c = Connection()
        c.deliver()
        data = b"".join(
            PriorityFrame(s, depends_on=0, stream_weight=15).serialize() for s in range(1, 2004, 2)
        )
        c.proto.dataReceived(data)
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [11])
        self.assertTrue(c.transport.disconnecting)

    def test_hpack_bomb_ends_the_connection(self):
        """A small header block that decodes to far more than the head limit (a 4 KiB value
        in HPACK's table, then referenced 100 times): GOAWAY, never decoded whole."""
        c = Connection()
        c.deliver()
        c.sent()
        encoder = c.client.encoder
        pseudo = [
            (b":method", b"GET"),
            (b":path", b"/"),
            (b":authority", b"x"),
            (b":scheme", b"https"),
        ]
        block = bytes(encoder.encode([*pseudo, (b"x-big", b"v" * 4000)]))
        index = bytes(encoder.encode([(b"x-big", b"v" * 4000)]))  # one byte: the table entry
        self.assertLess(len(index), 3)
        c.proto.dataReceived(HeadersFrame(1, data=block, flags=["END_HEADERS"]).serialize())
        bomb = bytes(encoder.encode(pseudo)) + index * 100
        self.assertLess(len(bomb), 1000)
        c.proto.dataReceived(
            HeadersFrame(3, data=bomb, flags=["END_HEADERS", "END_STREAM"]).serialize()
        )
        goaway = [f for f in c.sent() if isinstance(f, GoAwayFrame)]
        self.assertEqual([g.error_code for g in goaway], [11])
        self.assertTrue(c.transport.disconnecting)
