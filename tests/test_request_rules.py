"""Tests for L{twisted_lb.request_rules}: redirects and the mod_rewrite subset as pure functions."""

from __future__ import annotations

import pytest

from twisted_lb.request_rules import Condition, Outcome, RequestRule, RequestRules, RuleRequest


def request(path: str = "/", query: str = "", https: bool = False, **headers: str) -> RuleRequest:
    lowered = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return RuleRequest(
        "GET", path, query, https, lowered.get("host", "h"), lambda n: lowered.get(n, "")
    )


def test_https_redirect_idiom() -> None:
    """RewriteCond %{HTTPS} off + RewriteRule (.*) https://%{HTTP_HOST}$1 [R=301]."""
    rule = RequestRule(
        "(.*)", "https://%{HTTP_HOST}$1", 301, conditions=(Condition("%{HTTPS}", "off"),)
    )
    assert rule.apply(request("/a b", "x=1", host="ex.com")) == Outcome(
        301, location="https://ex.com/a%20b?x=1"
    )
    assert rule.apply(request("/a", https=True)) is None


def test_conditions_with_or_nc_negation_and_backreferences() -> None:
    """[OR] joins conditions, [NC] ignores case, ! negates, %1 names a condition's group."""
    rule = RequestRule(
        "^/(.*)",
        "https://%1/$1",
        302,
        conditions=(
            Condition("%{HTTP:Upgrade}", "websocket", nocase=True, ornext=True),
            Condition("%{QUERY_STRING}", "^ws=1$"),
            Condition("%{HTTP_HOST}", "^www\\.(.+)$"),
            Condition("%{REQUEST_METHOD}", "!^POST$"),
        ),
    )
    assert rule.apply(request("/x", Upgrade="WebSocket", host="www.ex.org")) == Outcome(
        302, location="https://ex.org/x"
    )
    assert rule.apply(request("/x", "ws=1", host="www.ex.org")).location.startswith(
        "https://ex.org/x"
    )
    assert rule.apply(request("/x", host="www.ex.org")) is None
    assert rule.apply(request("/x", Upgrade="websocket", host="ex.org")) is None


def test_string_comparisons() -> None:
    """=text, <text and >text compare strings."""
    assert Condition("%{HTTPS}", "=off").holds(request(), [], [])
    assert not Condition("%{HTTPS}", "!=off").holds(request(), [], [])
    assert Condition("%{HTTP_HOST}", "=EX", nocase=True).holds(request(host="ex"), [], [])


def test_prefix_redirect_keeps_the_rest_and_the_query() -> None:
    """Redirect /docs URL sends /docs/x?q to URL/x?q; /docsx does not match."""
    rule = RequestRule("/docs", "https://d/manual", 301, prefix=True, noescape=True)
    assert rule.apply(request("/docs/x", "q=1")) == Outcome(301, location="https://d/manual/x?q=1")
    assert rule.apply(request("/docs")) == Outcome(301, location="https://d/manual")
    assert rule.apply(request("/docsx")) is None


def test_proxy_outcome_and_qsa() -> None:
    """[P] gives the balancer and the encoded path; [QSA] appends the request's query."""
    rule = RequestRule("^/legacy/(.*)$", "/app/$1?v=2", 0, balancer="app", qsa=True)
    assert rule.apply(request("/legacy/a b", "x=1")) == Outcome(
        0, balancer="app", path=b"/app/a%20b", query=b"v=2&x=1"
    )


def test_forbidden_gone_and_order() -> None:
    """The first rule that applies decides; rules after routing are kept apart."""
    rules = RequestRules(
        (
            RequestRule("^/private", "-", 403),
            RequestRule("^/gone", "-", 410),
            RequestRule("/x", "/y", 302, prefix=True, after_routes=True),
        )
    )
    assert rules.apply(request("/private/a")) == Outcome(403)
    assert rules.apply(request("/gone")) == Outcome(410)
    assert rules.apply(request("/x/1")) is None
    assert rules.apply(request("/x/1"), after_routes=True) == Outcome(302, location="/y/1")
    assert rules.has_after


def test_errors() -> None:
    """Unknown variables, file tests, bad regular expressions and statuses are refused."""
    with pytest.raises(ValueError, match="DOCUMENT_ROOT"):
        Condition("%{DOCUMENT_ROOT}", "x")
    with pytest.raises(ValueError, match="file tests"):
        Condition("%{REQUEST_URI}", "-f")
    with pytest.raises(ValueError, match="regular expression"):
        RequestRule("(", "/", 302)
    with pytest.raises(ValueError, match="status 200"):
        RequestRule("x", "/", 200)
    with pytest.raises(ValueError, match="needs a balancer"):
        RequestRule("x", "/", 0)


def test_pass_through() -> None:
    """[PT] gives the rewritten path (encoded) and query, to be routed."""
    rule = RequestRule("^/old/(.*)$", "/new/$1", 1)
    assert rule.apply(request("/old/a b", "x=1")) == Outcome(1, path=b"/new/a%20b", query=b"x=1")
