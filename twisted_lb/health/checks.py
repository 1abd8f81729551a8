"""
The active health checks themselves: CPING/CPONG for AJP members, an HTTP request for HTTP(S)
and WebSocket members, a TCP connect (and TLS handshake) for any.

Each check is built once per member (endpoint, URL, TLS policy, expected statuses) and run as
often as the checker says; it answers a L{CheckResult} and never raises.  A check that is
cancelled (its timeout, or the service stopping) closes what it opened.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol, cast

import attrs
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from twisted_lb.backends.ajp_protocol import AJPClientProtocol
from twisted_lb.backends.connect_probe import ConnectProbe
from twisted_lb.backends.tls_policy import MemberTLSPolicy
from twisted_lb.compat import quiet_pool_factory
from twisted_lb.config.model import HealthCheckConfig, HealthCheckKind, MemberConfig
from twisted_lb.quiet import QuietFactory

__all__ = ["CheckResult", "MemberCheck", "build_check", "describe_failure"]

#: Bytes of an HTTP check's response body read before the connection is dropped.
_BODY_LIMIT = 64 * 1024


@attrs.frozen
class CheckResult:
    """
    The outcome of one check.

    @ivar ok: whether it passed.
    @ivar detail: what it saw (C{"HTTP 200"}, C{"CPONG"}, C{"connection refused"}).
    """

    ok: bool
    detail: str


class MemberCheck(Protocol):
    """One member's check, ready to run."""

    #: What the check does, for logs (C{"cping"}, C{"http GET /health"}, C{"tcp"}).
    description: str

    async def run(self) -> CheckResult:
        """Check the member once."""


def describe_failure(error: BaseException, tls: MemberTLSPolicy | None = None) -> str:
    """
    A short text for why a check failed.

    @param error: the exception.
    @param tls: the member's TLS policy, which knows why a certificate was refused.
    """
    reasons = getattr(error, "reasons", None)
    if reasons:  # Twisted's wrapper exceptions (ResponseNeverReceived, ...)
        inner = reasons[0].value if isinstance(reasons[0], Failure) else reasons[0]
        return describe_failure(inner, tls)
    if isinstance(error, SSL.Error):
        why = tls.verify_failure() if tls is not None else None
        return f"TLS: {why}" if why else f"TLS handshake failed: {error}"
    text = str(error).strip()
    if type(error).__name__ == "ConnectionRefusedError":
        return "connection refused"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _endpoint(
    reactor: Any, member: MemberConfig, tls: MemberTLSPolicy | None, timeout: float
) -> Any:
    """
    The member's endpoint (an C{IStreamClientEndpoint}).  An address connects directly (C{HostnameEndpoint} reports a refused
    connection only after its 0.3 s attempt delay); a name goes through C{HostnameEndpoint}.
    """
    endpoint: Any
    try:
        address = ipaddress.ip_address(member.host)
    except ValueError:
        endpoint = HostnameEndpoint(reactor, member.host, member.port, timeout=timeout)
    else:
        tcp = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        endpoint = tcp(reactor, member.host, member.port, timeout=timeout)
    if tls is not None:
        endpoint = wrapClientTLS(tls.creator, endpoint)
    return endpoint


class TCPCheck:
    """A TCP connect, plus the TLS handshake (with the member's certificate checks) for TLS."""

    def __init__(self, reactor: Any, member: MemberConfig, tls: MemberTLSPolicy | None,
                 timeout: float) -> None:
        self._endpoint: Any = _endpoint(reactor, member, tls, timeout)
        self._tls = tls
        self.description = "tcp+tls" if tls is not None else "tcp"

    async def run(self) -> CheckResult:
        proto: ConnectProbe | None = None
        try:
            proto = await self._endpoint.connect(
                QuietFactory.forProtocol(lambda: ConnectProbe(self._tls is not None))
            )
            lost = await proto.ready
            if lost is not None:
                lost.raiseException()
        except Exception as e:
            return CheckResult(False, describe_failure(e, self._tls))
        finally:
            transport: Any = proto.transport if proto is not None else None
            if transport is not None:
                transport.loseConnection()
        return CheckResult(True, "TLS handshake done" if self._tls is not None else "connected")


class CPingCheck:
    """AJP's CPING on a new connection, passed by CPONG."""

    description = "cping"

    def __init__(self, reactor: Any, member: MemberConfig, timeout: float) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._endpoint: Any = _endpoint(reactor, member, None, timeout)
        self._factory = QuietFactory.forProtocol(
            lambda: AJPClientProtocol(reactor, member.packet_size)
        )

    async def run(self) -> CheckResult:
        proto: AJPClientProtocol | None = None
        try:
            proto = await self._endpoint.connect(self._factory)
            await proto.cping(self._timeout)
        except Exception as e:
            if proto is not None:
                return CheckResult(False, f"connected, but no CPONG ({describe_failure(e)})")
            return CheckResult(False, describe_failure(e))
        finally:
            transport: Any = proto.transport if proto is not None else None
            if transport is not None:
                transport.loseConnection()
        return CheckResult(True, "CPONG")


@implementer(IAgentEndpointFactory)
class _OneEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri: object) -> IStreamClientEndpoint:
        return self.endpoint


class _Discard(TwistedProtocol):
    """Reads (and forgets) a response body, dropping the connection after L{_BODY_LIMIT}."""

    def __init__(self) -> None:
        self.done: defer.Deferred[None] = defer.Deferred()
        self._seen = 0

    def dataReceived(self, data: bytes) -> None:
        self._seen += len(data)
        if self._seen > _BODY_LIMIT and self.transport is not None:
            # A response body's transport is a producer (Response.deliverBody).
            cast(IPushProducer, self.transport).stopProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.done.called:
            self.done.callback(None)


class HTTPCheck:
    """
    An HTTP/1.1 request on a new connection (through the member's TLS policy, so that its
    certificate checks apply), passed by an expected status.
    """

    def __init__(
        self,
        reactor: Any,
        member: MemberConfig,
        health: HealthCheckConfig,
        tls: MemberTLSPolicy | None,
        timeout: float,
    ) -> None:
        self._tls = tls
        self._health = health
        self._method = health.method.encode("ascii")
        pool = HTTPConnectionPool(reactor, persistent=False)
        pool._factory = quiet_pool_factory  # type: ignore[assignment]
        self._agent = Agent.usingEndpointFactory(
            reactor, _OneEndpoint(_endpoint(reactor, member, tls, timeout)), pool=pool
        )
        scheme = "https" if tls is not None else "http"
        host = f"[{member.host}]" if ":" in member.host else member.host
        path = member.path + (health.path or "/")
        self._url = f"{scheme}://{host}:{member.port}{path}".encode()
        self._headers = Headers({b"user-agent": [b"twisted_lb health check"]})
        self.description = f"http {health.method} {path}"

    async def run(self) -> CheckResult:
        try:
            response = await self._agent.request(self._method, self._url, self._headers.copy())
        except Exception as e:
            return CheckResult(False, describe_failure(e, self._tls))
        body = _Discard()
        response.deliverBody(body)
        await body.done
        return CheckResult(self._health.passes_status(response.code), f"HTTP {response.code}")


def build_check(
    reactor: Any, member: MemberConfig, health: HealthCheckConfig, backend: object
) -> MemberCheck:
    """
    The check of one member, built once.

    @param reactor: provides TCP, TLS and time.
    @param member: the member's configuration.
    @param health: its health-check configuration.
    @param backend: its backend; its TLS policy (C{tls}), if any, is used, so that the checks
        verify the member's certificate as requests do.
    """
    tls: MemberTLSPolicy | None = getattr(backend, "tls", None)
    if tls is None and member.scheme in ("https", "wss"):
        tls = MemberTLSPolicy(member)
    kind = health.kind_for(member.scheme)
    if kind is HealthCheckKind.CPING:
        return CPingCheck(reactor, member, health.timeout)
    if kind is HealthCheckKind.HTTP:
        return HTTPCheck(reactor, member, health, tls, health.timeout)
    return TCPCheck(reactor, member, tls, health.timeout)
