"""
C{workers} > 1: a real C{twistd -n lbproxy} supervisor with two worker
processes in front of two demo AJP nodes (a process of their own), on
127.0.0.1; every process is stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.proxy_process import (
    REPO,
    ProxyClient,
    ProxyProcess,
    child_pids,
    free_port,
    toml_config,
    upstream_connections,
)
from tests.interop.tomcat import _port_accepts

pytestmark = pytest.mark.timeout(120)


def _wait(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    ports = {"n1": free_port(), "n2": free_port()}
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.nodes", *(f"{n}={p}" for n, p in ports.items())],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: all(_port_accepts(p) for p in ports.values()), what="demo nodes")
        yield ports
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def proxy(nodes: dict[str, int], tmp_path: Path) -> Iterator[tuple[ProxyProcess, int]]:
    port = free_port()
    text = toml_config(
        listen=[port],
        members=[{"url": f"ajp://127.0.0.1:{p}", "route": n} for n, p in nodes.items()],
        path="/",
        top={"workers": 2},
    )
    process = ProxyProcess(tmp_path, text)
    process.start([port])
    try:
        _wait(lambda: process.log().count(") serving") == 2, what="two workers serving")
        yield process, port
    except BaseException:
        print(process.log()[-20000:])
        raise
    finally:
        everyone = [process.process.pid, *child_pids(process.process.pid)]
        process.stop()
        for pid in everyone:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _workers(process: ProxyProcess) -> list[int]:
    assert process.process is not None
    return sorted(child_pids(process.process.pid))


def test_requests_spread_over_both_workers(proxy: tuple[ProxyProcess, int]) -> None:
    """Connections are accepted by both workers, and each one answers."""
    process, port = proxy
    clients = [ProxyClient(port) for _ in range(16)]
    for client in clients:
        result = client.request("GET", "/session")
        assert result.status == 200
    client_ports = [c.local_port for c in clients]
    served = {pid: upstream_connections(pid, client_ports, children=False) for pid in _workers(process)}
    assert len(served) == 2
    assert all(served.values()), served
    assert sum(len(s) for s in served.values()) == len(clients)
    assert process.log().count("serving on ProxyEPollReactor") == 2


def test_sticky_sessions_across_workers(proxy: tuple[ProxyProcess, int]) -> None:
    """A session's requests reach its node whichever worker takes the connection."""
    process, port = proxy
    first = json.loads(ProxyClient(port).request("GET", "/session").body)
    node, session = first["node"], first["session"]
    counters = []
    for _ in range(12):
        client = ProxyClient(port)  # a new connection each time: any worker
        answer = json.loads(
            client.request("GET", "/session", headers={"Cookie": f"JSESSIONID={session}"}).body
        )
        assert answer["node"] == node
        counters.append(answer["counter"])
    assert counters == list(range(2, 14))


def test_killed_worker_is_restarted(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    before = _workers(process)
    os.kill(before[0], signal.SIGKILL)
    after = _wait(
        lambda: (w := _workers(process)) and len(w) == 2 and before[0] not in w and w,
        what="a new worker",
    )
    assert before[1] in after  # type: ignore[operator]
    assert "restarting in" in process.log()
    for _ in range(8):
        assert ProxyClient(port).request("GET", "/session").status == 200


def test_sigterm_leaves_no_process(proxy: tuple[ProxyProcess, int]) -> None:
    process, port = proxy
    assert process.process is not None
    everyone = [process.process.pid, *_workers(process)]
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(20) in (0, -signal.SIGTERM)  # twistd re-raises the signal
    _wait(lambda: not any(_alive(p) for p in everyone), what="workers to exit")
    assert not _port_accepts(port)


def test_killed_supervisor_leaves_no_worker(proxy: tuple[ProxyProcess, int]) -> None:
    """Workers notice their supervisor is gone (their stdin pipe ends) and stop."""
    process, _ = proxy
    assert process.process is not None
    workers = _workers(process)
    process.process.kill()
    process.process.wait(10)
    _wait(lambda: not any(_alive(p) for p in workers), what="orphaned workers to exit")


def test_forwarded_signals_do_not_kill_workers(proxy: tuple[ProxyProcess, int]) -> None:
    """SIGHUP and SIGUSR1 to twistd reach the workers, which go on serving."""
    process, port = proxy
    assert process.process is not None
    before = _workers(process)
    for sig in (signal.SIGHUP, signal.SIGUSR1):
        process.process.send_signal(sig)
    _wait(lambda: process.log().count("sending SIG") >= 2, what="the signals forwarded")
    _wait(lambda: "SIGUSR1" in process.log().split("sending SIGUSR1", 1)[-1], what="a worker's SIGUSR1")
    assert _workers(process) == before
    assert ProxyClient(port).request("GET", "/session").status == 200


@pytest.fixture
def admin_proxy(nodes: dict[str, int], tmp_path: Path) -> Iterator[tuple[ProxyProcess, int, int]]:
    """Two workers with the admin listener (in worker 0) and a state file."""
    port, admin = free_port(), free_port()
    text = toml_config(
        listen=[port],
        members=[{"url": f"ajp://127.0.0.1:{p}", "route": n} for n, p in nodes.items()],
        path="/",
        top={"workers": 2},
    )
    state = tmp_path / "state.json"
    text = f'admin = {{ endpoint = "tcp:{admin}:interface=127.0.0.1", state_file = "{state}" }}\n' + text
    process = ProxyProcess(tmp_path, text)
    process.start([port, admin])
    assert process.process is not None
    everyone: list[int] = []
    try:
        _wait(lambda: process.log().count(") serving") == 2, what="two workers serving")
        everyone = [process.process.pid, *child_pids(process.process.pid)]
        yield process, port, admin
    except BaseException:
        print(process.log()[-20000:])
        raise
    finally:
        process.stop()
        for pid in everyone:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _spread(process: ProxyProcess, port: int, count: int = 16) -> list[dict[str, object]]:
    """C{count} requests, each on a new connection, which both workers took some of."""
    clients = [ProxyClient(port) for _ in range(count)]
    answers = []
    for client in clients:
        answer = client.request("GET", "/session")
        assert answer.status == 200
        answers.append(json.loads(answer.body))
    served = {
        pid: upstream_connections(pid, [c.local_port for c in clients], children=False)
        for pid in _workers(process)
    }
    assert all(served.values()), served  # both workers took some of those connections
    return answers


def test_manager_change_reaches_every_worker(admin_proxy: tuple[ProxyProcess, int, int]) -> None:
    """The admin listener runs in worker 0; a disable made there reaches worker 1 too."""
    process, port, admin = admin_proxy
    page = ProxyClient(admin).request("GET", "/").body.decode()
    assert "worker 0 of 2" in page
    answer = ProxyClient(admin).request(
        "POST", "/api/balancers/app/members/n1",
        body=b'{"action": "disable"}', headers={"X-LB-Admin": "1"},
    )
    assert answer.status == 200, answer.body
    _wait(lambda: process.log().count("SIGUSR1: applied") == 2, what="both workers applying")
    assert {a["node"] for a in _spread(process, port)} == {"n2"}
    # A worker started again later reads the manager's state file too.
    victim = _workers(process)[1]
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: process.log().count(") serving") == 3, what="the worker started again")
    assert {a["node"] for a in _spread(process, port)} == {"n2"}


def _metrics(admin: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the admin listener's /metrics, by name and labels."""
    answer = ProxyClient(admin).request("GET", "/metrics")
    assert answer.status == 200, answer.body
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, key  # one series, not one per worker
            samples[key] = sample.value
    return samples


def _total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_sum_every_worker(admin_proxy: tuple[ProxyProcess, int, int]) -> None:
    """/metrics (served by worker 0) counts the requests both workers served, and keeps
    those of a worker that was killed."""
    process, port, admin = admin_proxy
    _spread(process, port, 20)
    samples = _metrics(admin)
    assert _total(samples, "twisted_lb_requests_total") == 20
    assert _total(samples, "twisted_lb_request_duration_seconds_count") == 20
    # The member counters of the other worker are published once a second.
    _wait(lambda: _total(_metrics(admin), "twisted_lb_member_elected_total") == 20,
          what="both workers' member counters")
    samples = _metrics(admin)
    assert _total(samples, "twisted_lb_member_in_flight") == 0
    assert _total(samples, "twisted_lb_member_received_bytes_total") > 0
    # Health gauges: one series per member (worker 0's view), not one per worker.
    assert _total(samples, "twisted_lb_member_up") == 2
    os.kill(_workers(process)[1], signal.SIGKILL)
    _wait(lambda: process.log().count(") serving") == 3, what="the worker started again")
    _spread(process, port, 10)
    assert _total(_metrics(admin), "twisted_lb_requests_total") == 30


def test_stop_gives_requests_shutdown_timeout(tmp_path: Path) -> None:
    """
    With workers, a request in flight at SIGTERM gets C{shutdown_timeout}
    as with one process (workers used to exit after a fixed 10 s).
    """
    import http.server
    import threading

    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            release.wait(30)
            body = b"answered late"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    member = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=member.serve_forever, daemon=True).start()
    port = free_port()
    process = ProxyProcess(
        tmp_path,
        toml_config(
            listen=[port],
            members=[{"url": f"http://127.0.0.1:{member.server_address[1]}"}],
            path="/",
            top={"workers": 2, "shutdown_timeout": 30},
        ),
    )
    process.start([port])
    everyone: list[int] = []
    try:
        _wait(lambda: process.log().count(") serving") == 2, what="two workers serving")
        assert process.process is not None
        everyone = [process.process.pid, *_workers(process)]
        answers: list[tuple[int, bytes]] = []

        def ask() -> None:
            res = ProxyClient(port, timeout=40).request("GET", "/slow")
            answers.append((res.status, res.body))

        asking = threading.Thread(target=ask)
        asking.start()
        time.sleep(1.0)  # the request reaches the member
        process.process.send_signal(signal.SIGTERM)
        _wait(lambda: "requests in flight, waiting up to 30" in process.log(), what="the stop to wait")
        time.sleep(11.0)  # past the old fixed limit of 10 s
        # The supervisor waits; the worker without a request has gone, the other one waits.
        assert process.process.poll() is None
        assert sum(_alive(pid) for pid in everyone[1:]) == 1
        release.set()
        asking.join(20)
        assert answers == [(200, b"answered late")]
        assert process.process.wait(20) in (0, -signal.SIGTERM)
    except BaseException:
        print(process.log()[-20000:])
        raise
    finally:
        release.set()
        member.shutdown()
        member.server_close()
        if process.process is not None and process.process.poll() is None:
            process.stop()
        for pid in everyone:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
