"""
Rewriting a member's response headers so that they name the public URL
(Apache's C{ProxyPassReverse}, C{ProxyPassReverseCookiePath} and
C{ProxyPassReverseCookieDomain}).

A member only knows its own URL space: C{scheme://host:port} plus its path
plus the route's target path. L{ResponseRewriter} maps that prefix back to the
public prefix of the route in C{Location}, C{Content-Location} and C{URI}, and
in the C{Path} of C{Set-Cookie}; a cookie C{Domain} naming the member host is
dropped, so the cookie belongs to the public host (pitfall 7 of the reference
notes). A route's explicit L{CookieRules} come first: an attribute one of
them maps is not mapped again automatically.

L{RouteRewriting} is what a route contributes, built once at start-up; each
backend keeps one L{ResponseRewriter} per route in a L{RewriterCache}. The
rewriting functions are pure (bytes in, bytes out); L{RewritingSink} applies a
rewriter to a response sink for backends that do not rewrite headers
themselves (AJP).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

__all__ = [
    "CookieRules",
    "ResponseRewriter",
    "RewriterCache",
    "RewritingSink",
    "RouteRewriting",
    "member_url_prefixes",
    "public_origin",
    "rewrite_url",
    "rewrite_set_cookie",
]

_URL_HEADERS = frozenset({b"location", b"content-location", b"uri"})
_SET_COOKIE = b"set-cookie"
_DEFAULT_PORTS = {b"http": 80, b"https": 443, b"ws": 80, b"wss": 443}
#: What may follow a matched path prefix: the prefix ends at a segment boundary.
_BOUNDARY = (b"/", b"?", b"#", b";")


def _split_pair(internal: bytes, public: bytes) -> tuple[bytes, bytes]:
    """
    Drop one trailing slash from both paths when both have one, so that
    C{/app/} ↔ C{/} maps C{/x} to C{/app/x} and C{/} to C{/app/}.
    """
    if internal.endswith(b"/") and public.endswith(b"/"):
        return internal[:-1], public[:-1]
    return internal, public


def _after_prefix(value: bytes, prefix: bytes) -> bytes | None:
    """What follows C{prefix} in C{value} at a path boundary, or C{None}."""
    if not value.startswith(prefix):
        return None
    rest = value[len(prefix) :]
    if not rest or rest.startswith(_BOUNDARY) or prefix.endswith(b"/"):
        return rest
    return None


def member_url_prefixes(scheme: bytes, host: bytes, port: int, internal_path: bytes) -> list[bytes]:
    """
    The absolute URL prefixes a member may use for itself: with its port,
    and without it when the port is the scheme's default.

    @param scheme: C{b"http"} or C{b"https"}.
    @param host: the member's host name or address (IPv6 without brackets).
    @param port: the member's port.
    @param internal_path: the member's path plus the route's target path.
    """
    if b":" in host and not host.startswith(b"["):
        host = b"[" + host + b"]"
    origins = [b"%s://%s:%d" % (scheme, host, port)]
    if _DEFAULT_PORTS.get(scheme) == port:
        origins.append(b"%s://%s" % (scheme, host))
    return [origin + internal_path for origin in origins]


def _origin_and_path(prefix: bytes) -> tuple[bytes, bytes]:
    """Split C{scheme://authority/path} into C{scheme://authority} and C{/path}."""
    slash = prefix.find(b"/", prefix.find(b"://") + 3)
    return (prefix, b"") if slash < 0 else (prefix[:slash], prefix[slash:])


def rewrite_url(
    value: bytes,
    member_origins: Sequence[bytes],
    internal_path: bytes,
    public_prefix: bytes,
    public_origin: bytes,
) -> bytes:
    """
    Map a URL a member sent to the public URL, or return it unchanged.

    An absolute URL on one of C{member_origins} (compared without regard to
    case) whose path is under C{internal_path} becomes C{public_origin} plus
    the public prefix plus the rest; an absolute path under C{internal_path}
    becomes the public prefix plus the rest (Tomcat sends relative redirects
    by default). Prefixes match at a path boundary only: C{/app} does not
    match C{/apple}.

    @param member_origins: C{scheme://host[:port]} forms of the member.
    @param internal_path: the member's path plus the route's target path.
    @param public_prefix: the route's public path prefix.
    @param public_origin: C{scheme://host[:port]} of the client's request, or
        C{b""} when the client sent no Host (the result is then a path).
    """
    internal_path, public_prefix = _split_pair(internal_path, public_prefix)
    if value.startswith(b"/"):
        if value.startswith(b"//") or internal_path == public_prefix:
            return value
        rest = _after_prefix(value, internal_path)
        if rest is None:
            return value
        return (public_prefix + rest) or b"/"
    lowered = value[: max((len(o) for o in member_origins), default=0)].lower()
    for origin in member_origins:
        if not lowered.startswith(origin.lower()):
            continue
        path = value[len(origin) :]
        if path and not path.startswith(_BOUNDARY):
            continue
        if internal_path:
            rest = _after_prefix(path or b"/", internal_path)
            if rest is None:
                continue
        else:
            rest = path
        return public_origin + ((public_prefix + rest) or b"/")
    return value


def _join(public: bytes, rest: bytes) -> bytes:
    """C{public} followed by C{rest}, with one slash where both bring one."""
    if public.endswith(b"/") and rest.startswith(b"/"):
        rest = rest[1:]
    return (public + rest) or b"/"


def _map_path(path: bytes, internal: bytes, public: bytes) -> bytes | None:
    """C{path} with C{internal} replaced by C{public}, or C{None} if it does not start with it."""
    internal, public = _split_pair(internal, public)
    rest = _after_prefix(path, internal) if path.startswith(b"/") else None
    return None if rest is None else _join(public, rest)


def _domain_bytes(domain: str) -> bytes:
    """A configured domain as it goes into a header (IDNA for non-ASCII names)."""
    domain = domain.strip()
    if domain.isascii():
        return domain.encode("ascii")
    dot = b"." if domain.startswith(".") else b""
    return dot + domain.lstrip(".").encode("idna")


def _domain_key(domain: bytes) -> bytes:
    """A cookie domain as compared: without surrounding blanks, leading dot or case."""
    return domain.strip().lstrip(b".").lower()


@attrs.frozen
class CookieRules:
    """
    A route's explicit C{Set-Cookie} rules (Apache's
    C{ProxyPassReverseCookiePath} and C{ProxyPassReverseCookieDomain}).

    A path rule applies when the cookie's C{Path} starts with its internal
    path at a segment boundary (C{/app} matches C{/app} and C{/app/x}, not
    C{/apple}); that part becomes the public path. A domain rule applies when
    the cookie's C{Domain} equals its internal domain (without regard to case
    or a leading dot); the attribute then names the public domain, or is
    dropped when the public domain is empty. The first matching rule wins.

    @ivar paths: C{(internal, public)} path pairs, in configuration order.
    @ivar domains: C{(internal, public)} domain pairs, internal ones already
        in the compared form.
    """

    paths: tuple[tuple[bytes, bytes], ...] = ()
    domains: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def from_config(
        cls,
        cookie_path: Iterable[tuple[str, str]] = (),
        cookie_domain: Iterable[tuple[str, str]] = (),
    ) -> CookieRules:
        """The rules of a route's C{cookie_path} and C{cookie_domain} pairs."""
        return cls(
            paths=tuple((i.encode("utf-8"), p.encode("utf-8")) for i, p in cookie_path),
            domains=tuple(
                (_domain_key(_domain_bytes(i)), _domain_bytes(p)) for i, p in cookie_domain
            ),
        )

    def __bool__(self) -> bool:
        return bool(self.paths or self.domains)

    def map_path(self, path: bytes) -> bytes | None:
        """The public form of a cookie C{Path}, or C{None} when no rule applies."""
        for internal, public in self.paths:
            mapped = _map_path(path, internal, public)
            if mapped is not None:
                return mapped
        return None

    def map_domain(self, domain: bytes) -> bytes | None:
        """
        The public form of a cookie C{Domain}: C{None} when no rule applies,
        C{b""} when the attribute is to be dropped.
        """
        key = _domain_key(domain)
        for internal, public in self.domains:
            if key == internal:
                return public
        return None


_NO_RULES = CookieRules()


def rewrite_set_cookie(
    value: bytes,
    internal_path: bytes,
    public_prefix: bytes,
    member_hosts: Iterable[bytes] = (),
    rules: CookieRules = _NO_RULES,
) -> bytes:
    """
    Map the C{Path} of a C{Set-Cookie} value from the member's path to the
    public prefix, and drop a C{Domain} naming one of C{member_hosts}; where
    one of C{rules} applies to an attribute, it decides instead. Everything
    else is kept byte for byte.
    """
    parts = value.split(b";")
    if len(parts) == 1:
        return value
    automatic_path = internal_path != public_prefix
    hosts = {h.lower() for h in member_hosts}
    out = [parts[0]]
    changed = False
    for part in parts[1:]:
        name, eq, attr = part.partition(b"=")
        key = name.strip().lower()
        if eq and key == b"path":
            path = attr.strip()
            mapped = rules.map_path(path) if rules.paths else None
            if mapped is None and automatic_path:
                mapped = _map_path(path, internal_path, public_prefix)
            if mapped is not None:
                lead = part[: len(part) - len(part.lstrip())]
                out.append(lead + name.strip() + b"=" + mapped)
                changed = True
                continue
        elif eq and key == b"domain":
            mapped = rules.map_domain(attr) if rules.domains else None
            if mapped is None and _domain_key(attr) in hosts:
                mapped = b""
            if mapped is not None:
                changed = True
                if mapped:
                    lead = part[: len(part) - len(part.lstrip())]
                    out.append(lead + name.strip() + b"=" + mapped)
                continue
        out.append(part)
    return b";".join(out) if changed else value


class ResponseRewriter:
    """
    Rewrites the response headers of one member for one route; built once
    per route and member.

    @ivar public_prefix: the route's public path prefix.
    @ivar member_origins: the member's C{scheme://host[:port]} forms.
    @ivar internal_path: the member's path plus the route's target path.
    @ivar member_hosts: host names whose cookie C{Domain} is dropped.
    @ivar cookie_rules: the route's explicit cookie rules.
    """

    __slots__ = ("public_prefix", "member_origins", "internal_path", "member_hosts", "cookie_rules")

    def __init__(
        self,
        public_prefix: bytes,
        member_prefixes: Sequence[bytes],
        *,
        member_hosts: Sequence[bytes] = (),
        cookie_rules: CookieRules = _NO_RULES,
        internal_path: bytes | None = None,
    ) -> None:
        """
        @param public_prefix: the route's public path prefix.
        @param member_prefixes: the member's absolute URL prefixes for the
            route, all with the same path (see L{member_url_prefixes}).
        @param member_hosts: host names whose cookie C{Domain} is dropped.
        @param cookie_rules: the route's explicit cookie rules.
        @param internal_path: the member's path for the route when
            C{member_prefixes} is empty (a member that knows the public
            host, as an AJP member does).
        """
        split = [_origin_and_path(p) for p in member_prefixes]
        paths = {path for _, path in split}
        if len(paths) > 1:
            raise ValueError(f"member prefixes with different paths: {sorted(paths)!r}")
        self.public_prefix = public_prefix
        self.member_origins = tuple(origin for origin, _ in split)
        if internal_path is None:
            internal_path = paths.pop() if paths else b""
        self.internal_path = internal_path
        self.member_hosts = frozenset(h.lower() for h in member_hosts)
        self.cookie_rules = cookie_rules

    @classmethod
    def for_member(
        cls,
        scheme: bytes,
        host: bytes,
        port: int,
        internal_path: bytes,
        public_prefix: bytes,
        cookie_rules: CookieRules = _NO_RULES,
    ) -> ResponseRewriter:
        """The rewriter for a member at C{scheme://host:port} + C{internal_path}."""
        return cls(
            public_prefix,
            member_url_prefixes(scheme, host, port, internal_path),
            member_hosts=[host],
            cookie_rules=cookie_rules,
        )

    @property
    def changes_nothing(self) -> bool:
        """Whether L{rewrite} returns every header as it is, whatever the member sends."""
        internal, public = _split_pair(self.internal_path, self.public_prefix)
        return (
            not self.member_origins
            and not self.member_hosts
            and not self.cookie_rules
            and internal == public
        )

    def rewrite(
        self, headers: Sequence[tuple[bytes, bytes]], public_origin: bytes
    ) -> list[tuple[bytes, bytes]]:
        """
        The headers with member URLs and cookie paths made public.

        @param headers: C{(name, value)} pairs, names in any case.
        @param public_origin: C{scheme://host[:port]} of the client's request.
        """
        out = []
        for name, value in headers:
            lower = name.lower()
            if lower in _URL_HEADERS:
                value = rewrite_url(
                    value,
                    self.member_origins,
                    self.internal_path,
                    self.public_prefix,
                    public_origin,
                )
            elif lower == _SET_COOKIE:
                value = rewrite_set_cookie(
                    value, self.internal_path, self.public_prefix, self.member_hosts,
                    self.cookie_rules,
                )
            out.append((name, value))
        return out


@attrs.frozen(eq=False)
class RouteRewriting:
    """
    What one route brings to the rewriting of its members' answers; built
    once per route at start-up and carried by each of its exchanges.
    Compared and hashed by identity: a backend keeps its rewriters by route.

    @ivar public_prefix: the route's public path prefix.
    @ivar target_path: the route's target path.
    @ivar cookie_rules: the route's explicit cookie rules.
    """

    public_prefix: bytes
    target_path: bytes
    cookie_rules: CookieRules = _NO_RULES

    @classmethod
    def for_route(
        cls,
        path: str,
        target_path: str,
        cookie_path: Iterable[tuple[str, str]] = (),
        cookie_domain: Iterable[tuple[str, str]] = (),
    ) -> RouteRewriting:
        """The rewriting of a configured route."""
        return cls(
            path.encode("utf-8"),
            target_path.encode("utf-8"),
            CookieRules.from_config(cookie_path, cookie_domain),
        )

    def for_member(self, scheme: bytes, host: bytes, port: int, member_path: bytes) -> ResponseRewriter:
        """The rewriter of a member that names itself C{scheme://host:port}."""
        return ResponseRewriter.for_member(
            scheme, host, port, member_path + self.target_path, self.public_prefix, self.cookie_rules
        )

    def for_path(self, member_path: bytes) -> ResponseRewriter | None:
        """
        The rewriter of a member that knows the public host (an AJP member
        gets the client's Host), or C{None} when it would change nothing.
        """
        rewriter = ResponseRewriter(
            self.public_prefix,
            (),
            cookie_rules=self.cookie_rules,
            internal_path=member_path + self.target_path,
        )
        return None if rewriter.changes_nothing else rewriter


class RewriterCache:
    """
    One backend's rewriters, one per route, each made on the route's first
    exchange (routes are fixed at start-up, so this holds at most one entry
    per route).
    """

    __slots__ = ("_make", "_rewriters")

    def __init__(self, make: Callable[[RouteRewriting], ResponseRewriter | None]) -> None:
        """@param make: builds the backend's rewriter for a route."""
        self._make = make
        self._rewriters: dict[RouteRewriting, ResponseRewriter | None] = {}

    def get(self, route: RouteRewriting) -> ResponseRewriter | None:
        """The rewriter for C{route} (C{None}: nothing to rewrite)."""
        try:
            return self._rewriters[route]
        except KeyError:
            rewriter = self._rewriters[route] = self._make(route)
            return rewriter


def public_origin(is_ssl: bool, host: bytes) -> bytes:
    """C{scheme://host} of a client request, or C{b""} when it named no host."""
    if not host:
        return b""
    return (b"https://" if is_ssl else b"http://") + host


class RewritingSink:
    """
    A response sink that rewrites the response head on its way to another
    sink; the body and everything else go straight to that sink (its
    methods are bound here, so a body write costs no extra call).
    """

    def __init__(self, sink: Any, rewriter: ResponseRewriter, origin: bytes) -> None:
        """
        @param sink: the L{twisted_lb.exchange.ResponseSink} written to.
        @param rewriter: the member's rewriter for the route.
        @param origin: the public origin (L{public_origin}).
        """
        self._sink = sink
        self._rewriter = rewriter
        self._origin = origin
        self.write = sink.write
        self.finish = sink.finish
        self.register_producer = sink.register_producer
        self.unregister_producer = sink.unregister_producer
        self.on_client_gone = sink.on_client_gone

    def start(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> None:
        """Begin the response with the rewritten headers."""
        self._sink.start(status, self._rewriter.rewrite(headers, self._origin))

    def __getattr__(self, name: str) -> Any:
        # started, gone, bytes_written, abort...: the wrapped sink's.
        return getattr(self._sink, name)
