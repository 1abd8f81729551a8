"""
The worker's identity reaches the service it builds as an argument
(L{ProxyService}'s C{worker}): worker 0 serves the admin listener, the
others only record their requests for it; a single-process proxy (no
identity) serves it itself.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock

from twisted_lb.admin import AdminService, WorkerAdmin
from twisted_lb.config.model import (
    AdminConfig,
    BalancerConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)
from twisted_lb.control import WorkerIdentity
from twisted_lb.service import ProxyService


def _config() -> ProxyConfig:
    return ProxyConfig(
        listeners=(ListenerConfig("tcp:8080:interface=127.0.0.1"),),
        balancers=(BalancerConfig("app", (MemberConfig(url="ajp://127.0.0.1:9001"),)),),
        routes=(RouteConfig("/", "app"),),
        admin=AdminConfig(endpoint="tcp:8081:interface=127.0.0.1"),
    )


def _worker(index: int) -> WorkerIdentity:
    return WorkerIdentity(index, 2, os.getpid(), os.getppid())


def test_single_process_serves_the_admin_listener() -> None:
    proxy = ProxyService(_config(), MemoryReactorClock())
    assert isinstance(proxy.admin, AdminService)
    assert proxy.admin.root.note == ""


def test_worker_0_serves_the_admin_listener_and_says_so() -> None:
    proxy = ProxyService(_config(), MemoryReactorClock(), worker=_worker(0))
    assert isinstance(proxy.admin, AdminService)
    assert proxy.admin.root.note.startswith(f"worker 0 of 2 (pid {os.getpid()})")


def test_other_workers_only_record_for_worker_0() -> None:
    proxy = ProxyService(_config(), MemoryReactorClock(), worker=_worker(1))
    assert isinstance(proxy.admin, WorkerAdmin)
    assert not hasattr(proxy.admin, "listening")
