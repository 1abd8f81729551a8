"""
Access rules by client address (Apache's C{Require all|ip|local} and the
older C{Order}/C{Allow}/C{Deny}), per route: pure functions, compiled once
at start-up and called by every lane.

A route has a list of rules, each for a path prefix; as Apache merges its
sections in order and lets the last one with access rules decide, the last
rule whose prefix holds the request's path decides. A route without rules
lets everyone in.

This module does no I/O and imports no Twisted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

import attrs

__all__ = [
    "ORDERS",
    "AccessRule",
    "AccessRules",
    "intersect_entries",
    "parse_network",
    "plain_path",
]

#: How a rule combines its lists: C{require} (in C{allow}, Apache 2.4's
#: C{Require}), C{deny,allow} (not in C{deny} or in C{allow}: allowed by
#: default), C{allow,deny} (in C{allow} and not in C{deny}: denied by
#: default) - the last two as mod_access_compat's C{Order}.
ORDERS = ("require", "deny,allow", "allow,deny")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_EVERYONE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def parse_network(text: str) -> tuple[_Network, ...]:
    """
    The networks an address list entry names, as Apache reads it: C{all},
    C{local} (the loopback networks; the server's own address is checked
    separately), an address, C{addr/bits}, C{addr/netmask}, or a partial
    IPv4 address (C{10.1} is C{10.1.0.0/16}).

    @raise ValueError: when C{text} is none of these.
    """
    lower = text.lower()
    if lower == "all":
        return _EVERYONE
    if lower == "local":
        return _LOOPBACK
    try:
        return (ipaddress.ip_network(text, strict=False),)
    except ValueError:
        pass
    parts = text.rstrip(".").split(".")
    if 1 <= len(parts) < 4 and all(p.isdigit() and int(p) < 256 for p in parts):
        padded = ".".join(parts + ["0"] * (4 - len(parts)))
        return (ipaddress.ip_network(f"{padded}/{8 * len(parts)}"),)
    raise ValueError(f"{text!r} is not an address, a network (addr/bits), all or local")


def _entry(network: _Network) -> str:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def intersect_entries(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    """
    Address list entries (see L{parse_network}) naming the clients both
    C{first} and C{second} name: C{local} when both have it, and each
    network of one that lies within a network of the other.
    """
    out: list[str] = []
    both_local = all(any(e.lower() == "local" for e in entries) for entries in (first, second))
    if both_local:
        out.append("local")

    def networks(entries: Sequence[str]) -> list[_Network]:
        return [
            n
            for e in entries
            if not (both_local and e.lower() == "local")
            for n in parse_network(e)
        ]

    for a in networks(first):
        for b in networks(second):
            if a.version != b.version:
                continue
            inner = a if a.subnet_of(b) else b if b.subnet_of(a) else None  # type: ignore[arg-type]
            if inner is not None and _entry(inner) not in out:
                out.append(_entry(inner))
    return tuple(out)


def _contains(
    networks: Sequence[_Network], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@attrs.frozen
class AccessRule:
    """
    Who may send requests under C{path}.

    @ivar path: the prefix the rule is for (matched at segment boundaries,
        as Apache's C{<Location>}).
    @ivar order: one of L{ORDERS}.
    @ivar allow: address list entries (see L{parse_network}).
    @ivar deny: address list entries.
    """

    path: str
    order: str = "require"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    _allow: tuple[_Network, ...] = attrs.field(init=False, eq=False, repr=False)
    _deny: tuple[_Network, ...] = attrs.field(init=False, eq=False, repr=False)
    _local: bool = attrs.field(init=False, eq=False, repr=False)
    _prefix: bytes = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {' | '.join(ORDERS)}, not {self.order!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path!r}")
        object.__setattr__(self, "_allow", tuple(n for e in self.allow for n in parse_network(e)))
        object.__setattr__(self, "_deny", tuple(n for e in self.deny for n in parse_network(e)))
        object.__setattr__(self, "_local", any(e.lower() == "local" for e in self.allow))
        object.__setattr__(self, "_prefix", self.path.encode("utf-8"))

    @property
    def lets_everyone_in(self) -> bool:
        """Whether the rule allows every client."""
        everyone = set(_EVERYONE) <= set(self._allow)
        if self.order == "deny,allow":
            return everyone or not self._deny
        return everyone and not self._deny

    def covers(self, path: bytes) -> bool:
        """Whether this rule is for C{path} (decoded, without path parameters)."""
        prefix = self._prefix
        if not path.startswith(prefix):
            return False
        return len(path) == len(prefix) or prefix.endswith(b"/") or path[len(prefix)] == 0x2F

    def allows(self, client: str, local: str | None) -> bool:
        """Whether the client at address C{client} may pass (C{local}: the server's address)."""
        try:
            address = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            # Not an IP client (a UNIX socket): only "all" lets it in, or a
            # deny,allow rule that denies nobody.
            if _EVERYONE[0] in self._allow:
                return True
            return self.order == "deny,allow" and not self._deny
        allowed = _contains(self._allow, address) or (self._local and client == local)
        if self.order == "require":
            return allowed
        denied = _contains(self._deny, address)
        if self.order == "deny,allow":
            return allowed or not denied
        return allowed and not denied


@attrs.frozen
class AccessRules:
    """The rules of one route, in the order Apache merges them."""

    rules: tuple[AccessRule, ...]

    def allows(self, path: bytes, client: str, local: str | None) -> bool:
        """
        Whether a request for C{path} (as sent: percent-encoded, perhaps
        with C{;} parameters) from C{client} may pass: the last rule that
        covers the path decides.
        """
        plain = plain_path(path)
        for rule in reversed(self.rules):
            if rule.covers(plain):
                return rule.allows(client, local)
        return True


def plain_path(path: bytes) -> bytes:
    """The path as rules see it: percent-decoded, without C{;} parameters in any segment."""
    if b";" in path:
        path = b"/".join(segment.split(b";", 1)[0] for segment in path.split(b"/"))
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path
