"""
The one configuration model of twisted_lb.

Every way in (the native TOML file, the Apache httpd reader, code that embeds
the proxy) produces these frozen L{attrs} classes. They are validated when they
are built, so that a running proxy never meets a configuration it cannot use;
the readers turn a validation failure into a L{ConfigError} that names the
file, the key and the problem.
"""

from __future__ import annotations

import enum
import os
from typing import Any
from urllib.parse import urlsplit

import attrs

from twisted_lb.balancer.sticky import StickyConfig

__all__ = [
    "ConfigError",
    "MemberConfig",
    "StickySessionConfig",
    "BalancerConfig",
    "RouteConfig",
    "TLSConfig",
    "BackendTLSConfig",
    "ListenerConfig",
    "ProxyConfig",
    "MemberState",
    "LBMethodName",
    "MEMBER_SCHEMES",
]

#: URL schemes a balancer member may use, and their default ports.
MEMBER_SCHEMES: dict[str, int] = {"ajp": 8009, "http": 80, "https": 443, "ws": 80, "wss": 443}


class ConfigError(ValueError):
    """
    A configuration is not usable.

    @ivar source: the file (or C{"<code>"}) the configuration came from.
    @ivar key: the dotted key, or C{"line N"} for Apache files.
    @ivar problem: what is wrong, in words.
    """

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


class MemberState(enum.Enum):
    """The administrative state of a member, as configured."""

    ACTIVE = "active"
    DRAINING = "draining"
    DISABLED = "disabled"
    STANDBY = "standby"


class LBMethodName(enum.Enum):
    """The load-balancing methods a balancer may use."""

    BYREQUESTS = "byrequests"
    BYBUSYNESS = "bybusyness"
    BYTRAFFIC = "bytraffic"


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0, not {value!r}")


def _not_negative(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative, not {value!r}")


def _workers(instance: Any, attribute: attrs.Attribute[Any], value: int | str) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'workers must be "auto" or a number of at least 1, not {value!r}')


def _member_url(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in MEMBER_SCHEMES:
        raise ValueError(
            f"url {value!r}: scheme {parts.scheme!r} is not supported "
            f"(use one of {', '.join(MEMBER_SCHEMES)})"
        )
    if not parts.hostname:
        raise ValueError(f"url {value!r} names no host")
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"url {value!r}: {e}") from None
    if parts.query or parts.fragment:
        raise ValueError(f"url {value!r}: a member URL takes no query or fragment")


@attrs.frozen
class BackendTLSConfig:
    """
    How twisted_lb checks the certificate of an C{https://} or C{wss://} member.

    @ivar verify: check the chain and the host name (Apache's
        C{SSLProxyVerify require} plus C{SSLProxyCheckPeerName on}); switch off
        for self-signed nodes, as C{SSLProxyCheckPeerCN off} does.
    @ivar ca_file: PEM file of trusted CAs; the system store when unset.
    @ivar client_certificate: PEM file with a client certificate and key to
        present to the member (C{SSLProxyMachineCertificateFile}).
    """

    verify: bool = True
    ca_file: str | None = None
    client_certificate: str | None = None


@attrs.frozen
class MemberConfig:
    """
    One balancer member (a Tomcat node or another HTTP server).

    Names follow Apache's C{BalancerMember} parameters where Apache has the
    concept.

    @ivar url: C{ajp://host:port[/path]}, C{http(s)://…} or C{ws(s)://…}.
    @ivar route: the sticky route (Tomcat's C{jvmRoute}); defaults to the host
        and port when empty.
    @ivar loadfactor: weight, 1 to 100 (decimals allowed).
    @ivar lbset: failover group; lower sets are used first.
    @ivar status: the administrative state.
    @ivar retry: seconds a member in error stays out when background probing
        is off (Apache's retry timer).
    @ivar connectiontimeout: seconds to establish a connection.
    @ivar timeout: seconds to wait for the member to answer (between packets).
    @ivar ping: seconds to wait for a CPONG (AJP) before a pooled connection
        that was idle is reused; 0 switches the check off.
    @ivar secret: the AJP secret (Tomcat's C{secret} on the AJP connector).
    @ivar packet_size: the AJP packet size; must equal Tomcat's C{packetSize}.
    @ivar max: the most connections open to this member at once.
    @ivar ttl: seconds an idle pooled connection is kept.
    @ivar tls: certificate checks for C{https}/C{wss} members.
    """

    url: str = attrs.field(validator=_member_url)
    route: str = ""
    loadfactor: float = attrs.field(default=1.0)
    lbset: int = attrs.field(default=0, validator=_not_negative)
    status: MemberState = MemberState.ACTIVE
    retry: float = attrs.field(default=60.0, validator=_not_negative)
    connectiontimeout: float = attrs.field(default=5.0, validator=_positive)
    timeout: float = attrs.field(default=300.0, validator=_positive)
    ping: float = attrs.field(default=2.0, validator=_not_negative)
    secret: str | None = None
    packet_size: int = attrs.field(default=8192)
    max: int = attrs.field(default=256, validator=_positive)
    ttl: float = attrs.field(default=30.0, validator=_positive)
    tls: BackendTLSConfig = BackendTLSConfig()

    @loadfactor.validator
    def _check_loadfactor(self, attribute: attrs.Attribute[Any], value: float) -> None:
        if not 1 <= value <= 100:
            raise ValueError(f"loadfactor must be between 1 and 100, not {value!r}")

    @packet_size.validator
    def _check_packet_size(self, attribute: attrs.Attribute[Any], value: int) -> None:
        if not 8192 <= value <= 65536:
            raise ValueError(f"packet_size must be between 8192 and 65536, not {value!r}")

    @property
    def scheme(self) -> str:
        """The URL scheme: C{ajp}, C{http}, C{https}, C{ws} or C{wss}."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The member's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The member's port (the scheme's default when the URL has none)."""
        return urlsplit(self.url).port or MEMBER_SCHEMES[self.scheme]

    @property
    def path(self) -> str:
        """The path prefix on the member, without a trailing slash."""
        return urlsplit(self.url).path.rstrip("/")

    @property
    def name(self) -> str:
        """A stable name for logs and the manager: C{scheme://host:port}."""
        return f"{self.scheme}://{urlsplit(self.url).netloc}"

    @property
    def effective_route(self) -> str:
        """The route, or the member's name when no route is configured."""
        return self.route or self.name


#: Where the session id is looked for and how its route is separated: the
#: balancer's own value class, so that configuration and balancer agree.
StickySessionConfig = StickyConfig


@attrs.frozen
class BalancerConfig:
    """
    A balancer: a named group of members and how requests are spread on them.

    @ivar sticky: C{None} switches stickiness off.
    @ivar nofailover: a request for the route of an unusable member gets a 503
        instead of going to another member.
    @ivar maxattempts: how many members one request may try; the number of
        members when unset.
    @ivar probe_interval: seconds between background probes of a member in
        error; 0 switches probing off, so that Apache's retry timer applies.
    @ivar ws_max_message_size: the largest WebSocket message (and frame), in
        bytes, relayed by a balancer of C{ws(s)://} members; a larger one
        closes the WebSocket with 1009. The idle timeout of a WebSocket is the
        member's C{timeout}, as in Apache's tunnel.
    """

    name: str
    members: tuple[MemberConfig, ...] = attrs.field()
    lbmethod: LBMethodName = LBMethodName.BYREQUESTS
    sticky: StickySessionConfig | None = StickySessionConfig()
    nofailover: bool = False
    maxattempts: int | None = attrs.field(default=None, validator=_positive)
    probe_interval: float = attrs.field(default=1.0, validator=_not_negative)
    ws_max_message_size: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)

    @members.validator
    def _check_members(self, attribute: attrs.Attribute[Any], value: tuple[MemberConfig, ...]) -> None:
        if not value:
            raise ValueError(f"balancer {self.name!r} has no members")
        routes = [m.effective_route for m in value]
        duplicate = {r for r in routes if routes.count(r) > 1}
        if duplicate:
            raise ValueError(f"balancer {self.name!r}: route {sorted(duplicate)[0]!r} is used twice")
        schemes = {m.scheme in ("ws", "wss") for m in value}
        if len(schemes) > 1:
            raise ValueError(
                f"balancer {self.name!r} mixes ws(s):// members with others; "
                "put WebSocket members in a balancer of their own"
            )

    @property
    def websocket(self) -> bool:
        """Whether the members are C{ws://}/C{wss://} members."""
        return self.members[0].scheme in ("ws", "wss")


@attrs.frozen
class RouteConfig:
    """
    A path mapping: requests under C{path} go to C{balancer}.

    The URL on the member is the member's own path, then C{target_path}, then
    the rest of the request path after C{path} (Apache's string
    concatenation). C{target_path} defaults to C{"/"} when C{path} ends with a
    slash and to C{""} otherwise, so that C{/} and C{/share} map to the same
    paths on the member. The longest matching C{path} wins.

    @ivar balancer: the balancer's name, or C{None} for an exclusion
        (Apache's C{ProxyPass /path !}): such requests get a 404.
    @ivar preserve_host: send the client's Host header to HTTP members
        (always done for AJP, where Tomcat needs it).
    @ivar timeout: seconds to wait for a member's answer to requests under
        this path, instead of the member's own C{timeout}.
    @ivar cookie_path: C{(internal, public)} pairs: in a C{Set-Cookie} from a
        member, a C{Path} that starts with C{internal} gets C{public} in its
        place (Apache's C{ProxyPassReverseCookiePath}).
    @ivar cookie_domain: C{(internal, public)} pairs for the C{Domain}
        attribute (Apache's C{ProxyPassReverseCookieDomain}).
    """

    path: str = attrs.field()
    balancer: str | None
    target_path: str = attrs.field(
        default=attrs.Factory(lambda self: "/" if self.path.endswith("/") else "", takes_self=True)
    )
    preserve_host: bool = False
    timeout: float | None = attrs.field(default=None, validator=_positive)
    cookie_path: tuple[tuple[str, str], ...] = ()
    cookie_domain: tuple[tuple[str, str], ...] = ()

    @path.validator
    def _check_path(self, attribute: attrs.Attribute[Any], value: str) -> None:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")


@attrs.frozen
class TLSConfig:
    """
    The certificate an HTTPS listener presents.

    @ivar certificate: PEM certificate file.
    @ivar key: PEM private key file (may be the certificate file).
    @ivar chain: PEM file of intermediate certificates.
    """

    certificate: str
    key: str
    chain: str | None = None


@attrs.frozen
class ListenerConfig:
    """
    One listening address.

    @ivar endpoint: a Twisted server endpoint string (C{tcp:8080},
        C{ssl:8443:privateKey=…:certKey=…}, C{systemd:domain=INET:index=0}).
    @ivar tls: serve HTTPS on a plain C{tcp:} endpoint with this certificate.
    @ivar redirect: answer every request with a redirect to this base URL
        plus the request's path (the HTTP → HTTPS listener).
    @ivar redirect_status: the status of that redirect: 301 (permanent, the
        default), 302 (the default of Apache's C{Redirect}), 303, 307 or 308.
    """

    endpoint: str
    tls: TLSConfig | None = None
    redirect: str | None = None
    redirect_status: int = attrs.field(default=301)

    @redirect_status.validator
    def _check_redirect_status(self, attribute: attrs.Attribute[Any], value: int) -> None:
        if value not in (301, 302, 303, 307, 308):
            raise ValueError(
                f"redirect_status must be one of 301, 302, 303, 307, 308, not {value!r}"
            )

    @property
    def secure(self) -> bool:
        """Whether clients of this listener come over TLS."""
        return self.tls is not None or self.endpoint.startswith("ssl:")


@attrs.frozen
class ProxyConfig:
    """
    The whole configuration of one proxy.

    @ivar source: where it came from, for messages.
    @ivar timeout: default seconds to wait for a member's answer.
    @ivar x_forwarded: add C{X-Forwarded-For/-Proto/-Host} for HTTP members.
    @ivar workers: how many processes serve the listeners: C{"auto"} (the
        default: one per core, see L{effective_workers}) or a number; 1 runs
        everything in the one C{twistd} process.
    """

    listeners: tuple[ListenerConfig, ...]
    balancers: tuple[BalancerConfig, ...]
    routes: tuple[RouteConfig, ...]
    source: str = "<code>"
    timeout: float = attrs.field(default=300.0, validator=_positive)
    x_forwarded: bool = True
    access_log: str | None = None
    workers: int | str = attrs.field(default="auto", validator=_workers)

    @property
    def effective_workers(self) -> int:
        """The number of worker processes: C{workers}, or the number of cores for C{"auto"}."""
        if self.workers == "auto":
            return len(os.sched_getaffinity(0))
        return int(self.workers)

    def __attrs_post_init__(self) -> None:
        names = [b.name for b in self.balancers]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(self.source, f"balancers.{name}", "is defined twice")
        known = set(names)
        for i, route in enumerate(self.routes):
            if route.balancer is not None and route.balancer not in known:
                raise ConfigError(
                    self.source,
                    f"routes[{i}].balancer",
                    f"names balancer {route.balancer!r}, which is not defined "
                    f"(defined: {', '.join(sorted(known)) or 'none'})",
                )
        paths = [r.path for r in self.routes]
        for path in paths:
            if paths.count(path) > 1:
                raise ConfigError(self.source, "routes", f"path {path!r} is mapped twice")
        if not self.listeners:
            raise ConfigError(self.source, "listen", "no listener is configured")

    def balancer(self, name: str) -> BalancerConfig:
        """
        Look a balancer up by name.

        @raise KeyError: when there is none of that name.
        """
        for b in self.balancers:
            if b.name == name:
                return b
        raise KeyError(name)
