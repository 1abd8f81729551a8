"""
Path mapping: which balancer serves a request path, and the path it gets.

The longest matching prefix wins, whatever the order of the configuration
(Apache checks C{ProxyPass} rules in file order instead). A prefix matches
only at a segment boundary: C{/share} serves C{/share} and C{/share/x}, never
C{/shareholders}.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import unquote_to_bytes

import attrs

__all__ = [
    "Router",
    "Match",
    "VirtualHosts",
    "absolute_target",
    "fallback_host",
    "host_name",
    "unsafe_path",
    "unsafe_query",
    "valid_host",
]

T = TypeVar("T")

#: Control characters and the backslash, which no forwarded path may hold.
_CTL_OR_BACKSLASH = re.compile(rb"[\x00-\x1f\x7f\\]")
#: Control characters and the space, which no forwarded query may hold.
_CTL_OR_SPACE = re.compile(rb"[\x00-\x20\x7f]")
#: A Host field value (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal in
#: brackets or a reg-name (unreserved, sub-delims, percent-encoded), then an
#: optional port. Empty is allowed (a target without authority).
_HOST_SYNTAX = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
    rb"(?::[0-9]*)?"
)


@attrs.frozen
class Match(Generic[T]):
    """
    The result of a lookup.

    @ivar target: what the prefix maps to (C{None} for an exclusion).
    @ivar prefix: the matching prefix.
    @ivar rest: the request path after the prefix.
    """

    target: T | None
    prefix: bytes
    rest: bytes


class Router(Generic[T]):
    """Longest-prefix lookup over a fixed set of path prefixes."""

    #: Whether L{match} depends on the request's Host (see L{VirtualHosts}).
    by_host = False
    #: Rules checked before routing (L{twisted_lb.request_rules.RequestRules}),
    #: and the targets their proxying outcomes name, by balancer.
    rules: Any = None
    proxy_targets: Mapping[Any, Any] = {}

    def __init__(self, entries: Iterable[tuple[str, T | None]]) -> None:
        table = [(prefix.encode("utf-8"), target) for prefix, target in entries]
        table.sort(key=lambda e: len(e[0]), reverse=True)
        self._table = tuple(table)

    def for_host(self, host: bytes) -> Router[T]:
        """The router for requests with Host C{host}: this one."""
        return self

    def match(self, path: bytes, host: bytes = b"") -> Match[T] | None:
        """
        The mapping for C{path}, or C{None} when no prefix matches.

        @param path: the request path (%-encoded, without the query).
        @param host: the request's Host value (used by L{VirtualHosts}).
        """
        for prefix, target in self._table:
            if path.startswith(prefix):
                n = len(prefix)
                if n == len(path) or prefix.endswith(b"/") or path[n : n + 1] in (b"/", b";"):
                    return Match(target, prefix, path[n:])
        return None


class VirtualHosts(Router[T]):
    """
    Name-based virtual hosts: a L{Router} per host name, chosen by the
    request's Host, and the default one for every other name (Apache's
    first virtual host on an address).

    @param named: host names (lower case, without port; a leading C{*.}
        matches any subdomain, as in C{ServerAlias}) and their routers.
    """

    by_host = True

    def __init__(self, default: Router[T], named: Mapping[str, Router[T]]) -> None:
        self.default = default
        self._exact = {
            name.encode("idna" if name.isascii() else "utf-8"): router
            for name, router in named.items()
            if "*" not in name and "?" not in name
        }
        self._patterns = tuple(
            (name, router) for name, router in named.items() if "*" in name or "?" in name
        )

    def for_host(self, host: bytes) -> Router[T]:
        """The router of the virtual host that serves C{host} (a Host value)."""
        name = host_key(host)
        router = self._exact.get(name)
        if router is not None:
            return router
        if self._patterns:
            text = name.decode("latin-1")
            for pattern, router in self._patterns:
                if fnmatch.fnmatchcase(text, pattern):
                    return router
        return self.default

    def match(self, path: bytes, host: bytes = b"") -> Match[T] | None:
        return self.for_host(host).match(path)


def host_key(host: bytes) -> bytes:
    """The name of a Host value as virtual hosts are chosen by it: lower case,
    without port and trailing dot."""
    host = host.strip(b" \t").lower()
    if host.startswith(b"["):
        return host.split(b"]", 1)[0] + b"]"
    return host.rsplit(b":", 1)[0].rstrip(b".") if b":" in host else host.rstrip(b".")


def unsafe_path(path: bytes) -> str | None:
    """
    Why C{path} must not be forwarded, or C{None} when it is fine.

    Dot segments (also %-encoded) could leave the mapped prefix on the member;
    encoded slashes and backslashes, NUL and control characters have no place
    in a path a proxy passes on.

    @param path: the request path (%-encoded, without the query).
    """
    if not path.startswith(b"/"):
        return "the path must start with '/'"
    if b"%" not in path and b"/." not in path and _CTL_OR_BACKSLASH.search(path) is None:
        # The common case, in one pass: nothing encoded, no segment starting
        # with a dot, no control character.
        return None
    return _segment_problem(path)


def unsafe_query(query: bytes) -> str | None:
    """
    Why C{query} must not be forwarded, or C{None} when it is fine.

    A control character (DEL too) or a space cannot be written in a request
    target (RFC 9112 3.2), to an HTTP member nor in an AJP query string.

    @param query: the request's query, without the C{?}.
    """
    if _CTL_OR_SPACE.search(query) is None:
        return None
    return "control characters or spaces in the query"


#: Host values found valid (a proxy sees few): a set lookup instead of the
#: regular expression per request, bounded so that clients inventing names
#: cannot grow it.
_KNOWN_HOSTS: set[bytes] = set()
_KNOWN_HOSTS_MAX = 256


def valid_host(value: bytes) -> bool:
    """
    Whether C{value} is a valid C{Host} field value: a host name or address
    and an optional port (RFC 9110 7.2). A request with any other is
    answered 400 (RFC 9112 3.2), as Apache's C{HttpProtocolOptions Strict}
    does: it would otherwise become C{X-Forwarded-Host} or AJP's
    C{server_name}.
    """
    if value in _KNOWN_HOSTS:
        return True
    if _HOST_SYNTAX.fullmatch(value) is None:
        return False
    if len(_KNOWN_HOSTS) < _KNOWN_HOSTS_MAX:
        _KNOWN_HOSTS.add(value)
    return True


#: The schemes of absolute-form targets a reverse proxy serves.
_HTTP_SCHEMES = (b"http://", b"https://")


def absolute_target(target: bytes) -> tuple[bytes, bytes]:
    """
    The authority and the origin form of an absolute-form request target
    (C{http://host:port/path?query}, RFC 9112 3.2.2), which a server must
    accept: the request is served as C{/path?query} from this proxy's own
    routes, and the authority replaces the C{Host} header. The named host
    is never contacted: this is no forward proxy (Apache with
    C{ProxyRequests Off} serves such requests the same way).

    @raise ValueError: with the reason, when C{target} is not an C{http} or
        C{https} URI with a valid host (other schemes, user information,
        an empty or invalid host, a fragment).
    """
    lower = target[:8].lower()
    scheme = next((s for s in _HTTP_SCHEMES if lower.startswith(s)), None)
    if scheme is None:
        raise ValueError("only origin-form and http(s) absolute-form request targets are served")
    rest = target[len(scheme) :]
    end = len(rest)
    for stop in (b"/", b"?"):
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    authority, path = rest[:end], rest[end:]
    if b"#" in target:
        raise ValueError("a request target has no fragment")
    if b"@" in authority:
        raise ValueError("user information in the request target is not accepted")
    if not authority or not valid_host(authority):
        raise ValueError("the request target's host is not a host name or address")
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path


def host_name(host: bytes) -> bytes:
    """
    The name in a C{Host} value, without the port; an IPv6 literal keeps
    its brackets (AJP's C{server_name}, which Tomcat puts in the URLs it
    builds when the request has no C{Host}).
    """
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end > 0 else host
    return host.partition(b":")[0]


def fallback_host(
    server_name: bytes | None, local_host: str, local_port: int, secure: bool
) -> bytes:
    """
    The C{Host} of a request that came without one (HTTP/1.0): the
    listener's C{server_name} (Apache's C{ServerName}) when configured,
    else the address the client connected to; with the port the client
    connected to unless the name has one, or it is the scheme's default.
    Never empty, so that a member does not build C{http://:8080/} URLs.

    @param server_name: the configured name, C{name} or C{name:port}, or
        C{None}.
    @param local_host: the address the client connected to.
    @param local_port: the port the client connected to.
    @param secure: whether the client came over TLS.
    """
    if server_name:
        name = server_name
        if (b"]:" in name) if name.startswith(b"[") else (b":" in name):
            return name  # it has its port
    else:
        name = local_host.encode("ascii") if local_host else b"localhost"
        if b":" in name:
            name = b"[" + name + b"]"
    if not local_port or local_port == (443 if secure else 80):
        return name
    return b"%s:%d" % (name, local_port)


def _segment_problem(path: bytes) -> str | None:
    """L{unsafe_path}'s full check, segment by segment."""
    for segment in path.split(b"/"):
        segment = segment.split(b";", 1)[0]
        if b"%" in segment:
            decoded = unquote_to_bytes(segment)
            if b"/" in decoded or b"\\" in decoded:
                return "encoded '/' or '\\' in the path"
        else:
            decoded = segment
        if decoded in (b".", b".."):
            return "dot segments in the path"
        if _CTL_OR_BACKSLASH.search(decoded) is not None:
            return "control characters or '\\' in the path"
    return None
