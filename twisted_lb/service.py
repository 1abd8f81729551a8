"""
Building a running proxy from a L{ProxyConfig}: balancers with their
backends and probers, the path router, and one listening service per
listener, all under one C{MultiService}.

Everything that does not change per request is built here, once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from twisted_lb.builders import (
    BuiltBalancer,
    backend_for,
    build_balancer,
    build_resource,
    build_router,
    load_error_pages,
    log_summary,
    open_access_log,
)
from twisted_lb.compat import listening_port, raise_listen_errors
from twisted_lb.config.model import (
    ConfigError,
    ListenerConfig,
    ProxyConfig,
)
from twisted_lb.control import WorkerIdentity
from twisted_lb.drain import ClientConnections, wait_until
from twisted_lb.endpoints import endpoint_errors, with_default_backlog
from twisted_lb.frontend import FrontendSite
from twisted_lb.reload import ReloadPlan, ReloadSummary, plan_reload, read_again
from twisted_lb.resource import RedirectResource
from twisted_lb.tls import server_context

if TYPE_CHECKING:
    from twisted_lb.admin import AdminService, WorkerAdmin
    from twisted_lb.cluster import ClusterService

__all__ = [
    "ProxyService",
    "build_balancer",
    "build_resource",
    "load_error_pages",
    "build_router",
    "backend_for",
    "open_access_log",
    "BuiltBalancer",
    "ListenerService",
]

_log = Logger()


class ListenerService(StreamServerEndpointService):
    """
    The listening service of one listener: a L{StreamServerEndpointService}
    whose failure to listen (a port in use, say) is a L{ConfigError} naming
    the listener, not a traceback.

    @ivar index: the listener's place in C{listen}.
    @ivar description: its endpoint string.
    """

    def __init__(
        self, endpoint: IStreamServerEndpoint, factory: Any, source: str, index: int,
        description: str,
    ) -> None:
        super().__init__(endpoint, factory)
        self.source = source
        self.index = index
        self.description = description

    def privilegedStartService(self) -> None:
        """
        Listen now.

        @raise ConfigError: the endpoint cannot listen.
        """
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
            raise ConfigError(
                self.source, f"listen[{self.index}].endpoint",
                f"{self.description!r}: cannot listen: {reason}",
            ) from None

    @property
    def port(self) -> IListeningPort | None:
        """The port it listens on, or C{None} when it does not listen."""
        return listening_port(self)


class ProxyService(MultiService):
    """
    The whole proxy as a Twisted service: start it to listen, stop it to
    stop listening, let the requests in flight finish (up to
    C{shutdown_timeout}) and close pooled connections; L{reload} it to apply
    a new configuration without closing a listening socket or failing a
    request.

    @ivar config: the configuration in use.
    @ivar balancers: the built balancers by name.
    @ivar resource: the proxy resource (embeddable in another C{Site}).
    @ivar listening: one listening service per listener, in configuration
        order.
    @ivar connections: the client connections of the listeners.
    @ivar access_log: the access log file, or C{None}.
    """

    def __init__(
        self,
        config: ProxyConfig,
        reactor: Any,
        *,
        endpoint_for: Callable[[int, ListenerConfig], IStreamServerEndpoint] | None = None,
        worker: WorkerIdentity | None = None,
    ) -> None:
        """
        @param endpoint_for: makes the server endpoint of listener C{i}
            instead of C{serverFromString} (a worker process adopts the
            sockets its supervisor opened, see L{twisted_lb.worker}).
        @param worker: which worker process this is (given by the worker's
            entry point when C{workers} > 1), or C{None} in a single-process
            proxy: worker 0 alone serves the admin listener and registers
            the proxy in the shared store.
        """
        super().__init__()
        self.reactor = reactor
        self.config = config
        #: When it started (the reactor's clock), or C{None}.
        self.started_at: float | None = None
        #: The last reload: when, and what it changed (or why it was refused).
        self.last_reload: tuple[float, str] | None = None
        self.connections = ClientConnections()
        #: Balancers taken out by a reload whose requests are still finishing.
        self.retired: set[BuiltBalancer] = set()
        self.balancers = {
            b.name: build_balancer(
                b, reactor, x_forwarded=config.x_forwarded, default_timeout=config.timeout
            )
            for b in config.balancers
        }
        self.access_log = open_access_log(config)
        #: The store shared with other proxies ([cluster]), or None.
        self.cluster: ClusterService | None = None
        if config.cluster is not None:
            from twisted_lb.cluster import ClusterService

            self.cluster = ClusterService(
                self, config.cluster, reactor,
                # The process that serves the manager registers the proxy.
                register=worker is None or worker.index == 0,
                address=config.admin.endpoint if config.admin is not None else "",
            )
        #: The admin listener (manager, API, metrics), when configured.
        self.admin: AdminService | WorkerAdmin | None = None
        if config.admin is not None:
            from twisted_lb.admin import AdminService

            if worker is None or worker.index == 0:
                # With workers, worker 0 alone serves the admin listener.
                self.admin = AdminService(self, config.admin, reactor, worker, cluster=self.cluster)
                if self.cluster is not None:
                    from twisted_lb.cluster import ClusterCollector

                    # /metrics says whether the store answers.
                    self.admin.metrics.registry.register(ClusterCollector(self.cluster))
            else:
                # The others record their requests for worker 0's /metrics
                # and follow its manager through the state file (or the store).
                from twisted_lb.admin import WorkerAdmin

                self.admin = WorkerAdmin(self, config.admin, reactor, cluster=self.cluster)
        self.resource = build_resource(config, self.balancers, self.request_hook())
        for built in self.balancers.values():
            self.attach(built)
        self.listening: list[StreamServerEndpointService] = []
        #: Whether the listening sockets are adopted from a supervisor (a worker process).
        self.adopting = endpoint_for is not None
        for i in range(len(config.listeners)):
            service = self.build_listener(config, i, endpoint_for)
            if self.cluster is None:
                service.setServiceParent(self)
            # else: the listeners start once the shared state is applied (startService)
            self.listening.append(service)
        if self.cluster is not None:
            self.cluster.setServiceParent(self)
        if self.admin is not None:
            self.admin.setServiceParent(self)

    def request_hook(self) -> Callable[[dict[str, Any]], None] | None:
        """
        What the proxy resource calls once per finished request: the access
        log and the admin listener's counters, or C{None} when neither runs.
        """
        log, admin = self.access_log, self.admin
        if admin is None:
            return log
        if log is None:
            return admin.observe
        observe = admin.observe

        def both(entry: dict[str, Any]) -> None:
            log(entry)
            observe(entry)

        return both

    def attach(self, built: BuiltBalancer) -> None:
        """Run C{built}'s background services (prober, health checker) under this service."""
        built.prober.setServiceParent(self)
        built.checker.setServiceParent(self)

    def detach(self, built: BuiltBalancer) -> None:
        """Stop C{built}'s background services."""
        built.prober.disownServiceParent()
        built.checker.disownServiceParent()

    def build_listener(
        self,
        config: ProxyConfig,
        index: int,
        endpoint_for: Callable[[int, ListenerConfig], IStreamServerEndpoint] | None = None,
    ) -> StreamServerEndpointService:
        """
        The (not yet started) listening service of C{config.listeners[index]}.

        @param endpoint_for: makes its endpoint instead of C{serverFromString}.
        @raise ConfigError: its certificate or endpoint is not usable (a file
            its endpoint string names, too), or a worker process would have
            to open a listener of its own.
        """
        listener = config.listeners[index]
        if endpoint_for is None and self.adopting:
            raise ConfigError(
                config.source,
                f"listen[{index}]",
                f"{listener.endpoint!r} is a new listener: with workers > 1 the supervisor owns "
                "the listening sockets, so adding or removing a listener needs a restart",
            )
        if listener.redirect:
            site = FrontendSite(
                RedirectResource(listener.redirect, listener.redirect_status),
                config.limits, self.reactor, self.connections, listener.http2,
            )
        else:
            site = FrontendSite(
                self.resource,
                config.limits,
                self.reactor,
                self.connections,
                listener.http2,
                server_name=listener.server_name,
            )
        factory: Any = site
        if listener.tls is not None:
            try:
                context = server_context(listener.tls)
            except (OSError, ValueError) as e:
                raise ConfigError(config.source, f"listen[{index}].tls", str(e)) from None
            factory = TLSMemoryBIOFactory(context, False, site)
        with endpoint_errors(config.source, f"listen[{index}].endpoint", listener.endpoint):
            if endpoint_for is not None:
                endpoint = endpoint_for(index, listener)
            else:
                endpoint = serverFromString(self.reactor, with_default_backlog(listener.endpoint))
        service = ListenerService(endpoint, factory, config.source, index, listener.endpoint)
        raise_listen_errors(service)
        return service

    def reload(self, config: ProxyConfig | None = None) -> ReloadSummary:
        """
        Apply a new configuration (re-read from C{config.source} when
        C{None}): plan it (L{twisted_lb.reload.plan_reload}), then L{apply}
        the plan.

        @return: what changed (also logged).
        @raise ConfigError: the configuration is not valid or cannot be
            applied (a new listener cannot listen); nothing was changed.
        """
        if self.cluster is not None and self.running and not self.cluster.ready.called:
            raise ConfigError(
                self.config.source, "cluster",
                "not reloaded: the proxy is still waiting for the shared store's state "
                "before it serves; reload once it serves",
            )
        try:
            if config is None:
                config = read_again(self.config)
            plan = plan_reload(
                self.config,
                config,
                reactor=self.reactor,
                balancers=self.balancers,
                access_log=self.access_log,
                listening=self.listening,
                build_listener=self.build_listener,
                parent=self,
            )
        except ConfigError as e:
            self.last_reload = (self.reactor.seconds(), f"refused: {e}")
            raise
        summary = self.apply(plan)
        self.last_reload = (self.reactor.seconds(), summary.describe())
        # What the manager changed outlives a reload, as it outlives a restart.
        if self.cluster is not None:
            self.cluster.reapply()
        elif self.admin is not None:
            self.admin.reapply()
        return summary

    def apply(self, plan: ReloadPlan) -> ReloadSummary:
        """
        Carry out a reload's plan, in one step that cannot fail: members
        changed in place, balancers and routes swapped, the access log
        replaced or reopened, listeners taken out, the kept ones given
        their new certificates and limits; what was taken out finishes its
        requests in flight, then closes.

        @return: what changed (also logged).
        """
        drains = plan.change_members()
        balancers, retired = plan.balancers_after(self.balancers)
        # In place: the admin listener and others hold this very dict.
        self.balancers.clear()
        self.balancers.update(balancers)
        for built in plan.fresh.values():
            self.attach(built)
        old_log, self.access_log = self.access_log, plan.access_log
        self.resource.replace(
            build_router(plan.config, balancers), self.request_hook(), plan.error_pages
        )
        plan.rotate_log(old_log)
        self.listening, removed = plan.listening_after(self.listening)
        for _, listening in removed:
            listening.disownServiceParent()
        limits_changed = plan.change_kept_listeners()
        self.config = plan.config
        for built in retired:
            self.retired.add(built)
            drains.append(self._retire(built))
        return plan.report(balancers, [endpoint for endpoint, _ in removed], limits_changed)

    def _retire(self, built: BuiltBalancer) -> defer.Deferred[None]:
        """Let a balancer taken out finish its requests in flight, then close it."""
        self.detach(built)
        d = defer.gatherResults([built.remove_member(m) for m in built.balancer.members])
        return d.addBoth(lambda _: self.retired.discard(built))

    def discard(self) -> None:
        """
        Release what building opened (the access log file) when this
        service will never be started: the copy a C{workers} supervisor
        builds only to check the configuration.
        """
        if self.access_log is not None:
            self.access_log.close()
            self.access_log = None

    def startService(self) -> None:
        super().startService()
        self.started_at = self.reactor.seconds()
        log_summary(self.config, self.balancers)
        if self.cluster is not None:
            # Serve only once the group's state is applied (or the store
            # did not answer in time: then the file's states serve).
            self.cluster.ready.addCallback(lambda _: self._listen())
        else:
            self._log_ready()

    def _log_ready(self) -> None:
        from twisted_lb.readiness import ready_line

        _log.info("{line}", line=ready_line(self))

    def _listen(self) -> None:
        if not self.running:
            return
        try:
            for service in self.listening:
                if service.parent is None:
                    service.setServiceParent(self)
        except Exception:
            _log.failure("starting the listeners")
            self.reactor.stop()
            return
        self._log_ready()

    def stopService(self) -> defer.Deferred[None]:
        """
        Stop listening at once, close idle client connections, let requests
        in flight finish for up to C{shutdown_timeout} seconds (answering
        each with C{Connection: close}), then close what is left and the
        backends.

        @return: fires when all is closed.
        """
        self.connections.start_closing()
        stopped = defer.maybeDeferred(super().stopService)
        timeout = self.config.shutdown_timeout
        builts = lambda: [*self.balancers.values(), *self.retired]  # noqa: E731

        def idle() -> bool:
            return not self.connections.busy() and not any(b.busy() for b in builts())

        if not idle():
            _log.info(
                "stopping: {requests} requests in flight, waiting up to {timeout} s",
                requests=self.connections.busy(), timeout=timeout,
            )

        def finish(finished: bool) -> defer.Deferred[None]:
            if not finished:
                _log.warn(
                    "shutdown_timeout ({timeout} s) reached: closing {count} client "
                    "connections with requests in flight",
                    timeout=timeout, count=self.connections.busy(),
                )
            self.connections.close_all(abort=not finished)
            return defer.gatherResults([b.close() for b in builts()]).addCallback(lambda _: None)

        def close_log(result: object) -> object:
            if self.access_log is not None:
                self.access_log.close()
            return result

        d = stopped.addCallback(lambda _: wait_until(self.reactor, idle, timeout))
        return d.addCallback(finish).addBoth(close_log)
