"""
C{twistd lbproxy}: command-line options and the service they make.

    twistd -n lbproxy --config site.toml      # or an Apache httpd .conf file
    twistd -n lbproxy --demo                  # two built-in AJP nodes behind HTTPS
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from twisted_lb.config.model import ConfigError

__all__ = ["Options", "makeService", "version_line"]

DEFAULT_DEMO_DIR = Path.home() / ".cache" / "twisted_lb-demo"


class Options(usage.Options):
    """Options of C{twistd lbproxy}."""

    synopsis = "[--config FILE | --demo]"
    longdesc = (
        "A load-balancing reverse proxy for Tomcat clusters (AJP/1.3, HTTP(S), WebSocket). "
        "FILE is a native TOML configuration or an Apache httpd configuration "
        "(<Proxy balancer://...>, BalancerMember, ProxyPass ...)."
    )
    optParameters = [
        ["config", "c", None, "Configuration file (.toml, or an Apache httpd .conf)."],
        ["demo-dir", None, str(DEFAULT_DEMO_DIR), "Where --demo keeps its self-signed certificate."],
        ["demo-https", None, "tcp:8443:interface=127.0.0.1", "HTTPS listener of --demo."],
        ["demo-http", None, "tcp:8080:interface=127.0.0.1", "Plain HTTP (redirecting) listener of --demo."],
        ["demo-admin", None, "tcp:8081:interface=127.0.0.1",
         "Admin listener (balancer manager, metrics) of --demo; 'off' for none."],
    ]
    optFlags = [
        ["demo", None, "Run a demo: two built-in AJP nodes behind an HTTPS balancer."],
        ["check", None, "Check the configuration (and the files it names), say whether it is OK, and exit."],
    ]

    def opt_version(self) -> None:
        """Print twisted_lb's version (and Twisted's, and Python's) and exit."""
        print(version_line())
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self["demo"] and self["config"]:
            raise usage.UsageError("give either --config or --demo, not both")
        if not self["demo"] and not self["config"]:
            raise usage.UsageError("give --config FILE (or --demo to try it out)")
        if self["config"] and not Path(self["config"]).is_file():
            # One line, not twistd's page of usage before it.
            raise SystemExit(f"twisted_lb: {self['config']}: no such configuration file")
        parent = getattr(self, "parent", None)
        if parent is not None:
            _no_default_pidfile(parent, check=self["check"])


def version_line() -> str:
    """What C{--version} prints: twisted_lb's version, then Twisted's and Python's."""
    import platform

    import twisted
    from twisted_lb import __version__

    return (
        f"twisted_lb {__version__} (Twisted {twisted.__version__}, "
        f"Python {platform.python_version()})"
    )


def _no_default_pidfile(twistd_options: Any, *, check: bool, argv: list[str] | None = None) -> None:
    """
    Write no C{twistd.pid} where it only gets in the way.

    twistd writes C{twistd.pid} into the current directory unless told
    otherwise, and refuses to start while one names a live process: a proxy
    run in the foreground (C{-n}) from a directory would block C{--check}
    and every other C{twistd} started there. C{--check} runs no server, so
    it never needs one; in the foreground (where systemd or a terminal keeps
    the process) no pid file is written unless C{--pidfile} is given. A
    daemon keeps twistd's default, which is how it is found to be stopped.
    """
    if check:
        twistd_options["pidfile"] = ""
        return
    argv = sys.argv[1:] if argv is None else argv
    given = any(arg == "--pidfile" or arg.startswith("--pidfile=") for arg in argv)
    if twistd_options.get("nodaemon") and not given:
        twistd_options["pidfile"] = ""


def makeService(options: Options) -> IService:
    """Make the proxy service described by C{options} (twistd entry point)."""
    from twisted.internet import reactor

    return _make_service(options, reactor)


def _config_errors(e: ConfigError) -> str:
    """
    The message that ends a start or C{--check} refused for C{e}: every
    problem of the file, one a line (after the reader's warnings, printed
    to standard error).
    """
    errors = getattr(e, "errors", (e,))
    for warning in getattr(e, "warnings", ()):
        print(f"warning: {warning}", file=sys.stderr)
    if len(errors) == 1:
        return f"twisted_lb: configuration error: {errors[0]}"
    lines = "\n".join(f"  {error}" for error in errors)
    return f"twisted_lb: {len(errors)} configuration errors:\n{lines}"


def _make_service(options: Options, reactor: Any) -> IService:
    from twisted_lb.config import read_config
    from twisted_lb.service import ProxyService

    if options["demo"]:
        from twisted_lb.demo import DemoService

        return DemoService(
            reactor,
            Path(options["demo-dir"]),
            https_endpoint=options["demo-https"],
            http_endpoint=options["demo-http"],
            admin_endpoint=None if options["demo-admin"] == "off" else options["demo-admin"],
        )
    try:
        config, warnings = read_config(options["config"])
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        proxy = ProxyService(config, reactor)
        service: IService = proxy
        workers = config.effective_workers
        if (
            workers > 1
            and config.admin is not None
            and not config.admin.state_file
            and config.cluster is None
        ):
            raise ConfigError(
                config.source,
                "admin.state_file",
                f"with {workers} workers the manager's changes reach the other workers through "
                "the state file: set one (or workers = 1)",
            )
        if workers > 1 and not options["check"]:
            from twisted_lb.workers import WorkerSupervisor

            # This copy only checked the configuration: each worker builds its own.
            proxy.discard()
            service = WorkerSupervisor(config, options["config"], reactor, workers)
    except ConfigError as e:
        raise SystemExit(_config_errors(e)) from None
    if options["check"]:
        print(f"{options['config']}: configuration OK", file=sys.stderr)
        raise SystemExit(0)
    from twisted_lb.reload import ReloadOnSignal

    root = _Root(config.log_format, options.parent, reactor, single_process=service is proxy)
    service.setServiceParent(root)
    if service is proxy:
        # With workers, the supervisor forwards SIGHUP to them and each reloads.
        ReloadOnSignal(proxy, reactor).setServiceParent(root)
    return root


class _Root(MultiService):
    """
    The service twistd runs: the proxy and its C{SIGHUP} handler. With
    C{log_format = "json"} it gives twistd's application a JSON log observer
    (Twisted's documented way: the application's L{ILogObserver} component),
    writing where twistd's own log would go, and, when that is a file, the
    signals that rotate and reopen it (L{twisted_lb.logs.LogFileSignals}).
    """

    def __init__(
        self, log_format: str, twistd_options: Any, reactor: Any, *, single_process: bool = True
    ) -> None:
        super().__init__()
        self.log_format = log_format
        self.twistd_options = twistd_options
        self.reactor = reactor
        self.single_process = single_process
        self.log_file: Any = None

    def setServiceParent(self, parent: Any) -> None:
        if self.log_format != "text" and hasattr(parent, "setComponent"):
            from twisted.logger import ILogObserver
            from twisted.python.logfile import LogFile

            from twisted_lb.logs import LogFileSignals, observer_for, twistd_log_file

            self.log_file = twistd_log_file(self.twistd_options)
            parent.setComponent(ILogObserver, observer_for(self.log_format, self.log_file))
            if isinstance(self.log_file, LogFile):
                # Added last, so it starts after (and passes signals on to) the
                # reload handler or the worker supervisor.
                signals = LogFileSignals(self.log_file, self.reactor, rotate=self.single_process)
                signals.setServiceParent(self)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        with _exit_on_config_error():
            super().privilegedStartService()

    def startService(self) -> None:
        with _exit_on_config_error():
            super().startService()
        if self.single_process:
            # With workers, the supervisor says so once every worker serves.
            from twisted_lb.readiness import notify

            # Once the reactor runs: its signal handlers (SIGTERM) are set by then.
            self.reactor.callWhenRunning(notify, "READY=1\nSTATUS=serving")

    def stopService(self) -> Any:
        from twisted_lb.readiness import notify

        notify("STOPPING=1")
        return super().stopService()


@contextmanager
def _exit_on_config_error() -> Iterator[None]:
    """
    A listener that cannot listen (a port in use) ends twistd with one line
    naming it, as a configuration error does, not with a traceback.
    """
    try:
        yield
    except ConfigError as e:
        raise SystemExit(f"twisted_lb: {e}") from None
