"""
Rewriting a member's response headers so that they name the public URL
(Apache's C{ProxyPassReverse} and C{ProxyPassReverseCookiePath}).

A member only knows its own URL space: C{scheme://host:port} plus its path
plus the route's target path. L{ResponseRewriter} maps that prefix back to the
public prefix of the route in C{Location}, C{Content-Location} and C{URI}, and
in the C{Path} of C{Set-Cookie}; a cookie C{Domain} naming the member host is
dropped, so the cookie belongs to the public host (pitfall 7 of the reference
notes). Everything here is pure: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "ResponseRewriter",
    "member_url_prefixes",
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


def rewrite_set_cookie(
    value: bytes,
    internal_path: bytes,
    public_prefix: bytes,
    member_hosts: Iterable[bytes] = (),
) -> bytes:
    """
    Map the C{Path} of a C{Set-Cookie} value from the member's path to the
    public prefix, and drop a C{Domain} naming one of C{member_hosts}.
    Everything else is kept byte for byte.
    """
    parts = value.split(b";")
    if len(parts) == 1:
        return value
    internal_path, public_prefix = _split_pair(internal_path, public_prefix)
    hosts = {h.lower() for h in member_hosts}
    out = [parts[0]]
    changed = False
    for part in parts[1:]:
        name, eq, attr = part.partition(b"=")
        key = name.strip().lower()
        if eq and key == b"path" and internal_path != public_prefix:
            path = attr.strip()
            rest = _after_prefix(path, internal_path) if path.startswith(b"/") else None
            if rest is not None:
                lead = part[: len(part) - len(part.lstrip())]
                out.append(lead + name.strip() + b"=" + ((public_prefix + rest) or b"/"))
                changed = True
                continue
        elif eq and key == b"domain" and attr.strip().lstrip(b".").lower() in hosts:
            changed = True
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
    """

    __slots__ = ("public_prefix", "member_origins", "internal_path", "member_hosts")

    def __init__(
        self,
        public_prefix: bytes,
        member_prefixes: Sequence[bytes],
        *,
        member_hosts: Sequence[bytes] = (),
    ) -> None:
        """
        @param public_prefix: the route's public path prefix.
        @param member_prefixes: the member's absolute URL prefixes for the
            route, all with the same path (see L{member_url_prefixes}).
        @param member_hosts: host names whose cookie C{Domain} is dropped.
        """
        split = [_origin_and_path(p) for p in member_prefixes]
        paths = {path for _, path in split}
        if len(paths) > 1:
            raise ValueError(f"member prefixes with different paths: {sorted(paths)!r}")
        self.public_prefix = public_prefix
        self.member_origins = tuple(origin for origin, _ in split)
        self.internal_path = paths.pop() if paths else b""
        self.member_hosts = frozenset(h.lower() for h in member_hosts)

    @classmethod
    def for_member(
        cls, scheme: bytes, host: bytes, port: int, internal_path: bytes, public_prefix: bytes
    ) -> ResponseRewriter:
        """The rewriter for a member at C{scheme://host:port} + C{internal_path}."""
        return cls(
            public_prefix,
            member_url_prefixes(scheme, host, port, internal_path),
            member_hosts=[host],
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
                    value, self.internal_path, self.public_prefix, self.member_hosts
                )
            out.append((name, value))
        return out
