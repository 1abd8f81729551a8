"""
Readiness: whether a proxy serves, said three ways to what sits in front of
it.

  - L{check}: every listener listens and every balancer has a member that
    takes new requests (the admin listener's C{GET /healthz});
  - L{ready_line}: the log line once serving ("ready: listening on …,
    balancers …");
  - L{notify}: systemd's notification protocol (C{Type=notify}): a datagram
    such as C{READY=1} or C{STOPPING=1} to the socket C{$NOTIFY_SOCKET} names.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from twisted_lb.balancer import MemberStatus
from twisted_lb.control import ProxyControl

__all__ = [
    "Health",
    "check",
    "listener_addresses",
    "notify",
    "ready_line",
    "takes_new_requests",
]

_log = Logger()


@attrs.frozen
class Health:
    """
    The outcome of L{check}.

    @ivar ok: every listener listens and every balancer has a usable member.
    @ivar problems: what is not so, in words (empty when C{ok}).
    @ivar listeners: per listener, its endpoint string and the address it
        listens on (C{None} when it does not).
    @ivar balancers: per balancer, how many members take new requests and
        how many there are.
    """

    ok: bool
    problems: tuple[str, ...]
    listeners: tuple[tuple[str, str | None], ...]
    balancers: tuple[tuple[str, int, int], ...]

    def as_json(self) -> dict[str, Any]:
        """The JSON body of C{/healthz}."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "problems": list(self.problems),
            "listeners": [{"endpoint": e, "address": a} for e, a in self.listeners],
            "balancers": [
                {"name": name, "usable": usable, "members": total}
                for name, usable, total in self.balancers
            ],
        }


def _address(port: Any) -> str:
    host = port.getHost()
    if hasattr(host, "port"):
        address = f"[{host.host}]" if ":" in host.host else host.host
        return f"{address}:{host.port}"
    return str(getattr(host, "name", host))


def listener_addresses(proxy: ProxyControl) -> list[tuple[str, str | None]]:
    """
    Per listener of C{proxy}, its endpoint string and the address it listens on, or C{None} when it
    does not listen.
    """
    out: list[tuple[str, str | None]] = []
    for listener, service in zip(proxy.config.listeners, proxy.listening, strict=False):
        port = getattr(service, "port", None)
        out.append((listener.endpoint, None if port is None else _address(port)))
    return out


def takes_new_requests(balancer: Any, member: Any) -> bool:
    """Whether C{member} of C{balancer} may be given a new session now (usable, not draining)."""
    return bool(balancer.usable(member)) and member.status is not MemberStatus.DRAINING


def check(proxy: ProxyControl) -> Health:
    """Whether C{proxy} serves: see L{Health}."""
    problems = []
    listeners = listener_addresses(proxy)
    if not proxy.running:
        problems.append("the proxy is not running")
    for endpoint, address in listeners:
        if address is None:
            problems.append(f"listener {endpoint} is not listening")
    balancers = []
    for name, built in proxy.balancers.items():
        members = built.balancer.members
        usable = sum(1 for m in members if takes_new_requests(built.balancer, m))
        balancers.append((name, usable, len(members)))
        if not usable:
            problems.append(
                f"balancer {name} has no usable member (of {len(members)}: "
                + (", ".join(f"{m.route} {_state(m)}" for m in members) or "none")
                + ")"
            )
    return Health(not problems, tuple(problems), tuple(listeners), tuple(balancers))


def _state(member: Any) -> str:
    if member.status is MemberStatus.DISABLED:
        return "disabled"
    if member.in_error:
        return "in error"
    return str(member.status.value)


def ready_line(proxy: ProxyControl) -> str:
    """
    "ready: listening on 127.0.0.1:8443 (HTTPS), …; balancers demo (2 of 2
    members usable)": what a started C{proxy} serves.
    """
    health = check(proxy)
    kinds = []
    for listener, (endpoint, address) in zip(
        proxy.config.listeners, health.listeners, strict=False
    ):
        kind = "redirect" if listener.redirect else ("HTTPS" if listener.secure else "HTTP")
        kinds.append(f"{address or endpoint + ' (NOT listening)'} ({kind})")
    balancers = ", ".join(
        f"{name} ({usable} of {total} members usable)" for name, usable, total in health.balancers
    )
    return f"ready: listening on {', '.join(kinds) or 'nothing'}; balancers {balancers or 'none'}"


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """
    Send C{state} (C{"READY=1"}, C{"STOPPING=1"}, C{"STATUS=…"}, lines
    joined by newlines) to systemd's notification socket, when
    C{$NOTIFY_SOCKET} names one (as under a C{Type=notify} unit).

    @return: whether it was sent.
    """
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as e:
        _log.warn(
            "cannot tell systemd {state!r} through NOTIFY_SOCKET {address}: {error}",
            state=state.split("\n", 1)[0],
            address=address.lstrip("\0"),
            error=e.strerror or e,
        )
        return False
    return True
