"""The HTTP rules as pure functions (twisted_lb.http_rules)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_lb.http_rules import (
    CONTROL_BYTES,
    control_in_head,
    control_in_value,
    error_body,
    host_problem,
    response_fields,
)


class ControlCharacterTests(SynchronousTestCase):
    def test_one_set_for_values_and_heads(self):
        """Every control byte but HTAB is refused in a value; in a head CR and LF are line ends."""
        for code in range(256):
            byte = bytes([code])
            in_set = code in CONTROL_BYTES
            self.assertEqual(control_in_value(b"a" + byte + b"b"), in_set, code)
            self.assertEqual(
                control_in_head(b"GET / HTTP/1.1\r\nX: a" + byte + b"b\r\n\r\n"),
                in_set and code not in (0x0D, 0x0A),
                code,
            )
        self.assertNotIn(0x09, CONTROL_BYTES)
        self.assertIn(0x7F, CONTROL_BYTES)


class HostTests(SynchronousTestCase):
    def test_exactly_one_valid_host(self):
        self.assertIsNone(host_problem([b"example.com:8080"], True))
        self.assertIsNone(host_problem([], False))
        self.assertIn("exactly one", host_problem([], True) or "")
        self.assertIn("exactly one", host_problem([b"a", b"b"], False) or "")
        self.assertIn("not a host name", host_problem([b"x/../y@evil"], True) or "")


class ResponseFieldTests(SynchronousTestCase):
    def test_hop_by_hop_and_connection_listed_fields_dropped(self):
        fields = [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"X-Internal, close"),
            (b"X-Internal", b"secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
        self.assertEqual(
            response_fields(fields),
            [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")],
        )


class ErrorBodyTests(SynchronousTestCase):
    def test_status_phrase_and_message(self):
        self.assertEqual(error_body(503, "no member"), b"503 Service Unavailable\nno member\n")
