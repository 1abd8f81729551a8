"""
What the balancer answers: a L{Pick}, or L{NoMemberAvailable}.
"""

from __future__ import annotations

import attrs

from .member import Member

__all__ = ["NoMemberAvailable", "Pick"]


@attrs.frozen
class Pick:
    """
    The member chosen for one attempt of a request.

    @ivar member: the chosen member.
    @ivar sticky: whether the request's session route was honoured.
    @ivar route_changed: whether the request carried a route naming a member but was sent
        elsewhere (httpd's C{BALANCER_ROUTE_CHANGED}).
    @ivar session_route: the route of the request that named a member, if any.
    """

    member: Member
    sticky: bool = False
    route_changed: bool = False
    session_route: str | None = None


class NoMemberAvailable(Exception):
    """
    No member may take this request (the proxy answers 503).

    @ivar reason: why, in words, e.g. C{"all members in error"}.
    @ivar balancer: the name of the balancer.
    """

    def __init__(self, reason: str, balancer: str = "") -> None:
        """
        @param reason: why no member is available.
        @param balancer: the name of the balancer.
        """
        super().__init__(reason, balancer)
        self.reason = reason
        self.balancer = balancer

    def __str__(self) -> str:
        if self.balancer:
            return f"balancer {self.balancer!r}: {self.reason}"
        return self.reason
