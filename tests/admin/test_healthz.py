"""
C{GET /healthz} on the admin listener: 200 when every listener listens and
every balancer has a member that takes new requests, 503 with the reasons
otherwise; open without the admin password. A L{ProxyService} on a memory
reactor, its admin site answering through a real C{Site}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from twisted_lb.admin import hash_password
from twisted_lb.balancer import MemberStatus
from twisted_lb.config.model import (
    AdminConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.readiness import check, ready_line
from twisted_lb.service import ProxyService

from .helpers import exchange


def _proxy(password: str | None = None) -> ProxyService:
    members = tuple(
        MemberConfig(url=f"ajp://127.0.0.1:{9001 + i}", route=f"node{i + 1}") for i in range(2)
    )
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:8080:interface=127.0.0.1"),),
        balancers=(BalancerConfig("app", members),),
        routes=(RouteConfig("/", "app"),),
        admin=AdminConfig(endpoint="tcp:8081:interface=127.0.0.1", password=password),
        workers=1,
    )
    return ProxyService(config, MemoryReactorClock())


def _site_resource(proxy: ProxyService) -> Any:
    return proxy.admin.listening.factory.resource


def test_ok_when_listening_with_usable_members() -> None:
    proxy = _proxy()
    proxy.startService()
    response = exchange(_site_resource(proxy), "GET", "/healthz")
    assert response.status == 200
    body = response.json()
    assert body["status"] == "ok" and body["problems"] == []
    # (The memory reactor's ports say 0.0.0.0 whatever the interface.)
    [listener] = body["listeners"]
    assert listener["endpoint"] == "tcp:8080:interface=127.0.0.1"
    assert listener["address"].endswith(":8080")
    assert body["balancers"] == [{"name": "app", "usable": 2, "members": 2}]
    assert response.headers["content-type"] == "application/json"
    assert ready_line(proxy) == (
        f"ready: listening on {listener['address']} (HTTP); balancers app (2 of 2 members usable)"
    )


def test_unavailable_without_a_usable_member() -> None:
    """Draining counts as not taking new requests; in error and disabled too."""
    proxy = _proxy()
    proxy.startService()
    balancer = proxy.balancers["app"].balancer
    node1, node2 = balancer.members
    balancer.set_status(node1, MemberStatus.DRAINING)
    assert exchange(_site_resource(proxy), "GET", "/healthz").status == 200
    balancer.set_status(node2, MemberStatus.DISABLED)
    response = exchange(_site_resource(proxy), "GET", "/healthz")
    assert response.status == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["problems"] == [
        "balancer app has no usable member (of 2: node1 draining, node2 disabled)"
    ]


def test_unavailable_when_a_listener_does_not_listen() -> None:
    proxy = _proxy()
    proxy.startService()
    proxy.listening[0].stopService()
    response = exchange(_site_resource(proxy), "GET", "/healthz")
    assert response.status == 503
    assert response.json()["problems"] == ["listener tcp:8080:interface=127.0.0.1 is not listening"]
    assert not check(proxy).ok


def test_no_password_for_healthz_only() -> None:
    """With a password, /healthz still answers; the page and the API ask for it."""
    proxy = _proxy(password=hash_password("letmein", iterations=1000))
    proxy.startService()
    resource = _site_resource(proxy)
    assert exchange(resource, "GET", "/healthz").status == 200
    assert exchange(resource, "GET", "/").status == 401
    assert exchange(resource, "GET", "/api/balancers").status == 401
    assert exchange(resource, "GET", "/healthz/x").status == 401
    assert exchange(resource, "GET", "/metrics").status == 401


def test_other_paths_unchanged_without_password() -> None:
    proxy = _proxy()
    proxy.startService()
    resource = _site_resource(proxy)
    assert exchange(resource, "GET", "/").status == 200
    assert exchange(resource, "GET", "/api/balancers").json()["balancers"][0]["name"] == "app"
    assert exchange(resource, "GET", "/metrics").status == 200
