"""
Run twisted_lb as a real process (C{twistd -n lbproxy --config FILE}) for
interop tests, on 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import attrs

from .tomcat import LOOPBACK, HttpResult, _insecure_tls_context, _port_accepts, free_port

REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """
    A server the tests start in a directory of their own: stderr to
    C{stderr.log} there, started when its ports accept, stopped by PID
    (SIGTERM, then SIGKILL).

    Subclasses give L{name} and L{log_files}; L{kill_children} says whether
    L{stop} also kills children the process left behind.
    """

    name = "server"
    #: Whether L{stop} SIGKILLs the children that outlive the parent.
    kill_children = False

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: object | None = None

    def log_files(self) -> list[Path]:
        """The files whose text L{log} returns, in order."""
        return [self.directory / "stderr.log"]

    def _spawn(
        self,
        command: list[str],
        wait_ports: Iterable[int],
        timeout: float,
        *,
        env: dict[str, str],
        stdout_to_log: bool = False,
    ) -> None:
        """Start C{command} and wait until every port in C{wait_ports} accepts."""
        wait_ports = list(wait_ports)
        self._stderr = open(self.directory / "stderr.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr if stdout_to_log else subprocess.DEVNULL,  # type: ignore[arg-type]
            stderr=self._stderr,  # type: ignore[arg-type]
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            if all(_port_accepts(p) for p in wait_ports):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen within {timeout} s:\n{self.log()}")

    @property
    def pid(self) -> int | None:
        """The PID while the process runs, else C{None}."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def log(self, tail: int | None = None) -> str:
        """The text of L{log_files} (the last C{tail} characters of each)."""
        text = ""
        for path in self.log_files():
            if path.exists():
                content = path.read_text(errors="replace")
                text += content if tail is None else content[-tail:]
        return text

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process by PID: SIGTERM, SIGKILL after C{timeout}."""
        proc = self.process
        try:
            if proc is None or proc.poll() is not None:
                return
            children = child_pids(proc.pid) if self.kill_children else []
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            for pid in children:  # normally gone with the parent
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if self._stderr is not None:
                with contextlib.suppress(Exception):
                    self._stderr.close()  # type: ignore[attr-defined]
                self._stderr = None


class ProxyProcess(ServerProcess):
    """
    twisted_lb started with a configuration text in a directory of its own.

    @ivar log_path: the file the proxy's log goes to.
    """

    name = "twisted_lb"

    def __init__(self, directory: Path, config_text: str, name: str = "site.toml") -> None:
        super().__init__(directory)
        self.config_path = directory / name
        self.config_path.write_text(config_text)
        self.log_path = directory / "proxy.log"

    def log_files(self) -> list[Path]:
        return [self.log_path, *super().log_files()]

    def start(self, wait_ports: list[int], timeout: float = 30.0) -> None:
        """Start the proxy and wait until every port in C{wait_ports} accepts."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "--logfile",
            str(self.log_path),
            "lbproxy",
            "--config",
            str(self.config_path),
        ]
        self._spawn(command, wait_ports, timeout, env=env)


# --------------------------------------------------------------------------------------------
# Configuration text


def toml_config(
    *,
    listen: Sequence[int] = (),
    tls_listen: Sequence[int] = (),
    cert: Path | None = None,
    key: Path | None = None,
    members: Sequence[dict[str, object]],
    balancer: str = "app",
    path: str = "/app",
    balancer_options: dict[str, object] | None = None,
    top: dict[str, object] | None = None,
) -> str:
    """A TOML configuration with one balancer and one route (see docs/configuration.md).

    @param listen: plain HTTP ports on 127.0.0.1.
    @param tls_listen: HTTPS ports on 127.0.0.1 (with C{cert} and C{key}).
    @param members: one dict of member keys each (C{url}, C{route}, C{secret}, ...).
    @param balancer_options: more keys of the balancer (C{stickysession}, C{nofailover}, ...).
    """
    lines: list[str] = [f"{k} = {_toml_value(v)}" for k, v in (top or {}).items()]
    for port in listen:
        lines += ["[[listen]]", f'endpoint = "tcp:{port}:interface={LOOPBACK}"']
    for port in tls_listen:
        assert cert is not None and key is not None
        lines += [
            "[[listen]]",
            f'endpoint = "tcp:{port}:interface={LOOPBACK}"',
            f"tls = {{ certificate = {_toml_value(str(cert))}, key = {_toml_value(str(key))} }}",
        ]
    lines.append(f"[balancers.{balancer}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in (balancer_options or {}).items()]
    for member in members:
        lines.append(f"[[balancers.{balancer}.members]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in member.items()]
    lines += ["[[routes]]", f"path = {_toml_value(path)}", f"balancer = {_toml_value(balancer)}"]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):  # an inline table, e.g. a balancer's health checks
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


# --------------------------------------------------------------------------------------------
# Observing the proxy's upstream connections


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def child_pids(ppid: int) -> list[int]:
    """The PIDs whose parent is C{ppid} (from C{/proc/*/stat})."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2 :].split()
        if len(rest) > 1 and rest[1] == str(ppid):
            found.append(int(entry))
    return found


def upstream_connections(
    pid: int, remote_ports: Iterable[int], *, children: bool = True
) -> set[tuple[int, int]]:
    """The ESTABLISHED TCP connections of process C{pid} to 127.0.0.1 on one of C{remote_ports}.

    Read from C{/proc/net/tcp} and C{/proc/PID/fd} (no external tool).

    @param children: count the connections of C{pid}'s child processes too
        (a proxy with C{workers} > 1 holds none itself).
    @return: a set of C{(local port, remote port)}.
    """
    wanted = set(remote_ports)
    inodes = _socket_inodes(pid)
    if children:
        for child in child_pids(pid):
            inodes |= _socket_inodes(child)
    found: set[tuple[int, int]] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "01":  # 01 = ESTABLISHED
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if remote_port in wanted and int(fields[9]) in inodes:
            found.add((local_port, remote_port))
    return found


# --------------------------------------------------------------------------------------------
# A keep-alive HTTP client


@attrs.define
class ProxyClient:
    """One persistent HTTP/1.1 (or HTTPS) client connection to the proxy.

    Reconnects when the connection was closed. Keeps the last cookie it was given per name when
    C{adopt_cookies} is true (a browser's behaviour, enough for C{JSESSIONID}).
    """

    port: int
    tls: bool = False
    timeout: float = 15.0
    adopt_cookies: bool = False
    cookies: dict[str, str] = attrs.field(factory=dict)
    _conn: http.client.HTTPConnection | None = attrs.field(default=None, init=False)

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.tls:
                self._conn = http.client.HTTPSConnection(
                    LOOPBACK, self.port, timeout=self.timeout, context=_insecure_tls_context()
                )
            else:
                self._conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
            self._conn.connect()
        return self._conn

    @property
    def local_port(self) -> int:
        """The client socket's own port (connects first if needed)."""
        sock = self._connection().sock
        assert isinstance(sock, (socket.socket, ssl.SSLSocket))
        return int(sock.getsockname()[1])

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        chunked: bool = False,
    ) -> HttpResult:
        """Send one request on the kept connection and read the whole response."""
        conn = self._connection()
        all_headers = dict(headers or {})
        if self.cookies and "Cookie" not in all_headers:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            if chunked:
                conn.request(method, path, body=body, headers=all_headers, encode_chunked=True)
            else:
                conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        result = HttpResult(resp.status, resp.reason, list(resp.getheaders()), data)
        if resp.will_close:
            self.close()
        if self.adopt_cookies:
            for value in result.header_values("Set-Cookie"):
                name, _, rest = value.split(";", 1)[0].partition("=")
                self.cookies[name.strip()] = rest.strip()
        return result

    def get(self, path: str, **kwargs: object) -> HttpResult:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def running_proxy(
    directory: Path,
    config_text: str,
    wait_ports: list[int],
    timeout: float = 30.0,
    *,
    name: str = "site.toml",
) -> Iterator[ProxyProcess]:
    """Run a proxy for the duration of a C{with} block; its log is printed if the block fails.

    @param name: the configuration file's name in C{directory}; C{.conf} makes it an Apache
        httpd file for twisted_lb.
    """
    directory.mkdir(parents=True, exist_ok=True)
    proxy = ProxyProcess(directory, config_text, name)
    proxy.start(wait_ports, timeout)
    try:
        yield proxy
    except BaseException:
        print(f"--- proxy log ({directory}) ---\n{proxy.log()[-20000:]}")
        raise
    finally:
        proxy.stop()


__all__ = [
    "ProxyClient",
    "child_pids",
    "ProxyProcess",
    "free_port",
    "running_proxy",
    "toml_config",
    "upstream_connections",
]
