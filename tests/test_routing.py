"""Path mapping and the path safety check (twisted_lb.routing)."""

import itertools

import pytest

from twisted_lb.routing import (
    Router,
    _segment_problem,
    absolute_target,
    unsafe_path,
    unsafe_query,
    valid_host,
)


@pytest.mark.parametrize(
    "path",
    [b"/", b"/app/", b"/app/static/1k.txt", b"/a.b/c..d/.x", b"/app;jsessionid=1.t1/x",
     b"/a/b%20c", b"/a/%7Euser", b"/..a/b", b"/a/...", b"/a%2Eb"],
)
def test_safe_paths(path):
    assert unsafe_path(path) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (b"app", "must start with '/'"),
        (b"/a/../etc", "dot segments"),
        (b"/a/./b", "dot segments"),
        (b"/a/..", "dot segments"),
        (b"/a/..;x=1/b", "dot segments"),
        (b"/a/%2e%2E/etc", "dot segments"),
        (b"/a/.%2e/etc", "dot segments"),
        (b"/a%2fb", "encoded '/'"),
        (b"/a%5Cb", "encoded '/' or '\\'"),
        (b"/a\\b", "control characters or '\\'"),
        (b"/a\x00b", "control characters"),
        (b"/a\x1fb", "control characters"),
        (b"/a\x7fb", "control characters"),
        (b"/a/%00", "control characters"),
        (b"/a/%0d%0a", "control characters"),
    ],
)
def test_unsafe_paths(path, reason):
    problem = unsafe_path(path)
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "query", [b"", b"a=1&b=%7F", b"x=\x21~", b"q=caf\xc3\xa9", b"a=b;c=d?e=/f"]
)
def test_safe_queries(query):
    assert unsafe_query(query) is None


@pytest.mark.parametrize("query", [b"x=\x7f", b"x=\x00", b"\x1f", b"a=1 b", b"a=\t", b"a=\r\n"])
def test_unsafe_queries(query):
    assert unsafe_query(query) == "control characters or spaces in the query"


@pytest.mark.parametrize(
    "host",
    [
        b"example.com", b"example.com:8443", b"127.0.0.1", b"127.0.0.1:80", b"[::1]", b"[::1]:8443",
        b"[v1.fe80::a+en1]", b"xn--bcher-kva.example", b"under_score", b"caf%C3%A9.example",
        b"localhost:", b"",
    ],
)
def test_valid_hosts(host):
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        b"x, y", b"x/../y@evil", b"evil.com@x", b"a b", b"host:port", b"[::1", b"::1",
        b"x:80:80", b"caf%C", b"x\\y", b"x?y", b"x#y", b"\xc3\xa9.example",
    ],
)
def test_invalid_hosts(host):
    assert not valid_host(host)


def test_quick_check_never_accepts_what_the_full_check_refuses():
    """Every path of up to five characters from a tricky alphabet: the same verdict."""
    alphabet = [b"/", b".", b"a", b"%2e", b"%2f", b"%", b";", b"\\", b"\x01", b"\x7f"]
    checked = 0
    for n in range(6):
        for parts in itertools.product(alphabet, repeat=n):
            path = b"/" + b"".join(parts)
            assert unsafe_path(path) == _segment_problem(path), path
            checked += 1
    assert checked == sum(len(alphabet) ** n for n in range(6))


def test_router_longest_prefix_at_segment_boundary():
    router = Router([("/share", "short"), ("/share/deep", "deep"), ("/", "root")])
    assert router.match(b"/share/deep/x").target == "deep"
    match = router.match(b"/share/x")
    assert (match.target, match.prefix, match.rest) == ("short", b"/share", b"/x")
    assert router.match(b"/share;jsessionid=1").rest == b";jsessionid=1"
    assert router.match(b"/shareholders").target == "root"
    assert Router([("/app", "app")]).match(b"/other") is None


@pytest.mark.parametrize(
    ("target", "authority", "origin"),
    [
        (b"http://example.com/app?a=1", b"example.com", b"/app?a=1"),
        (b"HTTPS://Example.com:8443/a/b", b"Example.com:8443", b"/a/b"),
        (b"http://example.com", b"example.com", b"/"),
        (b"http://example.com?a=1", b"example.com", b"/?a=1"),
        (b"http://[::1]:8080/x", b"[::1]:8080", b"/x"),
        (b"http://h/a?b=http://c/d", b"h", b"/a?b=http://c/d"),
    ],
)
def test_absolute_targets(target, authority, origin):
    assert absolute_target(target) == (authority, origin)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (b"ftp://example.com/", "origin-form"),
        (b"example.com/app", "origin-form"),
        (b"*", "origin-form"),
        (b"http://u@example.com/", "user information"),
        (b"http:///app", "host"),
        (b"http://a b/app", "host"),
        (b"http://a/app#x", "fragment"),
    ],
)
def test_refused_absolute_targets(target, reason):
    with pytest.raises(ValueError, match=reason):
        absolute_target(target)


def test_virtual_hosts_choose_by_host_name() -> None:
    """VirtualHosts picks the router of the Host's name (port, case, trailing dot ignored)."""
    from twisted_lb.routing import VirtualHosts, host_name

    default = Router([("/", "default")])
    api = Router([("/", "api")])
    wild = Router([("/", "wild")])
    hosts = VirtualHosts(default, {"api.example.com": api, "*.example.org": wild})
    assert hosts.by_host and not default.by_host
    assert hosts.match(b"/x", b"API.Example.com:8443").target == "api"
    assert hosts.match(b"/x", b"api.example.com.").target == "api"
    assert hosts.match(b"/x", b"a.b.example.org").target == "wild"
    assert hosts.match(b"/x", b"example.org").target == "default"
    assert hosts.match(b"/x", b"").target == "default"
    assert host_name(b"[::1]:80") == b"[::1]"


@pytest.mark.parametrize(
    "path, reason",
    [
        (b"/job/a%2Fb", None),
        (b"/job/a%2fb/c", None),
        (b"/a%2F..%2Fb", "dot"),
        (b"/a%2F%2e%2E", "dot"),
        (b"/a%2F.", "dot"),
        (b"/a/../b", "dot"),
        (b"/a%5Cb", "encoded"),
        (b"/a%2F%00", "control"),
    ],
)
def test_encoded_slashes_allowed(path, reason):
    """A route that passes %2F on still refuses dot segments, backslashes and controls."""
    assert unsafe_path(path) is not None
    problem = unsafe_path(path, encoded_slashes=True)
    if reason is None:
        assert problem is None
    else:
        assert problem is not None and reason in problem
