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
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from twisted_lb.access import AccessRule, parse_network
from twisted_lb.basic_auth import AuthRule
from twisted_lb.header_edits import HeaderEdit
from twisted_lb.request_rules import RequestRule
from twisted_lb.sticky import StickyConfig

__all__ = [
    "DEFAULT_HOST",
    "ConfigError",
    "ConfigErrors",
    "ERROR_PAGE_STATUSES",
    "MemberConfig",
    "StickySessionConfig",
    "BalancerConfig",
    "RouteConfig",
    "UnroutedHeaders",
    "TLSConfig",
    "BackendTLSConfig",
    "ListenerConfig",
    "LimitsConfig",
    "ProxyConfig",
    "MemberState",
    "LBMethodName",
    "HealthCheckConfig",
    "HealthCheckKind",
    "MEMBER_SCHEMES",
    "AdminConfig",
    "ClusterConfig",
    "endpoint_is_local",
    "PASSWORD_HASH_PREFIX",
]

#: URL schemes a balancer member may use, and their default ports.
MEMBER_SCHEMES: dict[str, int] = {"ajp": 8009, "http": 80, "https": 443, "ws": 80, "wss": 443}


#: In L{RouteConfig.hosts}: the route serves the names no route lists (the
#: default virtual host).
DEFAULT_HOST = "_default_"


def _check_hosts(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for name in value:
        if not name or name != name.lower() or any(c in name for c in " /:@"):
            raise ValueError(
                f"hosts: {name!r} is not a lower-case host name (without port), "
                f"\"*.example.com\" or {DEFAULT_HOST!r}"
            )


#: The TLS versions a listener may offer, oldest first.
TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")


def _check_protocols(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value or any(v not in TLS_PROTOCOLS for v in value):
        raise ValueError(
            f"protocols must list one or both of {', '.join(TLS_PROTOCOLS)}, not {list(value)!r}"
        )


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


class ConfigErrors(ConfigError):
    """
    Several problems found in one reading of a configuration, reported
    together; its own C{source}, C{key} and C{problem} are the first one's.

    @ivar errors: every problem, in the order of the file.
    @ivar warnings: the reader's warnings, to show beside the errors.
    """

    def __init__(self, errors: Sequence[ConfigError], warnings: Sequence[str] = ()) -> None:
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors = tuple(errors)
        self.warnings = tuple(warnings)
        first = self.errors[0]
        super().__init__(first.source, first.key, first.problem)
        self.args = ("\n".join(str(e) for e in self.errors),)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


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


def _one_of(*choices: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {' | '.join(choices)}, not {value!r}")

    return check


class HealthCheckKind(enum.Enum):
    """
    What an active health check does.

    @cvar AUTO: CPING for C{ajp://} members; for the others an HTTP request when a C{path} is
        configured, else a TCP connect (with the TLS handshake for C{https}/C{wss}).
    @cvar CPING: AJP's CPING/CPONG on a new connection (C{ajp://} members only).
    @cvar HTTP: an HTTP request (C{method} C{path}) whose status must be in C{expect}
        (not for C{ajp://} members).
    @cvar TCP: a TCP connect, plus the TLS handshake with the member's certificate checks for
        C{https}/C{wss} members.
    """

    AUTO = "auto"
    CPING = "cping"
    HTTP = "http"
    TCP = "tcp"


def parse_statuses(value: str | tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """
    Read the statuses an HTTP check expects: C{"200-399"}, C{"200,204,300-399"}.

    @param value: the text, or ranges already read.
    @return: C{(low, high)} ranges, inclusive.
    @raise ValueError: if the text is not a list of statuses (100-599) and ranges.
    """
    if not isinstance(value, str):
        return tuple((int(low), int(high)) for low, high in value)
    ranges = []
    for part in value.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            lo, hi = int(low), int(high) if sep else int(low)
        except ValueError:
            raise ValueError(
                f"expect must list statuses and ranges like \"200-399\" or \"200,204\", not {value!r}"
            ) from None
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"expect: {part.strip()!r} is not a status range within 100-599")
        ranges.append((lo, hi))
    return tuple(ranges)


def _http_method(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValueError(f"method must be an upper-case HTTP method such as GET or HEAD, not {value!r}")


def _check_path(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not value.startswith("/") or any(c in value for c in " \r\n#")):
        raise ValueError(f"path must start with '/' and hold no spaces or fragment, not {value!r}")


def _count(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, not {value!r}")


@attrs.frozen
class HealthCheckConfig:
    """
    Active health checks of a balancer's members (and slow start after they come back).

    @ivar kind: what a check does (see L{HealthCheckKind}).
    @ivar interval: seconds between two checks of a member.
    @ivar timeout: seconds a check may take before it counts as failed.
    @ivar passes: consecutive passed checks that bring a member in error back (HAProxy's
        C{rise}, Apache's C{hcpasses}).
    @ivar fails: consecutive failed checks that take a member out (C{fall}, C{hcfails}).
    @ivar method: the HTTP method of an HTTP check.
    @ivar path: the path of an HTTP check, after the member URL's own path; C{None} for C{/}
        (and, with C{kind} auto, for a TCP check of http(s) members).
    @ivar expect: the statuses that pass an HTTP check, as inclusive ranges.
    @ivar slow_start: seconds over which a member's weight ramps up linearly after it comes
        back (or is added or enabled); C{0} for at once.
    """

    kind: HealthCheckKind = HealthCheckKind.AUTO
    interval: float = attrs.field(default=5.0, validator=_positive)
    timeout: float = attrs.field(default=2.0, validator=_positive)
    passes: int = attrs.field(default=2, validator=_count)
    fails: int = attrs.field(default=3, validator=_count)
    method: str = attrs.field(default="GET", validator=_http_method)
    path: str | None = attrs.field(default=None, validator=_check_path)
    expect: tuple[tuple[int, int], ...] = attrs.field(
        default=((200, 399),),
        converter=parse_statuses,
        validator=lambda instance, attribute, value: parse_statuses(value),
    )
    slow_start: float = attrs.field(default=0.0, validator=_not_negative)

    def kind_for(self, scheme: str) -> HealthCheckKind:
        """
        The check a member of C{scheme} gets (C{auto} resolved).

        @param scheme: C{ajp}, C{http}, C{https}, C{ws} or C{wss}.
        """
        if self.kind is not HealthCheckKind.AUTO:
            return self.kind
        if scheme == "ajp":
            return HealthCheckKind.CPING
        return HealthCheckKind.HTTP if self.path is not None else HealthCheckKind.TCP

    @property
    def expect_text(self) -> str:
        """L{expect} written as in the configuration (C{"200-399"})."""
        return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.expect)

    def passes_status(self, status: int) -> bool:
        """Whether an HTTP check answered with C{status} passes."""
        return any(lo <= status <= hi for lo, hi in self.expect)


#: The statuses the proxy answers itself for a request no member answered, which
#: C{error_pages} may replace.
ERROR_PAGE_STATUSES = (502, 503, 504)


def _error_pages(
    instance: Any, attribute: attrs.Attribute[Any], value: tuple[tuple[int, str], ...]
) -> None:
    seen = set()
    for status, path in value:
        if status not in ERROR_PAGE_STATUSES:
            raise ValueError(
                f"error_pages: {status!r} is not a status the proxy answers itself "
                f"(use {', '.join(map(str, ERROR_PAGE_STATUSES))})"
            )
        if status in seen:
            raise ValueError(f"error_pages: {status} is given twice")
        if not path:
            raise ValueError(f"error_pages: the file of {status} is empty")
        seen.add(status)


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
    @ivar health: this member's health checks, instead of its balancer's.
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
    health: HealthCheckConfig | None = None

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
    @ivar ws_max_message_size: the largest WebSocket message, in bytes,
        relayed by a balancer of C{ws(s)://} members (a larger one closes the
        WebSocket with 1009); 0, the default, for no limit (frames are relayed
        as they arrive, so a large message costs no memory). The idle timeout
        of a WebSocket is the member's C{timeout}, as in Apache's tunnel.
    @ivar health: active health checks of the members; C{None} for none (members
        in error are still probed every C{probe_interval}). A member's own
        C{health} replaces it.
    """

    name: str
    members: tuple[MemberConfig, ...] = attrs.field()
    lbmethod: LBMethodName = LBMethodName.BYREQUESTS
    sticky: StickySessionConfig | None = StickySessionConfig()
    nofailover: bool = False
    maxattempts: int | None = attrs.field(default=None, validator=_positive)
    probe_interval: float = attrs.field(default=1.0, validator=_not_negative)
    ws_max_message_size: int = attrs.field(default=0, validator=_not_negative)
    health: HealthCheckConfig | None = None

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
        for member in value:
            health = member.health or self.health
            if health is None:
                continue
            kind = health.kind_for(member.scheme)
            if kind is HealthCheckKind.CPING and member.scheme != "ajp":
                raise ValueError(f"member {member.url}: health kind cping is for ajp:// members only")
            if kind is HealthCheckKind.HTTP and member.scheme == "ajp":
                raise ValueError(
                    f"member {member.url}: health kind http needs an http(s):// or ws(s):// member; "
                    "AJP members are checked with cping (or tcp)"
                )

    def health_of(self, member: MemberConfig) -> HealthCheckConfig | None:
        """The health checks of C{member}: its own, else the balancer's."""
        return member.health or self.health

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
    @ivar request_headers: edits of the request headers before they are
        sent (Apache's C{RequestHeader}), in order.
    @ivar response_headers: edits of the response head (Apache's C{Header});
        those marked C{always} also apply to the proxy's own error pages.
    @ivar access: who may send requests (by client address), per path
        prefix at or below C{path}; the last rule that covers a request's
        path decides (403 when it refuses); none lets everyone in.
    @ivar auth: who must log in (HTTP Basic against an htpasswd file), per
        path prefix as C{access}; a refused request gets 401.
    @ivar hosts: the virtual host names the route serves (lower case; a
        leading C{*.} matches subdomains; L{DEFAULT_HOST} stands for every
        name no route lists); empty (the default) serves every host.
    @ivar encoded_slashes: accept C{%2F} in request paths under this route
        and pass it to the member as written (Apache's C{AllowEncodedSlashes
        NoDecode} with C{ProxyPass … nocanon}); other routes answer such
        requests 400. Dot segments stay refused, also inside a segment
        with encoded slashes.
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
    request_headers: tuple[HeaderEdit, ...] = ()
    response_headers: tuple[HeaderEdit, ...] = ()
    access: tuple[AccessRule, ...] = ()
    hosts: tuple[str, ...] = attrs.field(default=(), validator=_check_hosts)
    auth: tuple[AuthRule, ...] = ()
    encoded_slashes: bool = False

    @path.validator
    def _check_path(self, attribute: attrs.Attribute[Any], value: str) -> None:
        if not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with '/'")


@attrs.frozen
class UnroutedHeaders:
    """
    The C{Header always} edits of a virtual host (or of every host) made on
    the answers of its own the proxy gives where no route applies: the 404
    of a path without route or with an exclusion route, and the answers of
    the rules before routing (redirects, C{[F]}). Apache makes its server's
    and virtual host's C{Header always} edits on every response.

    @ivar response_headers: the edits, in order (all marked C{always}).
    @ivar hosts: the virtual host names (as L{RouteConfig.hosts}); empty
        (the default) for every host.
    """

    response_headers: tuple[HeaderEdit, ...] = attrs.field()
    hosts: tuple[str, ...] = attrs.field(default=(), validator=_check_hosts)

    @response_headers.validator
    def _check_always(self, attribute: attrs.Attribute[Any], value: tuple[HeaderEdit, ...]) -> None:
        if not value or not all(edit.always for edit in value):
            raise ValueError("response_headers must list edits, each with always = true")


@attrs.frozen
class TLSConfig:
    """
    The certificate an HTTPS listener presents.

    @ivar certificate: PEM certificate file.
    @ivar key: PEM private key file (may be the certificate file).
    @ivar chain: PEM file of intermediate certificates.
    @ivar client_certificates: whether clients are asked for a certificate,
        as Apache's C{SSLVerifyClient}: C{none} (the default), C{optional}
        and C{require} (checked against C{client_ca}), C{optional_no_ca}
        (any certificate is accepted, unchecked: the application decides).
        A presented certificate chain reaches AJP members (C{ssl_cert}).
    @ivar client_ca: PEM file of the CAs client certificates must come from
        (Apache's C{SSLCACertificateFile}); needed for C{optional} and
        C{require}.
    @ivar protocols: the TLS versions offered, among C{TLSv1.2} and
        C{TLSv1.3} (Apache's C{SSLProtocol}).
    @ivar ciphers: an OpenSSL cipher string for TLS 1.2 (Apache's
        C{SSLCipherSuite}), or C{None} for Twisted's default list.
    """

    certificate: str
    key: str
    chain: str | None = None
    protocols: tuple[str, ...] = attrs.field(default=TLS_PROTOCOLS, validator=_check_protocols)
    ciphers: str | None = None
    client_certificates: str = attrs.field(
        default="none", validator=_one_of("none", "optional", "require", "optional_no_ca")
    )
    client_ca: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.client_certificates in ("optional", "require") and not self.client_ca:
            raise ValueError(
                f"client_certificates = {self.client_certificates!r} needs client_ca, the CAs "
                "to check client certificates against (or use 'optional_no_ca')"
            )


#: A host name or address with an optional port (RFC 3986 3.2.2).
_SERVER_NAME = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?")


def _server_name(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and _SERVER_NAME.fullmatch(value) is None:
        raise ValueError(
            f"server_name must be a host name or address with an optional port, not {value!r}"
        )


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
    @ivar http2: offer HTTP/2 over ALPN on a TLS listener (a C{tls} table or
        an C{ssl:} endpoint), when twisted.web can serve it (the C{h2} and
        C{priority} packages are installed); HTTP/2 connections keep to the
        same C{[limits]} as HTTP/1.1 ones (see L{twisted_lb.http2}).
    @ivar server_name: the host name (and port) of requests that come
        without a C{Host} (HTTP/1.0), as Apache's C{ServerName}: members
        build their URLs from it. Without it, the address the client
        connected to.
    """

    endpoint: str
    tls: TLSConfig | None = None
    redirect: str | None = None
    redirect_status: int = attrs.field(default=301)
    http2: bool = True
    server_name: str | None = attrs.field(default=None, validator=_server_name)

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


#: How a password hash made by C{python -m twisted_lb admin-password} starts.
PASSWORD_HASH_PREFIX = "pbkdf2_sha256$"


def _password_hash(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(PASSWORD_HASH_PREFIX):
        raise ValueError(
            "must be a password hash (pbkdf2_sha256$...), not a plain password; "
            "make one with: python -m twisted_lb admin-password"
        )


_LOOPBACK_HOSTS = frozenset({"localhost", "::1", "0:0:0:0:0:0:0:1"})


def endpoint_is_local(endpoint: str) -> bool:
    """
    Whether a server endpoint string listens only where other machines cannot
    reach it: a UNIX socket, or C{tcp}/C{tcp6}/C{ssl} on a loopback interface.
    Anything else (no C{interface=}, which means every interface, or an
    endpoint type we cannot read, such as C{systemd:}) counts as exposed.
    """
    kind, _, rest = endpoint.partition(":")
    if kind == "unix":
        return True
    if kind not in ("tcp", "tcp6", "ssl"):
        return False
    interface = ""
    for part in re.split(r"(?<!\\):", rest):
        name, equals, value = part.partition("=")
        if equals and name == "interface":
            interface = value.replace("\\", "")
    return interface.startswith("127.") or interface in _LOOPBACK_HOSTS


def _admin_endpoint(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if getattr(instance, "password", None) is None and not endpoint_is_local(value):
        raise ValueError(
            f"{value!r} is reachable from other machines and no password is set: "
            "set admin.password (python -m twisted_lb admin-password makes one) "
            "or listen on 127.0.0.1"
        )


def _admin_allow(
    instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...] | None
) -> None:
    for entry in value or ():
        if not isinstance(entry, str):
            raise ValueError(f"{entry!r} is not an address or a network (a string)")
        parse_network(entry)


def _optional_tuple(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class AdminConfig:
    """
    The admin listener: the balancer manager, its JSON API and the metrics.

    @ivar endpoint: a Twisted server endpoint string; loopback only by default.
    @ivar user: the user name asked for when a password is set.
    @ivar password: a PBKDF2 hash of the password (HTTP Basic authentication);
        C{None} asks for none, which is refused on a non-loopback endpoint.
    @ivar state_file: where manager changes are kept so that they survive a
        restart; C{None} keeps them in memory only.
    @ivar allow: the client addresses and networks (C{10.0.0.0/8}, C{::1},
        C{local}, C{all}) that may use the listener, checked before the
        password; others get 403, except on C{/healthz}. C{None} lets every
        client that reaches the endpoint in; an empty tuple lets none in.
    """

    endpoint: str = attrs.field(default="tcp:8081:interface=127.0.0.1", validator=_admin_endpoint)
    user: str = "admin"
    password: str | None = attrs.field(default=None, validator=_password_hash)
    state_file: str | None = None
    allow: tuple[str, ...] | None = attrs.field(
        default=None, converter=_optional_tuple, validator=_admin_allow
    )


def _etcd_endpoints(instance: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("give at least one etcd endpoint (http://127.0.0.1:2379)")
    for url in value:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an etcd endpoint: give http(s)://HOST:PORT")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"{url!r}: an etcd endpoint is http(s)://HOST:PORT, nothing more")
        try:
            _ = parts.port
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from None


def _cluster_prefix(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.startswith("/") or value.endswith("/") or "//" in value:
        raise ValueError(
            f"{value!r} must start with '/' and name a key prefix without a trailing '/' "
            "(/twisted_lb/NAME)"
        )


def _instance_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", value):
        raise ValueError(f"{value!r}: an instance name is 1-100 letters, digits, '_', '.', ':', '-'")


def _default_instance() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname())[:100] or "instance"


@attrs.frozen
class ClusterConfig:
    """
    Several proxies sharing one runtime state (what operators change in the
    balancer manager) through an etcd v3 cluster.

    @ivar etcd: the etcd client URLs (C{http(s)://HOST:PORT}); the next one is
        tried when one does not answer.
    @ivar prefix: the key prefix of this group of proxies (every proxy of the
        group uses the same one).
    @ivar instance: this proxy's name in the group (the host name by
        default); unique within the group.
    @ivar address: how operators reach this proxy, shown in the manager
        (its admin endpoint by default).
    @ivar ca_file: the CA that signed the etcd servers' certificates
        (C{https://} endpoints); the system's CAs when C{None}.
    @ivar certificate: a PEM file with a client certificate (and its key,
        unless C{key} is given) for etcd's client certificate authentication.
    @ivar key: the client certificate's private key (PEM).
    @ivar user: an etcd user (etcd's own authentication); C{None}: none.
    @ivar password: that user's password.
    @ivar timeout: seconds an etcd request may take before the next endpoint
        is tried.
    """

    etcd: tuple[str, ...] = attrs.field(converter=tuple, validator=_etcd_endpoints)
    prefix: str = attrs.field(default="/twisted_lb/default", validator=_cluster_prefix)
    instance: str = attrs.field(factory=_default_instance, validator=_instance_name)
    address: str = ""
    ca_file: str | None = None
    certificate: str | None = None
    key: str | None = attrs.field(default=None)
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    timeout: float = attrs.field(default=2.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if (self.password is None) != (self.user is None):
            raise ValueError("give both user and password for etcd's authentication, or neither")

    @key.validator
    def _check_key(self, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and self.certificate is None:
            raise ValueError("a key without a certificate: give certificate too")


@attrs.frozen
class LimitsConfig:
    """
    What the proxy accepts from a client connection before it hands a request
    to a member (the frontend's defences against hostile clients).

    @ivar max_headers: header lines per request; more is a 431 (Apache's
        C{LimitRequestFields}).
    @ivar max_header_bytes: bytes of the request line and headers together;
        more is a 431 (414 for a request line alone over the limit).
    @ivar header_timeout: seconds a client has for a request head once its
        first byte arrived; each C{min_rate} bytes received add one second,
        up to C{header_timeout_max}. Past it: 408 and close (Apache's
        C{mod_reqtimeout header=20-40,MinRate=500}).
    @ivar header_timeout_max: the hard limit for a request head.
    @ivar body_timeout: seconds for a request body, extended by C{min_rate}
        bytes per second received (C{mod_reqtimeout body=20,MinRate=500}).
    @ivar min_rate: bytes per second that extend the head and body deadlines.
    @ivar idle_timeout: seconds a connection may wait silently for its next
        request (Apache's C{KeepAliveTimeout}, longer by default).
    @ivar send_timeout: seconds a response may wait for a client that reads
        nothing; then the connection is aborted (Apache's C{Timeout}).
    @ivar max_connections: open client connections per listener; past it a
        new connection gets 503 and is closed. C{None}: no limit.
    @ivar max_body_bytes: bytes of a request body (HTTP/1.1); a larger
        C{Content-Length}, or a chunked body growing past it, is a 413 and
        the connection is closed (Apache's C{LimitRequestBody}, with its
        default of 1 GiB). 0: no limit.
    """

    max_headers: int = attrs.field(default=100, validator=_positive)
    max_header_bytes: int = attrs.field(default=16384, validator=_positive)
    header_timeout: float = attrs.field(default=20.0, validator=_positive)
    header_timeout_max: float = attrs.field(default=40.0, validator=_positive)
    body_timeout: float = attrs.field(default=20.0, validator=_positive)
    min_rate: int = attrs.field(default=500, validator=_positive)
    idle_timeout: float = attrs.field(default=60.0, validator=_positive)
    send_timeout: float = attrs.field(default=60.0, validator=_positive)
    max_connections: int | None = attrs.field(default=None, validator=_positive)
    max_body_bytes: int = attrs.field(default=1 << 30, validator=_not_negative)

    @header_timeout_max.validator
    def _check_header_timeout_max(self, attribute: attrs.Attribute[Any], value: float) -> None:
        if value < self.header_timeout:
            raise ValueError(
                f"header_timeout_max ({value!r}) must not be less than "
                f"header_timeout ({self.header_timeout!r})"
            )


@attrs.frozen
class ProxyConfig:
    """
    The whole configuration of one proxy.

    @ivar listeners: where it listens. A configuration file needs at least
        one; one built in code may have none, for a L{ProxyService
        <twisted_lb.service.ProxyService>} whose resource is served by the
        application's own C{Site} (see docs/embedding.md).
    @ivar source: where it came from, for messages.
    @ivar timeout: default seconds to wait for a member's answer.
    @ivar x_forwarded: add C{X-Forwarded-For/-Proto/-Host} for HTTP members.
    @ivar allow_trace: pass C{TRACE} requests to the members; when C{False}
        they are answered 405 (Apache's C{TraceEnable off}).
    @ivar access_log: the access log file, or C{None} for none.
    @ivar access_log_format: C{combined} (Apache's combined format plus the
        balancer's fields) or C{json} (one JSON object per line).
    @ivar log_format: the format of twistd's log: C{text} or C{json} (one
        JSON object per line, see L{twisted_lb.logs}).
    @ivar shutdown_timeout: seconds a stopping proxy lets requests in flight
        (and WebSockets) finish before it closes them.
    @ivar admin: the admin listener; C{None} (the default) runs none.
    @ivar limits: what every listener accepts from its clients.
    @ivar rules: checked before routing, in order (redirects, refusals,
        proxying to a balancer; Apache's C{Redirect}, C{RedirectMatch},
        C{RewriteRule}); each for its C{hosts} as routes are.
    @ivar unrouted: C{Header always} edits of the proxy's own answers where
        no route applies, per virtual host (see L{UnroutedHeaders}).
    @ivar error_pages: per status the proxy answers itself when no member
        could (C{502}, C{503}, C{504}), the file whose content is sent instead
        of the short plain-text page (Apache's C{ErrorDocument} with a file).
    @ivar workers: how many processes serve the listeners: C{"auto"} (the
        default: one per core, see L{effective_workers}) or a number; 1 runs
        everything in the one C{twistd} process.
    @ivar cluster: the etcd store shared with other proxies; C{None} (the
        default): this proxy's manager changes are its own.
    """

    listeners: tuple[ListenerConfig, ...]
    balancers: tuple[BalancerConfig, ...]
    routes: tuple[RouteConfig, ...]
    source: str = "<code>"
    timeout: float = attrs.field(default=300.0, validator=_positive)
    x_forwarded: bool = True
    allow_trace: bool = True
    access_log: str | None = None
    access_log_format: str = attrs.field(default="combined", validator=_one_of("combined", "json"))
    log_format: str = attrs.field(default="text", validator=_one_of("text", "json"))
    shutdown_timeout: float = attrs.field(default=30.0, validator=_not_negative)
    admin: AdminConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    workers: int | str = attrs.field(default="auto", validator=_workers)
    cluster: ClusterConfig | None = None
    rules: tuple[RequestRule, ...] = ()
    error_pages: tuple[tuple[int, str], ...] = attrs.field(default=(), validator=_error_pages)
    unrouted: tuple[UnroutedHeaders, ...] = ()

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
        for i, rule in enumerate(self.rules):
            if rule.status == 0 and rule.balancer not in known:
                raise ConfigError(
                    self.source,
                    f"rules[{i}].balancer",
                    f"names balancer {rule.balancer!r}, which is not defined",
                )
        for i, route in enumerate(self.routes):
            if route.balancer is not None and route.balancer not in known:
                raise ConfigError(
                    self.source,
                    f"routes[{i}].balancer",
                    f"names balancer {route.balancer!r}, which is not defined "
                    f"(defined: {', '.join(sorted(known)) or 'none'})",
                )
        keys = [(r.path, r.hosts) for r in self.routes]
        for path, hosts in keys:
            if keys.count((path, hosts)) > 1:
                which = f" for hosts {', '.join(hosts)}" if hosts else ""
                raise ConfigError(self.source, "routes", f"path {path!r} is mapped twice{which}")

    def balancer(self, name: str) -> BalancerConfig:
        """
        Look a balancer up by name.

        @raise KeyError: when there is none of that name.
        """
        for b in self.balancers:
            if b.name == name:
                return b
        raise KeyError(name)
