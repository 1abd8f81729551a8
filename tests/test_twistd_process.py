"""
C{twistd lbproxy} as an operator meets it, run as a real process on
127.0.0.1 (each stopped by PID): no C{twistd.pid} in the way of C{--check},
one line for a port in use or a missing file, a log without factory lines or
bytes, a "ready" line, C{--version}, and systemd's C{READY=1}/C{STOPPING=1}
on a socket the test provides.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.interop.tomcat import free_port
from twisted_lb import __version__

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _twistd(*argv: str) -> list[str]:
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *argv]


def _config(port: int, members: str = 'url = "ajp://127.0.0.1:1"', top: str = "") -> str:
    return (
        f"workers = 1\n{top}\n"
        f'[[listen]]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n'
        f"[balancers.app]\nprobe_interval = 0.2\n"
        f"[[balancers.app.members]]\n{members}\n"
        '[[routes]]\npath = "/"\nbalancer = "app"\n'
    )


class _Proxy:
    """One C{twistd -n lbproxy} with its log to a file; stopped by PID."""

    def __init__(self, cwd: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = cwd / f"proxy-{len(list(cwd.glob('proxy-*.log')))}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            _twistd("-n", *argv),
            cwd=cwd,
            env=env or _env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the log:\n{self.log()[-4000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


@contextmanager
def _running(cwd: Path, argv: list[str], env: dict[str, str] | None = None) -> Iterator[_Proxy]:
    proxy = _Proxy(cwd, argv, env)
    try:
        yield proxy
    finally:
        proxy.stop()


def test_check_and_a_second_proxy_beside_a_running_one(tmp_path: Path) -> None:
    """
    A proxy run in the foreground writes no twistd.pid, so --check and a
    second proxy started from the same directory work (twistd used to refuse
    both: "Another twistd server is running").
    """
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(_config(free_port()))
    second.write_text(_config(free_port()))
    with _running(tmp_path, ["lbproxy", "--config", first.name]) as proxy:
        proxy.wait_for("ready: listening on")
        assert not (tmp_path / "twistd.pid").exists()
        check = subprocess.run(
            _twistd("-n", "lbproxy", "--check", "--config", first.name),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert "configuration OK" in check.stderr
        with _running(tmp_path, ["lbproxy", "--config", second.name]) as other:
            other.wait_for("ready: listening on")
    # An explicit --pidfile is still honoured.
    with _running(tmp_path, ["--pidfile", "lb.pid", "lbproxy", "--config", first.name]) as proxy:
        proxy.wait_for("ready: listening on")
        assert (tmp_path / "lb.pid").read_text().strip() == str(proxy.process.pid)


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    """A port in use (one process): at most 5 lines, naming the port, status 1."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    config = tmp_path / "site.toml"
    config.write_text(_config(port))
    try:
        result = subprocess.run(
            _twistd("-n", "lbproxy", "--config", str(config)),
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        busy.close()
    out = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert len(out) <= 5, "\n".join(out)
    assert f"tcp:{port}:interface=127.0.0.1" in out[-1]
    assert "cannot listen: Address already in use" in out[-1]
    assert "Traceback" not in "\n".join(out)


def test_missing_config_is_one_line(tmp_path: Path) -> None:
    """A configuration file that does not exist: one line, not a page of usage."""
    result = subprocess.run(
        _twistd("-n", "lbproxy", "--config", "nowhere.toml"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode != 0
    assert out == ["twisted_lb: nowhere.toml: no such configuration file"]


def test_quiet_log_with_a_dead_member(tmp_path: Path) -> None:
    """
    A proxy whose members are dead (probed every 0.2 s, HTTP and CPING health
    checks) logs no "Starting factory"/"Stopping factory" line, and says what
    failed in words (GET /x, not b'GET' b'/x'); a ready line says what it serves.
    """
    port = free_port()
    dead_http, dead_ajp = free_port(), free_port()
    members = (
        f'url = "http://127.0.0.1:{dead_http}"\n'
        'health = { kind = "http", interval = 0.2 }\n'
        "[[balancers.app.members]]\n"
        f'url = "ajp://127.0.0.1:{dead_ajp}"\n'
        'health = { kind = "cping", interval = 0.2 }\n'
    )
    config = tmp_path / "site.toml"
    config.write_text(_config(port, members))
    with _running(tmp_path, ["lbproxy", "--config", config.name]) as proxy:
        proxy.wait_for("ready: listening on 127.0.0.1:")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            answer = client.recv(100)
        assert answer.startswith(b"HTTP/1.1 503")
        proxy.wait_for("GET /x failed (app)")
        time.sleep(1.5)  # several checks and probes
        log = proxy.log()
    assert "health check" in log  # the checks ran
    assert "Starting factory" not in log and "Stopping factory" not in log
    assert "b'GET'" not in log and "b'/x'" not in log
    assert "balancers app (0 of 2 members usable)" in log or "balancers app (2 of 2" in log


def test_versions(tmp_path: Path) -> None:
    """twistd lbproxy --version and python -m twisted_lb --version print twisted_lb's version."""
    for argv in (
        _twistd("lbproxy", "--version"),
        [sys.executable, "-m", "twisted_lb", "--version"],
    ):
        result = subprocess.run(
            argv, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"twisted_lb {__version__} ("), result.stdout


def _notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(15)
    return sock


@pytest.mark.parametrize("workers", [1, 2])
def test_systemd_notifications(tmp_path: Path, workers: int) -> None:
    """
    With $NOTIFY_SOCKET set (systemd's Type=notify), READY=1 comes once the
    proxy serves (with workers, once every worker does), STOPPING=1 on SIGTERM.
    """
    sock = _notify_socket(tmp_path)
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(_config(port).replace("workers = 1", f"workers = {workers}"))
    env = _env(NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    try:
        with _running(tmp_path, ["lbproxy", "--config", config.name], env) as proxy:
            ready = sock.recv(4096).decode()
            assert ready.splitlines()[0] == "READY=1", ready
            # It serves by then.
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            assert "ready: listening on" in proxy.log()
            proxy.process.send_signal(signal.SIGTERM)
            assert sock.recv(4096).decode() == "STOPPING=1"
            proxy.process.wait(20)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            print(sock.recv(4096))  # nothing more: the workers do not speak to systemd
    finally:
        sock.close()


def test_healthz_with_workers(tmp_path: Path) -> None:
    """With workers, worker 0's /healthz sees its adopted listening socket and the members."""
    import json
    import urllib.error
    import urllib.request

    port, admin = free_port(), free_port()
    config = tmp_path / "site.toml"
    config.write_text(
        _config(port).replace("workers = 1", "workers = 2")
        + f'[admin]\nendpoint = "tcp:{admin}:interface=127.0.0.1"\n'
        f'state_file = "{tmp_path / "state.json"}"\n'
    )
    with _running(tmp_path, ["lbproxy", "--config", config.name]) as proxy:
        proxy.wait_for("with 2 workers; balancers app")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=10) as r:
                status, body = r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            status, body = e.code, json.loads(e.read())
    # The member (ajp://127.0.0.1:1) may be found dead by then: 200 or 503, never "not listening".
    assert status in (200, 503), body
    assert body["listeners"] == [
        {"endpoint": f"tcp:{port}:interface=127.0.0.1", "address": f"127.0.0.1:{port}"}
    ]
    assert not any("listening" in p for p in body["problems"])
    assert body["balancers"][0]["members"] == 1
