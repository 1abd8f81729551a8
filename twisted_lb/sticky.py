"""
Sticky sessions: where the session id is found in a request and which route it names.

Tomcat appends C{"." + jvmRoute} to every session id it creates; the route is the text after
the separator.  The session id is looked for, in this order, in a path parameter
(C{/app;jsessionid=ABC.node1}) in any path segment, then in every cookie carrying one of the
configured names.  Unlike httpd the parsers are real ones (pitfall 6): exact, case-sensitive
names, C{;} always ends a path parameter, every cookie of the name is tried (mod_jk bug 44116),
surrounding double quotes are removed (mod_jk bug 55683).

A leaf: it imports nothing of twisted_lb, so the configuration model (C{config/model.py}) and the
balancer (which re-exports its names) both import it without the configuration depending on the
balancer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

__all__ = ["MAX_SESSION_IDS", "StickyConfig", "find_session_ids", "find_session_routes"]

#: At most this many session ids are taken from one request; the rest is ignored.
MAX_SESSION_IDS = 16


def _to_names(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _check_names(
    instance: StickyConfig, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for name in value:
        if not isinstance(name, str) or not name or any(c in name for c in ";=/?#, \t"):
            raise ValueError(f"invalid session id name in {attribute.name}: {name!r}")


@attrs.frozen
class StickyConfig:
    """
    Where session ids are looked for and how their route is separated.

    @ivar cookie_names: names of the cookies carrying a session id.
    @ivar path_names: names of the path parameters carrying a session id.
    @ivar separator: the text between session id and route; empty means the whole session id is
        the route (httpd's C{stickysessionsep=Off}).
    """

    cookie_names: tuple[str, ...] = attrs.field(
        default=("JSESSIONID",), converter=_to_names, validator=_check_names
    )
    path_names: tuple[str, ...] = attrs.field(
        default=("jsessionid",), converter=_to_names, validator=_check_names
    )
    separator: str = attrs.field(default=".", validator=attrs.validators.instance_of(str))
    _cookie_set: frozenset[bytes] = attrs.field(init=False, eq=False, repr=False)
    _path_set: frozenset[bytes] = attrs.field(init=False, eq=False, repr=False)

    @_cookie_set.default
    def _make_cookie_set(self) -> frozenset[bytes]:
        return frozenset(name.encode("latin-1", "replace") for name in self.cookie_names)

    @_path_set.default
    def _make_path_set(self) -> frozenset[bytes]:
        return frozenset(name.encode("latin-1", "replace") for name in self.path_names)

    def to_dict(self) -> dict[str, Any]:
        """
        @return: the configuration as plain JSON-able values.
        """
        return {
            "cookie_names": list(self.cookie_names),
            "path_names": list(self.path_names),
            "separator": self.separator,
        }

    @classmethod
    def from_apache(cls, value: str, separator: str = ".") -> StickyConfig:
        """
        Read httpd's C{stickysession=} value.

        C{"JSESSIONID|jsessionid"}: the first part is the cookie name, the second the path
        parameter name; a single name is used for both, as httpd does.

        @param value: the C{stickysession=} value.
        @param separator: the C{stickysessionsep=} value; C{"Off"} (any case) means none.
        @return: the configuration.
        @raise ValueError: if the value is empty or has more than two parts.
        """
        parts = [part.strip() for part in value.split("|")]
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ValueError(f"invalid stickysession value: {value!r}")
        cookie = parts[0]
        path = parts[-1]
        if separator.lower() == "off":
            separator = ""
        return cls(cookie_names=(cookie,), path_names=(path,), separator=separator)


def _path_session_ids(path: bytes, names: frozenset[bytes], found: list[bytes]) -> None:
    """
    Append the values of the path parameters in C{names}, from every segment of C{path}.
    """
    end = len(path)
    for stop in (b"?", b"#"):
        index = path.find(stop, 0, end)
        if index >= 0:
            end = index
    if path.find(b";", 0, end) < 0:
        return
    for segment in path[:end].split(b"/"):
        if b";" not in segment:
            continue
        for param in segment.split(b";")[1:]:
            name, equals, value = param.partition(b"=")
            if equals and name in names:
                found.append(value)
                if len(found) >= MAX_SESSION_IDS:
                    return


def _cookie_session_ids(header: bytes, names: frozenset[bytes], found: list[bytes]) -> None:
    """
    Append the values of the cookies in C{names} found in one C{Cookie} header.
    """
    for pair in header.replace(b",", b";").split(b";"):
        name, equals, value = pair.partition(b"=")
        if not equals or name.strip() not in names:
            continue
        value = value.strip()
        if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
            value = value[1:-1]
        found.append(value)
        if len(found) >= MAX_SESSION_IDS:
            return


def _as_bytes(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    return bytes(value)


def find_session_ids(
    cookie_headers: Sequence[bytes], path: bytes, sticky: StickyConfig
) -> list[bytes]:
    """
    The session ids a request carries: path parameters first, then cookies, in order, at most
    L{MAX_SESSION_IDS}.  Never raises on hostile input.

    @param cookie_headers: the raw values of every C{Cookie} header of the request.
    @param path: the request target (path, possibly with query string).
    @param sticky: where to look.
    @return: the session ids, possibly none.
    """
    found: list[bytes] = []
    try:
        if sticky.path_names and path:
            _path_session_ids(_as_bytes(path), sticky._path_set, found)
        if sticky.cookie_names:
            for header in cookie_headers:
                if len(found) >= MAX_SESSION_IDS:
                    break
                _cookie_session_ids(_as_bytes(header), sticky._cookie_set, found)
    except (TypeError, ValueError):
        pass
    return found


def find_session_routes(
    cookie_headers: Sequence[bytes], path: bytes, sticky: StickyConfig
) -> list[str]:
    """
    The candidate routes a request carries, best first.

    Session ids come first from the path parameters, then from the cookies, in order.  For each
    session id the candidate is the text after the first separator (httpd, mod_jk) and then, if
    different, the text after the last one (pitfall 6: the balancer keeps the first candidate
    that names a member).  Empty routes are dropped and duplicates removed.  Never raises on
    hostile input; bytes are read as latin-1.

    @param cookie_headers: the raw values of every C{Cookie} header of the request.
    @param path: the request target (path, possibly with query string).
    @param sticky: where to look and how the route is separated.
    @return: the candidate routes, possibly empty.
    """
    found = find_session_ids(cookie_headers, path, sticky)
    routes: list[str] = []
    separator = sticky.separator.encode("latin-1", "replace")
    for session_id in found:
        if not separator:
            candidates: tuple[bytes, ...] = (session_id,)
        else:
            first = session_id.find(separator)
            if first < 0:
                continue
            last = session_id.rfind(separator)
            candidates = (session_id[first + len(separator) :],)
            if last != first:
                candidates += (session_id[last + len(separator) :],)
        for candidate in candidates:
            if candidate:
                route = candidate.decode("latin-1")
                if route not in routes:
                    routes.append(route)
    return routes
