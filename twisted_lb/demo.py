"""
The demo: two in-process AJP nodes behind an HTTPS balancer.

Each node is built on the container role of our AJP codec, has its own route
and serves a tiny page that shows which node answered and a session counter,
so that stickiness and balancing can be seen in a browser. The same nodes
serve the integration tests (C{/echo}, C{/session}, C{/big}).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort

from twisted_lb.ajp.container import AJPContainerFactory, ContainerRequest, ContainerResponse
from twisted_lb.config.model import (
    AdminConfig,
    BalancerConfig,
    ConfigError,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    TLSConfig,
)
from twisted_lb.testing import body_pattern

__all__ = ["DemoApp", "DemoService", "demo_config", "write_demo_config"]

_JSON = ((b"Content-Type", b"application/json"),)
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>twisted_lb demo: {node}</title>
<style>body{{font-family:sans-serif;margin:3em}} .node{{font-size:3em;color:{color}}}</style></head>
<body><p>This page was served by</p><p class="node">{node}</p>
<p>Requests in this session: <b>{counter}</b> (session <code>{session}</code>)</p>
<p>Reload to count on; your session cookie keeps you on <b>{node}</b>.
Delete the cookie to be balanced anew.</p>
<p><a href="echo">/echo</a> shows what the node received over AJP.</p></body></html>
"""


class DemoApp:
    """
    A tiny web application for one demo node.

    @ivar node: the node's name, also its route.
    @ivar sessions: session id → request counter.
    """

    def __init__(self, node: str, color: str = "#2a6") -> None:
        self.node = node
        self.color = color
        self.sessions: dict[str, int] = {}

    def __call__(self, request: ContainerRequest) -> ContainerResponse:
        forward = request.forward
        path = forward.req_uri.split(b";", 1)[0]
        if path.endswith(b"/echo"):
            return self._echo(request)
        if path.endswith(b"/big"):
            return self._big(forward.query_string or b"")
        session, counter, cookie = self._count(request)
        if path.endswith(b"/session"):
            body = json.dumps({"node": self.node, "counter": counter, "session": session})
            return ContainerResponse(200, _JSON + cookie, (body.encode(),))
        page = _PAGE.format(node=self.node, color=self.color, counter=counter, session=session)
        return ContainerResponse(
            200, ((b"Content-Type", b"text/html;charset=utf-8"),) + cookie, (page.encode(),)
        )

    def _count(
        self, request: ContainerRequest
    ) -> tuple[str, int, tuple[tuple[bytes, bytes], ...]]:
        cookies = [v for n, v in request.forward.headers if n.lower() == b"cookie"]
        for sid in _session_ids(cookies):
            if sid in self.sessions:
                self.sessions[sid] += 1
                return sid, self.sessions[sid], ()
        sid = f"{secrets.token_hex(16).upper()}.{self.node}"
        self.sessions[sid] = 1
        cookie = f"JSESSIONID={sid}; Path=/; HttpOnly".encode()
        return sid, 1, ((b"Set-Cookie", cookie),)

    def _echo(self, request: ContainerRequest) -> ContainerResponse:
        f = request.forward
        body = {
            "node": self.node,
            "method": f.method.decode("latin-1"),
            "protocol": f.protocol.decode("latin-1"),
            "server_name": f.server_name.decode("latin-1"),
            "uri": f.req_uri.decode("latin-1"),
            "query": None if f.query_string is None else f.query_string.decode("latin-1"),
            "remote_addr": f.remote_addr.decode("latin-1"),
            "is_ssl": f.is_ssl,
            "ssl_cert": None if f.ssl_cert is None else f.ssl_cert.decode("latin-1"),
            "route": None if f.route is None else f.route.decode("latin-1"),
            "secret_sent": f.secret is not None,
            "attributes": {k.decode("latin-1"): v.decode("latin-1") for k, v in f.request_attributes},
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in f.headers],
            "body_length": len(request.body),
            "body_sha256": hashlib.sha256(request.body).hexdigest(),
        }
        return ContainerResponse(200, _JSON, (json.dumps(body).encode(),))

    def _big(self, query: bytes) -> ContainerResponse:
        size = int(parse_qs(query.decode("latin-1")).get("bytes", ["1048576"])[0])
        return ContainerResponse(
            200,
            ((b"Content-Type", b"application/octet-stream"), (b"Content-Length", b"%d" % size)),
            _pattern(size),
        )


def _pattern(size: int, step: int = 65536) -> Iterator[bytes]:
    """L{body_pattern}'s C{size} bytes (byte i is C{i % 251}), in C{step}-sized pieces."""
    for offset in range(0, size, step):
        yield body_pattern(min(step, size - offset), offset)


def _session_ids(cookies: list[bytes]) -> Iterator[str]:
    for header in cookies:
        for part in header.split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == b"JSESSIONID":
                yield value.decode("latin-1").strip('"')


def demo_config(
    node_ports: list[tuple[str, int]],
    directory: Path,
    https_endpoint: str,
    http_endpoint: str,
    https_port: int,
    admin_endpoint: str | None = None,
) -> ProxyConfig:
    """
    The demo's proxy configuration, with the demo nodes as members and, with
    C{admin_endpoint}, the balancer manager (no password: keep it on loopback).
    """
    members = tuple(
        MemberConfig(url=f"ajp://127.0.0.1:{port}", route=name) for name, port in node_ports
    )
    return ProxyConfig(
        listeners=(
            ListenerConfig(
                https_endpoint,
                tls=TLSConfig(str(directory / "demo-cert.pem"), str(directory / "demo-key.pem")),
            ),
            ListenerConfig(http_endpoint, redirect=f"https://localhost:{https_port}"),
        ),
        balancers=(BalancerConfig("demo", members),),
        routes=(RouteConfig("/", "demo"),),
        source="<demo>",
        access_log="-",
        workers=1,
        admin=None if admin_endpoint is None else AdminConfig(endpoint=admin_endpoint),
    )


def write_demo_config(config: ProxyConfig, path: Path) -> ProxyConfig:
    """
    Write C{config} to C{path} as TOML and read it back: the same
    configuration, with C{path} as its source.
    """
    from twisted_lb.config import read_config, to_toml

    text = to_toml(config).replace(
        "# twisted_lb configuration (from <demo>)",
        "# twisted_lb demo configuration, written again at each start of the demo\n"
        "# (the node ports change): edit it while the demo runs, then reload it\n"
        "# (the manager's \"Reload configuration\", or kill -HUP).",
        1,
    )
    path.write_text(text)
    return read_config(str(path))[0]


def _stop_listening(_: object, port: IListeningPort) -> defer.Deferred[None] | None:
    return port.stopListening()


class DemoService(MultiService):
    """Starts the demo nodes, then the proxy in front of them."""

    def __init__(
        self,
        reactor: Any,
        directory: Path,
        *,
        https_endpoint: str,
        http_endpoint: str,
        admin_endpoint: str | None = None,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self._directory = directory
        self._https = https_endpoint
        self._http = http_endpoint
        self._admin = admin_endpoint
        self._ports: list[IListeningPort] = []
        self.proxy: Any = None

    def startService(self) -> None:
        from twisted_lb.service import ProxyService
        from twisted_lb.tls import make_self_signed

        cert = self._directory / "demo-cert.pem"
        key = self._directory / "demo-key.pem"
        if not cert.exists() or not key.exists():
            make_self_signed(cert, key)
            print(f"twisted_lb demo: made a self-signed certificate in {self._directory}")
        nodes = []
        for name, color in (("node1", "#2a6"), ("node2", "#36c")):
            port = self._reactor.listenTCP(
                0, AJPContainerFactory(DemoApp(name, color)), interface="127.0.0.1"
            )
            self._ports.append(port)
            nodes.append((name, port.getHost().port))
        https_port = int(self._https.split(":")[1])
        config = demo_config(
            nodes, self._directory, self._https, self._http, https_port, self._admin
        )
        # Written to a file and read from it, so that the manager's "Reload
        # configuration" (and SIGHUP) has a file to read again: edit it and reload.
        config = write_demo_config(config, self._directory / "demo.toml")
        self.proxy = ProxyService(config, self._reactor)
        self.proxy.setServiceParent(self)
        try:
            super().startService()
        except ConfigError as e:
            # A port in use: one line naming it, not a traceback.
            raise SystemExit(f"twisted_lb demo: {e}") from None
        for name, port in nodes:
            print(f"twisted_lb demo: AJP node {name} on 127.0.0.1:{port}")
        print(f"twisted_lb demo: HTTPS on https://localhost:{https_port}/  ({self._https})")
        print(f"twisted_lb demo: HTTP  on {self._http}, redirecting to HTTPS")
        if self._admin:
            print(f"twisted_lb demo: balancer manager and /metrics on {self._admin}")
        sys.stdout.flush()

    def stopService(self) -> defer.Deferred[None]:
        d = defer.maybeDeferred(super().stopService)
        for port in self._ports:
            d.addCallback(_stop_listening, port)
        return d

