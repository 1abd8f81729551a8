"""
Tests for session id and route extraction (L{twisted_lb.sticky}), and for its
place: a leaf that the configuration and the balancer both import.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import twisted_lb.balancer
import twisted_lb.sticky
from tests.test_import_graph import import_graph
from twisted_lb.sticky import MAX_SESSION_IDS, StickyConfig, find_session_routes

DEFAULT = StickyConfig()


@pytest.mark.parametrize(
    ("cookies", "path", "sticky", "expected"),
    [
        pytest.param([b"JSESSIONID=ABC.node1"], b"/app/", DEFAULT, ["node1"], id="cookie-only"),
        pytest.param([], b"/app;jsessionid=ABC.node2", DEFAULT, ["node2"], id="path-only"),
        pytest.param(
            [b"JSESSIONID=ABC.node1"],
            b"/app/x;jsessionid=DEF.node2",
            DEFAULT,
            ["node2", "node1"],
            id="path-before-cookie",
        ),
        pytest.param([b'JSESSIONID="ABC.node1"'], b"/", DEFAULT, ["node1"], id="quoted-cookie"),
        pytest.param(
            [b"JSESSIONID=OLD.node1; JSESSIONID=NEW.node2"],
            b"/",
            DEFAULT,
            ["node1", "node2"],
            id="two-cookies-same-name",
        ),
        pytest.param([b"xJSESSIONID=ABC.node1"], b"/", DEFAULT, [], id="cookie-prefix-no-match"),
        pytest.param([b"jsessionid=ABC.node1"], b"/", DEFAULT, [], id="cookie-name-case"),
        pytest.param([], b"/app;xjsessionid=ABC.node1", DEFAULT, [], id="xjsessionid-no-match"),
        pytest.param([], b"/app;JSESSIONID=ABC.node1", DEFAULT, [], id="path-name-case"),
        pytest.param(
            [], b"/app;jsessionid=ABC.node1;foo=1", DEFAULT, ["node1"], id="semicolon-ends-value"
        ),
        pytest.param(
            [], b"/app;foo=1;jsessionid=ABC.node1", DEFAULT, ["node1"], id="second-path-param"
        ),
        pytest.param(
            [], b"/a;jsessionid=ABC.node3/b/c.jsp", DEFAULT, ["node3"], id="middle-segment"
        ),
        pytest.param(
            [],
            b"/a/b.jsp;jsessionid=ABC.node1?x=1;jsessionid=Q.n9",
            DEFAULT,
            ["node1"],
            id="query-not-searched",
        ),
        pytest.param([], b"/a?jsessionid=ABC.node1", DEFAULT, [], id="query-param-ignored"),
        pytest.param([], b"/a;jsessionid=ABC.node1#frag", DEFAULT, ["node1"], id="fragment"),
        pytest.param(
            [b"JSESSIONID=ABC!node1"],
            b"/",
            StickyConfig(separator="!"),
            ["node1"],
            id="custom-separator",
        ),
        pytest.param([b"JSESSIONID=ABCDEF"], b"/", DEFAULT, [], id="no-separator"),
        pytest.param(
            [b"JSESSIONID=ABCDEF"], b"/", StickyConfig(separator=""), ["ABCDEF"], id="sep-off"
        ),
        pytest.param([b"JSESSIONID=ABC."], b"/", DEFAULT, [], id="empty-route"),
        pytest.param([b"JSESSIONID="], b"/", DEFAULT, [], id="empty-value"),
        pytest.param(
            [b"JSESSIONID=ABC.dom.node1"],
            b"/",
            DEFAULT,
            ["dom.node1", "node1"],
            id="first-then-last-separator",
        ),
        pytest.param(
            [b"a=b", b"c=d; JSESSIONID=ABC.node2", b"JSESSIONID=X.node1"],
            b"/",
            DEFAULT,
            ["node2", "node1"],
            id="several-cookie-headers",
        ),
        pytest.param([b"  a = b ;JSESSIONID = ABC.node1 ;"], b"/", DEFAULT, ["node1"], id="spaces"),
        pytest.param([b"a=1, JSESSIONID=ABC.node1"], b"/", DEFAULT, ["node1"], id="comma"),
        pytest.param(
            [b"JSESSIONID=A.node1; JSESSIONID=B.node1"], b"/", DEFAULT, ["node1"], id="dedup"
        ),
        pytest.param([b"JSESSIONID"], b"/;jsessionid", DEFAULT, [], id="no-equals"),
        pytest.param([b";;;===;;"], b";;;/;=;", DEFAULT, [], id="only-delimiters"),
        pytest.param(
            [b"JSESSIONID=\xff\xfe.n\xe9ud", b"\x00\x01\x02"],
            b"/\xc3(;jsessionid=\x80.\x81",
            DEFAULT,
            ["\x81", "n\xe9ud"],
            id="garbage-bytes-latin-1",
        ),
        pytest.param(
            [b"SID=ABC.node1", b"JSESSIONID=X.node2"],
            b"/",
            StickyConfig(cookie_names=("SID", "JSESSIONID")),
            ["node1", "node2"],
            id="several-cookie-names",
        ),
        pytest.param(
            [b"JSESSIONID=ABC.node1"],
            b"/",
            StickyConfig(cookie_names=(), path_names=("jsessionid",)),
            [],
            id="cookies-disabled",
        ),
    ],
)
def test_find_session_routes(
    cookies: list[bytes], path: bytes, sticky: StickyConfig, expected: list[str]
) -> None:
    """
    Candidate routes come from path parameters first, then every matching cookie, parsed exactly.
    """
    assert find_session_routes(cookies, path, sticky) == expected


def test_huge_cookie_header() -> None:
    """
    A huge hostile Cookie header is parsed without error and yields a bounded list.
    """
    header = b"; ".join(b"JSESSIONID=S%d.node%d" % (i, i) for i in range(100_000))
    routes = find_session_routes([header, b"x" * 1_000_000], b"/" + b";" * 100_000, DEFAULT)
    assert routes == [f"node{i}" for i in range(MAX_SESSION_IDS)]


def test_str_input_tolerated() -> None:
    """
    Text instead of bytes is tolerated rather than raising.
    """
    assert find_session_routes(["JSESSIONID=A.n1"], "/x", DEFAULT) == ["n1"]  # type: ignore[list-item, arg-type]


@given(
    cookies=st.lists(st.binary(max_size=200), max_size=5),
    path=st.binary(max_size=200),
)
def test_never_raises(cookies: list[bytes], path: bytes) -> None:
    """
    Arbitrary bytes never make find_session_routes raise, and every route is a non-empty string.
    """
    routes = find_session_routes(cookies, path, DEFAULT)
    assert all(isinstance(route, str) and route for route in routes)
    assert len(routes) == len(set(routes))


@pytest.mark.parametrize(
    ("value", "separator", "expected"),
    [
        ("JSESSIONID|jsessionid", ".", StickyConfig(("JSESSIONID",), ("jsessionid",), ".")),
        ("JSESSIONID", ".", StickyConfig(("JSESSIONID",), ("JSESSIONID",), ".")),
        (" ROUTEID | routeid ", "!", StickyConfig(("ROUTEID",), ("routeid",), "!")),
        ("JSESSIONID|jsessionid", "Off", StickyConfig(("JSESSIONID",), ("jsessionid",), "")),
    ],
)
def test_from_apache(value: str, separator: str, expected: StickyConfig) -> None:
    """
    httpd's stickysession= value maps to cookie name | path parameter name.
    """
    assert StickyConfig.from_apache(value, separator) == expected


@pytest.mark.parametrize("value", ["", "|", "a|b|c", "a|", "|b", "a;b", "a=b"])
def test_from_apache_rejects(value: str) -> None:
    """
    Empty, over-long or malformed stickysession= values are rejected.
    """
    with pytest.raises(ValueError):
        StickyConfig.from_apache(value)


def test_from_apache_single_name_used_for_path() -> None:
    """
    With a single name, as in httpd, the same name is searched in the path.
    """
    sticky = StickyConfig.from_apache("JSESSIONID")
    assert find_session_routes([], b"/a;JSESSIONID=X.n1", sticky) == ["n1"]
    assert find_session_routes([b"JSESSIONID=X.n2"], b"/", sticky) == ["n2"]


def test_sticky_config_to_dict() -> None:
    """
    The configuration is exported as plain values.
    """
    assert StickyConfig().to_dict() == {
        "cookie_names": ["JSESSIONID"],
        "path_names": ["jsessionid"],
        "separator": ".",
    }


def test_sticky_model_is_a_leaf() -> None:
    """
    L{twisted_lb.sticky} imports no module of C{twisted_lb}; the configuration
    model and the balancer core import it, and no configuration module imports
    the balancer.
    """
    graph = import_graph()
    assert graph["twisted_lb.sticky"] == set()
    assert "twisted_lb.sticky" in graph["twisted_lb.config.model"]
    assert "twisted_lb.sticky" in graph["twisted_lb.balancer.core"]
    config_to_balancer = sorted(
        (user, used)
        for user, imported in graph.items()
        if user.startswith("twisted_lb.config")
        for used in imported
        if used == "twisted_lb.balancer" or used.startswith("twisted_lb.balancer.")
    )
    assert config_to_balancer == []


def test_balancer_still_exports_the_sticky_model() -> None:
    """The names the balancer package exported before the move are the same objects."""
    for name in ("StickyConfig", "find_session_ids", "find_session_routes"):
        assert getattr(twisted_lb.balancer, name) is getattr(twisted_lb.sticky, name)
