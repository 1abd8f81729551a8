"""
One worker process of a proxy with C{workers} > 1 (see L{twisted_lb.workers}).

    python -m twisted_lb.worker --config FILE --index I --count N --listen FD:FAMILY ...

Started by the supervisor, never by hand: it reads the same configuration,
adopts the listening sockets it inherited (one C{--listen} per listener, in
the configuration's order), and runs the whole proxy (L{ProxyService}) on a
reactor of its own (on Linux L{twisted_lb.reactor.ProxyEPollReactor}). Its log goes to stdout as one JSON object per line,
which the supervisor writes to its own log with the worker's index and PID.

Signals: C{SIGTERM} stops the proxy gracefully and exits; C{SIGHUP} calls
C{ProxyService.reload()} when the service has one; C{SIGUSR1} calls
C{twisted_lb.admin.state.apply_state(service, config.admin.state_file)} when
that module and key exist (else it is logged); C{SIGINT} is ignored (the
supervisor decides). When stdin (a pipe from the supervisor) reaches its
end, the supervisor is gone and the worker stops too.

The worker gives the service it builds its L{WorkerIdentity} (which one it
is, of how many, and the supervisor's PID): the admin listener is served by
worker 0 only (it shows that process's state), and the others follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.abstract import FileDescriptor
from twisted.internet.endpoints import AdoptedStreamServerEndpoint, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.main import CONNECTION_DONE
from twisted.logger import ILogObserver, Logger, eventAsText, globalLogBeginner
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from twisted_lb.config.model import ConfigError, ListenerConfig
from twisted_lb.control import WorkerIdentity
from twisted_lb.workers import EXIT_CONFIG, worker_stop_grace

__all__ = ["WorkerIdentity", "main"]

_log = Logger()


class _AdoptingReactor:
    """
    The reactor as an endpoint sees it, except that listening adopts an
    inherited socket: C{ssl:} endpoints keep building their own TLS context.
    """

    def __init__(self, reactor: Any, fd: int, family: int) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:  # noqa: N802
        return self._reactor.adoptStreamPort(self._fd, self._family, factory)

    def listenSSL(  # noqa: N802
        self, port: int, factory: Any, context: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        tls = TLSMemoryBIOFactory(context, False, factory)
        return self._reactor.adoptStreamPort(self._fd, self._family, tls)


def adopting_endpoint(
    reactor: Any, listener: ListenerConfig, fd: int, family: int
) -> IStreamServerEndpoint:
    """The endpoint of C{listener} that serves the inherited socket C{fd}."""
    if listener.endpoint.startswith("systemd:"):
        return AdoptedStreamServerEndpoint(reactor, fd, family)
    return serverFromString(_AdoptingReactor(reactor, fd, family), listener.endpoint)


class _SupervisorWatch(FileDescriptor):
    """Reads stdin (the supervisor's pipe) and calls C{gone} at its end."""

    def __init__(self, reactor: Any, gone: Any) -> None:
        super().__init__(reactor)
        self._gone = gone

    def fileno(self) -> int:
        return 0

    def doRead(self) -> Any:  # noqa: N802
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            return CONNECTION_DONE
        return None

    def connectionLost(self, reason: Failure) -> None:  # noqa: N802
        # The reactor calls this for the end of the pipe (EPOLLHUP) too.
        self._gone()


def _log_to_stdout(event: dict[str, Any]) -> None:
    text = eventAsText(event, includeTimestamp=False, includeSystem=False)
    level = event.get("log_level")
    record = {"level": level.name if level is not None else "info", "text": text}
    if event.get("ready"):
        record["ready"] = True  # the supervisor forwards signals from now on
    line = json.dumps(record)
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m twisted_lb.worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--listen", action="append", default=[], help="FD:FAMILY, per listener")
    return parser.parse_args(argv)


def _from_thread(reactor: Any, handler: Callable[[], None]) -> Callable[[int, Any], None]:
    """A signal handler that runs C{handler} in the reactor thread."""

    def on_signal(signum: int, frame: Any) -> None:
        reactor.callFromThread(handler)

    return on_signal


def main(argv: list[str] | None = None) -> int:
    """Run one worker until it is told to stop; return its exit status."""
    args = _parse(argv)
    if "twisted.internet.reactor" not in sys.modules and sys.platform.startswith("linux"):
        from twisted_lb.reactor import install

        install()
    from twisted.internet import reactor as installed

    # The installed reactor (Twisted types the module attribute narrowly).
    reactor: Any = installed

    from twisted_lb.config import read_config
    from twisted_lb.service import ProxyService

    globalLogBeginner.beginLoggingTo([cast(ILogObserver, _log_to_stdout)], redirectStandardIO=False)
    worker = WorkerIdentity(args.index, args.count, os.getpid(), os.getppid())
    sockets = [tuple(int(x) for x in spec.split(":")) for spec in args.listen]
    try:
        config, _ = read_config(args.config)
        if len(sockets) != len(config.listeners):
            raise ConfigError(
                config.source,
                "listen",
                f"{len(config.listeners)} listeners now, {len(sockets)} when the proxy started "
                "(restart twistd to change listeners)",
            )
        service = ProxyService(
            config,
            reactor,
            endpoint_for=lambda i, listener: adopting_endpoint(reactor, listener, *sockets[i]),
            worker=worker,
        )
    except ConfigError as e:
        _log.critical("configuration error: {error}", error=str(e))
        return EXIT_CONFIG
    status = [0]
    stopping: list[defer.Deferred[None]] = []

    def stop() -> None:
        if stopping:
            return
        d = defer.maybeDeferred(service.stopService)
        stopping.append(d)
        timer = reactor.callLater(worker_stop_grace(service.config), reactor.stop)

        def done(result: object) -> None:
            if isinstance(result, Failure):
                _log.failure("stopping", result)
            if timer.active():
                timer.cancel()
                reactor.stop()

        d.addBoth(done)

    def reload() -> None:
        from twisted_lb.reload import reload_and_log

        reload_and_log(service)

    def apply_state() -> None:
        # The manager's saved member states (SIGUSR1 from the supervisor after
        # a change made in worker 0's manager).
        from twisted_lb.admin.state import follow_state

        path = config.admin.state_file if config.admin is not None else None
        if not path:
            _log.info("SIGUSR1: no admin.state_file to apply")
            return
        follow_state(service, path, "SIGUSR1")

    handlers = {signal.SIGTERM: stop, signal.SIGHUP: reload, signal.SIGUSR1: apply_state}
    for signum, handler in handlers.items():
        signal.signal(signum, _from_thread(reactor, handler))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_blocking(0, False)
    watch = _SupervisorWatch(reactor, stop)
    watch.startReading()

    def start() -> None:
        try:
            service.startService()
        except Exception:
            _log.failure("starting worker {index}", index=args.index)
            status[0] = 1
            reactor.stop()
            return
        _log.info(
            "worker {index} (pid {pid}) serving on {reactor_class}", index=args.index,
            pid=os.getpid(), reactor_class=type(reactor).__name__, ready=True,
        )

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=False)
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
