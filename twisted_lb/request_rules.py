"""
Rules checked before a request is routed (Apache's C{Redirect},
C{RedirectMatch} and the C{RewriteRule}/C{RewriteCond} subset proxies use):
pure functions, compiled once at start-up and called by every lane.

A rule matches the request's path (percent-decoded, as Apache's C{r->uri})
with a regular expression, if its conditions hold; its target is a template
with C{$N} (groups of the rule's pattern), C{%N} (groups of the last
matching condition) and C{%{VAR}} (the request's variables). Its outcome is
a redirect, a refusal (403, 410), or proxying to a balancer with the path
the template gives. Rules are tried in order; a rule that rewrites nothing
(C{-}) only applies its flags.

This module does no I/O and imports no Twisted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from urllib.parse import quote, unquote

import attrs

from twisted_lb.access import AccessRule
from twisted_lb.basic_auth import AuthRule
from twisted_lb.header_edits import HeaderEdit

__all__ = [
    "VARIABLES",
    "Condition",
    "Outcome",
    "RequestRule",
    "RequestRules",
    "RuleRequest",
]

#: The variables a condition or a target may name.
VARIABLES = frozenset(
    {"HTTPS", "HTTP_HOST", "REQUEST_URI", "QUERY_STRING", "REQUEST_METHOD", "SERVER_NAME"}
)

_VAR = re.compile(r"%\{([A-Za-z_:\-0-9]+)\}")
_REFERENCE = re.compile(r"\$(\d)|%(\d)|\\(.)")


@attrs.frozen
class RuleRequest:
    """
    What rules read of a request.

    @ivar path: the path, percent-decoded.
    @ivar query: the query string as sent (without C{?}), or C{""}.
    @ivar header: the value of a request header (by lower-case name), or C{""}.
    """

    method: str
    path: str
    query: str
    https: bool
    host: str
    header: Callable[[str], str]

    def variable(self, name: str) -> str:
        """The value of C{%{name}}."""
        if name.upper().startswith("HTTP:"):
            return self.header(name[5:].lower())
        name = name.upper()
        if name == "HTTPS":
            return "on" if self.https else "off"
        if name == "HTTP_HOST":
            return self.host
        if name == "SERVER_NAME":
            return self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host
        if name == "REQUEST_URI":
            return self.path
        if name == "QUERY_STRING":
            return self.query
        if name == "REQUEST_METHOD":
            return self.method
        return ""


def check_variables(text: str) -> None:
    """
    @raise ValueError: when C{text} names a variable that is not known.
    """
    for match in _VAR.finditer(text):
        name = match.group(1)
        if not name.upper().startswith("HTTP:") and name.upper() not in VARIABLES:
            raise ValueError(
                f"%{{{name}}} is not supported; rules may use %{{HTTP:Header}} and "
                f"{', '.join('%{' + v + '}' for v in sorted(VARIABLES))}"
            )


def _expand(
    template: str,
    rule_groups: Sequence[str | None],
    cond_groups: Sequence[str | None],
    request: RuleRequest,
) -> str:
    def reference(match: re.Match[str]) -> str:
        if match.group(3) is not None:
            return match.group(3)
        groups = rule_groups if match.group(1) is not None else cond_groups
        index = int(match.group(1) or match.group(2))
        return (groups[index] or "") if index < len(groups) else ""

    text = _REFERENCE.sub(reference, template)
    return _VAR.sub(lambda m: request.variable(m.group(1)), text)


@attrs.frozen
class Condition:
    """
    C{RewriteCond test pattern [flags]}.

    @ivar test: a template (usually one C{%{VAR}}).
    @ivar pattern: a regular expression, C{!regex} (does not match),
        C{=text}, C{<text}, C{>text} (string comparisons).
    @ivar nocase: compare ignoring case (C{[NC]}).
    @ivar ornext: this condition or the next one (C{[OR]}).
    """

    test: str
    pattern: str
    nocase: bool = False
    ornext: bool = False
    _regex: re.Pattern[str] | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        check_variables(self.test)
        body = self.pattern[1:] if self.pattern.startswith("!") else self.pattern
        regex = None
        if body[:1] not in ("=", "<", ">") and not body.startswith("-"):
            try:
                regex = re.compile(body, re.IGNORECASE if self.nocase else 0)
            except re.error as e:
                raise ValueError(f"{self.pattern!r} is not a regular expression: {e}") from None
        elif body.startswith("-"):
            raise ValueError(
                f"condition {self.pattern!r}: file tests (-f, -d …) do not apply to a proxy"
            )
        object.__setattr__(self, "_regex", regex)

    def holds(
        self, request: RuleRequest, rule_groups: Sequence[str | None], cond_groups: list[str | None]
    ) -> bool:
        """Whether it holds; a matching regular expression sets C{cond_groups}."""
        value = _expand(self.test, rule_groups, cond_groups, request)
        negate = self.pattern.startswith("!")
        body = self.pattern[1:] if negate else self.pattern
        if self._regex is not None:
            match = self._regex.search(value)
            if match is not None and not negate:
                cond_groups[:] = [match.group(0), *match.groups()]
            return (match is not None) != negate
        op, text = body[0], body[1:]
        if self.nocase:
            value, text = value.lower(), text.lower()
        result = value == text if op == "=" else value < text if op == "<" else value > text
        return result != negate


@attrs.frozen
class Outcome:
    """
    What a rule decided.

    @ivar status: the redirect status (301, 302 …), 403, 404 or 410, 0 to
        proxy to C{balancer}, or 1 to route C{path} instead of the request's.
    @ivar location: the redirect target (for 3xx).
    @ivar balancer: the balancer to proxy to (status 0).
    @ivar path: the path on the member, percent-encoded (status 0).
    @ivar query: the query to send, or C{None} for none (status 0).
    """

    status: int
    location: str = ""
    balancer: str = ""
    path: bytes = b""
    query: bytes | None = None
    #: The proxying rule that decided (its access rules and balancer).
    rule: RequestRule | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class RequestRule:
    """
    One rule.

    @ivar pattern: the regular expression on the decoded path.
    @ivar target: the template of the redirect URL or the proxied path, or
        C{-} for none.
    @ivar status: 301, 302, 303, 307, 308 (a redirect), 403 (C{[F]}), 404
        (an exclusion, C{ProxyPassMatch regex !}), 410 (C{[G]}), 0 (proxy,
        C{[P]}, C{ProxyPassMatch}), or 1 (rewrite the path, then route it,
        C{[PT]}).
    @ivar balancer: with status 0, the balancer to proxy to.
    @ivar conditions: all must hold (or, with C{ornext}, one of a run).
    @ivar nocase: the pattern ignores case (C{[NC]}).
    @ivar qsa: append the request's query to the target's (C{[QSA]}).
    @ivar noescape: do not escape the target (C{[NE]}).
    @ivar prefix: match the pattern as a path prefix (at a segment
        boundary) instead of a regular expression, and append the rest of
        the path to the target (C{Redirect}).
    @ivar hosts: the virtual hosts the rule is for (as L{RouteConfig.hosts}).
    @ivar after_routes: checked only for requests no route serves (or an
        exclusion route): Apache's C{Redirect} and C{RedirectMatch}, which
        it checks after C{ProxyPass}.
    @ivar access: for a proxying rule, the access rules of the request's own
        path (its host's C{<Location>} and C{<Proxy>} sections), checked as a
        route's are, since Apache checks them against the requested URL.
    @ivar auth: likewise, the login rules.
    @ivar request_headers: for a proxying rule, the C{RequestHeader} edits
        of its host (top level, virtual host, matching C{<Proxy>} sections).
    @ivar response_headers: likewise, the C{Header} edits.
    """

    pattern: str
    target: str
    status: int
    balancer: str = ""
    conditions: tuple[Condition, ...] = ()
    nocase: bool = False
    qsa: bool = False
    noescape: bool = False
    prefix: bool = False
    hosts: tuple[str, ...] = ()
    after_routes: bool = False
    access: tuple[AccessRule, ...] = ()
    auth: tuple[AuthRule, ...] = ()
    request_headers: tuple[HeaderEdit, ...] = ()
    response_headers: tuple[HeaderEdit, ...] = ()
    _regex: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.status not in (0, 1, 301, 302, 303, 307, 308, 403, 404, 410):
            raise ValueError(
                f"status {self.status} is not a redirect (301-308), 403, 404, 410, 0 or 1"
            )
        if self.status == 0 and not self.balancer:
            raise ValueError("a proxying rule (status 0) needs a balancer")
        if self.status in range(300, 400) and self.target == "-":
            raise ValueError("a redirect needs a target")
        check_variables(self.target)
        if self.prefix:
            pattern = "^" + re.escape(self.pattern.rstrip("/")) + "(/.*)?$"
            if self.pattern.endswith("/"):
                pattern = "^" + re.escape(self.pattern) + "(.*)$"
        else:
            pattern = self.pattern
        try:
            regex = re.compile(pattern, re.IGNORECASE if self.nocase else 0)
        except re.error as e:
            raise ValueError(f"{self.pattern!r} is not a regular expression: {e}") from None
        object.__setattr__(self, "_regex", regex)

    def apply(self, request: RuleRequest) -> Outcome | None:
        """The outcome for C{request}, or C{None} when the rule does not apply."""
        match = self._regex.search(request.path)
        if match is None:
            return None
        rule_groups: list[str | None] = [match.group(0), *match.groups()]
        cond_groups: list[str | None] = []
        if not self._conditions_hold(request, rule_groups, cond_groups):
            return None
        if self.status in (403, 404, 410):
            return Outcome(self.status)
        if self.prefix:
            target = self.target.rstrip("/") if not self.pattern.endswith("/") else self.target
            expanded = target + (rule_groups[1] or "")
            expanded = expanded if self.noescape else _escape(expanded)
        else:
            expanded = _expand(self.target, rule_groups, cond_groups, request)
            if not self.noescape:
                expanded = _escape(expanded)
        url, question, query = expanded.partition("?")
        if self.status in (0, 1):
            if self.qsa and request.query:
                query = f"{query}&{request.query}" if query else request.query
            elif not question:
                query = request.query
            if self.status == 1 and not url.startswith("/"):
                url = "/" + url
            return Outcome(
                self.status,
                rule=self,
                balancer=self.balancer,
                path=url.encode("utf-8"),
                query=query.encode("utf-8") if (query or question or request.query) else None,
            )
        if self.prefix or not question or self.qsa:
            # Redirect keeps the query, as RewriteRule does without its own (or with [QSA]).
            if request.query:
                query = f"{query}&{request.query}" if query else request.query
        return Outcome(self.status, location=url + (f"?{query}" if query else ""))

    def _conditions_hold(
        self, request: RuleRequest, rule_groups: list[str | None], cond_groups: list[str | None]
    ) -> bool:
        """All conditions hold, those joined by [OR] as one."""
        group = False
        open_group = False
        for condition in self.conditions:
            group = condition.holds(request, rule_groups, cond_groups) or group
            open_group = condition.ornext
            if open_group:
                continue
            if not group:
                return False
            group = False
        return group or not open_group


def _escape(text: str) -> str:
    """Escape what cannot stand in a URL, keeping its structure (Apache escapes by default)."""
    return quote(unquote(text), safe="/:?&=#%;@+$,!~*'()[]")


@attrs.frozen
class RequestRules:
    """The rules of one virtual host, in order: the first that applies decides."""

    rules: tuple[RequestRule, ...]
    _before: tuple[RequestRule, ...] = attrs.field(init=False, eq=False, repr=False)
    _after: tuple[RequestRule, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_before", tuple(r for r in self.rules if not r.after_routes))
        object.__setattr__(self, "_after", tuple(r for r in self.rules if r.after_routes))

    @property
    def has_after(self) -> bool:
        """Whether some rules are for requests no route serves."""
        return bool(self._after)

    def apply(self, request: RuleRequest, after_routes: bool = False) -> Outcome | None:
        """The outcome of the first rule that applies (of those before or after routing)."""
        for rule in self._after if after_routes else self._before:
            outcome = rule.apply(request)
            if outcome is not None:
                return outcome
        return None
