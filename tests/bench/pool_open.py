"""How long the AJP pool takes to open a burst of connections to one member.

    python -m tests.bench.pool_open [--connections N] [--repeat R]

N requests ask the pool (twisted_lb.backends.ajp_pool) for a connection at once, with an in-process
member on 127.0.0.1 (twisted_lb.testing.FaultyAJPMember, TCP_NODELAY as Tomcat): each new
connection is connected and answers a CPING, at most MAX_OPENING at a time. The pool's own
endpoint (member_endpoint: an address connected to directly) and Twisted's HostnameEndpoint (a
name resolution in a thread per connection) are timed alternately, R times each; the medians
and their ratio are printed, so the two are compared in one run on a busy machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import HostnameEndpoint

from twisted_lb.backends.ajp_pool import AJPConnectionPool, member_endpoint
from twisted_lb.testing import FaultyAJPMember


async def _burst(port: int, endpoint: Callable[[], object], count: int) -> float:
    pool = AJPConnectionPool(
        reactor,
        "127.0.0.1",
        port,
        max_connections=count,
        acquire_timeout=30,
        endpoint_factory=endpoint,
    )
    started = time.perf_counter()
    protos = await defer.gatherResults(
        [defer.Deferred.fromCoroutine(pool.acquire()) for _ in range(count)]
    )
    seconds = time.perf_counter() - started
    for proto in protos:
        proto.abort()
    pool.close()
    await task.deferLater(reactor, 0.2, lambda: None)
    return seconds


async def _main(count: int, repeat: int) -> None:
    member = FaultyAJPMember()
    member.no_delay = True
    member.start(backlog=max(count, 50))
    port = member.port
    kinds: dict[str, Callable[[], object]] = {
        "HostnameEndpoint": lambda: HostnameEndpoint(reactor, "127.0.0.1", port, timeout=5),
        "member_endpoint": lambda: member_endpoint(reactor, "127.0.0.1", port, 5),
    }
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(repeat):
        for name, endpoint in kinds.items():
            times[name].append(await _burst(port, endpoint, count))
    medians = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:17} median {medians[name]:.3f} s  ({', '.join(f'{x:.3f}' for x in t)})")
    ratio = medians["member_endpoint"] / medians["HostnameEndpoint"]
    print(f"member_endpoint / HostnameEndpoint: {ratio:.2f} ({count} connections)")
    await member.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    task.react(lambda _: defer.Deferred.fromCoroutine(_main(args.connections, args.repeat)))


if __name__ == "__main__":
    main()
