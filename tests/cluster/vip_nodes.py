"""
Two demo AJP nodes (routes node1 and node2) for the VIP failover test, run
inside the test's backend network namespace:

    python -m tests.cluster.vip_nodes ADDRESS PORT1 PORT2
"""

from __future__ import annotations

import sys

from twisted.internet import reactor

from twisted_lb.ajp.container import AJPContainerFactory
from twisted_lb.demo import DemoApp


def main(argv: list[str]) -> None:
    address, ports = argv[0], [int(p) for p in argv[1:]]
    for i, port in enumerate(ports):
        reactor.listenTCP(port, AJPContainerFactory(DemoApp(f"node{i + 1}")), interface=address)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
