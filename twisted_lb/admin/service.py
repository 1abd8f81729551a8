"""
The admin listener as a Twisted service: re-applies the state file, builds
the manager, metrics and resources, and listens on its own endpoint.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import Site

from twisted_lb.compat import raise_listen_errors
from twisted_lb.config.model import AdminConfig, endpoint_is_local
from twisted_lb.control import ProxyControl, WorkerIdentity
from twisted_lb.endpoints import server_endpoint

from .allow import restrict
from .auth import protect
from .csrf import CrossSiteGuard
from .healthz import with_healthz
from .manager import Manager
from .metrics import PUBLISH_INTERVAL, RequestMetrics
from .pinned import PinnedSessions
from .series import MemberSeries
from .site import AdminRoot
from .state import StateFile, apply_changes, follow_state

__all__ = ["AdminService", "WorkerAdmin"]

_log = Logger()


class _QuietSite(Site):
    """Admin requests are not access-logged; changes are logged by the manager."""

    #: No "Starting factory"/"Stopping factory" lines.
    noisy = False

    def log(self, request: object) -> None:
        pass


class AdminService(MultiService):
    """
    The balancer manager, JSON API and metrics of one proxy.

    @ivar manager: applies and records actions.
    @ivar metrics: the proxy's metrics; L{observe} is its per-request hook.
    @ivar root: the admin resource (embeddable elsewhere).
    @ivar listening: the listening service.
    """

    def __init__(
        self,
        proxy: ProxyControl,
        config: AdminConfig,
        reactor: Any,
        worker: WorkerIdentity | None = None,
        cluster: Any = None,
    ) -> None:
        """
        @param proxy: the proxy it shows and changes.
        @param worker: this process's L{WorkerIdentity <twisted_lb.control.WorkerIdentity>}
            when C{workers} > 1 (the admin listener runs in worker 0 only), else C{None}.
        @param cluster: the L{ClusterService <twisted_lb.cluster.ClusterService>}
            when the proxy shares its state ([cluster]): changes are written to
            the store first, and the state file is not used.
        @raise ConfigError: the endpoint string, or a file it names, is not usable.
        """
        super().__init__()
        self.config = config
        balancers = proxy.balancers
        state = StateFile(config.state_file if cluster is None else None)
        self._balancers, self._state = balancers, state
        self.reapply()
        self.pinned = PinnedSessions(balancers, reactor)
        self.metrics = RequestMetrics(balancers, self.pinned)
        self.series = MemberSeries(reactor)
        count, record = self.metrics.observe, self.series.observe

        def observe(entry: dict[str, Any]) -> None:
            count(entry)
            record(entry)

        self.observe = observe
        if self.metrics.members is not None:
            _Publisher(self.metrics, reactor).setServiceParent(self)
        self.guard = CrossSiteGuard()
        reload = proxy.reload if getattr(proxy.config, "source", "<code>") != "<code>" else None
        on_change = None
        note = ""
        if worker is not None:
            reload, on_change = _all_workers(proxy, worker)
            note = (
                f"worker {worker.index} of {worker.count} (pid {worker.pid}): the states and counters "
                "shown are this process's (/metrics sums the counters of every worker); changes "
                "reach every worker through the state file"
            )
            if cluster is not None:
                # Every worker follows the store itself: no signal needed.
                on_change = None
                note = note.replace("the state file", "the shared store")
        store = cluster.shared if cluster is not None else None
        self.manager = Manager(balancers, state, self.metrics, reload, on_change, store=store)
        self.root = AdminRoot(self.manager, self.guard, self.metrics, self.pinned)
        self.root.note = note
        self.root.series = self.series
        self.root.about = _about(proxy, reactor)
        if cluster is not None:
            self.root.cluster = cluster
        site = _QuietSite(
            with_healthz(
                proxy,
                restrict(protect(self.root, config.user, config.password, reactor), config.allow),
            ),
            timeout=60,
        )
        site.displayTracebacks = False
        source = getattr(proxy.config, "source", "<config>")
        endpoint = server_endpoint(reactor, config.endpoint, source, "admin.endpoint")
        self.listening = StreamServerEndpointService(endpoint, site)
        raise_listen_errors(self.listening)
        self.listening.setServiceParent(self)

    def reapply(self) -> None:
        """
        Apply the changes recorded in the state file to the running balancers
        (at start-up, and after a reload re-read the configuration file).
        """
        if self._state.changes:
            apply_changes(self._balancers, self._state.changes, self.config.state_file or "<state>")

    def startService(self) -> None:
        super().startService()
        protection = "password" if self.config.password else "no password"
        _log.info(
            "admin listener (balancer manager, API, metrics) on {endpoint} ({protection})",
            endpoint=self.config.endpoint, protection=protection,
        )
        if self.config.password and not endpoint_is_local(self.config.endpoint) and not (
            self.config.endpoint.startswith("ssl:")
        ):
            _log.warn(
                "the admin listener {endpoint} is reachable from other machines without TLS: "
                "its password crosses the network in clear; use an ssl: endpoint",
                endpoint=self.config.endpoint,
            )


class WorkerAdmin(MultiService):
    """
    The admin side of a worker that does not serve the admin listener (with
    C{workers} > 1, every worker but worker 0): it records its requests and
    publishes its member counters to the multiprocess files, which worker
    0's C{/metrics} sums, and applies the manager's state file at start-up
    and after a reload (as worker 0 does), so that a restarted worker keeps
    the manager's changes.
    """

    def __init__(
        self, proxy: ProxyControl, config: AdminConfig, reactor: Any, cluster: Any = None
    ) -> None:
        super().__init__()
        self._proxy = proxy
        # With a shared store, the worker follows it (ProxyService.cluster) instead.
        self._state_file = config.state_file if cluster is None else None
        self.reapply()
        self.metrics = RequestMetrics(proxy.balancers)
        self.observe = self.metrics.observe
        if self.metrics.members is not None:
            _Publisher(self.metrics, reactor).setServiceParent(self)

    def reapply(self) -> None:
        """Apply the state file worker 0's manager keeps, as it is now."""
        path = self._state_file
        if path and os.path.exists(path):
            follow_state(self._proxy, path, "start-up or reload")


class _Publisher(Service):
    """Publishes a worker's member counters every L{PUBLISH_INTERVAL} seconds, and once on stop."""

    def __init__(self, metrics: RequestMetrics, reactor: Any) -> None:
        self._metrics = metrics
        self._loop = LoopingCall(metrics.publish)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        self._loop.start(PUBLISH_INTERVAL, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()
        self._metrics.publish()


def _all_workers(proxy: ProxyControl, worker: WorkerIdentity) -> tuple[Any, Any]:
    """
    With C{workers} > 1: a reload that checks the file here, then has the
    supervisor forward C{SIGHUP} to every worker; and, after each manager
    change (saved in the state file), a C{SIGUSR1} that makes every worker
    re-apply the state file.
    """
    import os
    import signal

    from twisted_lb.config import read_config

    def reload() -> str:
        read_config(proxy.config.source)  # raises ConfigError: nothing is sent
        os.kill(worker.supervisor_pid, signal.SIGHUP)
        return f"valid; every worker ({worker.count}) reloads it and logs what changed"

    def on_change() -> None:
        os.kill(worker.supervisor_pid, signal.SIGUSR1)

    return reload, on_change


def _about(proxy: ProxyControl, reactor: Any) -> Any:
    """What the manager page says of the proxy itself: version, uptime, file, last reload."""
    from twisted_lb import __version__

    def about() -> dict[str, Any]:
        return {
            "version": __version__,
            "started": getattr(proxy, "started_at", None),
            "now": reactor.seconds(),
            "source": getattr(proxy.config, "source", "<code>"),
            "last_reload": getattr(proxy, "last_reload", None),
        }

    return about
