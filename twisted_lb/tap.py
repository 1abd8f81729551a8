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
    ]
    optFlags = [
        ["demo", None, "Run a demo: two built-in AJP nodes behind an HTTPS balancer."],
        ["check", None, "Check the configuration, print a summary and exit."],
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
        )
    try:
        config, warnings = read_config(options["config"])
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        proxy = ProxyService(config, reactor)
        service: IService = proxy
        workers = config.effective_workers
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
    root = MultiService()
    service.setServiceParent(root)
    return root
