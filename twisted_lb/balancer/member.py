"""
Balancer members: their configuration, their administrative status and the runtime state the
balancer keeps for each of them (error flag, load-balancing counters, traffic counters).
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs

from .health import CheckPolicy, CheckState

__all__ = ["LOADFACTOR_MAX", "LOADFACTOR_MIN", "Member", "MemberStatus"]

#: Smallest load factor accepted (like httpd's C{loadfactor=}).
LOADFACTOR_MIN = 1.0
#: Largest load factor accepted (like httpd's C{loadfactor=}).
LOADFACTOR_MAX = 100.0


class MemberStatus(enum.Enum):
    """
    The administrative status of a member.  Being in error is not a status: it is the separate
    runtime flag L{Member.in_error}, so that a disabled member in error is still disabled.

    @cvar ACTIVE: takes new sessions and its own sticky requests.
    @cvar DRAINING: takes only requests whose sticky route names it; no new sessions (mod_jk's
        C{D}, httpd's C{N}).
    @cvar DISABLED: takes nothing at all, not even its sticky requests, which fail over (httpd's
        C{D}).
    @cvar STANDBY: hot standby: takes new sessions only when no active member of its lbset is
        usable; for sticky routes it is searched after the normal members with the same route.
    """

    ACTIVE = "active"
    DRAINING = "draining"
    DISABLED = "disabled"
    STANDBY = "standby"


def _check_name(instance: Member, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"member {attribute.name} must be a non-empty string, not {value!r}")


def _check_loadfactor(instance: Member, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not LOADFACTOR_MIN <= value <= LOADFACTOR_MAX
    ):
        raise ValueError(
            f"loadfactor must be a number from {LOADFACTOR_MIN:g} to {LOADFACTOR_MAX:g},"
            f" not {value!r}"
        )


def _check_lbset(instance: Member, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"lbset must be an integer >= 0, not {value!r}")


def _check_retry(instance: Member, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"retry must be a number of seconds >= 0, not {value!r}")


def _check_slow_start(instance: Member, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"slow_start must be a number of seconds >= 0, not {value!r}")


def lbfactor_of(loadfactor: float) -> int:
    """
    The integer weight httpd derives from a load factor.

    @param loadfactor: a load factor from 1 to 100, decimals allowed.
    @return: C{round(loadfactor * 100)}, from 100 to 10000.
    """
    return round(loadfactor * 100)


@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class Member:
    """
    One balancer member (a Tomcat node): configuration plus the runtime state the balancer keeps.

    Change C{route}, C{lbset}, C{status} and C{loadfactor} of a member that belongs to a
    L{Balancer <twisted_lb.balancer.Balancer>} through the balancer's methods, so that its tables
    stay consistent; they validate through L{Member.update}.  Plain assignments are not
    validated (the runtime counters change on every request and cost nothing more than a slot
    write).  Members compare by identity.

    @ivar name: unique name of the member within its balancer.
    @ivar route: the route id compared with the text after the separator in session ids (Tomcat's
        C{jvmRoute}); defaults to C{name}.
    @ivar loadfactor: weight from 1 to 100, decimals allowed.
    @ivar lbset: failover preference group; lower sets are used first.
    @ivar status: the administrative status.
    @ivar retry: seconds after an error before the member is tried again by a real request when
        probing is off; C{0} means it may be tried on every request.
    @ivar check_policy: how the member is actively health-checked; C{None} for no checks (it is
        then only probed while in error).
    @ivar slow_start: seconds over which the member's weight ramps up after it comes back (from
        error, from disabled or draining, or when added at run time); C{0} for at once.
    @ivar lbfactor: C{round(loadfactor * 100)}, the integer weight configured.
    @ivar weight: the weight the lbmethods use: C{lbfactor}, or less during slow start.
    @ivar ramp_since: clock time the current slow start began; C{None} when not ramping.
    @ivar traffic_base: bytes added to the member's traffic by C{bytraffic}, so that a member
        that comes back starts level with the least loaded one instead of at its old total.
    @ivar traffic_level: the C{bytraffic} score (bytes per weight) it started level with.
    @ivar in_error: whether the member is currently out because of an error.
    @ivar error_since: clock time at which the current error began (or the last failed trial),
        C{None} when not in error.
    @ivar error_reason: why the member went into error; empty when not in error.
    @ivar lbstatus: the C{byrequests} smooth weighted round robin counter.
    @ivar elected: how many times the balancer picked this member.
    @ivar in_flight: requests currently being served by this member.
    @ivar errors: how many failures were recorded against this member.
    @ivar bytes_in: bytes received from this member.
    @ivar bytes_out: bytes sent to this member.
    @ivar last_probe_ok: outcome of the last probe, C{None} if never probed.
    @ivar check: the last active check (or probe) and the pass/fail counts.
    """

    name: str = attrs.field(validator=_check_name)
    route: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    loadfactor: float = attrs.field(default=1.0, validator=_check_loadfactor)
    lbset: int = attrs.field(default=0, validator=_check_lbset)
    status: MemberStatus = attrs.field(
        default=MemberStatus.ACTIVE, validator=attrs.validators.instance_of(MemberStatus)
    )
    retry: float = attrs.field(default=60.0, validator=_check_retry)
    check_policy: CheckPolicy | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(attrs.validators.instance_of(CheckPolicy)),
    )
    slow_start: float = attrs.field(default=0.0, kw_only=True, validator=_check_slow_start)

    lbfactor: int = attrs.field(init=False, default=100)
    weight: int = attrs.field(init=False, default=100)
    ramp_since: float | None = attrs.field(init=False, default=None)
    traffic_base: int = attrs.field(init=False, default=0)
    traffic_level: float = attrs.field(init=False, default=0.0)
    in_error: bool = attrs.field(init=False, default=False)
    error_since: float | None = attrs.field(init=False, default=None)
    error_reason: str = attrs.field(init=False, default="")
    lbstatus: int = attrs.field(init=False, default=0)
    elected: int = attrs.field(init=False, default=0)
    in_flight: int = attrs.field(init=False, default=0)
    errors: int = attrs.field(init=False, default=0)
    bytes_in: int = attrs.field(init=False, default=0)
    bytes_out: int = attrs.field(init=False, default=0)
    last_probe_ok: bool | None = attrs.field(init=False, default=None)
    check: CheckState = attrs.field(init=False, factory=CheckState)

    def __attrs_post_init__(self) -> None:
        if not self.route:
            self.route = self.name
        self.lbfactor = self.weight = lbfactor_of(self.loadfactor)

    def update(self, **changes: Any) -> None:
        """
        Change configured fields (C{route}, C{loadfactor}, C{lbset}, C{status}, C{retry},
        C{check_policy}, C{slow_start}), validated as at construction; nothing changes when one
        is invalid.  A new load factor also sets C{lbfactor} (and C{weight} unless in slow start).

        @raise ValueError: a value is invalid.
        @raise TypeError: a value has the wrong type.
        @raise AttributeError: a name is not a configured field.
        """
        fields = attrs.fields_dict(Member)
        for name, value in changes.items():
            field = fields.get(name)
            if field is None or not field.init or name == "name":
                raise AttributeError(f"{name!r} is not a configurable member field")
            if field.validator is not None:
                field.validator(self, field, value)
        for name, value in changes.items():
            setattr(self, name, value)
        if "loadfactor" in changes:
            self.lbfactor = lbfactor_of(self.loadfactor)
            if self.ramp_since is None:
                self.weight = self.lbfactor

    def to_dict(self) -> dict[str, Any]:
        """
        The member's configuration and runtime state as plain JSON-able values.

        @return: a new dictionary.
        """
        return {
            "name": self.name,
            "route": self.route,
            "loadfactor": self.loadfactor,
            "lbfactor": self.lbfactor,
            "lbset": self.lbset,
            "status": self.status.value,
            "retry": self.retry,
            "in_error": self.in_error,
            "error_since": self.error_since,
            "error_reason": self.error_reason,
            "lbstatus": self.lbstatus,
            "elected": self.elected,
            "in_flight": self.in_flight,
            "errors": self.errors,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "last_probe_ok": self.last_probe_ok,
            "checked": self.check_policy is not None,
            "check": self.check.to_dict(),
            "slow_start": self.slow_start,
            "weight": self.weight,
            "ramp_since": self.ramp_since,
        }
