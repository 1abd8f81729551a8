"""
A reload is planned, then applied: L{plan_reload} builds what the new
configuration needs and changes nothing that runs; the service's C{apply}
carries the plan out; C{abandon} releases what was built. On a memory
reactor: listeners listen on L{MemoryReactorClock}, members are never
connected to.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from twisted_lb.config.model import (
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.reload import ReloadPlan, plan_reload
from twisted_lb.service import ProxyService

LISTEN = ListenerConfig("tcp:8080:interface=127.0.0.1")


def _config(*routes: str, listeners: tuple[ListenerConfig, ...] = (LISTEN,)) -> ProxyConfig:
    members = tuple(
        MemberConfig(url=f"ajp://127.0.0.1:{9001 + i}", route=route)
        for i, route in enumerate(routes)
    )
    return ProxyConfig(
        listeners=listeners,
        balancers=(BalancerConfig("app", members),),
        routes=(RouteConfig("/", "app"),),
    )


def _started(config: ProxyConfig) -> tuple[ProxyService, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    proxy = ProxyService(config, reactor)
    proxy.startService()
    return proxy, reactor


def _plan(proxy: ProxyService, config: ProxyConfig) -> ReloadPlan:
    return plan_reload(
        proxy.config,
        config,
        reactor=proxy.reactor,
        balancers=proxy.balancers,
        access_log=proxy.access_log,
        listening=proxy.listening,
        build_listener=proxy.build_listener,
        parent=proxy,
    )


def test_planning_changes_nothing_running_and_apply_does() -> None:
    proxy, reactor = _started(_config("node1"))
    balancers, built = proxy.balancers, proxy.balancers["app"]
    new = _config("node1", "node2", listeners=(LISTEN, ListenerConfig("tcp:8082")))
    plan = _plan(proxy, new)
    # Built and listening, but not in use.
    assert [m.route for m in built.balancer.members] == ["node1"]
    assert proxy.config.listeners == (LISTEN,) and len(proxy.listening) == 1
    assert len(reactor.tcpServers) == 2
    summary = proxy.apply(plan)
    assert summary.members_added == ("app/node2",)
    assert summary.listeners_added == ("tcp:8082",)
    assert proxy.config is new and len(proxy.listening) == 2
    # The same dictionary and balancer, changed in place.
    assert proxy.balancers is balancers and proxy.balancers["app"] is built
    assert [m.route for m in built.balancer.members] == ["node1", "node2"]


def test_abandoned_plan_releases_its_listeners() -> None:
    proxy, reactor = _started(_config("node1"))
    plan = _plan(proxy, _config("node1", listeners=(LISTEN, ListenerConfig("tcp:8082"))))
    [started] = plan.started
    assert started.running
    plan.abandon(proxy.access_log)
    assert not started.running and started.parent is None
    assert len(proxy.listening) == 1 and proxy.config.listeners == (LISTEN,)


def test_reload_applies_the_plan_of_a_new_configuration() -> None:
    proxy, _ = _started(_config("node1"))
    summary = proxy.reload(_config("node2"))
    assert summary.members_removed == ("app/node1",) and summary.members_added == ("app/node2",)
    assert proxy.last_reload is not None and proxy.last_reload[1] == summary.describe()
