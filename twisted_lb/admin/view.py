"""
What the manager shows of the running balancers, as plain JSON-able values:
the balancers' own snapshots plus each member's URL, a sentence saying whether
and why it takes requests, the state it is really in and its last check in
words, whether it is the last member taking new requests, and the sticky
sessions pinned to it (estimated, exact for a draining member).  The HTML page
and the JSON API both show exactly this.
"""

from __future__ import annotations

from typing import Any

from twisted_lb.readiness import takes_new_requests

from .pinned import PinnedSessions

__all__ = ["describe_balancer", "describe_member", "describe_all", "last_check", "member_state"]


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


def _seconds(value: float) -> str:
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 90 * 60:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def member_state(m: dict[str, Any], trial: str | None = None) -> tuple[str, str]:
    """
    The state a member is really in, as a key (the page's colour) and in
    words: C{disabled}, C{error} ("in error"), C{probing} (in error, being
    checked back: a check under way, passed ones counted, or its retry
    trial), C{draining}, C{standby}, C{slowstart} (back from an error, its
    weight still ramping up) or C{active}.
    """
    check = m.get("check") or {}
    if m["status"] == "disabled":
        return "disabled", "disabled"
    if m["in_error"]:
        if check.get("running") or check.get("passes") or m["name"] == trial:
            return "probing", "in error, probing"
        return "error", "in error"
    if m["status"] == "draining":
        return "draining", "draining"
    if m["status"] == "standby":
        return "standby", "hot standby"
    if m.get("ramp_since") is not None and m.get("loadfactor"):
        share = min(1.0, (m.get("weight") or 0.0) / m["loadfactor"])
        return "slowstart", f"slow start ({share:.0%} of its weight)"
    return "active", "active"


def last_check(m: dict[str, Any], now: float) -> str:
    """
    The last health check (or probe) in words: "CPONG in 2 ms, 3 s ago";
    "connection refused, 9 fails, next probe in 4 s"; "not checked yet".
    """
    check = m.get("check") or {}
    parts = []
    if check.get("at") is None:
        parts.append("not checked yet" if m.get("checked") else "no health check")
    else:
        detail = check.get("detail") or ("passed" if check.get("ok") else "failed")
        if check.get("duration") is not None:
            detail += f" in {check['duration'] * 1000:.0f} ms"
        parts.append(detail)
        if not check.get("ok") and check.get("fails"):
            parts.append(f"{check['fails']} fail" + ("s" if check["fails"] > 1 else ""))
        parts.append(f"{_seconds(now - check['at'])} ago")
    if check.get("running"):
        parts.append("a check is under way")
    elif check.get("next_at") is not None and (m.get("checked") or m["in_error"]):
        kind = "probe" if m["in_error"] else "check"
        parts.append(f"next {kind} in {_seconds(check['next_at'] - now)}")
    return ", ".join(parts)


def describe_member(
    built: Any, m: dict[str, Any], now: float, pinned: PinnedSessions | None,
    trial: str | None = None,
) -> dict[str, Any]:
    """One member of C{built}'s snapshot, with what the manager adds."""
    member = built.balancer.member_by_name(m["name"])
    mconf = built.member_configs.get(member) if member is not None else None
    out = dict(m)
    out["url"] = mconf.url if mconf is not None else None
    out["why"] = _why(m, now)
    out["state"], out["state_text"] = member_state(m, trial)
    out["last_check"] = last_check(m, now)
    others = [
        o for o in built.balancer.members
        if o is not member and takes_new_requests(built.balancer, o)
    ]
    out["last_usable"] = (
        member is not None and takes_new_requests(built.balancer, member) and not others
    )
    out["pinned"] = (
        pinned.summary(built.config.name, m["name"])
        if pinned is not None and built.config.sticky is not None
        else None
    )
    return out


def describe_balancer(built: Any, pinned: PinnedSessions | None = None) -> dict[str, Any]:
    """A balancer's snapshot, each member described by L{describe_member}."""
    snapshot = built.balancer.snapshot()
    now = snapshot["time"]
    trial = snapshot.get("trial")
    snapshot["members"] = [
        describe_member(built, m, now, pinned, trial) for m in snapshot["members"]
    ]
    return snapshot


def describe_all(balancers: dict[str, Any], pinned: PinnedSessions | None = None) -> list[dict[str, Any]]:
    """Every balancer, in configuration order."""
    return [describe_balancer(built, pinned) for built in balancers.values()]
