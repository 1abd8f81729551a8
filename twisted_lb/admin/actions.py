"""
What the balancer manager can do to a running proxy, in one place for the
HTML page, the JSON API and the re-applied state file.

Members are named by balancer and route: routes are unique within a balancer
and are what operators (and Tomcat's C{jvmRoute}) know them by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from twisted_lb.balancer import Member, MemberStatus
from twisted_lb.config.model import ConfigError, MemberConfig

if TYPE_CHECKING:
    from twisted_lb.builders import BuiltBalancer

__all__ = [
    "ActionError",
    "MEMBER_ACTIONS",
    "add_member",
    "find_member",
    "member_action",
    "plan_action",
    "plan_add",
]

_log = Logger()

#: Actions on one member, and the status each sets (C{None}: not a status change).
MEMBER_ACTIONS: dict[str, MemberStatus | None] = {
    "enable": MemberStatus.ACTIVE,
    "drain": MemberStatus.DRAINING,
    "disable": MemberStatus.DISABLED,
    "standby": MemberStatus.STANDBY,
    "loadfactor": None,
    "remove": None,
}


class ActionError(Exception):
    """
    An action that cannot be done.

    @ivar status: the HTTP status that says why (400, 404 or 409).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def find_balancer(balancers: dict[str, BuiltBalancer], name: str) -> BuiltBalancer:
    """
    @raise ActionError: 404 when there is no balancer of that name.
    """
    built = balancers.get(name)
    if built is None:
        raise ActionError(404, f"no balancer {name!r}")
    return built


def find_member(built: BuiltBalancer, route: str) -> Member:
    """
    @raise ActionError: 404 when the balancer has no member with that route.
    """
    member = built.balancer.member_by_route(route)
    if member is None:
        raise ActionError(404, f"balancer {built.config.name!r} has no member with route {route!r}")
    return member


def _loadfactor(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ActionError(400, f"load factor must be a number, not {value!r}") from None
    if not 1 <= number <= 100:
        raise ActionError(400, f"load factor must be from 1 to 100, not {value!r}")
    return number


def plan_action(built: BuiltBalancer, route: str, action: str, loadfactor: Any = None) -> dict[str, Any]:
    """
    Check one action on the member with C{route} and say what it would
    change, without changing anything (a shared store records it first).

    @return: C{{"status": ...}}, C{{"loadfactor": ...}} or C{{"removed": True}}.
    @raise ActionError: an unknown action or member, a bad load factor, or
        removing the last member.
    """
    if action not in MEMBER_ACTIONS:
        raise ActionError(400, f"unknown action {action!r} (known: {', '.join(MEMBER_ACTIONS)})")
    find_member(built, route)
    status = MEMBER_ACTIONS[action]
    if status is not None:
        return {"status": status.value}
    if action == "loadfactor":
        return {"loadfactor": _loadfactor(loadfactor)}
    if len(built.balancer.members) == 1:
        raise ActionError(409, "the last member of a balancer cannot be removed; disable it instead")
    return {"removed": True}


def member_action(
    built: BuiltBalancer, route: str, action: str, loadfactor: Any = None
) -> dict[str, Any]:
    """
    Apply one action to the member with C{route}.

    @param action: one of L{MEMBER_ACTIONS}.
    @param loadfactor: the new load factor, for C{"loadfactor"}.
    @return: what changed, for the state file (see L{plan_action}).
    @raise ActionError: an unknown action or member, a bad load factor, or
        removing the last member.
    """
    change = plan_action(built, route, action, loadfactor)
    member = find_member(built, route)
    balancer = built.balancer
    if "status" in change:
        balancer.set_status(member, MemberStatus(change["status"]))
    elif "loadfactor" in change:
        balancer.set_loadfactor(member, change["loadfactor"])
    else:
        built.remove_member(member).addErrback(
            lambda f: _log.failure("closing removed member {member}", f, member=member.name)
        )
    return change


def _member_config(built: BuiltBalancer, url: str, route: str, loadfactor: Any) -> MemberConfig:
    """The L{MemberConfig} of a member to add; L{ActionError} 400 when it is bad."""
    try:
        return MemberConfig(
            url=url.strip(),
            route=route.strip(),
            loadfactor=_loadfactor(loadfactor),
            timeout=built.default_timeout,
        )
    except (ValueError, TypeError) as e:
        raise ActionError(400, str(e)) from None


def plan_add(built: BuiltBalancer, url: str, route: str = "", loadfactor: Any = 1.0) -> MemberConfig:
    """
    Check a member to add (see L{add_member}) without adding it.

    @return: its configuration.
    @raise ActionError: 400 for a bad URL, route or load factor, or a scheme
        this balancer does not take; 409 when the route is taken.
    """
    mconf = _member_config(built, url, route, loadfactor)
    if (mconf.scheme in ("ws", "wss")) != built.config.websocket:
        kinds = "ws(s)://" if built.config.websocket else "ajp://, http(s)://"
        raise ActionError(
            400, f"balancer {built.config.name!r} takes {kinds} members, not {mconf.scheme}://"
        )
    if built.balancer.member_by_route(mconf.effective_route) is not None:
        raise ActionError(
            409, f"route {mconf.effective_route!r} is already used in {built.config.name!r}"
        )
    return mconf


def add_member(built: BuiltBalancer, url: str, route: str = "", loadfactor: Any = 1.0) -> Member:
    """
    Add a member to a running balancer, built like a member of the
    configuration file that gives only its URL, route and load factor: its
    C{timeout} is the top-level one (L{BuiltBalancer.default_timeout
    <twisted_lb.builders.BuiltBalancer.default_timeout>}), its health checks
    are the balancer's, its other settings the defaults of L{MemberConfig}.

    @raise ActionError: 400 for a bad URL, route or load factor; 409 when
        the route is taken.
    """
    mconf = _member_config(built, url, route, loadfactor)
    try:
        return built.add_member(mconf)
    except ConfigError as e:
        raise ActionError(400, e.problem) from None
    except ValueError as e:
        raise ActionError(409 if "already used" in str(e) else 400, str(e)) from None
