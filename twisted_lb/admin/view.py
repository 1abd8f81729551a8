"""
What the manager shows of the running balancers, as plain JSON-able values:
the balancers' own snapshots plus each member's URL, a sentence saying whether
and why it takes requests, and, for a draining member, the sessions still
pinned to it.  The HTML page and the JSON API both show exactly this.
"""

from __future__ import annotations

from typing import Any

from .pinned import PinnedSessions

__all__ = ["describe_balancer", "describe_member", "describe_all"]


def _why(m: dict[str, Any], now: float) -> str:
    if m["in_error"]:
        since = m["error_since"]
        ago = "" if since is None else f" for {max(0.0, now - since):.0f} s"
        return f"in error{ago}: {m['error_reason'] or 'unknown reason'}"
    status = m["status"]
    if status == "disabled":
        return "disabled: takes no requests, sticky users fail over"
    if status == "draining":
        return "draining: takes only its sticky sessions' requests"
    if status == "standby":
        return f"hot standby: used when no active member of lbset {m['lbset']} is usable"
    return "active: takes new sessions"


def describe_member(
    built: Any, m: dict[str, Any], now: float, pinned: PinnedSessions | None
) -> dict[str, Any]:
    """One member of C{built}'s snapshot, with what the manager adds."""
    member = built.balancer.member_by_name(m["name"])
    mconf = built.member_configs.get(member) if member is not None else None
    out = dict(m)
    out["url"] = mconf.url if mconf is not None else None
    out["why"] = _why(m, now)
    out["pinned"] = (
        pinned.summary(built.config.name, m["name"])
        if pinned is not None and m["status"] == "draining"
        else None
    )
    return out


def describe_balancer(built: Any, pinned: PinnedSessions | None = None) -> dict[str, Any]:
    """A balancer's snapshot, each member described by L{describe_member}."""
    snapshot = built.balancer.snapshot()
    now = snapshot["time"]
    snapshot["members"] = [describe_member(built, m, now, pinned) for m in snapshot["members"]]
    return snapshot


def describe_all(balancers: dict[str, Any], pinned: PinnedSessions | None = None) -> list[dict[str, Any]]:
    """Every balancer, in configuration order."""
    return [describe_balancer(built, pinned) for built in balancers.values()]
