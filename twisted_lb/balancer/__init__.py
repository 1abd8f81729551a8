"""
The balancer core: which member serves each attempt of a request.

It decides and does no I/O: time comes from an injected clock, and the dispatcher reports every
outcome back through L{Balancer}'s methods.
"""

from __future__ import annotations

from twisted_lb.sticky import StickyConfig, find_session_ids, find_session_routes

from .clock import SupportsSeconds
from .core import Balancer
from .health import CheckPolicy, CheckState, HealthChange
from .member import Member, MemberStatus
from .methods import LBMethod
from .pick import NoMemberAvailable, Pick

__all__ = [
    "Balancer",
    "CheckPolicy",
    "CheckState",
    "HealthChange",
    "LBMethod",
    "Member",
    "MemberStatus",
    "NoMemberAvailable",
    "Pick",
    "StickyConfig",
    "SupportsSeconds",
    "find_session_ids",
    "find_session_routes",
]
