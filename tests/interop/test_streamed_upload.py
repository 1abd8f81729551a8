"""Large uploads streamed through twisted_lb to real Tomcat 10 (issue 16).

A client uploads C{LB_UPLOAD_MIB} MiB (64 by default; 1024 for the documented manual run, see
docs/performance.md) to C{/app/upload}, which answers "started <Content-Length> <time>" as soon
as it has read the first bytes, then "done <bytes> <sha256>". The client pauses for a second
after its first MiB: Tomcat's first read comes before the client went on.
Checked for a chunked body over AJP (Tomcat is told no length: -1), a body with a
Content-Length over AJP, and a chunked body to Tomcat's HTTP connector; all the while the
proxy's resident memory grows by less than 50 MB and it holds no temporary file.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import AJP_SECRET
from .proxy_process import ProxyProcess, free_port, running_proxy, toml_config
from .tomcat import TomcatGroup

MIB = 1024 * 1024
#: The upload's size in MiB.
UPLOAD_MIB = int(os.environ.get("LB_UPLOAD_MIB", "64"))
#: Resident memory the proxy may gain during an upload.
RSS_LIMIT = 50 * 1000 * 1000
_BLOCK = bytes(range(256)) * (MIB // 256)


@pytest.fixture(scope="module", params=["ajp", "http"])
def proxy(
    request: pytest.FixtureRequest,
    tomcat_pair: TomcatGroup,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, ProxyProcess, int]]:
    """A proxy in front of the pair's AJP connectors, or of their HTTP connectors."""
    kind = str(request.param)
    if kind == "ajp":
        members = [
            {"url": f"{node.ajp_url}/app", "route": node.route, "secret": AJP_SECRET}
            for node in tomcat_pair
        ]
    else:
        members = [{"url": f"{node.http_url}/app", "route": node.route} for node in tomcat_pair]
    port = free_port()
    directory = tmp_path_factory.mktemp(f"proxy-upload-{kind}")
    text = toml_config(listen=[port], members=members, top={"timeout": 120})
    with running_proxy(directory, text, [port]) as process:
        # Warm up: each node loads the servlet and its first AJP/HTTP connections.
        for _ in range(4):
            _upload(port, process.pid or 0, 1, chunked=False, pause=0)
        yield kind, process, port


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _temporary_files(pid: int) -> list[str]:
    """The files the process holds that were deleted while open (what a spool file looks like)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith("(deleted)"):
            found.append(target)
    return found


class _Sampler(threading.Thread):
    """The process's highest resident memory, sampled every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.start_rss = _rss(pid)
        self.peak = self.start_rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, _rss(self.pid))
        return self.peak - self.start_rss


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    return sock.recv(65536)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if not size:
            return out
        out += body[:size]
        body = body[size + 2 :]


#: How long the client pauses after its first MiB.
PAUSE = 1.0


def _upload(
    port: int, pid: int, mib: int, chunked: bool, pause: float = PAUSE
) -> tuple[bytes, int, list[str], float, float]:
    """
    Upload C{mib} MiB; return the answer, the memory the proxy gained, the temporary files it
    held mid-upload, when the client went on after its pause, and how many seconds it all took.
    """
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % (mib * MIB)
    head = b"POST /app/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n\r\n" % framing
    sampler = _Sampler(pid)
    sampler.start()
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + _frame(_BLOCK, chunked))
        time.sleep(pause)
        resumed = time.time()
        temporary = _temporary_files(pid)
        for _ in range(mib - 1):
            sock.sendall(_frame(_BLOCK, chunked))
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        deadline = time.monotonic() + 120
        while not (b"done " in answer and answer.endswith(b"\r\n0\r\n\r\n")):
            data = _recv(sock, deadline)
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - started
    return answer, sampler.stop(), temporary, resumed, elapsed


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "length"])
def test_upload_is_streamed(proxy: tuple[str, ProxyProcess, int], chunked: bool) -> None:
    kind, process, port = proxy
    pid = process.pid
    assert pid is not None
    answer, gained, temporary, resumed, elapsed = _upload(port, pid, UPLOAD_MIB, chunked)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer[:500]
    if b"Transfer-Encoding: chunked" in head:
        body = _dechunk(body)
    expected_length = b"-1" if chunked else b"%d" % (UPLOAD_MIB * MIB)
    first = body.split(b"\n", 1)[0].split()
    assert first[:2] == [b"started", expected_length], body[:200]
    # Tomcat read the first bytes before the client sent its second MiB.
    assert int(first[2]) / 1000 < resumed, (int(first[2]) / 1000, resumed)
    digest = hashlib.sha256()
    for _ in range(UPLOAD_MIB):
        digest.update(_BLOCK)
    assert b"done %d %s\n" % (UPLOAD_MIB * MIB, digest.hexdigest().encode()) in body, body[-300:]
    assert temporary == [], temporary
    assert gained < RSS_LIMIT, f"the proxy's RSS grew by {gained / 1e6:.1f} MB"
    print(
        f"\n{kind} {'chunked' if chunked else 'length'} {UPLOAD_MIB} MiB: {elapsed:.2f} s, "
        f"{UPLOAD_MIB * MIB / elapsed / 1e6:.0f} MB/s, RSS +{gained / 1e6:.1f} MB"
    )
