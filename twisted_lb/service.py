"""
Building a running proxy from a L{ProxyConfig}: balancers with their
backends and probers, the path router, and one listening service per
listener, all under one C{MultiService}.

Everything that does not change per request is built here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from twisted_lb.accesslog import AccessLog
from twisted_lb.backends.ajp import AJPBackend
from twisted_lb.balancer import Balancer, LBMethod, Member, MemberStatus
from twisted_lb.config.model import (
    BalancerConfig,
    ConfigError,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
)
from twisted_lb.dispatch import Backend, Dispatcher
from twisted_lb.health import Prober
from twisted_lb.resource import ProxyResource, ProxyTarget, RedirectResource
from twisted_lb.routing import Router
from twisted_lb.tls import server_context
from twisted_lb.websocket import WebSocketBridge, WSMember

__all__ = ["ProxyService", "build_balancer", "build_resource", "BuiltBalancer"]

_log = Logger()

_STATUS = {
    "active": MemberStatus.ACTIVE,
    "draining": MemberStatus.DRAINING,
    "disabled": MemberStatus.DISABLED,
    "standby": MemberStatus.STANDBY,
}


class BuiltBalancer:
    """
    A balancer ready to serve: the deciding core, a backend per member, the
    dispatcher and the background prober.
    """

    def __init__(self, config: BalancerConfig, reactor: Any, *, x_forwarded: bool = True) -> None:
        self.config = config
        self._reactor = reactor
        self._x_forwarded = x_forwarded
        members: list[Member] = []
        backends: dict[Member, Backend] = {}
        #: The configuration each member was built from.
        self.member_configs: dict[Member, MemberConfig] = {}
        for mconf in config.members:
            member = _member_for(mconf, {m.name for m in members})
            members.append(member)
            backends[member] = _backend_for(mconf, reactor, x_forwarded)
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
        #: The WebSocket bridge of a balancer of ws(s):// members, else None.
        self.websocket: WebSocketBridge | None = None
        if config.websocket:
            self.websocket = WebSocketBridge(
                self.balancer, backends, reactor,  # type: ignore[arg-type]
                max_message_size=config.ws_max_message_size,
                x_forwarded=x_forwarded,
            )

    def add_member(self, mconf: MemberConfig) -> Member:
        """
        Build a member and its backend and let the balancer use it at once.

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
        member = _member_for(mconf, {m.name for m in self.balancer.members})
        backend = _backend_for(mconf, self._reactor, self._x_forwarded)
        self.backends[member] = backend
        self.dispatcher.backends[member] = backend
        if self.websocket is not None:
            self.websocket.members[member] = backend  # type: ignore[assignment]
        self.member_configs[member] = mconf
        self.balancer.add_member(member)
        return member

    def remove_member(self, member: Member, *, poll: float = 0.1) -> defer.Deferred[None]:
        """
        Take a member out: it gets no new request at once; its backend is
        closed when the requests (and WebSockets) it serves have finished.

        @return: fires when the member's backend is closed.
        """
        self.balancer.remove_member(member)
        backend = self.backends[member]
        done: defer.Deferred[None] = defer.Deferred()

        def busy() -> bool:
            return member.in_flight > 0 or bool(getattr(backend, "tunnels", ()))

        def check() -> None:
            if busy():
                self._reactor.callLater(poll, check)
                return
            for table in (self.backends, self.dispatcher.backends, self.member_configs):
                table.pop(member, None)  # type: ignore[attr-defined]
            if self.websocket is not None:
                self.websocket.members.pop(member, None)
            defer.maybeDeferred(backend.close).addBoth(  # type: ignore[attr-defined]
                lambda _: done.callback(None)
            )

        check()
        return done

    def close(self) -> defer.Deferred[None]:
        """Close every backend's pooled connections."""
        return defer.gatherResults(
            [defer.maybeDeferred(b.close) for b in self.backends.values()]  # type: ignore[attr-defined]
        ).addCallback(lambda _: None)


def _member_for(mconf: MemberConfig, taken: set[str]) -> Member:
    """The balancer's member for C{mconf}; named by its URL if its name is taken."""
    return Member(
        name=mconf.name if mconf.name not in taken else mconf.url,
        route=mconf.effective_route,
        loadfactor=mconf.loadfactor,
        lbset=mconf.lbset,
        status=_STATUS[mconf.status.value],
        retry=mconf.retry,
    )


def _backend_for(member: MemberConfig, reactor: Any, x_forwarded: bool = True) -> Backend:
    if member.scheme in ("ws", "wss"):
        return WSMember(reactor, member)
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
    config: BalancerConfig, reactor: Any, *, x_forwarded: bool = True
) -> BuiltBalancer:
    """Build one balancer from its configuration."""
    return BuiltBalancer(config, reactor, x_forwarded=x_forwarded)


class _Site(Site):
    """A Site that leaves request logging to twisted_lb's own access log."""

    def log(self, request: object) -> None:
        pass


def build_resource(
    config: ProxyConfig,
    balancers: dict[str, BuiltBalancer],
    access_log: Callable[[dict[str, Any]], None] | None = None,
) -> ProxyResource:
    """The proxy resource serving C{config}'s routes with C{balancers}."""
    entries: list[tuple[str, ProxyTarget | None]] = []
    for route in config.routes:
        if route.balancer is None:
            entries.append((route.path, None))
            continue
        built = balancers[route.balancer]
        entries.append(
            (
                route.path,
                ProxyTarget(
                    dispatcher=built.dispatcher,
                    target_path=route.target_path.encode("utf-8"),
                    sticky=built.config.sticky,
                    websocket=built.websocket,
                    preserve_host=route.preserve_host,
                ),
            )
        )
    return ProxyResource(Router(entries), access_log=access_log)


class ProxyService(MultiService):
    """
    The whole proxy as a Twisted service: start it to listen, stop it to
    close listeners and pooled connections.

    @ivar balancers: the built balancers by name.
    @ivar resource: the proxy resource (embeddable in another C{Site}).
    """

    def __init__(
        self,
        config: ProxyConfig,
        reactor: Any,
        *,
        endpoint_for: Callable[[int, ListenerConfig], IStreamServerEndpoint] | None = None,
    ) -> None:
        """
        @param endpoint_for: makes the server endpoint of listener C{i}
            instead of C{serverFromString} (a worker process adopts the
            sockets its supervisor opened, see L{twisted_lb.worker}).
        """
        super().__init__()
        self.config = config
        self.balancers = {
            b.name: build_balancer(b, reactor, x_forwarded=config.x_forwarded)
            for b in config.balancers
        }
        self._access_file = None
        access_log = None
        if config.access_log:
            try:
                self._access_file = open(config.access_log, "a", encoding="utf-8")
            except OSError as e:
                raise ConfigError(config.source, "access_log", str(e)) from None
            access_log = AccessLog(self._access_file)
        self.resource = build_resource(config, self.balancers, access_log)
        for built in self.balancers.values():
            built.prober.setServiceParent(self)
        self.listening: list[StreamServerEndpointService] = []
        for i, listener in enumerate(config.listeners):
            if listener.redirect:
                site = _Site(RedirectResource(listener.redirect, listener.redirect_status), timeout=75)
            else:
                site = _Site(self.resource, timeout=75)
            site.displayTracebacks = False
            factory: Any = site
            if listener.tls is not None:
                try:
                    context = server_context(listener.tls)
                except (OSError, ValueError) as e:
                    raise ConfigError(config.source, f"listen[{i}].tls", str(e)) from None
                factory = TLSMemoryBIOFactory(context, False, site)
            try:
                if endpoint_for is not None:
                    endpoint = endpoint_for(i, listener)
                else:
                    endpoint = serverFromString(reactor, listener.endpoint)
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(
                    config.source, f"listen[{i}].endpoint", f"{listener.endpoint!r}: {e}"
                ) from None
            service = StreamServerEndpointService(endpoint, factory)
            service._raiseSynchronously = True
            service.setServiceParent(self)
            self.listening.append(service)

    def discard(self) -> None:
        """
        Release what building opened (the access log file) when this
        service will never be started: the copy a C{workers} supervisor
        builds only to check the configuration.
        """
        if self._access_file is not None:
            self._access_file.close()
            self._access_file = None

    def startService(self) -> None:
        super().startService()
        for listener in self.config.listeners:
            kind = "redirect to " + listener.redirect if listener.redirect else (
                "HTTPS" if listener.secure else "HTTP"
            )
            _log.info("listening on {endpoint} ({kind})", endpoint=listener.endpoint, kind=kind)
        for built in self.balancers.values():
            _log.info(
                "balancer {name} ({method}): {members}",
                name=built.config.name,
                method=built.config.lbmethod.value,
                members=", ".join(f"{m.name} route={m.route}" for m in built.balancer.members),
            )

    def stopService(self) -> defer.Deferred[None]:
        d = defer.maybeDeferred(super().stopService)

        def close(_: object) -> defer.Deferred[None]:
            return defer.gatherResults([b.close() for b in self.balancers.values()]).addCallback(
                lambda _: None
            )

        def close_log(result: object) -> object:
            if self._access_file is not None:
                self._access_file.close()
            return result

        return d.addCallback(close).addBoth(close_log)
