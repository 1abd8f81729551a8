"""
C{GET /healthz} on the admin listener: 200 when the proxy serves (every
listener listens, every balancer has a member that takes new requests), 503
otherwise, with the reasons as JSON. For keepalived, a cloud load balancer
or an orchestrator's readiness probe; it needs no password (it changes
nothing and tells no more than a request to the proxy would).
"""

from __future__ import annotations

import json

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from twisted_lb.control import ProxyControl
from twisted_lb.readiness import check

__all__ = ["Healthz", "with_healthz"]


class Healthz(Resource):
    """The readiness of one proxy."""

    isLeaf = True

    def __init__(self, proxy: ProxyControl) -> None:
        super().__init__()
        self._proxy = proxy

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 - twisted.web API
        health = check(self._proxy)
        request.setResponseCode(200 if health.ok else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return json.dumps(health.as_json(), indent=1).encode() + b"\n"


class _Front(Resource):
    """C{/healthz} itself; every other path to the (maybe password-protected) rest."""

    def __init__(self, healthz: Healthz, rest: IResource) -> None:
        super().__init__()
        self._healthz = healthz
        self._rest = rest

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:  # noqa: N802
        if path == b"healthz" and not any(request.postpath or ()):
            return self._healthz
        # Give the segment back: the rest traverses the path from its start.
        assert request.postpath is not None and request.prepath is not None
        request.postpath.insert(0, request.prepath.pop())
        return self._rest

    def render(self, request: Request) -> bytes:
        return self._rest.render(request)  # type: ignore[no-any-return]


def with_healthz(proxy: ProxyControl, rest: IResource) -> IResource:
    """C{rest} with C{/healthz} of C{proxy} in front of it, outside its password."""
    return _Front(Healthz(proxy), rest)
