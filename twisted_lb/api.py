"""
The public API for embedding twisted_lb in another Twisted application.

Build a configuration in code (or load one), then either run the whole
L{ProxyService}, or put its L{ProxyResource} in your own C{Site}::

    from twisted_lb.api import (
        BalancerConfig, ListenerConfig, MemberConfig, ProxyConfig, RouteConfig, ProxyService,
    )

    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:8080:interface=127.0.0.1"),),
        balancers=(BalancerConfig("app", (
            MemberConfig("ajp://127.0.0.1:8009", route="tomcat1", secret="s3cr3t"),
            MemberConfig("ajp://127.0.0.1:8010", route="tomcat2", secret="s3cr3t"),
        )),),
        routes=(RouteConfig("/app", "app"),),
    )
    service = ProxyService(config, reactor)
"""

from __future__ import annotations

from twisted_lb.balancer import Balancer, Member, MemberStatus, StickyConfig
from twisted_lb.builders import BuiltBalancer, build_balancer, build_resource
from twisted_lb.config.model import (
    BackendTLSConfig,
    BalancerConfig,
    ConfigError,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.resource import ProxyResource, RedirectResource
from twisted_lb.service import ProxyService

__all__ = [
    "BackendTLSConfig",
    "Balancer",
    "BalancerConfig",
    "BuiltBalancer",
    "ConfigError",
    "ListenerConfig",
    "Member",
    "MemberConfig",
    "MemberStatus",
    "ProxyConfig",
    "ProxyResource",
    "ProxyService",
    "RedirectResource",
    "RouteConfig",
    "StickyConfig",
    "TLSConfig",
    "build_balancer",
    "build_resource",
]
