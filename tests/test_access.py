"""Tests for L{twisted_lb.access}: Apache's Require and Order/Allow/Deny as pure functions."""

from __future__ import annotations

import pytest

from twisted_lb.access import AccessRule, AccessRules, intersect_entries, parse_network


@pytest.mark.parametrize(
    "allow, client, expected",
    [
        (("all",), "203.0.113.9", True),
        ((), "127.0.0.1", False),
        (("10.0.0.0/8",), "10.2.3.4", True),
        (("10.0.0.0/8",), "127.0.0.1", False),
        (("10.1",), "10.1.200.3", True),
        (("10.1",), "10.2.0.1", False),
        (("192.168.0.0/255.255.0.0",), "192.168.9.9", True),
        (("2001:db8::/32",), "2001:db8::1", True),
        (("10.0.0.0/8",), "::ffff:10.0.0.1", True),
        (("local",), "127.0.0.1", True),
        (("local",), "::1", True),
        (("local",), "10.0.0.7", False),
    ],
)
def test_require(allow: tuple[str, ...], client: str, expected: bool) -> None:
    """Require all/ip/local: the client must be in one of the networks."""
    assert AccessRule("/", "require", allow).allows(client, "10.9.9.9") is expected


def test_require_local_is_also_the_servers_own_address() -> None:
    """Require local lets in a client connecting from the server's own address."""
    assert AccessRule("/", "require", ("local",)).allows("10.0.0.7", "10.0.0.7")


@pytest.mark.parametrize(
    "order, allow, deny, client, expected",
    [
        ("deny,allow", (), (), "10.0.0.1", True),
        ("deny,allow", ("10.0.0.1",), ("all",), "10.0.0.1", True),
        ("deny,allow", ("10.0.0.1",), ("all",), "10.0.0.2", False),
        ("allow,deny", (), (), "10.0.0.1", False),
        ("allow,deny", ("all",), ("10.0.0.1",), "10.0.0.1", False),
        ("allow,deny", ("all",), ("10.0.0.1",), "10.0.0.2", True),
    ],
)
def test_order(
    order: str, allow: tuple[str, ...], deny: tuple[str, ...], client: str, expected: bool
) -> None:
    """Order deny,allow lets in by default and Allow wins; allow,deny denies by default and Deny wins."""
    assert AccessRule("/", order, allow, deny).allows(client, None) is expected


def test_last_covering_rule_decides() -> None:
    """The last rule whose prefix holds the path decides, at segment boundaries."""
    rules = AccessRules(
        (AccessRule("/", "require", ("all",)), AccessRule("/admin", "require", ("10.0.0.0/8",)))
    )
    assert rules.allows(b"/x", "127.0.0.1", None)
    assert rules.allows(b"/administrator", "127.0.0.1", None)
    for path in (b"/admin", b"/admin/", b"/admin/x?y", b"/%61dmin/x", b"/admin;jsessionid=1/x"):
        assert not rules.allows(path.split(b"?")[0], "127.0.0.1", None), path
        assert rules.allows(path.split(b"?")[0], "10.0.0.1", None), path
    assert AccessRules(()).allows(b"/", "127.0.0.1", None)


def test_bad_entries() -> None:
    """Entries that are no address, network, all or local are refused by name."""
    with pytest.raises(ValueError, match="example.com"):
        parse_network("example.com")
    with pytest.raises(ValueError, match="order"):
        AccessRule("/", "deny")
    with pytest.raises(ValueError, match="path"):
        AccessRule("x")


def test_lets_everyone_in() -> None:
    """Rules that let every client in are told apart from those that restrict."""
    assert AccessRule("/", "require", ("all",)).lets_everyone_in
    assert AccessRule("/", "deny,allow").lets_everyone_in
    assert not AccessRule("/", "deny,allow", (), ("10.0.0.1",)).lets_everyone_in
    assert not AccessRule("/", "require", ("10.0.0.0/8",)).lets_everyone_in


def test_intersect_entries() -> None:
    """The clients two address lists both let in (the stricter of two manager locations)."""
    assert intersect_entries(["10.0.0.0/8", "127.0.0.1"], ["10.1.0.0/16", "local"]) == (
        "10.1.0.0/16",
        "127.0.0.1",
    )
    assert intersect_entries(["local", "10.1"], ["local"]) == ("local",)
    assert intersect_entries(["all"], ["::1", "192.168.1.0/24"]) == ("192.168.1.0/24", "::1")
    assert intersect_entries(["10.0.0.0/8"], ["192.168.0.0/16", "::1"]) == ()
