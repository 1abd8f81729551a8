"""
ProxyPassReverse-style rewriting of member response headers: tables of
what a member sends and what the client must see.
"""

from __future__ import annotations

import pytest

from twisted_lb.rewrite import (
    CookieRules,
    ResponseRewriter,
    RewriterCache,
    RewritingSink,
    RouteRewriting,
    member_url_prefixes,
    public_origin,
    rewrite_set_cookie,
    rewrite_url,
)

PUBLIC = b"https://www.example.com"


@pytest.mark.parametrize(
    ("scheme", "host", "port", "path", "expected"),
    [
        (b"http", b"10.0.0.5", 8080, b"/app", [b"http://10.0.0.5:8080/app"]),
        (b"http", b"node1", 80, b"", [b"http://node1:80", b"http://node1"]),
        (b"https", b"node1", 443, b"/", [b"https://node1:443/", b"https://node1/"]),
        (b"https", b"node1", 80, b"", [b"https://node1:80"]),
        (b"http", b"::1", 8080, b"/x", [b"http://[::1]:8080/x"]),
    ],
)
def test_member_url_prefixes(scheme, host, port, path, expected):
    assert member_url_prefixes(scheme, host, port, path) == expected


ORIGINS = [b"http://node1:8080", b"http://node1:80", b"http://node1"]

# (value from the member, internal path, public prefix, what the client sees)
URL_TABLE = [
    # ProxyPass / http://node1:8080/  (route "/", target "/")
    (b"http://node1:8080/x", b"/", b"/", PUBLIC + b"/x"),
    (b"http://node1:8080/", b"/", b"/", PUBLIC + b"/"),
    (b"http://node1:8080", b"/", b"/", PUBLIC + b"/"),
    (b"http://node1:8080/x?a=b#f", b"/", b"/", PUBLIC + b"/x?a=b#f"),
    (b"HTTP://NODE1:8080/x", b"/", b"/", PUBLIC + b"/x"),
    # default port forms of the member
    (b"http://node1/x", b"/", b"/", PUBLIC + b"/x"),
    # another host or port: untouched
    (b"http://node2:8080/x", b"/", b"/", b"http://node2:8080/x"),
    (b"http://node1:8081/x", b"/", b"/", b"http://node1:8081/x"),
    (b"http://node1:80800/x", b"/", b"/", b"http://node1:80800/x"),
    (b"https://node1:8080/x", b"/", b"/", b"https://node1:8080/x"),
    (b"https://elsewhere.org/", b"/", b"/", b"https://elsewhere.org/"),
    # ProxyPass /share http://node1:8080/share  (same path on both sides)
    (b"http://node1:8080/share/x", b"/share", b"/share", PUBLIC + b"/share/x"),
    (b"http://node1:8080/share", b"/share", b"/share", PUBLIC + b"/share"),
    (b"http://node1:8080/shared/x", b"/share", b"/share", b"http://node1:8080/shared/x"),
    (b"http://node1:8080/other", b"/share", b"/share", b"http://node1:8080/other"),
    # ProxyPass /app http://node1:8080/internal
    (b"http://node1:8080/internal/x", b"/internal", b"/app", PUBLIC + b"/app/x"),
    (b"http://node1:8080/internal", b"/internal", b"/app", PUBLIC + b"/app"),
    (b"http://node1:8080/internal?q=1", b"/internal", b"/app", PUBLIC + b"/app?q=1"),
    (
        b"http://node1:8080/internal;jsessionid=1",
        b"/internal",
        b"/app",
        PUBLIC + b"/app;jsessionid=1",
    ),
    (b"http://node1:8080/internalx", b"/internal", b"/app", b"http://node1:8080/internalx"),
    # ProxyPass /app/ http://node1:8080/  (route "/app/", target "/")
    (b"http://node1:8080/x", b"/", b"/app/", PUBLIC + b"/app/x"),
    (b"http://node1:8080/", b"/", b"/app/", PUBLIC + b"/app/"),
    # ProxyPass /app http://node1:8080  (route "/app", target "")
    (b"http://node1:8080/x", b"", b"/app", PUBLIC + b"/app/x"),
    (b"http://node1:8080", b"", b"/app", PUBLIC + b"/app"),
    # relative redirects (Tomcat's default) in the member's path space
    (b"/internal/x", b"/internal", b"/app", b"/app/x"),
    (b"/internal", b"/internal", b"/app", b"/app"),
    (b"/other/x", b"/internal", b"/app", b"/other/x"),
    (b"/x", b"/", b"/app/", b"/app/x"),
    (b"/x", b"/", b"/", b"/x"),
    (b"/share/x", b"/share", b"/share", b"/share/x"),
    (b"//node1:8080/x", b"/", b"/app/", b"//node1:8080/x"),
    (b"relative/x", b"/", b"/app/", b"relative/x"),
    (b"", b"/", b"/app/", b""),
]


@pytest.mark.parametrize(("value", "internal", "public", "expected"), URL_TABLE)
def test_rewrite_url(value, internal, public, expected):
    assert rewrite_url(value, ORIGINS, internal, public, PUBLIC) == expected


def test_rewrite_url_without_client_host_gives_a_path():
    assert rewrite_url(b"http://node1:8080/internal/x", ORIGINS, b"/internal", b"/app", b"") == (
        b"/app/x"
    )


HOSTS = [b"node1"]

# (Set-Cookie from the member, internal path, public prefix, what the client sees)
COOKIE_TABLE = [
    (
        b"JSESSIONID=abc.node1; Path=/internal; HttpOnly",
        b"/internal",
        b"/app",
        b"JSESSIONID=abc.node1; Path=/app; HttpOnly",
    ),
    (b"a=1; Path=/internal/sub; Secure", b"/internal", b"/app", b"a=1; Path=/app/sub; Secure"),
    (b"a=1; path=/internal/", b"/internal", b"/app", b"a=1; path=/app/"),
    (b"a=1;Path=/internal", b"/internal", b"/app", b"a=1;Path=/app"),
    (b"a=1; Path=/internalx", b"/internal", b"/app", b"a=1; Path=/internalx"),
    (b"a=1; Path=/elsewhere", b"/internal", b"/app", b"a=1; Path=/elsewhere"),
    (b"a=1; Path=/", b"/", b"/app/", b"a=1; Path=/app/"),
    (b"a=1; Path=/x", b"/", b"/app/", b"a=1; Path=/app/x"),
    (b"a=1; Path=/", b"", b"/app", b"a=1; Path=/app/"),
    (b"a=1; Path=/share", b"/share", b"/share", b"a=1; Path=/share"),
    (b"a=1; Path=/", b"/", b"/", b"a=1; Path=/"),
    # the member's own Domain goes, any other stays
    (b"a=1; Domain=node1; Path=/", b"/", b"/", b"a=1; Path=/"),
    (b"a=1; Domain=.NODE1; Path=/", b"/", b"/", b"a=1; Path=/"),
    (b"a=1; Domain=example.com; Path=/", b"/", b"/", b"a=1; Domain=example.com; Path=/"),
    (b"a=1; Domain=node1; Path=/internal", b"/internal", b"/app", b"a=1; Path=/app"),
    # values and unknown attributes are kept byte for byte
    (b"a=Path=/internal", b"/internal", b"/app", b"a=Path=/internal"),
    (
        b"a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; SameSite=Lax",
        b"/internal",
        b"/app",
        b"a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; SameSite=Lax",
    ),
    (b"a=1", b"/internal", b"/app", b"a=1"),
]


@pytest.mark.parametrize(("value", "internal", "public", "expected"), COOKIE_TABLE)
def test_rewrite_set_cookie(value, internal, public, expected):
    assert rewrite_set_cookie(value, internal, public, HOSTS) == expected


def test_response_rewriter_headers():
    rewriter = ResponseRewriter.for_member(b"http", b"node1", 8080, b"/internal", b"/app")
    headers = [
        (b"Location", b"http://node1:8080/internal/x"),
        (b"Content-Location", b"http://node1:8080/internal/y"),
        (b"URI", b"/internal/z"),
        (b"Set-Cookie", b"a=1; Path=/internal; Domain=node1"),
        (b"Set-Cookie", b"b=2; Path=/internal/deep"),
        (b"Link", b"<http://node1:8080/internal/x>; rel=next"),
        (b"Content-Type", b"text/plain"),
    ]
    assert rewriter.rewrite(headers, PUBLIC) == [
        (b"Location", PUBLIC + b"/app/x"),
        (b"Content-Location", PUBLIC + b"/app/y"),
        (b"URI", b"/app/z"),
        (b"Set-Cookie", b"a=1; Path=/app"),
        (b"Set-Cookie", b"b=2; Path=/app/deep"),
        (b"Link", b"<http://node1:8080/internal/x>; rel=next"),
        (b"Content-Type", b"text/plain"),
    ]


def test_response_rewriter_default_port_member():
    rewriter = ResponseRewriter.for_member(b"https", b"node1", 443, b"/", b"/")
    assert rewriter.member_origins == (b"https://node1:443", b"https://node1")
    assert rewriter.internal_path == b"/"
    assert rewriter.rewrite([(b"location", b"https://node1/login")], b"http://lb:8080") == [
        (b"location", b"http://lb:8080/login")
    ]


def test_response_rewriter_refuses_mixed_paths():
    with pytest.raises(ValueError):
        ResponseRewriter(b"/", [b"http://a:1/x", b"http://a:1/y"])


# -- explicit cookie rules (ProxyPassReverseCookiePath / ProxyPassReverseCookieDomain)

RULES = CookieRules.from_config(
    cookie_path=[("/internal/", "/public/"), ("/app", "/"), ("/", "/root/")],
    cookie_domain=[("node1.lan", "www.example.com"), ("Old.Example", ""), (".node2.lan", "example.org")],
)

# (Set-Cookie from the member, what the client sees) with RULES on a route where the member's
# path equals the public one (no automatic path mapping), member host "node1"
RULE_TABLE = [
    # path rules: first matching rule, at a segment boundary, one slash where both bring one
    (b"a=1; Path=/internal/x", b"a=1; Path=/public/x"),
    (b"a=1; Path=/internal", b"a=1; Path=/public"),
    (b"a=1; Path=/app", b"a=1; Path=/"),
    (b"a=1; Path=/app/x; Secure", b"a=1; Path=/x; Secure"),
    (b"a=1; Path=/apple", b"a=1; Path=/root/apple"),  # not /app's; the catch-all "/" rule
    (b"a=1; path=/", b"a=1; path=/root/"),
    (b"a=1; Path=relative", b"a=1; Path=relative"),
    # domain rules: whole name, any case, leading dot ignored; empty public drops the attribute
    (b"a=1; Domain=node1.lan; Path=relative", b"a=1; Domain=www.example.com; Path=relative"),
    (b"a=1; domain=.NODE1.LAN", b"a=1; domain=www.example.com"),
    (b"a=1; Domain=node2.lan", b"a=1; Domain=example.org"),
    (b"a=1; Domain=sub.node1.lan", b"a=1; Domain=sub.node1.lan"),
    (b"a=1; Domain=old.example; HttpOnly", b"a=1; HttpOnly"),
    # the member's own host without a rule: dropped as before
    (b"a=1; Domain=node1", b"a=1"),
    # nothing to do: the same bytes
    (b"a=1; Max-Age=10", b"a=1; Max-Age=10"),
]


@pytest.mark.parametrize(("value", "expected"), RULE_TABLE)
def test_cookie_rules(value, expected):
    assert rewrite_set_cookie(value, b"/", b"/", HOSTS, RULES) == expected


def test_explicit_path_rule_wins_over_the_route_mapping():
    """ProxyPass /app http://node1/internal with ProxyPassReverseCookiePath /internal/special /s."""
    rules = CookieRules.from_config(cookie_path=[("/internal/special", "/s")])
    # The rule decides for what it matches ...
    assert rewrite_set_cookie(b"a=1; Path=/internal/special/x", b"/internal", b"/app", HOSTS, rules) == (
        b"a=1; Path=/s/x"
    )
    # ... the route mapping for the rest.
    assert rewrite_set_cookie(b"a=1; Path=/internal/other", b"/internal", b"/app", HOSTS, rules) == (
        b"a=1; Path=/app/other"
    )


def test_explicit_domain_rule_wins_over_dropping_the_member_host():
    rules = CookieRules.from_config(cookie_domain=[("node1", "example.com")])
    assert rewrite_set_cookie(b"a=1; Domain=node1", b"/", b"/", HOSTS, rules) == b"a=1; Domain=example.com"


def test_cookie_rules_from_config():
    assert not CookieRules.from_config()
    assert RULES.paths[0] == (b"/internal/", b"/public/")
    assert RULES.domains == (
        (b"node1.lan", b"www.example.com"),
        (b"old.example", b""),
        (b"node2.lan", b"example.org"),
    )
    assert RULES.map_path(b"/nothing") == b"/root/nothing"
    assert CookieRules.from_config(cookie_path=[("/a", "/b")]).map_path(b"/c") is None
    assert RULES.map_domain(b"elsewhere") is None


def test_response_rewriter_applies_cookie_rules():
    route = RouteRewriting.for_route("/", "/", cookie_path=[("/xtam", "/")])
    rewriter = route.for_member(b"https", b"10.0.0.7", 6443, b"")
    headers = [
        (b"Set-Cookie", b"JSESSIONID=abc.hosta; Path=/xtam; Secure; HttpOnly"),
        (b"Location", b"https://10.0.0.7:6443/xtam/login"),
    ]
    assert rewriter.rewrite(headers, b"https://lb.example") == [
        (b"Set-Cookie", b"JSESSIONID=abc.hosta; Path=/; Secure; HttpOnly"),
        (b"Location", b"https://lb.example/xtam/login"),
    ]


def test_route_rewriting_for_a_member_that_knows_the_public_host():
    """AJP members: only paths and cookie rules; nothing at all when there is nothing to do."""
    same = RouteRewriting.for_route("/share", "")
    assert same.for_path(b"/share") is None
    assert RouteRewriting.for_route("/", "/").for_path(b"") is None
    moved = RouteRewriting.for_route("/", "/").for_path(b"/share")
    assert moved is not None
    assert moved.rewrite(
        [(b"Location", b"/share/page"), (b"Set-Cookie", b"JSESSIONID=x; Path=/share")], b"http://lb"
    ) == [(b"Location", b"/page"), (b"Set-Cookie", b"JSESSIONID=x; Path=/")]
    ruled = RouteRewriting.for_route("/share", "", cookie_domain=[("tomcat1.lan", "")]).for_path(b"/share")
    assert ruled is not None
    assert ruled.rewrite([(b"Set-Cookie", b"a=1; Domain=tomcat1.lan")], b"") == [(b"Set-Cookie", b"a=1")]


def test_rewriter_cache_builds_once_per_route():
    made = []

    def make(route):
        made.append(route)
        return route.for_path(b"/m")

    cache = RewriterCache(make)
    a, b = RouteRewriting.for_route("/", "/"), RouteRewriting.for_route("/", "/")
    first = cache.get(a)
    assert cache.get(a) is first
    cache.get(b)  # equal values, another route: its own entry
    assert made == [a, b]


class _Sink:
    def __init__(self):
        self.calls = []
        self.started = False

    def start(self, status, headers):
        self.started = True
        self.calls.append(("start", status, headers))

    def write(self, data):
        self.calls.append(("write", data))

    def finish(self):
        self.calls.append(("finish",))

    def register_producer(self, producer):
        self.calls.append(("register", producer))

    def unregister_producer(self):
        self.calls.append(("unregister",))

    def on_client_gone(self, callback):
        self.calls.append(("gone", callback))


def test_rewriting_sink_rewrites_the_head_only():
    sink = _Sink()
    rewriter = RouteRewriting.for_route("/pub", "").for_path(b"/app")
    wrapped = RewritingSink(sink, rewriter, public_origin(True, b"lb:8443"))
    assert wrapped.started is False
    wrapped.start(302, [(b"Location", b"/app/x"), (b"Set-Cookie", b"a=/app/x; Path=/app")])
    wrapped.register_producer("p")
    wrapped.write(b"/app/x")
    wrapped.unregister_producer()
    wrapped.finish()
    assert wrapped.started is True
    assert sink.calls == [
        ("start", 302, [(b"Location", b"/pub/x"), (b"Set-Cookie", b"a=/app/x; Path=/pub")]),
        ("register", "p"),
        ("write", b"/app/x"),
        ("unregister",),
        ("finish",),
    ]


def test_public_origin():
    assert public_origin(True, b"lb:8443") == b"https://lb:8443"
    assert public_origin(False, b"lb") == b"http://lb"
    assert public_origin(False, b"") == b""
