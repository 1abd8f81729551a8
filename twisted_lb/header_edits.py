"""
Request and response header edits (Apache's C{RequestHeader} and
C{Header}): pure functions over C{(name, value)} lists, compiled once per
route at start-up and called by every lane.

A value may hold Apache's format specifiers C{%%} and C{%{NAME}e}, where
C{NAME} is one of the balancer's variables (L{BALANCER_VARIABLES}); a rule
may be conditional on one of them being set (C{env=NAME}) or not
(C{env=!NAME}). The variables of a response are those of the member that
answered: C{BALANCER_NAME} (C{balancer://name}), C{BALANCER_WORKER_NAME}
(its URL), C{BALANCER_WORKER_ROUTE} (its route) and, when the balancer is
sticky and the member was not chosen by the request's session route (a new
session, or a failover), C{BALANCER_ROUTE_CHANGED} (C{1}).

This module does no I/O and imports no Twisted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

__all__ = [
    "ACTIONS",
    "BALANCER_VARIABLES",
    "CONNECTION_VARIABLES",
    "VARIABLES",
    "HeaderEdit",
    "HeaderEdits",
    "TemplateError",
    "balancer_variables",
    "connection_variables",
    "parse_template",
]

#: What an edit may do (Apache's names).
ACTIONS = frozenset({"set", "add", "append", "merge", "setifempty", "unset", "edit", "edit*"})

#: The variables a value or a condition may name.
BALANCER_VARIABLES = frozenset(
    {
        "BALANCER_NAME",
        "BALANCER_WORKER_NAME",
        "BALANCER_WORKER_ROUTE",
        "BALANCER_ROUTE_CHANGED",
    }
)
#: Variables of the client connection, set for requests and responses alike:
#: C{HTTPS} (C{on}, only over TLS) and C{REQUEST_SCHEME} (C{https} or C{http}).
CONNECTION_VARIABLES = frozenset({"HTTPS", "REQUEST_SCHEME"})
#: Every variable a value or a condition may name.
VARIABLES = BALANCER_VARIABLES | CONNECTION_VARIABLES
_SECURE = {"HTTPS": "on", "REQUEST_SCHEME": "https"}
_PLAIN = {"REQUEST_SCHEME": "http"}

_SPECIFIER = re.compile(r"%(?:%|\{([^}]*)\}([a-zA-Z])|(.?))")

Headers = list[tuple[bytes, bytes]]


class TemplateError(ValueError):
    """A header value uses a format specifier that is not supported."""


def parse_template(text: str) -> tuple[str | tuple[str], ...]:
    """
    Split a header value into literal text and variable names (a variable
    is a one-element tuple).

    @raise TemplateError: for a specifier other than C{%%} and
        C{%{NAME}e} with a name of L{BALANCER_VARIABLES}.
    """
    parts: list[str | tuple[str]] = []
    pos = 0
    for match in _SPECIFIER.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        pos = match.end()
        name, kind, other = match.groups()
        if match.group(0) == "%%":
            parts.append("%")
        elif name is not None and kind == "e" and name in VARIABLES:
            parts.append((name,))
        elif name is not None and kind == "e":
            raise TemplateError(
                f"%{{{name}}}e: only these variables are known here "
                f"({', '.join(sorted(VARIABLES))})"
            )
        else:
            raise TemplateError(
                f"format specifier {match.group(0)!r} is not supported; values may use "
                "%{BALANCER_...}e and %%"
            )
    if pos < len(text):
        parts.append(text[pos:])
    # Adjacent literals joined, so rendering is one pass.
    joined: list[str | tuple[str]] = []
    for part in parts:
        if isinstance(part, str) and joined and isinstance(joined[-1], str):
            joined[-1] += part
        else:
            joined.append(part)
    return tuple(joined)


def _render(template: tuple[str | tuple[str], ...], env: Mapping[str, str]) -> bytes:
    out = []
    for part in template:
        if isinstance(part, str):
            out.append(part)
        else:
            # As Apache's mod_headers: an unset variable is "(null)".
            out.append(env.get(part[0], "(null)"))
    return "".join(out).encode("latin-1", "replace")


@attrs.frozen
class HeaderEdit:
    """
    One compiled edit.

    @ivar action: one of L{ACTIONS}.
    @ivar name: the header's name as configured.
    @ivar value: the value template (for C{edit}: the regular expression).
    @ivar replacement: C{edit}'s replacement template.
    @ivar always: also applies to the proxy's own error responses.
    @ivar condition: a variable that must be set (or, with C{negate}, not
        set) for the edit to apply; C{None} for none.
    """

    action: str
    name: str
    value: str = ""
    replacement: str = ""
    always: bool = False
    condition: str | None = None
    negate: bool = False
    _lower: bytes = attrs.field(init=False, eq=False, repr=False)
    _template: tuple[str | tuple[str], ...] = attrs.field(init=False, eq=False, repr=False)
    _replacement: tuple[str | tuple[str], ...] = attrs.field(init=False, eq=False, repr=False)
    _regex: re.Pattern[bytes] | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"header action {self.action!r} is not one of {sorted(ACTIONS)}")
        if self.condition is not None and self.condition not in VARIABLES:
            raise TemplateError(
                f"env={self.condition}: only these variables can be tested "
                f"({', '.join(sorted(VARIABLES))})"
            )
        object.__setattr__(self, "_lower", self.name.lower().encode("latin-1"))
        regex = None
        if self.action.startswith("edit"):
            try:
                regex = re.compile(self.value.encode("latin-1"))
            except re.error as e:
                raise TemplateError(f"{self.value!r} is not a regular expression: {e}") from None
            template: tuple[str | tuple[str], ...] = ()
        else:
            template = parse_template(self.value)
        object.__setattr__(self, "_template", template)
        object.__setattr__(self, "_replacement", parse_template(self.replacement))
        object.__setattr__(self, "_regex", regex)

    def applies(self, env: Mapping[str, str]) -> bool:
        """Whether the condition holds for C{env}."""
        if self.condition is None:
            return True
        return (self.condition in env) != self.negate

    def apply(self, headers: Headers, env: Mapping[str, str], lower_names: bool) -> Headers:
        """C{headers} with this edit made (a new list when it changes anything)."""
        lower = self._lower
        name = lower if lower_names else self.name.encode("latin-1")
        action = self.action
        if action == "unset":
            return [(n, v) for n, v in headers if n.lower() != lower]
        if action in ("edit", "edit*"):
            regex = self._regex
            assert regex is not None
            count = 0 if action == "edit*" else 1
            replacement = _apache_groups(_render(self._replacement, env))
            return [
                (n, regex.sub(replacement, v, count=count) if n.lower() == lower else v)
                for n, v in headers
            ]
        value = _render(self._template, env)
        present = [v for n, v in headers if n.lower() == lower]
        if action == "add":
            return [*headers, (name, value)]
        if action == "setifempty":
            return headers if present else [*headers, (name, value)]
        if action == "set" or not present:
            return [*(h for h in headers if h[0].lower() != lower), (name, value)]
        if action == "merge":
            tokens = {t.strip() for v in present for t in v.split(b",")}
            if value.strip() in tokens:
                return headers
        # append and merge: one header, the values joined by ", " (as Apache).
        joined = b", ".join([*present, value])
        out = [h for h in headers if h[0].lower() != lower]
        out.append((name, joined))
        return out


def _apache_groups(replacement: bytes) -> bytes:
    """Apache's C{$1} back-references as Python's C{\\g<1>}; backslashes kept literal."""
    escaped = replacement.replace(b"\\", b"\\\\")
    return re.sub(rb"\$(\d)", rb"\\g<\1>", escaped)


@attrs.frozen
class HeaderEdits:
    """
    The edits of one route, in the order Apache applies them.

    @ivar request: C{RequestHeader} edits, made before the request is sent.
    @ivar response: C{Header} edits, made on the member's response head;
        those with C{always} are also made on the proxy's error responses.
    """

    request: tuple[HeaderEdit, ...] = ()
    response: tuple[HeaderEdit, ...] = ()
    _always: tuple[HeaderEdit, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_always", tuple(e for e in self.response if e.always))

    def edit_request(self, headers: Headers, secure: bool = False) -> Headers:
        """
        The request headers (names in lower case) with the C{RequestHeader}
        edits made, for a client connection over TLS or not.
        """
        env = _SECURE if secure else _PLAIN
        for edit in self.request:
            if edit.applies(env):
                headers = edit.apply(headers, env, True)
        return headers

    def edit_response(
        self, headers: Sequence[tuple[bytes, bytes]], env: Mapping[str, str], error: bool
    ) -> Headers:
        """
        A response head with the C{Header} edits made: all of them on a
        member's response, those marked C{always} on an error response of
        the proxy's own (C{error=True}).
        """
        out = list(headers)
        for edit in self._always if error else self.response:
            if edit.applies(env):
                out = edit.apply(out, env, False)
        return out


def connection_variables(secure: bool) -> Mapping[str, str]:
    """The variables of a response no balancer made (C{HTTPS}, C{REQUEST_SCHEME})."""
    return _SECURE if secure else _PLAIN


def balancer_variables(
    balancer: str,
    member_url: str | None,
    member_route: str,
    sticky: bool,
    chosen_by_route: bool,
    secure: bool = False,
) -> dict[str, str]:
    """
    The variables of one response, as mod_proxy_balancer sets them.

    @param balancer: the balancer's name (without C{balancer://}).
    @param member_url: the URL of the member that answered, or C{None}
        when no member was chosen (then only C{BALANCER_NAME} is set).
    @param sticky: whether the balancer has sticky sessions.
    @param chosen_by_route: whether the member was picked by the request's
        session route.
    @param secure: whether the client connection is over TLS (C{HTTPS},
        C{REQUEST_SCHEME}).
    """
    env = {"BALANCER_NAME": f"balancer://{balancer}", **(_SECURE if secure else _PLAIN)}
    if member_url is None:
        return env
    env["BALANCER_WORKER_NAME"] = member_url
    env["BALANCER_WORKER_ROUTE"] = member_route
    if sticky and not chosen_by_route:
        env["BALANCER_ROUTE_CHANGED"] = "1"
    return env
