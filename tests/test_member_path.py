"""
The path a member is sent (twisted_lb.exchange.member_path) as each backend
composes it: its own URL path, then the route's target path and the rest of
the request path, always starting with C{/}.
"""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from twisted_lb.backends.ajp import AJPBackend
from twisted_lb.backends.http import HTTPBackend
from twisted_lb.config.model import MemberConfig
from twisted_lb.exchange import Exchange, member_path
from twisted_lb.websocket.member import WSMember


def _exchange(path: bytes, query: bytes | None = None) -> Exchange:
    return Exchange(
        method=b"GET", path=path, query=query, headers=[], host=b"h",
        client_address="127.0.0.1", client_port=1, local_address="127.0.0.1", local_port=2,
        is_ssl=False,
    )


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        (b"", b"/a", b"/a"),
        (b"", b";x=1/a", b"/;x=1/a"),
        (b"", b"", b"/"),
        (b"/app", b";jsessionid=X", b"/app;jsessionid=X"),
        (b"/app", b"", b"/app"),
        (b"/app", b"/a", b"/app/a"),
    ],
)
def test_member_path(prefix: bytes, path: bytes, expected: bytes) -> None:
    assert member_path(prefix, path) == expected


def test_http_member_url_keeps_host_and_path_parameters() -> None:
    """A parameter after the route's prefix goes into the path, not into the URL's port."""
    backend = HTTPBackend(MemoryReactorClock(), MemberConfig(url="http://127.0.0.1:18081"))
    assert backend.url(_exchange(b";x=1/a", b"q=1")) == b"http://127.0.0.1:18081/;x=1/a?q=1"
    backend = HTTPBackend(MemoryReactorClock(), MemberConfig(url="http://127.0.0.1:18081/app"))
    assert backend.url(_exchange(b";jsessionid=X")) == b"http://127.0.0.1:18081/app;jsessionid=X"


@pytest.mark.parametrize(
    ("url", "path", "req_uri"),
    [
        ("ajp://127.0.0.1:8009", b";x=1/a", b"/;x=1/a"),
        ("ajp://127.0.0.1:8009", b"", b"/"),
        ("ajp://127.0.0.1:8009/app", b";jsessionid=X", b"/app;jsessionid=X"),
        ("ajp://127.0.0.1:8009/app", b"/a", b"/app/a"),
    ],
)
def test_ajp_req_uri_starts_with_a_slash(url: str, path: bytes, req_uri: bytes) -> None:
    backend = AJPBackend(MemoryReactorClock(), MemberConfig(url=url))
    assert backend.forward_request(_exchange(path)).req_uri == req_uri


@pytest.mark.parametrize(
    ("url", "resource", "expected"),
    [
        ("ws://127.0.0.1:18082", ";x=1/a?q=1", "ws://127.0.0.1:18082/;x=1/a?q=1"),
        ("ws://127.0.0.1:18082", "?q=1", "ws://127.0.0.1:18082/?q=1"),
        ("ws://127.0.0.1:18082/app", ";jsessionid=X", "ws://127.0.0.1:18082/app;jsessionid=X"),
        ("ws://127.0.0.1:18082/é", "/a", "ws://127.0.0.1:18082/é/a"),
    ],
)
def test_websocket_member_url(url: str, resource: str, expected: str) -> None:
    assert WSMember(MemoryReactorClock(), MemberConfig(url=url)).url(resource) == expected
