"""
A flash crowd: C{--clients} clients connect to a proxy listener at the same
instant, each sends one GET and reads the answer.

Run it in a network namespace of its own, so that the kernel's counters are
this run's alone and no other process's ports get in the way::

    unshare -n python tests/robustness/flash_crowd.py --clients 2000
    unshare -n python tests/robustness/flash_crowd.py --clients 2000 --endpoint-extra backlog=50

C{--pause 0.5} stops the proxy while the crowd connects (then lets it go on),
so that the outcome does not depend on how fast this machine accepts.

It brings the namespace's loopback up, starts a proxy (with an AJP member) in
a child process, runs the crowd with asyncio, and prints one JSON line: how
many got a 200, the slowest connect and answer, the median answer, and the
namespace's C{ListenOverflows} and C{ListenDrops} deltas (C{/proc/net/netstat}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

REQUEST = b"GET /app HTTP/1.1\r\nHost: crowd.test\r\nConnection: close\r\n\r\n"


def listen_counters() -> dict[str, int]:
    """The TcpExt listen-queue counters of this network namespace."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    counters = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return {k: counters.get(k, 0) for k in ("ListenOverflows", "ListenDrops")}


def serve(endpoint_extra: str) -> None:
    """The proxy and its member, in this process; prints the proxy's port."""
    from twisted.internet import reactor

    from twisted_lb.config.model import (
        BalancerConfig,
        ListenerConfig,
        MemberConfig,
        ProxyConfig,
        RouteConfig,
    )
    from twisted_lb.service import ProxyService
    from twisted_lb.testing import FaultyAJPMember

    member = FaultyAJPMember(body_size=100)
    member.no_delay = True  # as Tomcat does
    member.start(backlog=4096)
    endpoint = "tcp:0:interface=127.0.0.1" + (f":{endpoint_extra}" if endpoint_extra else "")
    config = ProxyConfig(
        listeners=(ListenerConfig(endpoint),),
        balancers=(
            BalancerConfig(
                "cluster",
                (MemberConfig(url=member.url, route="n1", connectiontimeout=5.0),),
            ),
        ),
        routes=(RouteConfig("/", "cluster"),),
    )
    service = ProxyService(config, reactor)
    service.startService()

    def ready(port: object) -> None:
        print(port.getHost().port, flush=True)  # type: ignore[attr-defined]

    service.listening[0]._waitingForPort.addCallback(ready)
    reactor.run()


async def one(port: int, started: float, results: list[tuple[float, float, bytes]]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        results.append((time.monotonic() - started, -1.0, repr(e).encode()))
        return
    connected = time.monotonic() - started
    writer.write(REQUEST)
    answer = await reader.read()
    writer.close()
    results.append((connected, time.monotonic() - started, answer[:12]))


async def crowd(port: int, clients: int) -> list[tuple[float, float, bytes]]:
    results: list[tuple[float, float, bytes]] = []
    started = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(one(port, started, results) for _ in range(clients))), 30
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--endpoint-extra", default="", help="e.g. backlog=50")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="stop the proxy (SIGSTOP) while the crowd connects, for this many seconds",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.endpoint_extra)
        return
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--endpoint-extra", args.endpoint_extra],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        before = listen_counters()
        if args.pause:
            # The kernel alone takes the crowd's connections meanwhile: what
            # the listen queue holds is all that decides whether SYNs drop,
            # however fast the machine would have accepted them.
            os.kill(server.pid, signal.SIGSTOP)
            threading.Timer(args.pause, os.kill, (server.pid, signal.SIGCONT)).start()
        results = asyncio.run(crowd(port, args.clients))
        after = listen_counters()
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(10)
    answers = sorted(r[1] for r in results)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "ok": sum(r[2] == b"HTTP/1.1 200" for r in results),
                "max_connect": max(r[0] for r in results),
                "max_answer": answers[-1],
                "min_answer": answers[0],
                "median_answer": answers[len(answers) // 2],
                "over_1s": sum(a > 1.0 for a in answers),
                **{k: after[k] - before[k] for k in after},
            }
        )
    )


if __name__ == "__main__":
    main()
