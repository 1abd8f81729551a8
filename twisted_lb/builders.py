"""
Building the parts of a running proxy from a L{ProxyConfig}: a balancer
with its backends, prober and health checker (L{BuiltBalancer}), the path
router, the proxy resource, the error pages and the access log.

What the service builds at start-up, what a reload builds for a new
configuration and what the manager builds for a member it adds all come
from here; this module knows nothing of the service that runs them.
"""
from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from twisted_lb.access import AccessRules
from twisted_lb.accesslog import AccessLogFile
from twisted_lb.backends.ajp import AJPBackend
from twisted_lb.balancer import Balancer, CheckPolicy, LBMethod, Member, MemberStatus
from twisted_lb.basic_auth import AuthRules
from twisted_lb.config.model import (
    DEFAULT_HOST,
    BalancerConfig,
    ConfigError,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.dispatch import Backend, Dispatcher
from twisted_lb.errors import ErrorPage
from twisted_lb.header_edits import HeaderEdits
from twisted_lb.health import HealthChecker, Prober
from twisted_lb.request_rules import RequestRule, RequestRules
from twisted_lb.resource import ProxyResource, ProxyTarget
from twisted_lb.routing import Router, VirtualHosts
from twisted_lb.websocket import WebSocketBridge, WSMember

if TYPE_CHECKING:
    pass


__all__ = [
    "MEMBER_STATUS",
    "BuiltBalancer",
    "backend_for",
    "build_balancer",
    "build_resource",
    "build_router",
    "load_error_pages",
    "log_summary",
    "open_access_log",
]

_log = Logger()

MEMBER_STATUS = {
    "active": MemberStatus.ACTIVE,
    "draining": MemberStatus.DRAINING,
    "disabled": MemberStatus.DISABLED,
    "standby": MemberStatus.STANDBY,
}


class BuiltBalancer:
    """
    A balancer ready to serve: the deciding core, a backend per member, the
    dispatcher, the background prober and the health checker.

    @ivar default_timeout: the configuration's top-level C{timeout}: what a
        member added at run time (the balancer manager) waits for answers,
        as a member of the file without its own C{timeout} does.
    """

    def __init__(
        self,
        config: BalancerConfig,
        reactor: Any,
        *,
        x_forwarded: bool = True,
        default_timeout: float = 300.0,
    ) -> None:
        self.config = config
        self.default_timeout = default_timeout
        self._reactor = reactor
        self._x_forwarded = x_forwarded
        members: list[Member] = []
        backends: dict[Member, Backend] = {}
        #: The configuration each member was built from.
        self.member_configs: dict[Member, MemberConfig] = {}
        for mconf in config.members:
            member = _member_for(mconf, {m.name for m in members}, config)
            members.append(member)
            backends[member] = backend_for(mconf, reactor, x_forwarded)
            self.member_configs[member] = mconf
        self.balancer = Balancer(
            config.name,
            members,
            clock=reactor,
            method=LBMethod(config.lbmethod.value),
            sticky=config.sticky,
            nofailover=config.nofailover,
            max_attempts=config.maxattempts,
            probing=config.probe_interval > 0,
        )
        self.backends = backends
        self.dispatcher = Dispatcher(self.balancer, backends)
        self.prober = Prober(self.balancer, backends, reactor, config.probe_interval)
        self.checker = HealthChecker(self.balancer, reactor)
        for member, mconf in self.member_configs.items():
            self._watch(member, mconf)
        #: The WebSocket bridge of a balancer of ws(s):// members, else None.
        self.websocket: WebSocketBridge | None = None
        if config.websocket:
            self.websocket = WebSocketBridge(
                self.dispatcher, backends, reactor,  # type: ignore[arg-type]
                max_message_size=config.ws_max_message_size,
                x_forwarded=x_forwarded,
            )

    def _watch(self, member: Member, mconf: MemberConfig) -> None:
        health = self.config.health_of(mconf)
        if health is not None:
            self.checker.watch(member, mconf, health, self.backends[member])

    def add_member(self, mconf: MemberConfig, backend: Backend | None = None) -> Member:
        """
        Build a member and its backend and let the balancer use it at once.

        @param backend: the member's backend, already built (a reload builds
            every new backend before it changes anything); built here when
            C{None}.
        @raise ConfigError: the member cannot be built (its TLS files, say).
        @raise ValueError: a member of the same name or route exists, or the
            member's scheme does not fit this balancer.
        """
        if (mconf.scheme in ("ws", "wss")) != self.config.websocket:
            raise ValueError(
                f"balancer {self.config.name!r} takes "
                + ("ws(s)://" if self.config.websocket else "ajp://, http(s)://")
                + f" members, not {mconf.scheme}://"
            )
        if self.balancer.member_by_route(mconf.effective_route) is not None:
            raise ValueError(f"route {mconf.effective_route!r} is already used in {self.config.name!r}")
        member = _member_for(mconf, {m.name for m in self.balancer.members}, self.config)
        if backend is None:
            backend = backend_for(mconf, self._reactor, self._x_forwarded)
        self.backends[member] = backend
        self.dispatcher.backends[member] = backend
        if self.websocket is not None:
            self.websocket.members[member] = backend  # type: ignore[assignment]
        self.member_configs[member] = mconf
        self.balancer.add_member(member)
        self._watch(member, mconf)
        return member

    def remove_member(self, member: Member, *, poll: float = 0.1) -> defer.Deferred[None]:
        """
        Take a member out: it gets no new request at once; its backend is
        closed when the requests (and WebSockets) it serves have finished.

        @return: fires when the member's backend is closed.
        """
        self.balancer.remove_member(member)
        self.checker.forget(member)
        backend = self.backends[member]
        done: defer.Deferred[None] = defer.Deferred()

        def busy() -> bool:
            return member.in_flight > 0 or bool(getattr(backend, "tunnels", None))

        def check() -> None:
            if busy():
                self._reactor.callLater(poll, check)
                return
            for table in (self.backends, self.dispatcher.backends, self.member_configs):
                table.pop(member, None)  # type: ignore[attr-defined]
            if self.websocket is not None:
                self.websocket.members.pop(member, None)
            defer.maybeDeferred(backend.close).addBoth(lambda _: done.callback(None))

        check()
        return done

    def busy(self) -> bool:
        """Whether a request or a WebSocket is in flight to one of the members."""
        return any(
            member.in_flight > 0 or getattr(backend, "tunnels", None)
            for member, backend in list(self.backends.items())
        )

    def close(self) -> defer.Deferred[None]:
        """Close every backend's pooled connections (and WebSockets, with 1001)."""
        return defer.gatherResults(
            [defer.maybeDeferred(b.close) for b in self.backends.values()]
        ).addCallback(lambda _: None)


def _member_for(mconf: MemberConfig, taken: set[str], balancer: BalancerConfig) -> Member:
    """The balancer's member for C{mconf}; named by its URL if its name is taken."""
    health = balancer.health_of(mconf)
    policy = None
    if health is not None:
        probe = balancer.probe_interval
        policy = CheckPolicy(
            interval=health.interval,
            passes=health.passes,
            fails=health.fails,
            # A member in error is checked at least as often as it would be probed.
            down_interval=min(health.interval, probe) if probe > 0 else health.interval,
        )
    return Member(
        name=mconf.name if mconf.name not in taken else mconf.url,
        route=mconf.effective_route,
        loadfactor=mconf.loadfactor,
        lbset=mconf.lbset,
        status=MEMBER_STATUS[mconf.status.value],
        retry=mconf.retry,
        check_policy=policy,
        slow_start=health.slow_start if health is not None else 0.0,
    )


def backend_for(member: MemberConfig, reactor: Any, x_forwarded: bool = True) -> Backend:
    """
    The backend that sends requests to C{member}.

    @raise ConfigError: the member cannot be used (its TLS files, say).
    """
    if member.scheme in ("ws", "wss"):
        return WSMember(reactor, member, x_forwarded=x_forwarded)
    if member.scheme == "ajp":
        return AJPBackend(reactor, member)
    if member.scheme in ("http", "https"):
        from twisted_lb.backends.http import HTTPBackend

        try:
            return HTTPBackend(reactor, member, x_forwarded=x_forwarded)
        except (OSError, ValueError) as e:
            raise ConfigError("<config>", f"members.{member.url}.tls", str(e)) from None
    raise ConfigError(
        "<config>",
        f"members.{member.url}",
        f"{member.scheme}:// members are not available in this version of twisted_lb",
    )


def build_balancer(
    config: BalancerConfig,
    reactor: Any,
    *,
    x_forwarded: bool = True,
    default_timeout: float = 300.0,
) -> BuiltBalancer:
    """
    Build one balancer from its configuration.

    @param default_timeout: the top-level C{timeout} (L{ProxyConfig.timeout}),
        for members added at run time.
    """
    return BuiltBalancer(config, reactor, x_forwarded=x_forwarded, default_timeout=default_timeout)


def build_router(config: ProxyConfig, balancers: dict[str, BuiltBalancer]) -> Router[ProxyTarget]:
    """
    The path router of C{config}'s routes onto C{balancers}: one L{Router},
    or L{VirtualHosts} when routes belong to named virtual hosts.
    """
    entries: list[tuple[RouteConfig, ProxyTarget | None]] = []
    for index, route in enumerate(config.routes):
        if route.balancer is None:
            entries.append((route, None))
            continue
        built = balancers[route.balancer]
        try:
            target = ProxyTarget.for_route(
                route,
                built.dispatcher,
                sticky=built.config.sticky,
                websocket=built.websocket,
                allow_trace=config.allow_trace,
            )
        except (OSError, ValueError) as e:
            # An htpasswd file that cannot be read (start-up or reload).
            raise ConfigError(config.source, f"routes[{index}].auth", str(e)) from None
        entries.append((route, target))
    proxy_targets: dict[RequestRule, ProxyTarget] = {}
    for index, rule in enumerate(config.rules):
        if rule.status != 0:
            continue
        try:
            auth = AuthRules(rule.auth) if rule.auth else None
        except (OSError, ValueError) as e:
            raise ConfigError(config.source, f"rules[{index}].auth", str(e)) from None
        proxy_targets[rule] = ProxyTarget(
            dispatcher=balancers[rule.balancer].dispatcher,
            sticky=balancers[rule.balancer].config.sticky,
            websocket=balancers[rule.balancer].websocket,
            allow_trace=config.allow_trace,
            access=AccessRules(rule.access) if rule.access else None,
            auth=auth,
            header_edits=(
                HeaderEdits(rule.request_headers, rule.response_headers)
                if rule.request_headers or rule.response_headers
                else None
            ),
        )

    def with_rules(router: Router[ProxyTarget], name: str | None) -> Router[ProxyTarget]:
        rules = tuple(
            r for r in config.rules if not r.hosts or name is None or name in r.hosts
        )
        if rules:
            router.rules = RequestRules(rules)
            router.proxy_targets = proxy_targets
        unrouted = next(
            (u for u in config.unrouted if name is not None and name in u.hosts),
            next((u for u in config.unrouted if not u.hosts), None),
        )
        if unrouted is not None:
            router.unrouted = HeaderEdits((), unrouted.response_headers)
        return router

    if not any(route.hosts for route, _ in entries) and not any(
        rule.hosts for rule in config.rules
    ) and not any(u.hosts for u in config.unrouted):
        return with_rules(Router((route.path, target) for route, target in entries), None)
    names = {name for route, _ in entries for name in route.hosts if name != DEFAULT_HOST}
    names |= {name for rule in config.rules for name in rule.hosts if name != DEFAULT_HOST}
    names |= {name for u in config.unrouted for name in u.hosts if name != DEFAULT_HOST}

    def router_for(name: str) -> Router[ProxyTarget]:
        # The virtual host's own routes first: they win over routes for every
        # host on the same path.
        own = [(route.path, target) for route, target in entries if name in route.hosts]
        shared = [(route.path, target) for route, target in entries if not route.hosts]
        return with_rules(Router(own + shared), name)

    return VirtualHosts(router_for(DEFAULT_HOST), {name: router_for(name) for name in names})


def build_resource(
    config: ProxyConfig,
    balancers: dict[str, BuiltBalancer],
    access_log: Callable[[dict[str, Any]], None] | None = None,
) -> ProxyResource:
    """
    The proxy resource serving C{config}'s routes with C{balancers}.

    @raise ConfigError: a file of C{error_pages} cannot be used.
    """
    return ProxyResource(
        build_router(config, balancers), access_log=access_log,
        error_pages=load_error_pages(config),
    )


#: The largest file C{error_pages} may name: a page, not a download.
ERROR_PAGE_LIMIT = 1 << 20


def load_error_pages(config: ProxyConfig) -> dict[int, ErrorPage]:
    """
    Read the files of C{config.error_pages} (at start-up and on reload): per
    status, the content type (from the file name; text in UTF-8) and body.

    @raise ConfigError: a file cannot be read, or is over 1 MiB.
    """
    pages: dict[int, ErrorPage] = {}
    for status, path in config.error_pages:
        key = f"error_pages.{status}"
        try:
            with open(path, "rb") as f:
                body = f.read(ERROR_PAGE_LIMIT + 1)
        except OSError as e:
            raise ConfigError(
                config.source, key, f"file {path} cannot be read: {e.strerror or e}"
            ) from None
        if len(body) > ERROR_PAGE_LIMIT:
            raise ConfigError(config.source, key, f"file {path} is larger than 1 MiB")
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        pages[status] = (kind.encode("ascii"), body)
    return pages


def open_access_log(config: ProxyConfig) -> AccessLogFile | None:
    """
    The access log file of C{config}, opened, or C{None}.

    @raise ConfigError: when it cannot be opened.
    """
    if not config.access_log:
        return None
    try:
        return AccessLogFile(config.access_log, config.access_log_format)
    except OSError as e:
        raise ConfigError(config.source, "access_log", str(e)) from None


def log_summary(config: ProxyConfig, balancers: dict[str, BuiltBalancer]) -> None:
    """Log the listeners and balancers of C{config}."""
    for listener in config.listeners:
        kind = "redirect to " + listener.redirect if listener.redirect else (
            "HTTPS" if listener.secure else "HTTP"
        )
        _log.info("listening on {endpoint} ({kind})", endpoint=listener.endpoint, kind=kind)
    for built in balancers.values():
        _log.info(
            "balancer {name} ({method}): {members}",
            name=built.config.name,
            method=built.config.lbmethod.value,
            members=", ".join(f"{m.name} route={m.route}" for m in built.balancer.members),
        )
