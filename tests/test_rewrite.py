"""
ProxyPassReverse-style rewriting of member response headers: tables of
what a member sends and what the client must see.
"""

from __future__ import annotations

import pytest

from twisted_lb.rewrite import (
    ResponseRewriter,
    member_url_prefixes,
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
