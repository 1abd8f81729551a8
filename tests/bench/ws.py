"""The WebSocket benchmark: ``python -m tests.bench.ws [--quick] [--rounds R] [--out FILE]``.

Starts two Tomcat 10 nodes (HTTP + HTTPS connectors, Debian's examples webapp), Apache httpd
with a ``mod_proxy_wstunnel`` balancer of ``ws://`` members (both nodes) and twisted_lb with a
balancer of the same members, each with a plain and a TLS frontend. Then, with a blocking raw
client (tests/interop/wsclient.py; frames masked with a zero key, so the client spends no time
on XOR), interleaved within one run, it measures on Tomcat's ``echoAnnotation`` endpoint of
node tomcat1 (sticky cookie through the balancers):

  one     N 32-byte text messages, one at a time (send, wait for the echo): messages/s
  piped   N 32-byte text messages, all sent, then all read (10 times): messages/s
  1MiB    M 1 MiB binary messages, one at a time: MiB/s (each way)

for ``direct`` (Tomcat's connector; ws and wss), ``apache`` and ``tlb`` (ws and wss on the
frontend; the members are ``ws://`` for both proxies). The best of ``--rounds`` is kept (the
machine may be shared; each round starts one target later); every figure is also printed as a
ratio to Apache's.

Needs Debian's tomcat10 and tomcat10-examples (and a JDK) and apache2; installs nothing. Not part
of the test run. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.apache import ApacheProcess, find_apache, missing_modules
from tests.interop.proxy_process import ProxyProcess
from tests.interop.tomcat import LOOPBACK, TomcatGroup, TomcatNode, build_webapp, free_port
from tests.interop.wsclient import BINARY, TEXT, RawWebSocket

PATH = "/examples/websocket"
ECHO = PATH + "/echoAnnotation"
MIB = 1024 * 1024
CASES = ("one", "piped", "1MiB")
#: The pipelined case sends its N messages this many times (all, then all echoes).
PIPELINED = 10


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame with a zero key (the mask is then a no-op, which the protocol allows)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def measure(port: int, tls: bool, n: int, m: int, cookie: str) -> dict[str, float]:
    """One round on one target: C{{case: figure}}."""
    payloads = [f"m{i:05d}".ljust(32, "x").encode() for i in range(n)]
    frames = [_frame(TEXT, p) for p in payloads]
    big = bytes(range(256)) * (MIB // 256)
    big_frame = _frame(BINARY, big)
    with RawWebSocket.connect(port, ECHO, tls=tls, timeout=60, headers=[("Cookie", cookie)]) as ws:
        t0 = time.perf_counter()
        for p, f in zip(payloads, frames, strict=True):
            ws.sock.sendall(f)
            assert ws.recv_message() == (TEXT, p)
        one = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(PIPELINED):
            ws.sock.sendall(b"".join(frames))
            for p in payloads:
                assert ws.recv_message() == (TEXT, p)
        piped = PIPELINED * n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(m):
            ws.sock.sendall(big_frame)
            opcode, echoed = ws.recv_message()
            assert opcode == BINARY and echoed == big
        mib = m / (time.perf_counter() - t0)
        ws.send_close(1000)
    return {"one": one, "piped": piped, "1MiB": mib}


def _tlb_config(
    port: int, tls_port: int, cert: Path, key: Path, nodes: list[TomcatNode], workers: str
) -> str:
    q = json.dumps
    lines = [
        "timeout = 60",
        f"workers = {q(workers) if workers == 'auto' else int(workers)}",
        "[[listen]]",
        f'endpoint = "tcp:{port}:interface={LOOPBACK}:backlog=511"',
        "[[listen]]",
        f'endpoint = "tcp:{tls_port}:interface={LOOPBACK}:backlog=511"',
        f"tls = {{ certificate = {q(str(cert))}, key = {q(str(key))} }}",
        "[balancers.ws]",
        'stickysession = "JSESSIONID|jsessionid"',
    ]
    for node in nodes:
        lines += [
            "[[balancers.ws.members]]",
            f'url = "ws://{LOOPBACK}:{node.http_port}{PATH}"',
            f'route = "{node.name}"',
        ]
    lines += ["[[routes]]", f'path = "{PATH}"', 'balancer = "ws"']
    return "\n".join(lines) + "\n"


def table(best: dict[str, dict[str, float]]) -> str:
    """The Markdown table: figures, and ratios to Apache on the same frontend."""
    out = [
        "| target | one at a time (msg/s) | pipelined (msg/s) | 1 MiB (MiB/s) | vs Apache: one / piped / 1 MiB |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in best.items():
        scheme = name.split()[-1]
        anchor = best.get(f"apache {scheme}")
        ratio = (
            " / ".join(f"{row[c] / anchor[c]:.2f}×" for c in CASES)
            if anchor and not name.startswith("apache")
            else ""
        )
        out.append(
            f"| {name} | {row['one']:.0f} | {row['piped']:.0f} | {row['1MiB']:.1f} | {ratio} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    parser.add_argument(
        "-n", type=int, help="32-byte messages per case (default 2000; --quick 1000)"
    )
    parser.add_argument("-m", type=int, help="1 MiB messages per round (default 50; --quick 20)")
    parser.add_argument(
        "--rounds", type=int, help="rounds; the best is kept (default 3; --quick 2)"
    )
    parser.add_argument("--workers", default="auto", help="twisted_lb's workers (default auto)")
    parser.add_argument("--out", help="also write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 2000)
    m = args.m or (20 if args.quick else 50)
    rounds = args.rounds or (2 if args.quick else 3)
    if find_apache() is None or missing_modules():
        print(
            "apache2 (with mod_proxy_wstunnel) is needed: apt-get install -y apache2",
            file=sys.stderr,
        )
        return 2

    from twisted_lb.tls import make_self_signed

    work = Path(tempfile.mkdtemp(prefix="lb-bench-ws-"))
    cert, key = work / "cert.pem", work / "key.pem"
    make_self_signed(cert, key)
    webapp = build_webapp(Path(tempfile.gettempdir()) / "lb-bench-webapp")
    nodes = [
        TomcatNode(
            name,
            webapp,
            base_dir=work / name,
            https=True,
            examples=True,
            extra_java_opts=["-XX:TieredStopAtLevel=4"],
        )
        for name in ("tomcat1", "tomcat2")
    ]
    group = TomcatGroup(nodes)
    apache: ApacheProcess | None = None
    proxy: ProxyProcess | None = None
    try:
        group.start(timeout=180)
        (work / "apache").mkdir()
        apache = ApacheProcess(
            work / "apache",
            http_port=free_port(),
            https_port=free_port(),
            members=[(node.name, node.ajp_port) for node in nodes],
            secret=nodes[0].ajp_secret,
            cert=cert,
            key=key,
            websocket_members=[(node.name, node.http_port) for node in nodes],
            websocket_path=PATH,
        )
        apache.start()
        (work / "tlb").mkdir()
        port, tls_port = free_port(), free_port()
        proxy = ProxyProcess(
            work / "tlb", _tlb_config(port, tls_port, cert, key, nodes, args.workers)
        )
        proxy.start([port, tls_port], timeout=30)
        n1 = nodes[0]
        assert n1.https_port is not None
        targets = {
            "direct ws": (n1.http_port, False),
            "apache ws": (apache.http_port, False),
            "tlb ws": (port, False),
            "direct wss": (n1.https_port, True),
            "apache wss": (apache.https_port, True),
            "tlb wss": (tls_port, True),
        }
        cookie = f"JSESSIONID=bench.{n1.name}"
        for p, tls in targets.values():  # warm-up (the JIT, TLS session caches, workers)
            for _ in range(2):
                measure(p, tls, 500, 5, cookie)
        best: dict[str, dict[str, float]] = {}
        order = list(targets)
        for r in range(rounds):
            # Each round starts one target later, so that no target always
            # follows the same one (as tests/bench/run.py rotates its targets).
            for name in order[r % len(order) :] + order[: r % len(order)]:
                p, tls = targets[name]
                got = measure(p, tls, n, m, cookie)
                old = best.setdefault(name, dict.fromkeys(CASES, 0.0))
                for case in CASES:
                    old[case] = max(old[case], got[case])
            print(f"round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    finally:
        for server in (proxy, apache):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        with contextlib.suppress(Exception):
            group.stop()
    print(
        f"WebSocket echo through Tomcat's {ECHO} (tomcat1): {n} x 32 B text one at a time and "
        f"pipelined, {m} x 1 MiB binary; best of {rounds} rounds"
    )
    print(table(best))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"n": n, "m": m, "rounds": rounds, "best": best}, indent=2)
        )
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory kept: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
