"""
The forwarding fields (X-Forwarded-*) are built in one place,
L{twisted_lb.http_rules.forwarding_headers}, and an HTTP member's request and a
WebSocket member's upgrade get the same ones.
"""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from twisted_lb.backends.http import HTTPBackend
from twisted_lb.config.model import BalancerConfig, MemberConfig
from twisted_lb.exchange import Exchange
from twisted_lb.http_rules import forwarding_headers
from twisted_lb.service import build_balancer


def exchange(
    headers=(), *, is_ssl=False, host=b"shop.example:8443", client="192.0.2.7"
) -> Exchange:
    return Exchange(
        method=b"GET",
        path=b"/x",
        query=None,
        headers=list(headers),
        host=host,
        client_address=client,
        client_port=1,
        local_address="127.0.0.1",
        local_port=2,
        is_ssl=is_ssl,
    )


def test_fields() -> None:
    assert forwarding_headers(exchange(is_ssl=True), [b"10.0.0.1", b"10.0.0.2, 10.0.0.3"]) == [
        (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"shop.example:8443"),
    ]
    # No address (a UNIX socket listener): the client's chain only, or no field.
    assert forwarding_headers(exchange(client=""), [b"10.0.0.1"])[0] == (
        b"x-forwarded-for",
        b"10.0.0.1",
    )
    assert forwarding_headers(exchange(client="", host=b"")) == [(b"x-forwarded-proto", b"http")]


def http_fields(ex: Exchange, x_forwarded: bool) -> dict[str, str]:
    member = MemberConfig(url="http://127.0.0.1:9", route="a")
    backend = HTTPBackend(MemoryReactorClock(), member, x_forwarded=x_forwarded)
    headers = backend.request_headers(ex)
    return {
        name.decode().lower(): ", ".join(v.decode() for v in values)
        for name, values in headers.getAllRawHeaders()
        if name.lower().startswith(b"x-forwarded")
    }


def upgrade_fields(ex: Exchange, x_forwarded: bool) -> dict[str, str]:
    config = BalancerConfig("ws", [MemberConfig(url="ws://127.0.0.1:9", route="a")])
    built = build_balancer(config, MemoryReactorClock(), x_forwarded=x_forwarded)
    assert built.websocket is not None
    request = built.websocket.upstream_request(ex, [])
    return {
        name: value for name, value in request.headers.items() if name.startswith("x-forwarded")
    }


@pytest.mark.parametrize("x_forwarded", [True, False])
@pytest.mark.parametrize("is_ssl", [True, False])
def test_http_members_and_websocket_upgrades_agree(x_forwarded: bool, is_ssl: bool) -> None:
    ex = exchange(
        [
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"spoofed.example"),
            (b"x-forwarded-for", b"10.0.0.2"),
        ],
        is_ssl=is_ssl,
    )
    http = http_fields(ex, x_forwarded)
    assert http == upgrade_fields(ex, x_forwarded)
    if x_forwarded:
        assert http == {
            "x-forwarded-for": "10.0.0.1, 10.0.0.2, 192.0.2.7",
            "x-forwarded-proto": "https" if is_ssl else "http",
            "x-forwarded-host": "shop.example:8443",
        }
    else:  # the client's own, untouched
        assert http == {
            "x-forwarded-for": "10.0.0.1, 10.0.0.2",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "spoofed.example",
        }
