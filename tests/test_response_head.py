"""
The one rule for a member's response head (twisted_lb.exchange.response_head_problem),
which every backend applies before a response starts.
"""

from __future__ import annotations

import pytest

from twisted_lb.exchange import field_problem, response_head_problem

GOOD = [(b"Content-Type", b"text/html"), (b"Set-Cookie", b"a=b; Path=/"), (b"X-Tab", b"a\tb")]


@pytest.mark.parametrize("status", [100, 101, 200, 404, 599])
def test_fit_heads(status: int) -> None:
    assert response_head_problem(status, GOOD) is None
    assert response_head_problem(status, []) is None


@pytest.mark.parametrize("status", [0, 99, 600, 999, 65000, -1])
def test_status_outside_100_599(status: int) -> None:
    assert response_head_problem(status, GOOD) == f"status {status} is outside 100-599"


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ((b"X-A", b"a\x00b"), "header value b'X-A' holds NUL"),
        ((b"X-A", b"a\rb"), "header value b'X-A' holds CR"),
        ((b"X-A", b"a\nSet-Cookie: x=1"), "header value b'X-A' holds LF"),
        ((b"X-A\r\nSet-Cookie: x", b"1"), "header name b'X-A\\r\\nSet-Cookie: x' holds CR"),
        ((b"X\x00", b"1"), "header name b'X\\x00' holds NUL"),
    ],
)
def test_nul_cr_lf_in_names_and_values(header: tuple[bytes, bytes], words: str) -> None:
    assert response_head_problem(200, [*GOOD, header]) == words
    assert response_head_problem(200, [header, *GOOD]) == words


def test_field_problem_is_the_field_part_of_the_rule() -> None:
    """field_problem (for a backend that sees fields one by one) says what response_head_problem says."""
    assert field_problem(b"X-A", b"a b\tc") is None
    for header in [(b"X-A", b"a\rb"), (b"X-A", b"a\x00"), (b"X\n", b"1")]:
        assert field_problem(*header) == response_head_problem(200, [header])
        assert field_problem(*header) is not None
