"""
Request bodies streamed from the client (twisted_lb.request_body): the
Content-Length and chunked decoders, and the bounded buffer between the
client and a member.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_lb.request_body import BodyError, ChunkedDecoder, LengthDecoder, StreamedBody


def _feed_all(decoder, data: bytes, step: int) -> tuple[bytes, bytes]:
    body = b""
    rest = b""
    for i in range(0, len(data), step):
        pieces, rest = decoder.feed(data[i : i + step])
        body += b"".join(pieces)
        if decoder.done:
            rest += data[i + step :]
            break
    return body, rest


class LengthDecoderTests(SynchronousTestCase):
    def test_exact_length_and_what_follows(self):
        decoder = LengthDecoder(5)
        self.assertEqual(decoder.feed(b"abc"), ([b"abc"], b""))
        self.assertFalse(decoder.done)
        self.assertEqual(decoder.feed(b"deGET /"), ([b"de"], b"GET /"))
        self.assertTrue(decoder.done)

    def test_zero_is_done_at_once(self):
        self.assertTrue(LengthDecoder(0).done)


class ChunkedDecoderTests(SynchronousTestCase):
    BODY = b"3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"

    def test_any_split(self):
        """Byte by byte or whole: the same body and the same rest."""
        for step in (1, 2, 5, 7, len(self.BODY)):
            body, rest = _feed_all(ChunkedDecoder(), self.BODY, step)
            self.assertEqual(body, b"abc0123456789", step)
            self.assertEqual(rest, b"NEXT", step)

    def test_not_done_until_the_trailer_section_ends(self):
        decoder = ChunkedDecoder()
        decoder.feed(b"1\r\na\r\n0\r\n")
        self.assertFalse(decoder.done)
        self.assertEqual(decoder.feed(b"\r\n"), ([], b""))
        self.assertTrue(decoder.done)

    def test_malformed(self):
        cases = {
            "size not hex": b"zz\r\nabc\r\n",
            "empty size": b"\r\n",
            "sign": b"+3\r\nabc\r\n",
            "bare LF": b"3\nabc\r\n",
            "data longer than size": b"3\r\nabcd\r\n",
            "huge size": b"1" * 20 + b"\r\n",
            "size line too long": b"3;" + b"e" * 5000 + b"\r\n",
            "trailers too large": b"0\r\n" + b"X: y\r\n" * 5000,
        }
        for name, data in cases.items():
            with self.assertRaises(BodyError, msg=name):
                _feed_all(ChunkedDecoder(), data, 3)


class StreamedBodyTests(SynchronousTestCase):
    def setUp(self):
        self.calls: list[str] = []
        self.body = StreamedBody(None, prefetch=10, high_water=20)
        self.body.pause_client = lambda: self.calls.append("pause")
        self.body.resume_client = lambda: self.calls.append("resume")

    def test_reads_what_is_there_then_waits_then_ends(self):
        body = self.body
        body.feed(b"abc")
        body.feed(b"def")
        self.assertEqual(body.read(4), b"abcd")
        self.assertEqual(body.read(100), b"ef")
        self.assertIsNone(body.read(100))
        woken: list[int] = []
        body.when_readable(lambda: woken.append(1))
        body.feed(b"g")
        self.assertEqual(woken, [1])
        body.end()
        self.assertEqual(body.read(100), b"g")
        self.assertEqual(body.read(100), b"")
        self.assertEqual((body.received, body.sent), (7, 7))

    def test_prefetch_fires_at_the_threshold_or_the_end(self):
        fired: list[str] = []
        self.body.when_prefetched(lambda: fired.append("big"))
        self.body.feed(b"x" * 9)
        self.assertEqual(fired, [])
        self.body.feed(b"x")
        self.assertEqual(fired, ["big"])
        small = StreamedBody(5, prefetch=10)
        small.when_prefetched(lambda: fired.append("small"))
        small.feed(b"12345")
        small.end()
        self.assertEqual(fired, ["big", "small"])

    def test_client_paused_past_high_water_resumed_at_half(self):
        body = self.body
        body.feed(b"x" * 15)
        self.assertEqual(self.calls, [])
        body.feed(b"x" * 10)
        self.assertEqual(self.calls, ["pause"])
        body.feed(b"x" * 10)  # what was in flight still fits
        self.assertEqual(self.calls, ["pause"])
        body.read(20)
        self.assertEqual(self.calls, ["pause"])
        body.read(5)
        self.assertEqual(self.calls, ["pause", "resume"])

    def test_failure_reaches_the_reader_and_stops_prefetch(self):
        fired: list[str] = []
        self.body.when_prefetched(lambda: fired.append("prefetched"))
        woken: list[int] = []
        self.body.feed(b"abc")
        self.body.read(10)
        self.body.when_readable(lambda: woken.append(1))
        self.body.fail("the client went away")
        self.assertEqual(woken, [1])
        with self.assertRaises(BodyError):
            self.body.read(10)
        self.body.end()
        self.body.feed(b"more")
        self.assertEqual(fired, [])
        self.assertEqual(self.body.received, 3)

    def test_discard_drops_the_rest_and_resumes_the_client(self):
        self.body.feed(b"x" * 25)
        self.assertEqual(self.calls, ["pause"])
        self.body.discard()
        self.assertEqual(self.calls, ["pause", "resume"])
        self.body.feed(b"y" * 100)
        self.assertIsNone(self.body.read(10))


class StreamedBodyReadTests(SynchronousTestCase):
    def test_reads_of_every_size_give_the_bytes_in_order(self):
        """Pieces of any size read in slices of any size: the same bytes, in order."""
        data = bytes(range(256)) * 40
        for piece in (1, 7, 100, 4096, len(data)):
            for limit in (1, 5, 99, 1000, 20000):
                body = StreamedBody(None, high_water=1 << 30)
                for i in range(0, len(data), piece):
                    body.feed(data[i : i + piece])
                body.end()
                out = b""
                while chunk := body.read(limit):
                    self.assertLessEqual(len(chunk), limit)
                    out += chunk
                self.assertEqual(out, data, (piece, limit))
                self.assertEqual(body.sent, len(data))
