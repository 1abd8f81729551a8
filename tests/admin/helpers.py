"""
Helpers for the admin tests: balancers built from a configuration on a
memory reactor (no connection is made until a request is sent), and one HTTP
exchange with a resource through a real C{Site} over a C{StringTransport}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.server import Site

from twisted_lb.config.model import BalancerConfig, MemberConfig
from twisted_lb.service import build_balancer


class FakeProxy:
    """What the admin package needs of a ProxyService: its balancers."""

    def __init__(self, routes: tuple[str, ...] = ("node1", "node2")) -> None:
        self.reactor = MemoryReactorClock()
        members = tuple(
            MemberConfig(url=f"ajp://127.0.0.1:{9001 + i}", route=route)
            for i, route in enumerate(routes)
        )
        self.balancers = {"app": build_balancer(BalancerConfig("app", members), self.reactor)}

    def member(self, route: str, balancer: str = "app") -> Any:
        return self.balancers[balancer].balancer.member_by_route(route)


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def exchange(
    resource: Any,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one HTTP/1.0 request to C{resource} through a real Site; return the response."""
    site = Site(resource, timeout=None)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    all_headers = {"Host": "127.0.0.1:8081", "Content-Length": str(len(body))}
    all_headers.update(headers or {})
    head = f"{method} {path} HTTP/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items())
    protocol.dataReceived(head.encode("latin-1") + b"\r\n" + body)
    return Response(transport.value())
