"""Tests for L{twisted_lb.header_edits}: Apache's Header and RequestHeader as pure functions."""

from __future__ import annotations

import pytest

from twisted_lb.header_edits import (
    HeaderEdit,
    HeaderEdits,
    TemplateError,
    balancer_variables,
    parse_template,
)

BASE = [(b"Content-Type", b"text/html"), (b"Cache-Control", b"private"), (b"X-A", b"1")]
ENV = {"BALANCER_WORKER_ROUTE": "n1", "BALANCER_NAME": "balancer://app"}


def edited(edit: HeaderEdit, headers=BASE, env=ENV) -> list[tuple[bytes, bytes]]:
    return HeaderEdits(response=(edit,)).edit_response(headers, env, False)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (HeaderEdit("set", "x-a", "2"), [*BASE[:2], (b"x-a", b"2")]),
        (HeaderEdit("add", "X-A", "2"), [*BASE, (b"X-A", b"2")]),
        (
            HeaderEdit("append", "Cache-Control", "no-store"),
            [*BASE[::2], (b"Cache-Control", b"private, no-store")],
        ),
        (HeaderEdit("append", "X-New", "v"), [*BASE, (b"X-New", b"v")]),
        (HeaderEdit("merge", "Cache-Control", "private"), BASE),
        (
            HeaderEdit("merge", "Cache-Control", "no-cache"),
            [*BASE[::2], (b"Cache-Control", b"private, no-cache")],
        ),
        (HeaderEdit("setifempty", "X-A", "9"), BASE),
        (HeaderEdit("setifempty", "X-B", "9"), [*BASE, (b"X-B", b"9")]),
        (HeaderEdit("unset", "cache-control"), BASE[::2]),
        (
            HeaderEdit("edit", "Content-Type", "t(e)", "$1$1"),
            [(b"Content-Type", b"eext/html"), *BASE[1:]],
        ),
        (
            HeaderEdit("edit*", "Content-Type", "t", "T"),
            [(b"Content-Type", b"TexT/hTml"), *BASE[1:]],
        ),
        (
            HeaderEdit("add", "Set-Cookie", "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/"),
            [*BASE, (b"Set-Cookie", b"ROUTEID=.n1; path=/")],
        ),
        (
            HeaderEdit("set", "X-P", "100%% %{BALANCER_WORKER_NAME}e"),
            [*BASE, (b"X-P", b"100% (null)")],
        ),
    ],
)
def test_actions(edit: HeaderEdit, expected: list[tuple[bytes, bytes]]) -> None:
    """Each action does what Apache's mod_headers does."""
    assert edited(edit) == expected


def test_conditions() -> None:
    """env=VAR holds when the variable is set, env=!VAR when it is not."""
    on = HeaderEdit("set", "X", "1", condition="BALANCER_ROUTE_CHANGED")
    off = HeaderEdit("set", "X", "1", condition="BALANCER_ROUTE_CHANGED", negate=True)
    changed = {**ENV, "BALANCER_ROUTE_CHANGED": "1"}
    assert edited(on, env=changed)[-1] == (b"X", b"1")
    assert edited(on) == BASE
    assert edited(off) == [*BASE, (b"X", b"1")]
    assert edited(off, env=changed) == BASE


def test_always_only_on_errors() -> None:
    """The proxy's own error responses get only the 'always' edits; members' get all."""
    edits = HeaderEdits(
        response=(HeaderEdit("set", "X-S", "1"), HeaderEdit("set", "X-A", "2", always=True))
    )
    assert edits.edit_response([], {}, True) == [(b"X-A", b"2")]
    assert edits.edit_response([], {}, False) == [(b"X-S", b"1"), (b"X-A", b"2")]


def test_request_edits_use_lower_case_names() -> None:
    """Request edits keep the lower-case names the lanes use."""
    edits = HeaderEdits(
        request=(
            HeaderEdit("set", "X-Forwarded-Proto", "https"),
            HeaderEdit("unset", "Authorization"),
        )
    )
    assert edits.edit_request([(b"authorization", b"Basic x"), (b"accept", b"*/*")]) == [
        (b"accept", b"*/*"),
        (b"x-forwarded-proto", b"https"),
    ]


def test_templates_and_errors() -> None:
    """Only %% and the balancer's %{...}e are supported; anything else is refused by name."""
    assert parse_template("a%%b%{BALANCER_NAME}ec") == ("a%b", ("BALANCER_NAME",), "c")
    with pytest.raises(TemplateError, match="%t"):
        parse_template("t=%t")
    assert parse_template("%{REQUEST_SCHEME}e") == (("REQUEST_SCHEME",),)
    with pytest.raises(TemplateError, match="HOME"):
        parse_template("%{HOME}e")
    with pytest.raises(TemplateError, match="env=foo"):
        HeaderEdit("set", "X", "1", condition="foo")
    with pytest.raises(TemplateError, match="regular expression"):
        HeaderEdit("edit", "X", "(", "")
    with pytest.raises(ValueError, match="echo"):
        HeaderEdit("echo", "X")


def test_balancer_variables() -> None:
    """ROUTE_CHANGED is set for a sticky balancer when the route did not choose the member."""
    assert balancer_variables("app", "ajp://h:1", "n1", True, False) == {
        "BALANCER_NAME": "balancer://app",
        "BALANCER_WORKER_NAME": "ajp://h:1",
        "BALANCER_WORKER_ROUTE": "n1",
        "BALANCER_ROUTE_CHANGED": "1",
        "REQUEST_SCHEME": "http",
    }
    assert "BALANCER_ROUTE_CHANGED" not in balancer_variables("app", "ajp://h:1", "n1", True, True)
    assert "BALANCER_ROUTE_CHANGED" not in balancer_variables(
        "app", "ajp://h:1", "n1", False, False
    )
    assert balancer_variables("app", None, "", True, False) == {
        "BALANCER_NAME": "balancer://app",
        "REQUEST_SCHEME": "http",
    }


def test_connection_variables() -> None:
    """HTTPS and REQUEST_SCHEME tell TLS clients apart, in requests and responses."""
    edits = HeaderEdits(
        request=(
            HeaderEdit("set", "X-Forwarded-Proto", "%{REQUEST_SCHEME}e"),
            HeaderEdit("set", "X-Secure", "1", condition="HTTPS"),
        ),
        response=(HeaderEdit("set", "Strict-Transport-Security", "max-age=1", condition="HTTPS"),),
    )
    assert edits.edit_request([], secure=True) == [
        (b"x-forwarded-proto", b"https"),
        (b"x-secure", b"1"),
    ]
    assert edits.edit_request([], secure=False) == [(b"x-forwarded-proto", b"http")]
    secure = balancer_variables("app", None, "", False, False, secure=True)
    assert edits.edit_response([], secure, False) == [(b"Strict-Transport-Security", b"max-age=1")]
    plain = balancer_variables("app", None, "", False, False)
    assert edits.edit_response([], plain, False) == []
