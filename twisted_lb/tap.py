"""
C{twistd lbproxy}: command-line options and the service they make.

    twistd -n lbproxy --config site.toml      # or an Apache httpd .conf file
    twistd -n lbproxy --demo                  # two built-in AJP nodes behind HTTPS
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from twisted_lb.config.model import ConfigError

__all__ = ["Options", "makeService"]

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

    def postOptions(self) -> None:
        if self["demo"] and self["config"]:
            raise usage.UsageError("give either --config or --demo, not both")
        if not self["demo"] and not self["config"]:
            raise usage.UsageError("give --config FILE (or --demo to try it out)")
        if self["config"] and not Path(self["config"]).is_file():
            raise usage.UsageError(f"{self['config']}: no such file")


def makeService(options: Options) -> IService:
    """Make the proxy service described by C{options} (twistd entry point)."""
    from twisted.internet import reactor

    return _make_service(options, reactor)


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
        raise SystemExit(f"twisted_lb: configuration error: {e}") from None
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
