"""
The shared store as a Twisted service of one proxy: follows the group's
state (applied through L{twisted_lb.admin.state.apply_changes}, the function
every manager change goes through), registers the proxy in the group, and
tells the manager and C{/metrics} whether the store is up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.application.service import Service
from twisted.internet import defer

from twisted_lb import __version__
from twisted_lb.admin.state import apply_changes
from twisted_lb.config.model import ClusterConfig, ConfigError
from twisted_lb.control import ProxyControl

from .etcd import EtcdClient
from .instances import Instances, health_view
from .shared import SharedState

__all__ = ["ClusterService", "ClusterCollector"]


class ClusterService(Service):
    """
    One proxy's side of the group.

    @ivar shared: the group's member states (the manager writes through it).
    @ivar instances: the group's proxies.
    @ivar ready: fires once the stored state is applied (or the store did not
        answer within C{ready_timeout}): the listeners start then.
    """

    def __init__(
        self,
        proxy: ProxyControl,
        config: ClusterConfig,
        reactor: Any,
        *,
        register: bool,
        address: str = "",
    ) -> None:
        """
        @param proxy: the proxy whose state it shares (its C{balancers} are read at each change, so a reload's new
            balancers are the ones changed).
        @param register: whether this process registers the proxy in the
            group (the one that serves the manager does).
        @raise ConfigError: a TLS file of C{config} cannot be used.
        """
        self.config = config
        self._proxy = proxy
        self._reactor = reactor
        try:
            self.client = EtcdClient(
                reactor,
                config.etcd,
                timeout=config.timeout,
                ca_file=config.ca_file,
                certificate=config.certificate,
                key=config.key,
                user=config.user,
                password=config.password,
            )
        except (OSError, ValueError) as e:
            raise ConfigError(
                getattr(proxy.config, "source", "<config>"), "cluster", str(e)
            ) from None
        self.address = config.address or address
        self.started = time.time()
        own = self._own if register else None
        self.instances = Instances(
            self.client, config.prefix, reactor, own, self._heard, config.instance
        )
        self.shared = SharedState(
            self.client,
            config.prefix,
            self._apply,
            reactor,
            on_other=self.instances.seen,
            on_reload=self.instances.resync,
        )
        self.ready = self.shared.ready

    def _apply(self, changes: dict[str, dict[str, dict[str, Any]]]) -> None:
        apply_changes(self._proxy.balancers, changes, "etcd")

    def _heard(self, ok: bool, problem: str) -> None:
        self.shared.heard(ok, problem)

    def _own(self) -> dict[str, Any]:
        return {
            "name": self.config.instance,
            "address": self.address,
            "version": __version__,
            "started": self.started,
            "pid": os.getpid(),
            "health": health_view(self._proxy.balancers),
        }

    def ready_timeout(self) -> float:
        """How long start-up waits for the store: one try of every endpoint, and a second."""
        return self.config.timeout * len(self.config.etcd) + 1.0

    def startService(self) -> None:
        super().startService()
        self.shared.start(self.ready_timeout())
        self.instances.start()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        watch_closed = self.shared.stop()
        d = self.instances.stop()
        d.addBoth(lambda _: self.client.close())
        return defer.gatherResults([d, watch_closed]).addBoth(lambda _: None)

    def reapply(self) -> None:
        """Apply the group's state again (after a reload rebuilt balancers from the file)."""
        self.shared.reapply()

    def describe(self) -> dict[str, Any]:
        """The store and the group, for the manager (page and JSON)."""
        shared = self.shared
        return {
            "store": self.client.describe(),
            "endpoint": self.client.endpoint,
            "prefix": self.config.prefix,
            "instance": self.config.instance,
            "up": shared.up,
            "problem": shared.problem,
            "revision": shared.revision,
            "state": shared.changes,
            **self.instances.describe(),
        }


class ClusterCollector(Collector):
    """C{/metrics}: whether the store is up, the revision applied, the proxies of the group."""

    def __init__(self, cluster: ClusterService) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        shared = self._cluster.shared
        up = GaugeMetricFamily(
            "twisted_lb_cluster_store_up",
            "1 when the shared store (etcd) answers, 0 when it does not (changes are refused).",
            labels=["store"],
        )
        up.add_metric([self._cluster.client.describe()], 1.0 if shared.up else 0.0)
        yield up
        yield GaugeMetricFamily(
            "twisted_lb_cluster_revision",
            "The store revision this proxy has applied.",
            value=float(shared.revision),
        )
        described = self._cluster.instances.describe()
        yield GaugeMetricFamily(
            "twisted_lb_cluster_instances",
            "Proxies of the group registered in the store.",
            value=float(sum(1 for i in described["instances"] if i["gone_since"] is None)),
        )
