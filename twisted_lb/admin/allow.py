"""
Who may use the admin listener, by client address (C{admin.allow}, Apache's
C{Require ip} of a C{<Location /balancer-manager>}): a wrapper resource that
answers 403 before the password is asked for. The matching is
L{twisted_lb.access}'s; C{/healthz} stays outside (see
L{twisted_lb.admin.healthz}).
"""

from __future__ import annotations

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from zope.interface import implementer

from twisted_lb.access import AccessRule

__all__ = ["restrict"]


class _Forbidden(Resource):
    """The short plain-text 403 of a client that C{admin.allow} does not name."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return b"403 Forbidden: this address may not use the admin listener (admin.allow)\n"


_FORBIDDEN = _Forbidden()


@implementer(IResource)
class _Restricted:
    """C{rest} for the clients C{rule} allows, 403 for the others."""

    isLeaf = False

    def __init__(self, rule: AccessRule, rest: IResource) -> None:
        self._rule = rule
        self._rest = rest

    def _allowed(self, request: Request) -> bool:
        client = request.getClientAddress()
        host = request.getHost()
        return self._rule.allows(str(getattr(client, "host", "")), getattr(host, "host", None))

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:  # noqa: N802
        if not self._allowed(request):
            return _FORBIDDEN
        return self._rest.getChildWithDefault(path, request)

    def putChild(self, path: bytes, child: IResource) -> None:  # noqa: N802
        raise NotImplementedError("the admin listener's tree is built behind the wrapper")

    def render(self, request: Request) -> bytes:
        if not self._allowed(request):
            return _FORBIDDEN.render(request)  # type: ignore[no-any-return]
        return self._rest.render(request)  # type: ignore[no-any-return]


def restrict(resource: IResource, allow: tuple[str, ...] | None) -> IResource:
    """
    C{resource} for the clients whose address is in C{allow} (addresses,
    networks, C{local}, C{all}), or as it is when C{allow} is C{None}.
    """
    if allow is None:
        return resource
    return _Restricted(AccessRule("/", "require", allow), resource)
