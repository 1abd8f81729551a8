"""
Several processes behind the same listeners (C{workers} > 1).

The C{twistd} process becomes a supervisor: it opens the listening sockets
itself (from the listeners' endpoint strings), then runs C{workers} child
processes (C{python -m twisted_lb.worker}) that adopt those sockets and each
run the whole proxy with a reactor of their own. It restarts a worker that
dies (with a growing delay when one keeps dying), forwards C{SIGHUP} and
C{SIGUSR1} to every worker, and on stop sends them C{SIGTERM} and waits for
them: a worker gives its requests in flight C{shutdown_timeout} seconds, as
one process does, and exits at the latest L{STOP_MARGIN} seconds later
(L{worker_stop_grace}); the supervisor sends C{SIGKILL} to a worker still
there L{KILL_MARGIN} seconds after that (L{kill_after}). A worker also stops by
itself when the supervisor's end of its stdin pipe closes, so a supervisor
killed with C{SIGKILL} leaves no worker behind.

Workers record their metrics in a directory the supervisor makes for them
(prometheus_client's multiprocess mode, C{PROMETHEUS_MULTIPROC_DIR}), so
that worker 0's C{/metrics} sums all of them; the supervisor removes the
requests-in-flight of a worker that ended and the directory when it stops.

TCP listeners (C{tcp:}, C{ssl:}) get one socket per worker, all bound to the
same address with C{SO_REUSEPORT}: the kernel spreads new connections evenly
over the workers (a single shared socket lets whichever worker wakes first
accept a whole burst). A C{systemd:} socket is shared by all workers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from typing import Any, cast

import attrs
from prometheus_client.multiprocess import mark_process_dead
from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from twisted_lb.admin.metrics import MULTIPROCESS_ENV
from twisted_lb.config import read_config
from twisted_lb.config.model import ConfigError, ProxyConfig
from twisted_lb.endpoints import with_default_backlog
from twisted_lb.readiness import notify

__all__ = ["ListenerSockets", "WorkerSupervisor", "open_listener_sockets", "EXIT_CONFIG"]

_log = Logger()

#: A worker exits with this status when its configuration cannot be used;
#: the supervisor then stops instead of restarting it (C{EX_CONFIG}).
EXIT_CONFIG = 78
#: Seconds a stopping worker may take beyond C{shutdown_timeout} (closing
#: client connections and backends) before it exits anyway.
STOP_MARGIN = 5.0
#: Seconds the supervisor waits beyond a worker's own limit before C{SIGKILL}.
KILL_MARGIN = 5.0
#: A worker that lived at least this long restarts at once, not after a delay.
STABLE_AFTER = 10.0
#: The longest delay before restarting a worker that keeps dying.
MAX_BACKOFF = 30.0


@attrs.frozen
class ListenerSockets:
    """
    The listening sockets of one listener.

    @ivar family: the address family (C{AF_INET}, C{AF_INET6}).
    @ivar sockets: one per worker, or a single one all workers share.
    """

    family: int
    sockets: tuple[socket.socket, ...]

    def for_worker(self, index: int) -> socket.socket:
        """The socket worker C{index} accepts on."""
        return self.sockets[index % len(self.sockets)]


class _SocketOpener:
    """
    A stand-in reactor for C{serverFromString}: when an endpoint listens, it
    opens the sockets instead of serving them.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.opened: ListenerSockets | None = None

    def listenTCP(  # noqa: N802 (Twisted's name)
        self, port: int, factory: object, backlog: int = 50, interface: str = ""
    ) -> None:
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        host = interface or ("::" if family == socket.AF_INET6 else "0.0.0.0")
        # Refuse a port someone holds, as a single process would: sockets
        # with SO_REUSEPORT would otherwise share it silently.
        probe = socket.socket(family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
        finally:
            probe.close()
        sockets = []
        try:
            for _ in range(self.count):
                s = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind((host, port))
                s.listen(backlog)
                s.setblocking(False)
        except OSError:
            for s in sockets:
                s.close()
            raise
        self.opened = ListenerSockets(family, tuple(sockets))

    def listenSSL(  # noqa: N802 (Twisted's name)
        self, port: int, factory: object, context: object, backlog: int = 50, interface: str = ""
    ) -> None:
        self.listenTCP(port, factory, backlog, interface)

    def adoptStreamPort(  # noqa: N802 (Twisted's name)
        self, fd: int, family: int, factory: object
    ) -> None:
        s = socket.socket(fileno=os.dup(fd))
        s.setblocking(False)
        self.opened = ListenerSockets(family, (s,))


def worker_stop_grace(config: ProxyConfig) -> float:
    """
    Seconds a stopping worker running C{config} waits for its service
    (requests in flight get C{shutdown_timeout}) before it exits anyway.
    """
    return config.shutdown_timeout + STOP_MARGIN


def kill_after(configs: Sequence[ProxyConfig]) -> float:
    """
    Seconds after C{SIGTERM} the supervisor kills a worker still running:
    past the longest L{worker_stop_grace} of C{configs} (the configuration
    the proxy started with, and the file as it is now, which a reload may
    have given the workers).
    """
    return max(worker_stop_grace(config) for config in configs) + KILL_MARGIN


def open_listener_sockets(config: ProxyConfig, count: int) -> list[ListenerSockets]:
    """
    Open the listening sockets of every listener of C{config} for C{count}
    workers.

    @raise ConfigError: an endpoint that workers cannot share, or a port
        that cannot be bound.
    """
    opened: list[ListenerSockets] = []
    try:
        for i, listener in enumerate(config.listeners):
            opener = _SocketOpener(count)
            key = f"listen[{i}].endpoint"
            try:
                endpoint = serverFromString(opener, with_default_backlog(listener.endpoint))
                outcome: list[object] = []
                endpoint.listen(None).addBoth(outcome.append)  # type: ignore[arg-type]
                if isinstance(outcome[0], Failure):
                    outcome[0].raiseException()
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(config.source, key, f"{listener.endpoint!r}: {e}") from None
            except OSError as e:
                raise ConfigError(config.source, key, f"{listener.endpoint!r}: {e}") from None
            except AttributeError:
                raise ConfigError(
                    config.source,
                    key,
                    f"{listener.endpoint!r}: with workers > 1 a listener must be "
                    "tcp:, tcp6:, ssl: or systemd: (or set workers = 1)",
                ) from None
            assert opener.opened is not None
            opened.append(opener.opened)
    except BaseException:
        close_sockets(opened)
        raise
    return opened


def close_sockets(opened: Sequence[ListenerSockets]) -> None:
    """Close every socket of C{opened}."""
    for listener in opened:
        for s in listener.sockets:
            s.close()


class _WorkerProcess(ProcessProtocol):
    """One running worker: relays its log lines, tells when it ended."""

    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.pid: int | None = None
        self.started = 0.0
        #: whether the worker said it serves (its signal handlers are set)
        self.ready = False
        self.ended: defer.Deferred[int | None] = defer.Deferred()
        self._buffers: dict[int, bytes] = {1: b"", 2: b""}

    def connectionMade(self) -> None:  # noqa: N802
        self.pid = cast(Any, self.transport).pid
        self.started = self.supervisor.reactor.seconds()

    def childDataReceived(self, fd: int, data: bytes) -> None:  # noqa: N802
        lines = (self._buffers.get(fd, b"") + data).split(b"\n")
        self._buffers[fd] = lines.pop()
        for line in lines:
            self._relay(line.decode("utf-8", "replace"))

    def _relay(self, line: str) -> None:
        if not line:
            return
        level, text = LogLevel.warn, line
        try:
            event = json.loads(line)
            if event.get("ready"):
                self.ready = True
                self.supervisor.worker_ready(self)
            level, text = LogLevel.levelWithName(event["level"]), event["text"]
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        _log.emit(
            level, "worker {index} (pid {pid}): {text}", index=self.index, pid=self.pid, text=text
        )

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        for fd, rest in self._buffers.items():
            if rest:
                self._relay(rest.decode("utf-8", "replace"))
                self._buffers[fd] = b""
        status = getattr(reason.value, "exitCode", None)
        if status is None and isinstance(reason.value, error.ProcessTerminated):
            status = -(reason.value.signal or 0)
        self.ended.callback(status)
        self.supervisor.worker_ended(self, status)

    def signal(self, name: str) -> None:
        """Send signal C{name} (C{"TERM"}, C{"HUP"}, ...) if it still runs."""
        # Twisted takes a few names ("TERM", "KILL", ...) and numbers otherwise.
        signal_id = name if name in ("HUP", "INT", "KILL", "STOP", "TERM") else getattr(signal, f"SIG{name}")
        try:
            self.transport.signalProcess(signal_id)  # type: ignore[union-attr]
        except (error.ProcessExitedAlready, OSError):
            pass


class WorkerSupervisor(Service):
    """
    Runs C{count} worker processes on C{config}'s listeners and keeps them
    running.

    @ivar workers: the running workers by index.
    """

    def __init__(
        self,
        config: ProxyConfig,
        config_path: str,
        reactor: Any,
        count: int,
        *,
        install_signals: bool = True,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.reactor = reactor
        self.count = count
        self.install_signals = install_signals
        self.workers: dict[int, _WorkerProcess] = {}
        self._sockets: list[ListenerSockets] = []
        self._failures: dict[int, int] = {}
        self._restarts: dict[int, Any] = {}
        self._stopping = False
        #: Whether the ready line was logged (and systemd told).
        self._announced = False
        #: The workers' prometheus_client multiprocess directory, while running.
        self.metrics_dir: str | None = None

    def privilegedStartService(self) -> None:  # noqa: N802
        """Open the listening sockets (before C{twistd} gives up its privileges)."""
        super().privilegedStartService()
        if not self._sockets:
            try:
                self._sockets = open_listener_sockets(self.config, self.count)
            except ConfigError as e:
                raise SystemExit(f"twisted_lb: configuration error: {e}") from None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._stopping = False
        if not self._sockets:
            self.privilegedStartService()
        for listener in self.config.listeners:
            _log.info("listening on {endpoint} with {n} workers", endpoint=listener.endpoint, n=self.count)
        if self.metrics_dir is None:
            self.metrics_dir = tempfile.mkdtemp(prefix="twisted_lb-metrics-")
        for index in range(self.count):
            self._spawn(index)
        if self.install_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGHUP, signal.SIGUSR1):
                signal.signal(signum, self._on_signal)

    def worker_ready(self, worker: _WorkerProcess) -> None:
        """
        A worker said it serves: once all of them have (the first time),
        log the ready line and tell systemd (C{READY=1}) when it asked.
        """
        if self._announced or len(self.workers) < self.count:
            return
        if not all(w.ready for w in self.workers.values()):
            return
        self._announced = True
        listeners = ", ".join(listener.endpoint for listener in self.config.listeners)
        balancers = ", ".join(b.name for b in self.config.balancers)
        _log.info(
            "ready: listening on {listeners} with {count} workers; balancers {balancers}",
            listeners=listeners, count=self.count, balancers=balancers or "none",
        )
        notify(f"READY=1\nSTATUS=serving with {self.count} workers")

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name[3:]
        self.reactor.callFromThread(self.signal_workers, name)

    def signal_workers(self, name: str) -> None:
        """
        Send signal C{name} to every worker that serves; one still starting
        has no handler yet (the signal would kill it) and reads the
        configuration anyway.
        """
        ready = [w for w in self.workers.values() if w.ready]
        _log.info("sending SIG{name} to {n} workers", name=name, n=len(ready))
        for worker in ready:
            worker.signal(name)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        args = [
            sys.executable, "-m", "twisted_lb.worker",
            "--config", self.config_path,
            "--index", str(index),
            "--count", str(self.count),
        ]
        child_fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        for i, listener in enumerate(self._sockets):
            child_fds[3 + i] = listener.for_worker(index).fileno()
            args += ["--listen", f"{3 + i}:{listener.family}"]
        worker = _WorkerProcess(self, index)
        self.workers[index] = worker
        # The supervisor alone speaks to systemd.
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        if self.metrics_dir is not None:
            env[MULTIPROCESS_ENV] = self.metrics_dir
        self.reactor.spawnProcess(worker, sys.executable, args, env=env, childFDs=child_fds)
        _log.info("worker {index} started (pid {pid})", index=index, pid=worker.pid)

    def worker_ended(self, worker: _WorkerProcess, status: int | None) -> None:
        """Called when a worker process ended: restart it unless stopping."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if self.metrics_dir is not None and worker.pid is not None:
            # Its counters stay in the sums; its requests in flight end with it.
            mark_process_dead(worker.pid, self.metrics_dir)
        if self._stopping:
            return
        if status == EXIT_CONFIG:
            _log.critical(
                "worker {index} (pid {pid}) cannot use the configuration; stopping",
                index=worker.index, pid=worker.pid,
            )
            self.reactor.callLater(0, self.reactor.stop)
            return
        lived = self.reactor.seconds() - worker.started
        failures = 0 if lived >= STABLE_AFTER else self._failures.get(worker.index, 0) + 1
        self._failures[worker.index] = failures
        delay = 0.0 if failures == 0 else min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
        _log.warn(
            "worker {index} (pid {pid}) exited (status {status}); restarting in {delay} s",
            index=worker.index, pid=worker.pid, status=status, delay=delay,
        )
        self._restarts[worker.index] = self.reactor.callLater(delay, self._spawn, worker.index)

    def _stop_configs(self) -> list[ProxyConfig]:
        """
        The configurations the workers may be running: the one the proxy
        started with, and the file as it is now (a reload gives it to the
        workers; the supervisor does not reload).
        """
        try:
            current, _ = read_config(self.config_path)
        except ConfigError:
            return [self.config]
        return [self.config, current]

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        running = list(self.workers.values())
        for worker in running:
            worker.signal("TERM")

        def kill() -> None:
            for worker in running:
                if not worker.ended.called:
                    _log.warn("worker {index} (pid {pid}) did not stop; killing it",
                              index=worker.index, pid=worker.pid)
                    worker.signal("KILL")

        killer = self.reactor.callLater(kill_after(self._stop_configs()), kill)

        def done(_: object) -> None:
            if killer.active():
                killer.cancel()
            close_sockets(self._sockets)
            self._sockets = []
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
                self.metrics_dir = None

        return defer.gatherResults([w.ended for w in running]).addCallback(done)
