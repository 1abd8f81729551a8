"""The C{workers} key and the sockets a supervisor opens (no process started)."""

from __future__ import annotations

import os
import socket

import pytest
from twisted.internet.task import Clock

from twisted_lb.config import load_toml_text
from twisted_lb.config.model import ConfigError
from twisted_lb.workers import (
    KILL_MARGIN,
    STOP_MARGIN,
    WorkerSupervisor,
    close_sockets,
    kill_after,
    open_listener_sockets,
    worker_stop_grace,
)

_BASE = """
[[listen]]
endpoint = "{endpoint}"
[balancers.app]
[[balancers.app.members]]
url = "ajp://127.0.0.1:8009"
[[routes]]
path = "/"
balancer = "app"
"""


def _config(workers: str = "", endpoint: str = "tcp:0:interface=127.0.0.1"):  # type: ignore[no-untyped-def]
    return load_toml_text(workers + _BASE.format(endpoint=endpoint), "site.toml")


def test_default_is_one_worker_per_core() -> None:
    config = _config()
    assert config.workers == "auto"
    assert config.effective_workers == len(os.sched_getaffinity(0))


def test_explicit_count() -> None:
    assert _config("workers = 3\n").effective_workers == 3
    assert _config('workers = "auto"\n').workers == "auto"


@pytest.mark.parametrize("value", ["0", "-2", '"many"', "1.5", "true"])
def test_bad_values_are_refused(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(f"workers = {value}\n")
    assert "workers" in str(e.value)


def test_tcp_listener_gets_one_reuseport_socket_per_worker() -> None:
    opened = open_listener_sockets(_config(), 3)
    try:
        (listener,) = opened
        assert listener.family == socket.AF_INET
        ports = {s.getsockname() for s in listener.sockets}
        assert len(listener.sockets) == 3 and len(ports) == 1
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in listener.sockets)
        assert listener.for_worker(4) is listener.sockets[1]
    finally:
        close_sockets(opened)


def test_port_in_use_is_a_config_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError) as e:
            open_listener_sockets(_config(endpoint=f"tcp:{port}:interface=127.0.0.1"), 2)
        assert "listen[0].endpoint" in str(e.value)
    finally:
        holder.close()


def test_unix_listener_is_refused_with_workers() -> None:
    with pytest.raises(ConfigError) as e:
        open_listener_sockets(_config(endpoint="unix:/tmp/lb-test.sock"), 2)
    assert "workers = 1" in str(e.value)


def _make(tmp_path, workers: str):  # type: ignore[no-untyped-def]
    from twisted.internet.testing import MemoryReactorClock

    from twisted_lb import tap

    path = tmp_path / "site.toml"
    path.write_text(workers + _BASE.format(endpoint="tcp:0:interface=127.0.0.1"))
    options = tap.Options()
    options.parseOptions(["--config", str(path)])
    # The proxy (or the supervisor) first; a single process also has its SIGHUP handler.
    service, *others = tap._make_service(options, MemoryReactorClock())
    assert len(others) == (0 if "workers = 1" not in workers else 1)
    return service


def test_tap_runs_workers_or_one_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """workers = 1 is the single-process proxy; more makes a supervisor that opens nothing yet."""
    from twisted_lb.service import ProxyService
    from twisted_lb.workers import WorkerSupervisor

    assert isinstance(_make(tmp_path, "workers = 1\n"), ProxyService)
    supervisor = _make(tmp_path, "workers = 2\n")
    assert isinstance(supervisor, WorkerSupervisor)
    assert supervisor.count == 2 and supervisor._sockets == []


def test_admin_with_workers_needs_a_state_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The manager's changes reach the other workers through the state file: one is required."""
    with pytest.raises(SystemExit) as e:
        _make(tmp_path, 'workers = 2\nadmin = { endpoint = "tcp:0:interface=127.0.0.1" }\n')
    assert "admin.state_file" in str(e.value)


def test_stop_limits_follow_shutdown_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """
    A worker waits C{shutdown_timeout} plus a margin; the supervisor kills
    only after that, also for a C{shutdown_timeout} a reload gave the workers.
    """
    path = tmp_path / "site.toml"
    path.write_text("shutdown_timeout = 30\n" + _BASE.format(endpoint="tcp:0:interface=127.0.0.1"))
    started = load_toml_text(path.read_text(), str(path))
    assert worker_stop_grace(started) == 30 + STOP_MARGIN
    supervisor = WorkerSupervisor(started, str(path), Clock(), 2, install_signals=False)
    assert kill_after(supervisor._stop_configs()) == 30 + STOP_MARGIN + KILL_MARGIN
    # The file now says 120 (a reload gave it to the workers): the supervisor waits for that.
    path.write_text("shutdown_timeout = 120\n" + _BASE.format(endpoint="tcp:0:interface=127.0.0.1"))
    assert kill_after(supervisor._stop_configs()) == 120 + STOP_MARGIN + KILL_MARGIN
    # A file that no longer reads: the configuration the proxy started with.
    path.write_text("shutdown_timeout = [\n")
    assert kill_after(supervisor._stop_configs()) == 30 + STOP_MARGIN + KILL_MARGIN
