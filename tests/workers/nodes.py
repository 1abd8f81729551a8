"""Demo AJP nodes in a process of their own: ``python -m tests.workers.nodes NAME=PORT ...``."""

from __future__ import annotations

import sys

from twisted.internet import reactor

from twisted_lb.ajp.container import AJPContainerFactory
from twisted_lb.demo import DemoApp


def main(specs: list[str]) -> None:
    for spec in specs:
        name, port = spec.split("=")
        reactor.listenTCP(int(port), AJPContainerFactory(DemoApp(name)), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
