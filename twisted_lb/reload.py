"""
Reloading a running proxy's configuration (C{SIGHUP}, or
L{ProxyService.reload <twisted_lb.service.ProxyService.reload>}).

A reload first plans (L{plan_reload}: the running configuration and the new
one give a L{ReloadPlan}): it builds everything the new configuration needs
(backends of new and changed members, new balancers, the access log, new
listeners, which start listening). Only then the service carries the plan
out (L{ProxyService.apply <twisted_lb.service.ProxyService.apply>}), in one
step that cannot fail; an invalid configuration raises L{ConfigError} and
changes nothing. This module never changes the service itself.

What a reload does, matching members by balancer name and route:

  - an unchanged member keeps its L{Member} (error state, counters) and its
    backend (pooled connections);
  - a changed C{loadfactor}, C{lbset}, C{status} or C{retry} is applied in
    place; any other member change (URL, timeouts, secret, TLS...) replaces
    the member: a new backend takes the new requests, the old one finishes
    its requests in flight and is then closed;
  - a removed member gets no new request and is closed once its requests and
    WebSockets in flight are done; a new member takes requests at once;
  - a balancer whose C{lbmethod}, C{stickysession} or C{nofailover} changed
    is changed in place; one whose other settings changed is rebuilt (its
    members start afresh); removed balancers finish their requests in flight
    and are closed;
  - the routes are swapped in one step: a request in flight finishes on the
    balancer it started on;
  - a listener present before and after keeps its socket and its connections;
    one with a C{tls} table reads its certificate and key files again, and new
    connections get them (certificate renewal: replace the files, then
    reload; a file that cannot be read or parsed refuses the reload); new
    listeners listen, removed ones stop listening (their open connections are
    served to the end);
  - changed C{[limits]} apply to every listener's connections accepted from
    then on; connections already open keep the limits they were accepted
    with, and still count towards the new C{max_connections};
  - the access log is reopened (log rotation: move the file, then reload).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from twisted_lb.accesslog import AccessLogFile
from twisted_lb.balancer import LBMethod, Member
from twisted_lb.builders import (
    MEMBER_STATUS,
    BuiltBalancer,
    backend_for,
    build_balancer,
    load_error_pages,
    log_summary,
    open_access_log,
)
from twisted_lb.config import read_config
from twisted_lb.config.model import (
    BalancerConfig,
    ConfigError,
    LimitsConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
)
from twisted_lb.control import ProxyControl
from twisted_lb.dispatch import Backend
from twisted_lb.errors import ErrorPage
from twisted_lb.frontend import FrontendSite
from twisted_lb.tls import server_context

__all__ = [
    "ReloadPlan",
    "ReloadSummary",
    "plan_reload",
    "read_again",
    "reload_and_log",
    "ReloadOnSignal",
]

_log = Logger()

#: Member settings a running balancer changes in place.
_IN_PLACE = ("loadfactor", "lbset", "status", "retry")
#: Balancer settings a running balancer changes in place.
_BALANCER_IN_PLACE = ("lbmethod", "sticky", "nofailover")
#: Where Twisted's TLSMemoryBIOFactory keeps what makes each new connection's
#: TLS state (Twisted 24-26); tests/integration/test_reload.py checks it.
_CREATOR = "_creatorCallable"
#: Top-level settings that take effect at the next start only.
_AT_START = ("log_format",)


@attrs.frozen
class ReloadSummary:
    """
    What a reload changed, in words (C{balancer/route} for members).
    """

    source: str
    members_added: tuple[str, ...] = ()
    members_removed: tuple[str, ...] = ()
    members_changed: tuple[str, ...] = ()
    members_replaced: tuple[str, ...] = ()
    balancers_added: tuple[str, ...] = ()
    balancers_removed: tuple[str, ...] = ()
    balancers_rebuilt: tuple[str, ...] = ()
    routes_changed: bool = False
    listeners_added: tuple[str, ...] = ()
    listeners_removed: tuple[str, ...] = ()
    #: kept listeners whose certificate and key files were read again
    certificates_reread: tuple[str, ...] = ()
    #: the C{[limits]} that changed, as C{"name old -> new"}
    limits_changed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line: the changes, or C{"nothing changed"}."""
        parts = [
            f"{label} {', '.join(values)}"
            for label, values in (
                ("members added:", self.members_added),
                ("members removed:", self.members_removed),
                ("members changed in place:", self.members_changed),
                ("members replaced:", self.members_replaced),
                ("balancers added:", self.balancers_added),
                ("balancers removed:", self.balancers_removed),
                ("balancers rebuilt:", self.balancers_rebuilt),
                ("listeners added:", self.listeners_added),
                ("listeners removed:", self.listeners_removed),
                ("certificates read again:", self.certificates_reread),
                ("limits changed:", self.limits_changed),
            )
            if values
        ]
        if self.routes_changed:
            parts.append("routes changed")
        parts.extend(self.notes)
        return "; ".join(parts) or "nothing changed"


@attrs.define
class _MemberPlan:
    """What happens to the members of a balancer that stays."""

    built: BuiltBalancer
    config: BalancerConfig
    added: list[tuple[MemberConfig, Backend]] = attrs.Factory(list)
    replaced: list[tuple[Member, MemberConfig, Backend]] = attrs.Factory(list)
    changed: list[tuple[Member, MemberConfig]] = attrs.Factory(list)
    removed: list[Member] = attrs.Factory(list)

    def new_backends(self) -> list[Backend]:
        return [b for _, b in self.added] + [b for _, _, b in self.replaced]


def _rebuild_needed(old: BalancerConfig, new: BalancerConfig) -> bool:
    """Whether a balancer setting other than those changed in place differs."""
    keep = {name: getattr(old, name) for name in _BALANCER_IN_PLACE}
    return attrs.evolve(new, members=old.members, **keep) != old or old.websocket != new.websocket


def _plan_members(built: BuiltBalancer, config: BalancerConfig, reactor: Any, x_forwarded: bool) -> _MemberPlan:
    """Match members by route; build the backends of new and replaced ones."""
    plan = _MemberPlan(built, config)
    current = {m.route: m for m in built.balancer.members}
    for mconf in config.members:
        member = current.pop(mconf.effective_route, None)
        if member is None:
            plan.added.append((mconf, backend_for(mconf, reactor, x_forwarded)))
            continue
        old = built.member_configs[member]
        if old == mconf:
            continue
        if attrs.evolve(old, **{k: getattr(mconf, k) for k in _IN_PLACE}) == mconf:
            plan.changed.append((member, mconf))
        else:
            plan.replaced.append((member, mconf, backend_for(mconf, reactor, x_forwarded)))
    plan.removed.extend(current.values())
    return plan


def _apply_members(plan: _MemberPlan) -> list[defer.Deferred[None]]:
    """Change a balancer's members as planned; return the drains of old backends."""
    built, balancer = plan.built, plan.built.balancer
    drains = [built.remove_member(member) for member in plan.removed]
    for member, mconf, backend in plan.replaced:
        drains.append(built.remove_member(member))
        built.add_member(mconf, backend)
    for member, mconf in plan.changed:
        if member.loadfactor != mconf.loadfactor:
            balancer.set_loadfactor(member, mconf.loadfactor)
        if member.lbset != mconf.lbset:
            balancer.set_lbset(member, mconf.lbset)
        if built.member_configs[member].status != mconf.status:
            balancer.set_status(member, MEMBER_STATUS[mconf.status.value])
        member.update(retry=mconf.retry)
        built.member_configs[member] = mconf
    for mconf, backend in plan.added:
        built.add_member(mconf, backend)
    config = plan.config
    balancer.method = LBMethod(config.lbmethod.value)
    balancer.sticky = config.sticky
    balancer.nofailover = config.nofailover
    built.config = config
    return drains


def _close_all(backends: list[Backend], builts: list[BuiltBalancer]) -> None:
    """Close what a failed reload had built (nothing used it yet)."""
    for backend in backends:
        defer.maybeDeferred(backend.close)  # type: ignore[attr-defined, call-overload]
    for built in builts:
        built.close()


def read_again(running: ProxyConfig) -> ProxyConfig:
    """
    The configuration file of C{running} read again (its warnings logged).

    @raise ConfigError: C{running} was not read from a file, or the file is
        not valid.
    """
    if running.source.startswith("<"):
        raise ConfigError(running.source, "file", "this configuration was not read from a file")
    config, warnings = read_config(running.source)
    for warning in warnings:
        _log.warn("{source}: {warning}", source=running.source, warning=warning)
    return config


@attrs.define
class ReloadPlan:
    """
    A new configuration, ready to replace the running one: everything it
    needs is built (backends of new and changed members, new balancers, the
    access log, TLS contexts read again) and its new listeners listen, but
    nothing that runs has changed yet. L{plan_reload} makes it;
    L{ProxyService.apply <twisted_lb.service.ProxyService.apply>} carries
    it out (in one step that cannot fail), with the methods below for what
    changes outside the service; L{abandon} releases it instead.

    @ivar running: the configuration it replaces.
    @ivar config: the new configuration.
    @ivar fresh: the new and rebuilt balancers, by name.
    @ivar access_log: the access log to use from now on (the running one
        when its file and format did not change).
    @ivar started: the new listeners (listening, under the service).
    @ivar kept: the listeners kept, by their index in C{config}.
    """

    running: ProxyConfig
    config: ProxyConfig
    error_pages: dict[int, ErrorPage]
    fresh: dict[str, BuiltBalancer]
    members: list[_MemberPlan]
    made: list[Backend]
    access_log: AccessLogFile | None
    started: list[StreamServerEndpointService]
    kept: dict[int, StreamServerEndpointService]
    listeners_added: list[str]
    certificates: list[tuple[TLSMemoryBIOFactory, Any, str]]

    def abandon(self, running_log: AccessLogFile | None) -> None:
        """Release what planning built and started (nothing used it)."""
        for listening in self.started:
            listening.disownServiceParent()
        _close_all(self.made, list(self.fresh.values()))
        if self.access_log is not None and self.access_log is not running_log:
            self.access_log.close()

    def change_members(self) -> list[defer.Deferred[None]]:
        """
        Change the members of the balancers that stay, in place.

        @return: the drains of the backends taken out.
        """
        drains: list[defer.Deferred[None]] = []
        for plan in self.members:
            drains.extend(_apply_members(plan))
            plan.built.default_timeout = self.config.timeout
        return drains

    def balancers_after(
        self, running: Mapping[str, BuiltBalancer]
    ) -> tuple[dict[str, BuiltBalancer], list[BuiltBalancer]]:
        """
        The balancers of the new configuration by name (the fresh ones, else
        the running ones), and the running ones taken out (removed or
        rebuilt).
        """
        names = {c.name for c in self.config.balancers}
        retired = [b for name, b in running.items() if name not in names or name in self.fresh]
        balancers = {
            c.name: self.fresh.get(c.name) or running[c.name] for c in self.config.balancers
        }
        return balancers, retired

    def rotate_log(self, old_log: AccessLogFile | None) -> None:
        """Close the access log replaced, or reopen the one kept (log rotation)."""
        access_log = self.access_log
        if old_log is not None and old_log is not access_log:
            old_log.close()
        elif access_log is not None:
            try:
                access_log.reopen()
            except OSError as e:
                _log.error("access log {path} not reopened: {error}", path=access_log.path, error=e)

    def listening_after(
        self, running: Sequence[StreamServerEndpointService]
    ) -> tuple[list[StreamServerEndpointService], list[tuple[str, StreamServerEndpointService]]]:
        """
        The listening services of the new configuration, in its order, and
        the running ones it drops (with their endpoint strings).
        """
        still = list(self.kept.values())
        removed = [
            (listener.endpoint, listening)
            for listener, listening in zip(self.running.listeners, running, strict=True)
            if listening not in still
        ]
        started = list(self.started)
        listening = [
            self.kept[i] if i in self.kept else started.pop(0)
            for i in range(len(self.config.listeners))
        ]
        return listening, removed

    def change_kept_listeners(self) -> tuple[str, ...]:
        """
        Give the kept listeners their new certificates, server names and
        limits (for the connections they accept from now on).

        @return: the limits that changed, as C{"name old -> new"}.
        """
        for factory, creator, _ in self.certificates:
            # New connections only: a connection made before keeps its TLS session.
            setattr(factory, _CREATOR, creator)
        for i, listening in self.kept.items():
            site = _site_of(listening)
            if site is not None:
                site.set_server_name(self.config.listeners[i].server_name)
        limits_changed = _limits_changes(self.running.limits, self.config.limits)
        if limits_changed:
            # New listeners were built with them; kept ones take them for new connections.
            for listening in self.kept.values():
                site = _site_of(listening)
                if site is not None:
                    site.set_limits(self.config.limits)
        return limits_changed

    def report(
        self,
        balancers: Mapping[str, BuiltBalancer],
        listeners_removed: Sequence[str],
        limits_changed: tuple[str, ...],
    ) -> ReloadSummary:
        """What the reload changed, logged (with the new listeners and balancers if they changed)."""
        config, old, plans, fresh = self.config, self.running, self.members, self.fresh
        summary = ReloadSummary(
            source=config.source,
            members_added=tuple(f"{p.config.name}/{c.effective_route}" for p in plans for c, _ in p.added),
            members_removed=tuple(f"{p.config.name}/{m.route}" for p in plans for m in p.removed),
            members_changed=tuple(f"{p.config.name}/{m.route}" for p in plans for m, _ in p.changed),
            members_replaced=tuple(f"{p.config.name}/{m.route}" for p in plans for m, _, _ in p.replaced),
            balancers_added=tuple(n for n in fresh if n not in {b.name for b in old.balancers}),
            balancers_removed=tuple(
                b.name for b in old.balancers if b.name not in {c.name for c in config.balancers}
            ),
            balancers_rebuilt=tuple(n for n in fresh if n in {b.name for b in old.balancers}),
            routes_changed=config.routes != old.routes,
            listeners_added=tuple(self.listeners_added),
            listeners_removed=tuple(listeners_removed),
            certificates_reread=tuple(endpoint for _, _, endpoint in self.certificates),
            limits_changed=limits_changed,
            notes=tuple(
                f"{key} changes at the next start" for key in _AT_START if getattr(config, key) != getattr(old, key)
            ),
        )
        _log.info("reloaded {source}: {changes}", source=config.source, changes=summary.describe())
        if fresh or self.listeners_added or listeners_removed:
            log_summary(config, dict(balancers))
        return summary


def plan_reload(
    running: ProxyConfig,
    config: ProxyConfig,
    *,
    reactor: Any,
    balancers: Mapping[str, BuiltBalancer],
    access_log: AccessLogFile | None,
    listening: Sequence[StreamServerEndpointService],
    build_listener: Callable[[ProxyConfig, int], StreamServerEndpointService],
    parent: IServiceCollection,
) -> ReloadPlan:
    """
    Plan replacing the C{running} configuration by C{config}: build what is
    new, start the new listeners (under C{parent}); change nothing running.

    @param balancers: the running balancers, by name.
    @param access_log: the running access log.
    @param listening: the running listening services, in C{running}'s order.
    @param build_listener: builds the (not yet started) listening service of
        a listener of a configuration, by index.
    @raise ConfigError: C{config} cannot be applied (a new listener cannot
        listen, a file cannot be read...); what was built is released.
    """
    rebuild_all = config.x_forwarded != running.x_forwarded
    fresh: dict[str, BuiltBalancer] = {}
    plans: list[_MemberPlan] = []
    made: list[Backend] = []
    started: list[StreamServerEndpointService] = []
    new_log = access_log
    try:
        error_pages = load_error_pages(config)
        for bconf in config.balancers:
            built = balancers.get(bconf.name)
            if built is None or rebuild_all or _rebuild_needed(built.config, bconf):
                fresh[bconf.name] = build_balancer(
                    bconf, reactor, x_forwarded=config.x_forwarded, default_timeout=config.timeout
                )
            else:
                plan = _plan_members(built, bconf, reactor, config.x_forwarded)
                plans.append(plan)
                made.extend(plan.new_backends())
        same_log = access_log is not None and (access_log.path, access_log.log_format) == (
            config.access_log,
            config.access_log_format,
        )
        if not same_log:
            new_log = open_access_log(config)
        kept, listeners_added = _start_listeners(
            running, config, listening, build_listener, parent, started
        )
        certificates = _reread_certificates(config, kept)
    except BaseException:
        for service in started:
            service.disownServiceParent()
        _close_all(made, list(fresh.values()))
        if new_log is not None and new_log is not access_log:
            new_log.close()
        raise
    return ReloadPlan(
        running=running,
        config=config,
        error_pages=error_pages,
        fresh=fresh,
        members=plans,
        made=made,
        access_log=new_log,
        started=started,
        kept=kept,
        listeners_added=listeners_added,
        certificates=certificates,
    )


def _same_socket(old: ListenerConfig, new: ListenerConfig) -> bool:
    """
    Whether C{new} is C{old} with at most its C{server_name} or its TLS files
    and client-certificate settings changed: the listener is kept (its
    socket and connections) and takes those in place.
    """
    if (old.tls is None) != (new.tls is None):
        return False
    return attrs.evolve(old, tls=None, server_name=None) == attrs.evolve(
        new, tls=None, server_name=None
    )


def _start_listeners(
    old: ProxyConfig,
    new: ProxyConfig,
    listening: Sequence[StreamServerEndpointService],
    build_listener: Callable[[ProxyConfig, int], StreamServerEndpointService],
    parent: IServiceCollection,
    started: list[StreamServerEndpointService],
) -> tuple[dict[int, StreamServerEndpointService], list[str]]:
    """
    Match listeners; start the new ones under C{parent} (appended to
    C{started}).

    @return: the kept listening services by their new index, and the new
        endpoints.
    @raise ConfigError: a new listener cannot be built or cannot listen.
    """
    unused = list(zip(old.listeners, listening, strict=True))
    kept: dict[int, StreamServerEndpointService] = {}
    added = []
    for i, listener in enumerate(new.listeners):
        match = next((pair for pair in unused if _same_socket(pair[0], listener)), None)
        if match is not None:
            unused.remove(match)
            kept[i] = match[1]
            continue
        service = build_listener(new, i)
        try:
            service.setServiceParent(parent)
        except ConfigError:
            service.disownServiceParent()
            raise
        except Exception as e:
            service.disownServiceParent()
            raise ConfigError(new.source, f"listen[{i}].endpoint", f"cannot listen: {e}") from None
        started.append(service)
        added.append(listener.endpoint)
    return kept, added


def _reread_certificates(
    config: ProxyConfig, kept: dict[int, StreamServerEndpointService]
) -> list[tuple[TLSMemoryBIOFactory, Any, str]]:
    """
    The TLS contexts of the kept listeners with a C{tls} table, built again
    from their files (nothing running changes yet).

    @return: per such listener, its TLS factory, the new connection creator
        and its endpoint.
    @raise ConfigError: a certificate, key or chain file cannot be read or
        parsed.
    """
    found = []
    for i, listening in sorted(kept.items()):
        listener = config.listeners[i]
        factory = listening.factory
        if listener.tls is None or not isinstance(factory, TLSMemoryBIOFactory):
            continue
        if not hasattr(factory, _CREATOR):
            _log.warn(
                "{endpoint}: this Twisted's TLS factory cannot take new certificates; "
                "restart to change them", endpoint=listener.endpoint,
            )
            continue
        try:
            context = server_context(listener.tls)
        except (OSError, ValueError) as e:
            raise ConfigError(config.source, f"listen[{i}].tls", str(e)) from None
        # Wrapped as TLSMemoryBIOFactory wraps what it is given.
        creator = getattr(TLSMemoryBIOFactory(context, False, factory.wrappedFactory), _CREATOR)
        found.append((factory, creator, listener.endpoint))
    return found


def _site_of(listening: StreamServerEndpointService) -> FrontendSite | None:
    """The L{FrontendSite} of a listener (inside its TLS factory, if any), or C{None}."""
    factory = listening.factory
    if isinstance(factory, TLSMemoryBIOFactory):
        factory = factory.wrappedFactory
    return factory if isinstance(factory, FrontendSite) else None


def _limits_changes(old: LimitsConfig, new: LimitsConfig) -> tuple[str, ...]:
    """The limits that differ, as C{"name old -> new"}, in the order of L{LimitsConfig}."""
    return tuple(
        f"{field.name} {getattr(old, field.name)!r} -> {getattr(new, field.name)!r}"
        for field in attrs.fields(LimitsConfig)
        if getattr(old, field.name) != getattr(new, field.name)
    )


class ReloadOnSignal(Service):
    """
    Reloads a proxy on C{SIGHUP} (installed by C{twistd lbproxy}).

    The signal handler only schedules the reload on the reactor
    (C{callFromThread}, as twistd does for C{SIGUSR1}); the reload then runs
    like any other event. A refused configuration is logged with its file,
    key and problem, and the running one stays. (With C{log_format = "json"},
    L{twisted_lb.logs.LogFileSignals} reopens twistd's log on the same signal.)
    """

    def __init__(self, proxy: ProxyControl, reactor: Any) -> None:
        self.proxy = proxy
        self.reactor = reactor
        self._previous: Any = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._on_signal)

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(signal.SIGHUP, self._previous)
            self._previous = None

    def _on_signal(self, signum: int, frame: object) -> None:
        self.reactor.callFromThread(self.reload)

    def reload(self) -> None:
        """Reload now; log the outcome."""
        if not self.proxy.running:
            return
        reload_and_log(self.proxy)


def reload_and_log(proxy: ProxyControl) -> None:
    """Reload C{proxy} from its file (on SIGHUP); log the outcome, raise nothing."""
    _log.info("SIGHUP: reloading {source}", source=proxy.config.source)
    try:
        proxy.reload()
    except ConfigError as e:
        _log.error(
            "reload refused, the running configuration stays: {source}: {key}: {problem}",
            source=e.source, key=e.key, problem=e.problem,
        )
    except Exception:
        _log.failure("reload failed; the running configuration stays")
