"""
Read an Apache httpd configuration (mod_proxy_balancer, mod_proxy_ajp,
mod_proxy_wstunnel, mod_ssl) into the twisted_lb model.

The directives keep Apache's meaning. Those twisted_lb cannot honour are
errors that name the file and the line; those that behave differently
produce warnings. C{docs/migrating-from-apache.md} lists every directive and
parameter.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..access import AccessRule, intersect_entries, parse_network
from ..basic_auth import AuthRule, read_htpasswd
from ..header_edits import ACTIONS as HEADER_ACTIONS
from ..header_edits import HeaderEdit
from ..request_rules import Condition, RequestRule
from ._apache_directives import (
    ACCEPTED,
    ACCEPTED_SECTIONS,
    REFUSED,
    REFUSED_SECTIONS,
    accepted_reason,
)
from ._apache_syntax import Node, parse_file
from ._build import build, resolve_path
from .model import (
    DEFAULT_HOST,
    MEMBER_SCHEMES,
    TLS_PROTOCOLS,
    AdminConfig,
    BackendTLSConfig,
    BalancerConfig,
    ConfigError,
    ConfigErrors,
    HealthCheckConfig,
    HealthCheckKind,
    LBMethodName,
    LimitsConfig,
    ListenerConfig,
    MemberConfig,
    MemberState,
    ProxyConfig,
    RouteConfig,
    StickySessionConfig,
    TLSConfig,
    UnroutedHeaders,
)

__all__ = ["read_apache", "ACCEPTED_AND_IGNORED", "SUPPORTED_DIRECTIVES", "APACHE_DIRECTIVES"]

#: Directives that are read and have no effect on proxying (each gets one
#: warning saying why, however many lines use it).
ACCEPTED_AND_IGNORED = frozenset(ACCEPTED)

#: Directives (and sections) that twisted_lb gives a meaning.
SUPPORTED_DIRECTIVES = frozenset(
    {
        "listen",
        "virtualhost",
        "servername",
        "redirect",
        "sslengine",
        "sslcertificatefile",
        "sslcertificatekeyfile",
        "sslcertificatechainfile",
        "sslverifyclient",
        "sslcacertificatefile",
        "sslproxyengine",
        "sslproxyverify",
        "sslproxycheckpeercn",
        "sslproxycheckpeername",
        "sslproxycacertificatefile",
        "sslproxymachinecertificatefile",
        "proxyrequests",
        "proxypreservehost",
        "proxytimeout",
        "timeout",
        "proxypass",
        "proxypassreverse",
        "proxypassreversecookiepath",
        "proxypassreversecookiedomain",
        "proxy",
        "balancermember",
        "proxyset",
        "location",
        "locationmatch",
        "ifmodule",
        "ifdefine",
        "ifversion",
        "iffile",
        "include",
        "includeoptional",
        "traceenable",
        "proxyaddheaders",
        "limitrequestbody",
        "proxyvia",
        "proxyhcexpr",
        "authtype",
        "authname",
        "authbasicprovider",
        "authuserfile",
        "redirectmatch",
        "proxypassmatch",
        "redirectpermanent",
        "redirecttemp",
        "rewriteengine",
        "rewritecond",
        "rewriterule",
        "rewriteoptions",
        "sslprotocol",
        "sslciphersuite",
        "sslhonorcipherorder",
        "allowencodedslashes",
        "protocols",
        "serveralias",
        "order",
        "requireany",
        "header",
        "requestheader",
        "require",
        "allow",
        "deny",
    }
)

#: Every directive name this reader knows (used to recognise Apache files).
APACHE_DIRECTIVES = SUPPORTED_DIRECTIVES | ACCEPTED_AND_IGNORED | frozenset(REFUSED)

_UNSUPPORTED = "directive {!r} is not supported by twisted_lb (see docs/migrating-from-apache.md)"

#: BalancerMember (worker) parameters and the model field each one sets.
_MEMBER_PARAMS = {
    "route": "route",
    "loadfactor": "loadfactor",
    "lbset": "lbset",
    "retry": "retry",
    "timeout": "timeout",
    "connectiontimeout": "connectiontimeout",
    "ping": "ping",
    "secret": "secret",
    "status": "status",
    "max": "max",
    "ttl": "ttl",
    "iobuffersize": "packet_size",
}
#: mod_proxy_hcheck's BalancerMember parameters, read into the member's C{health}.
_HEALTH_PARAMS = frozenset({"hcmethod", "hcuri", "hcinterval", "hcpasses", "hcfails", "hcexpr"})
#: BalancerMember parameters read without effect, and why.
_MEMBER_PARAMS_WITHOUT_EFFECT = {
    "keepalive": "twisted_lb's pooled member connections are kept open by the pool (ttl=), "
    "not by TCP keepalive probes",
    "smax": "twisted_lb opens member connections as needed and closes idle ones after ttl=",
    "min": "twisted_lb opens member connections as needed and closes idle ones after ttl=",
    "disablereuse": "twisted_lb reuses a member connection only after a complete exchange, "
    "and checks an idle one before reuse (ping=)",
    "enablereuse": "twisted_lb reuses member connections",
    "flushpackets": "twisted_lb passes every piece of a response on as it arrives",
    "flushwait": "twisted_lb passes every piece of a response on as it arrives",
    "acquire": "twisted_lb does not queue requests for a busy member; it answers 503 when no "
    "member can take one",
    "receivebuffersize": "twisted_lb leaves socket buffers to the kernel",
    "addressttl": "twisted_lb resolves member names when it connects",
}
#: hcmethod values: the check kind and the HTTP method (C{OPTIONS11} etc. are
#: the same requests in HTTP/1.1, which twisted_lb always speaks).
_HC_METHODS = {
    "tcp": ("tcp", "GET"),
    "cping": ("cping", "GET"),
    **{m + v: ("http", m.upper()) for m in ("options", "head", "get") for v in ("", "11")},
}

#: Balancer parameters (ProxySet on a balancer, ProxyPass to a balancer).
_BALANCER_PARAMS = frozenset(
    {
        "lbmethod",
        "stickysession",
        "stickysessionsep",
        "nofailover",
        "maxattempts",
        "timeout",
        "scolonpathdelim",
    }
)

_STATUS_FLAGS = {
    "D": "disabled",
    "S": "stopped",
    "N": "draining",
    "H": "standby",
    "E": "error",
    "I": "ignore-errors",
    "R": "spare",
    "C": "health-check-failed",
}


# -- small parsers --------------------------------------------------------


def _on_off(node: Node, value: str, what: str) -> bool:
    v = value.lower()
    if v == "on":
        return True
    if v == "off":
        return False
    raise node.error(f"{what} must be On or Off, not {value!r}")


def _number(node: Node, name: str, value: str, *, integer: bool = False, ms: bool = False) -> Any:
    """A number of Apache's parameter syntax; C{ms=True} allows C{ms}/C{s} suffixes."""
    text = value.strip().lower()
    scale = 1.0
    if ms and text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif ms and text.endswith("s"):
        text = text[:-1]
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise node.error(f"{name} must be {kind}, not {value!r}") from None
    return number if integer else number * scale


def _one_arg(node: Node) -> str:
    if len(node.args) != 1:
        raise node.error(f"{node.name} takes one argument, not {len(node.args)}")
    return node.args[0]


def _params(node: Node, args: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not key:
            raise node.error(
                f"{node.name}: {arg!r} is not key=value; flags such as nocanon, "
                "interpolate or noquery are not supported by twisted_lb"
            )
        out.append((key.lower(), value))
    return out


def _balancer_name(url: str) -> tuple[str, str] | None:
    """C{balancer://Name/path} -> (C{"name"}, C{"/path"}); None for other URLs."""
    if not url.lower().startswith("balancer://"):
        return None
    rest = url[len("balancer://") :]
    name, slash, path = rest.partition("/")
    return name.lower(), slash + path


def _escape_endpoint(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


# -- scopes -----------------------------------------------------------------


@attrs.define(eq=False)
class _Scope:
    """The main server, a <VirtualHost>, a <Proxy> or a <Location>."""

    kind: str
    node: Node | None
    parent: _Scope | None = None
    settings: dict[str, tuple[Any, Node]] = attrs.Factory(dict)
    # VirtualHost only:
    addresses: list[tuple[str, int | None]] = attrs.Factory(list)
    redirects: list[tuple[Node, int, str, str]] = attrs.Factory(list)
    passes: list[_Pass] = attrs.Factory(list)
    location: str | None = None
    #: For a <LocationMatch> (or <Location ~>): its regular expression (the
    #: path prefix it is equivalent to is in C{location}).
    regex: str | None = None
    #: A <LocationMatch> with its own ProxyPass (a ProxyPassMatch rule):
    #: its Header lines are that rule's.
    proxies: bool = False
    #: Header and RequestHeader lines written in this scope, in order.
    headers: list[tuple[Node, bool, HeaderEdit]] = attrs.Factory(list)
    #: Require / Order / Allow / Deny lines of this section.
    access: _Access | None = None
    #: ServerAlias names (VirtualHost only).
    aliases: list[str] = attrs.Factory(list)
    #: Rules before routing written in this host (Redirect in <Location>, RedirectMatch).
    rules: list[tuple[Node, _Scope, RequestRule]] = attrs.Factory(list)
    #: RewriteCond lines waiting for their RewriteRule.
    pending_conditions: list[Condition] = attrs.Factory(list)

    def get(self, name: str) -> tuple[Any, Node] | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.settings:
                return scope.settings[name]
            scope = scope.parent
        return None

    def value(self, name: str, default: Any = None) -> Any:
        found = self.get(name)
        return default if found is None else found[0]

    @property
    def host(self) -> _Scope:
        """The <VirtualHost> or main server this scope is in."""
        scope = self
        while scope.kind not in ("vhost", "main"):
            assert scope.parent is not None
            scope = scope.parent
        return scope


@attrs.define(eq=False)
class _Access:
    """The access lines of one section: Apache 2.4's Require, or 2.2's Order/Allow/Deny."""

    node: Node
    require: list[str] | None = None
    order: str | None = None
    allow: list[str] = attrs.Factory(list)
    deny: list[str] = attrs.Factory(list)
    #: Require valid-user (an empty list) or Require user NAME ... (the names).
    users: list[str] | None = None

    def auth_rule(self, path: str, scope: _Scope) -> AuthRule:
        """The login rule of this section for C{path} (no login when it requires no user)."""
        if self.users is None:
            return AuthRule(path, "", "")
        auth_type = scope.value("authtype")
        user_file = scope.value("authuserfile")
        if auth_type != "basic" or user_file is None:
            raise self.node.error(
                "Require valid-user/user needs AuthType Basic and AuthUserFile in its section"
            )
        return AuthRule(path, scope.value("authname", "Restricted"), user_file, tuple(self.users))

    def rule(self, path: str) -> AccessRule:
        if self.users is not None:
            if self.require or self.order is not None or self.allow or self.deny:
                raise self.node.error(
                    "a login (Require valid-user/user) and address rules in one section "
                    "(either lets a client in, in Apache) are not supported: use one kind"
                )
            return AccessRule(path, "require", ("all",))
        return self.address_rule(path)

    def address_rule(self, path: str) -> AccessRule:
        """
        The rule of this section for C{path}. With both kinds of lines
        (files written for 2.2 and 2.4 alike), Apache 2.4 lets a client in
        when both allow it; that is one rule when either lets everyone in.
        """
        compat = self.order is not None or self.allow or self.deny
        if self.require is not None:
            require = AccessRule(path, "require", tuple(self.require))
            if not compat or self.require == ["all"]:
                return require if not compat else self.compat_rule(path)
            if self.compat_rule(path).lets_everyone_in:
                return require
            raise self.node.error(
                "Require together with Order/Allow/Deny that both restrict clients: use "
                "Require only"
            )
        return self.compat_rule(path)

    def compat_rule(self, path: str) -> AccessRule:
        return AccessRule(path, self.order or "deny,allow", tuple(self.allow), tuple(self.deny))


@attrs.define(eq=False)
class _Pass:
    node: Node
    path: str
    target: str
    params: list[tuple[str, str]]
    scope: _Scope
    #: The ProxyPass has the nocanon flag.
    nocanon: bool = False


@attrs.define(eq=False)
class _Balancer:
    name: str
    node: Node
    scope: _Scope
    members: list[tuple[Node, str, list[tuple[str, str]], _Scope]] = attrs.Factory(list)
    settings: dict[str, tuple[str, Node]] = attrs.Factory(dict)


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.warnings: list[str] = []
        self.main = _Scope("main", None)
        self.vhosts: list[_Scope] = []
        self.listens: list[tuple[Node, str | None, int]] = []
        self.balancers: dict[str, _Balancer] = {}
        self.passes: list[_Pass] = []
        self.reverses: list[tuple[Node, str, str]] = []
        self.cookies: list[tuple[Node, str, str, str, _Scope]] = []
        self.timeout: tuple[float, Node] | None = None
        self.server_timeout: float | None = None
        self.errors: list[ConfigError] = []
        #: (file, "line N") -> position in the configuration, to sort errors.
        self.order: dict[tuple[str, str], int] = {}
        #: Scopes where a line was refused (their later checks would only repeat it).
        self.failed_scopes: set[int] = set()
        self.accepted: dict[str, list[Any]] = {}
        #: Modules named by LoadModule so far (and those built into httpd);
        #: None when the file loads none, so that every <IfModule> holds.
        self.modules: set[str] | None = set(_BUILTIN_MODULES)
        self.defines: set[str] = set()
        self.broken: set[str] = set()
        #: ProxyConfig fields set by directives (TraceEnable, ProxyAddHeaders ...).
        self.top_level: dict[str, Any] = {}
        self.top_value_nodes: dict[str, Node] = {}
        #: <Proxy> sections (balancer:// URLs, other URLs and *), in file order.
        self.proxy_sections: list[_Scope] = []
        self.location_scopes: list[_Scope] = []
        #: <Location> sections with SetHandler balancer-manager|server-status:
        #: (node, path, the addresses its access lines let in, None for all).
        self.manager_locations: list[tuple[Node, str, tuple[str, ...] | None]] = []
        self.route_paths: set[str] = set()
        #: RewriteRule lines, built once the balancers are known.
        #: (node, scope, status, pattern, target, RequestRule arguments, from ProxyPassMatch)
        self.pending_rules: list[tuple[Node, _Scope, int, str, str, dict[str, Any], bool]] = []
        #: ProxyHCExpr names and the statuses they accept.
        self.hc_exprs: dict[str, tuple[tuple[int, int], ...]] = {}
        self._groups: dict[int, list[tuple[_Scope, str]]] | None = None

    def where(self, node: Node) -> str:
        if os.path.abspath(node.file) == os.path.abspath(self.path):
            return f"line {node.line}"
        return f"{node.file} line {node.line}"

    def warn(self, node: Node | None, message: str) -> None:
        self.warnings.append(f"{self.where(node)}: {message}" if node else message)

    # -- walking the tree -------------------------------------------------

    def walk(self, nodes: list[Node], scope: _Scope) -> None:
        """Read C{nodes} in C{scope}; a refused line is noted and reading goes on."""
        for node in nodes:
            try:
                self.visit(node, scope)
            except ConfigError as e:
                self.fail(node, e)
                self.failed_scopes.add(id(scope.host))

    def fail(self, node: Node, e: ConfigError) -> None:
        """Note a problem; its message names the directive."""
        if node.name.lower() not in e.problem.lower():
            e = ConfigError(e.source, e.key, f"{node.display}: {e.problem}")
        self.errors.append(e)

    def visit(self, node: Node, scope: _Scope) -> None:
        key = node.key
        section = node.children is not None
        handler: Callable[[Node, _Scope], None] | None = getattr(self, "d_" + key, None)
        if handler is not None and section == (key in _SECTIONS):
            handler(node, scope)
            return
        reason = ACCEPTED_SECTIONS.get(key) if section else accepted_reason(key)
        if reason is not None:
            self.accept(node, reason)
            return
        refused = REFUSED_SECTIONS.get(key) if section else REFUSED.get(key)
        if refused is not None:
            raise node.error(f"{node.display} is not supported: {refused}")
        raise node.error(_UNSUPPORTED.format(node.display))

    def accept(self, node: Node, reason: str) -> None:
        """Note a line read without effect; one warning per directive says why."""
        seen = self.accepted.get(node.key)
        if seen is None:
            self.accepted[node.key] = [node, 1, reason]
        else:
            seen[1] += 1

    def accepted_warnings(self) -> list[str]:
        out = []
        for node, count, reason in self.accepted.values():
            more = f" and {count - 1} more line{'s' if count > 2 else ''}" if count > 1 else ""
            out.append(
                f"{self.where(node)}{more}: {node.display} is accepted and has no effect on "
                f"proxying: {reason}"
            )
        return out

    # -- conditional sections ---------------------------------------------

    def d_ifmodule(self, node: Node, scope: _Scope) -> None:
        name = _one_arg(node)
        negate = name.startswith("!")
        module = _module_id(name.lstrip("!"))
        loaded = self.modules is None or module in self.modules
        if loaded != negate:
            self.walk(node.children or [], scope)
        elif not negate and node.children:
            self.warn_once(
                ("module", module),
                node,
                f"<IfModule {name}> is skipped, as Apache would: the file loads modules with "
                "LoadModule and not this one",
            )

    def d_loadmodule(self, node: Node, scope: _Scope) -> None:
        if self.modules is not None and node.args:
            self.modules.add(_module_id(node.args[0]))
        self.accept(node, ACCEPTED["loadmodule"])

    def d_define(self, node: Node, scope: _Scope) -> None:
        if not 1 <= len(node.args) <= 2:
            raise node.error("Define takes a name and an optional value")
        self.defines.add(node.args[0])

    def d_undefine(self, node: Node, scope: _Scope) -> None:
        self.defines.discard(_one_arg(node))

    def d_ifdefine(self, node: Node, scope: _Scope) -> None:
        name = _one_arg(node)
        if (name.lstrip("!") in self.defines) != name.startswith("!"):
            self.walk(node.children or [], scope)

    def d_ifversion(self, node: Node, scope: _Scope) -> None:
        if _version_matches(node):
            self.walk(node.children or [], scope)

    def d_iffile(self, node: Node, scope: _Scope) -> None:
        name = _one_arg(node)
        path = name.lstrip("!")
        if not os.path.isabs(path):
            path = os.path.join(self.base_dir(node), path)
        if os.path.exists(path) != name.startswith("!"):
            self.walk(node.children or [], scope)

    def d_virtualhost(self, node: Node, scope: _Scope) -> None:
        if scope.kind != "main":
            raise node.error("<VirtualHost> must be at the top level, not inside another section")
        if not node.args:
            raise node.error("<VirtualHost> needs an address, e.g. <VirtualHost *:443>")
        vhost = _Scope("vhost", node, self.main)
        for arg in node.args:
            vhost.addresses.append(self.address(node, arg))
        self.vhosts.append(vhost)
        self.walk(node.children or [], vhost)

    def address(self, node: Node, arg: str) -> tuple[str, int | None]:
        match = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+|\*))?", arg)
        if not match:
            raise node.error(f"{arg!r} is not an address[:port]")
        host, port = match.group(1), match.group(2)
        if host.startswith("["):
            host = host[1:-1]
        if host in ("*", "_default_"):
            host = "*"
        if port is None or port == "*":
            return host, None
        return host, int(port)

    def d_proxy(self, node: Node, scope: _Scope) -> None:
        if scope.kind not in ("main", "vhost"):
            raise node.error("<Proxy> must be at the top level or in a <VirtualHost>")
        if not node.args:
            raise node.error("<Proxy> needs a URL, balancer://name or *")
        url = node.args[0]
        parsed = _balancer_name(url)
        if parsed is None and len(node.args) > 1:
            raise node.error(f"<Proxy {url}> takes parameters only for a balancer:// URL")
        if parsed is None:
            # <Proxy *> or <Proxy http://member...>: access rules and headers
            # for what is proxied there.
            inner = _Scope("proxyurl", node, scope)
            inner.location = url
            self.proxy_sections.append(inner)
            self.walk(node.children or [], inner)
            return
        name, path = parsed
        if path not in ("", "/"):
            raise node.error(f"<Proxy {url}>: a balancer URL here takes no path")
        balancer = self.balancer(node, name, scope)
        if len(node.args) > 1:
            self.balancer_params(node, balancer, _params(node, node.args[1:]), f"<Proxy {url}>")
        inner = _Scope("proxy", node, scope)
        inner.location = name
        self.proxy_sections.append(inner)
        self.walk(node.children or [], inner)
        balancer.scope = inner if balancer.node is node else balancer.scope

    def balancer(self, node: Node, name: str, scope: _Scope) -> _Balancer:
        if not name:
            raise node.error("the balancer URL names no balancer (balancer://NAME)")
        if name not in self.balancers:
            self.balancers[name] = _Balancer(name, node, scope)
        return self.balancers[name]

    def d_locationmatch(self, node: Node, scope: _Scope) -> None:
        self.d_location(node, scope, _one_arg(node))

    def d_location(self, node: Node, scope: _Scope, regex: str | None = None) -> None:
        if scope.kind not in ("main", "vhost"):
            raise node.error(f"{node.display} must be at the top level or in a <VirtualHost>")
        if regex is None and len(node.args) == 2 and node.args[0] == "~":
            regex = node.args[1]
        if regex is not None:
            path = _regex_prefix(regex)
            if path is None:
                raise node.error(
                    f"{node.display}: only a regular expression that names a path prefix is "
                    "supported (^/path/, ^/path/.*, ^/path(/.*)?$ or ^/path(/|$)); use "
                    "<Location /path> sections, or ProxyPassMatch for a pattern"
                )
        else:
            path = _one_arg(node)
        if not path.startswith("/"):
            raise node.error(f"<Location {path}>: the path must start with '/'")
        handler = _status_handler(node)
        if handler is not None:
            self.manager_location(node, scope, path, handler)
            return
        inner = _Scope("location", node, scope)
        inner.location = path
        inner.regex = regex
        self.location_scopes.append(inner)
        self.walk(node.children or [], inner)

    def manager_location(self, node: Node, scope: _Scope, path: str, handler: str) -> None:
        """
        A <Location> with SetHandler balancer-manager or server-status: its
        access lines become the admin listener's C{allow} (see L{admin}).
        """
        inner = _Scope("location", node, scope)
        inner.location = path
        access_lines = [
            c for c in node.children or [] if c.key in ("require", "order", "allow", "deny")
        ]
        before = len(self.errors)
        self.walk(access_lines, inner)
        if len(self.errors) != before:
            return
        access = inner.access
        allow: tuple[str, ...] | None = None
        if access is not None and (
            access.require is not None or access.order is not None or access.allow or access.deny
        ):
            try:
                allow = _manager_allow(access.address_rule(path))
            except ConfigError as e:
                self.fail(node, e)
                return
            except ValueError as e:
                self.fail(node, node.error(str(e)))
                return
        self.manager_locations.append((node, path, allow))
        login = (
            " (its login lines are not used: set admin.password)"
            if (access is not None and access.users is not None)
            else ""
        )
        who = "every client" if allow is None else ", ".join(allow) or "no client"
        self.warn(
            node,
            f"<Location {path}> with SetHandler {handler}: twisted_lb shows its members, their "
            "states and counters on the admin listener, now at http://127.0.0.1:8081/ (the "
            f"[admin] table of the native file), not at {path} on this listener; its access "
            f"lines go to admin.allow: this section lets in {who} (with several such sections, "
            f"the clients all of them let in){login}",
        )

    def admin(self) -> AdminConfig | None:
        """
        The admin listener of the <Location> sections with SetHandler
        balancer-manager|server-status: on loopback, open to the clients
        every such section lets in (the intersection, when they differ).
        """
        if not self.manager_locations:
            return None
        allow: tuple[str, ...] | None = None
        for _, _, entries in self.manager_locations:
            if entries is None:
                continue
            allow = entries if allow is None else intersect_entries(allow, entries)
        if "workers" not in self.top_level:
            self.warn(
                self.manager_locations[0][0],
                "the balancer manager changes members in every worker process only through a "
                "state file: twisted_lb runs one process (workers = 1); to run one per core, "
                "convert the file (python -m twisted_lb convert) and set workers and "
                "admin.state_file",
            )
            self.top_level["workers"] = 1
        return AdminConfig(allow=allow)

    # -- listeners ----------------------------------------------------------

    def d_listen(self, node: Node, scope: _Scope) -> None:
        if scope.kind != "main":
            raise node.error("Listen belongs at the top level")
        if not 1 <= len(node.args) <= 2:
            raise node.error("Listen takes [address:]port [protocol]")
        match = re.fullmatch(r"(?:(\[[^\]]+\]|[^:\[\]]+):)?(\d+)", node.args[0])
        if not match:
            raise node.error(f"Listen {node.args[0]!r}: expected [address:]port")
        host = match.group(1)
        if host and host.startswith("["):
            host = host[1:-1]
        self.listens.append((node, host, int(match.group(2))))

    def d_redirect(self, node: Node, scope: _Scope, default: int = 302) -> None:
        if scope.kind not in ("main", "vhost", "location"):
            raise node.error("Redirect belongs at the top level, in a <VirtualHost> or <Location>")
        args = list(node.args)
        status = default
        keywords = {"permanent": 301, "temp": 302, "seeother": 303, "gone": 410}
        if node.key == "redirect" and args and (args[0].lower() in keywords or args[0].isdigit()):
            word = args.pop(0)
            status = keywords.get(word.lower()) or int(word)
        if status not in (301, 302, 303, 307, 308, 410):
            raise node.error(
                f"{node.name} with status {status} is not supported; twisted_lb redirects with "
                "301, 302, 303, 307 or 308 (or answers 410 for gone)"
            )
        if scope.kind == "location":
            assert scope.location is not None
            args.insert(0, scope.location)
        if status == 410:
            if len(args) != 1:
                raise node.error(f"{node.name} gone takes the URL path only")
            args.append("-")
        if not args:
            raise node.error(f"{node.name} needs a URL path and a target URL")
        if len(args) == 1:
            raise node.error(
                f"{node.name} {args[0]} has no target URL ({node.name} [status] /path URL)"
            )
        if len(args) > 2:
            raise node.error(f"{node.name} takes [status] /path URL")
        path, url = args
        if not path.startswith("/"):
            raise node.error(f"{node.name}: the URL path {path!r} must start with '/'")
        if status != 410 and not urlsplit(url).scheme and not url.startswith("/"):
            raise node.error(f"{node.name}: the target {url!r} must be a URL or start with '/'")
        if scope.kind == "location":
            scope.host.rules.append(
                (node, scope, RequestRule(path, url, status, prefix=True, noescape=True))
            )
            return
        scope.host.redirects.append((node, status, path, url))

    def d_redirectpermanent(self, node: Node, scope: _Scope) -> None:
        self.d_redirect(node, scope, 301)

    def d_redirecttemp(self, node: Node, scope: _Scope) -> None:
        self.d_redirect(node, scope, 302)

    def d_redirectmatch(self, node: Node, scope: _Scope) -> None:
        if scope.kind not in ("main", "vhost"):
            raise node.error("RedirectMatch belongs at the top level or in a <VirtualHost>")
        args = list(node.args)
        status = 302
        keywords = {"permanent": 301, "temp": 302, "seeother": 303, "gone": 410}
        if len(args) == 3 or (args and args[0].lower() == "gone"):
            word = args.pop(0)
            status = keywords.get(word.lower()) or (int(word) if word.isdigit() else 0)
        if status == 410 and len(args) == 1:
            args.append("-")
        if len(args) != 2:
            raise node.error("RedirectMatch takes [status] regex URL")
        try:
            rule = RequestRule(args[0], args[1], status, noescape=True, after_routes=True)
        except ValueError as e:
            raise node.error(f"RedirectMatch: {e}") from None
        scope.host.rules.append((node, scope, rule))

    # -- mod_rewrite subset ---------------------------------------------------

    def d_rewriteengine(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        self.setting(node, scope, "rewriteengine", _on_off(node, _one_arg(node), node.name))

    def d_rewritecond(self, node: Node, scope: _Scope) -> None:
        self.rewrite_scope(node, scope, "RewriteCond")
        if len(node.args) not in (2, 3):
            raise node.error("RewriteCond takes TestString CondPattern [flags]")
        flags = _rewrite_flags(node, node.args[2] if len(node.args) == 3 else "")
        unknown = set(flags) - {"nc", "nocase", "or", "ornext"}
        if unknown:
            raise node.error(
                f"RewriteCond flag {sorted(unknown)[0]!r} is not supported (NC and OR are)"
            )
        try:
            condition = Condition(
                node.args[0],
                node.args[1],
                nocase=bool({"nc", "nocase"} & set(flags)),
                ornext=bool({"or", "ornext"} & set(flags)),
            )
        except ValueError as e:
            raise node.error(f"RewriteCond: {e}") from None
        scope.pending_conditions.append(condition)

    def d_rewriterule(self, node: Node, scope: _Scope) -> None:
        conditions = tuple(scope.pending_conditions)
        scope.pending_conditions = []
        self.rewrite_scope(node, scope, "RewriteRule")
        if len(node.args) not in (2, 3):
            raise node.error("RewriteRule takes Pattern Substitution [flags]")
        pattern, target = node.args[0], node.args[1]
        flags = _rewrite_flags(node, node.args[2] if len(node.args) == 3 else "")
        known = {
            "l",
            "last",
            "end",
            "nc",
            "nocase",
            "qsa",
            "qsappend",
            "ne",
            "noescape",
            "p",
            "proxy",
            "pt",
            "passthrough",
            "f",
            "forbidden",
            "g",
            "gone",
            "r",
            "redirect",
        }
        unknown = [f for f in flags if f not in known]
        if unknown:
            raise node.error(
                f"RewriteRule flag [{unknown[0].upper()}] is not supported (R, P, PT, F, G, L, "
                "NC, QSA, NE are)"
            )
        kwargs: dict[str, Any] = {
            "conditions": conditions,
            "nocase": bool({"nc", "nocase"} & set(flags)),
            "qsa": bool({"qsa", "qsappend"} & set(flags)),
            "noescape": bool({"ne", "noescape"} & set(flags)),
        }
        if {"f", "forbidden"} & set(flags):
            status = 403
        elif {"g", "gone"} & set(flags):
            status = 410
        elif {"r", "redirect"} & set(flags):
            status = flags.get("r") or flags.get("redirect") or 302
        elif {"p", "proxy"} & set(flags):
            status = 0
        elif {"pt", "passthrough"} & set(flags):
            if target == "-" or not target.startswith("/"):
                raise node.error("RewriteRule … [PT] needs a path (starting with '/') to route")
            status = 1
        elif target == "-":
            raise node.error("RewriteRule … - without [F], [G], [R] or [P] changes nothing here")
        else:
            raise node.error(
                "RewriteRule without [R], [P], [PT], [F] or [G] rewrites to a file, and "
                "twisted_lb serves no files: add [PT] to route the new path, [P] to proxy or "
                "[R] to redirect"
            )
        self.pending_rules.append((node, scope, status, pattern, target, kwargs, False))

    def d_proxypassmatch(self, node: Node, scope: _Scope, args: list[str] | None = None) -> None:
        if args is None:
            args = list(node.args)
            if scope.kind == "location" and scope.regex is not None:
                # Inside <LocationMatch> the expression is the section's.
                args.insert(0, scope.regex)
        if scope.kind == "location" and scope.regex is None:
            raise node.error(
                "ProxyPassMatch inside <Location> is not supported; write it in the "
                "<VirtualHost> with its regular expression"
            )
        if scope.kind not in ("main", "vhost", "location"):
            raise node.error("ProxyPassMatch belongs at the top level or in a <VirtualHost>")
        if len(args) < 2:
            raise node.error("ProxyPassMatch takes regex URL [key=value ...] (or regex !)")
        pattern, target = args[0], args[1]
        if len(args) > 2:
            raise node.error(
                "ProxyPassMatch with parameters is not supported: put them on the "
                "BalancerMember lines (or use ProxyPass with a prefix)"
            )
        if scope.kind == "location":
            scope.proxies = True
        if target == "!":
            self.pending_rules.append((node, scope, 404, pattern, "-", {}, True))
            return
        self.pending_rules.append((node, scope, 0, pattern, target, {"noescape": True}, True))

    def d_rewriteoptions(self, node: Node, scope: _Scope) -> None:
        if any(a.lower().startswith("inherit") for a in node.args):
            raise node.error(
                "RewriteOptions Inherit is not supported: repeat the rules in each <VirtualHost>"
            )
        self.accept(node, "the other RewriteOptions do not change the supported rules")

    # -- TLS ------------------------------------------------------------------

    def setting(self, node: Node, scope: _Scope, name: str, value: Any) -> None:
        scope.settings[name] = (value, node)

    def d_sslengine(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        value = _one_arg(node)
        if value.lower() == "optional":
            raise node.error("SSLEngine optional (TLS upgrade) is not supported; use On or Off")
        self.setting(node, scope, "sslengine", _on_off(node, value, "SSLEngine"))

    def host_only(self, node: Node, scope: _Scope) -> None:
        if scope.kind not in ("main", "vhost"):
            raise node.error(f"{node.name} belongs at the top level or in a <VirtualHost>")

    def rewrite_scope(self, node: Node, scope: _Scope, directive: str) -> None:
        """mod_rewrite rules are taken only at the top level and in a <VirtualHost>."""
        if scope.kind not in ("main", "vhost"):
            raise node.error(
                f"{directive} in a <Location> or <Directory> (per-directory rules) is not "
                "supported; put the rules in the <VirtualHost>"
            )

    def _file(self, node: Node, scope: _Scope, name: str, *, host: bool = True) -> None:
        if host:
            self.host_only(node, scope)
        elif scope.kind == "location":
            raise node.error(f"{node.name} is not supported inside <Location>")
        self.setting(node, scope, name, resolve_path(_one_arg(node), self.base_dir(node)))

    def base_dir(self, node: Node) -> str:
        return os.path.dirname(os.path.abspath(node.file))

    def d_sslcertificatefile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "certificate")

    def d_sslcertificatekeyfile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "key")

    def d_sslcertificatechainfile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "chain")

    def d_sslprotocol(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        known = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
        enabled: set[str] = set()
        for word in node.args:
            sign = word[0] if word[:1] in "+-" else ""
            name = word[len(sign) :]
            match = [k for k in known if k.lower() == name.lower()]
            if name.lower() == "all":
                versions = set(known)
            elif match:
                versions = {match[0]}
            else:
                raise node.error(
                    f"SSLProtocol: {word!r} is not all, SSLv3, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"
                )
            if sign == "+":
                enabled |= versions
            elif sign == "-":
                enabled -= versions
            else:
                enabled = set(versions)
        protocols = tuple(p for p in TLS_PROTOCOLS if p in enabled)
        if not protocols:
            raise node.error(
                "SSLProtocol enables no TLS version twisted_lb offers (TLSv1.2, TLSv1.3)"
            )
        if enabled - set(TLS_PROTOCOLS):
            self.warn_once(
                "old-tls",
                node,
                f"SSLProtocol {' '.join(node.args)}: twisted_lb never offers "
                f"{', '.join(sorted(enabled - set(TLS_PROTOCOLS)))} (older than TLS 1.2)",
            )
        self.setting(node, scope, "protocols", protocols)

    def d_sslciphersuite(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        args = list(node.args)
        if len(args) == 2 and args[0].upper() == "SSL":
            args.pop(0)
        elif len(args) == 2 and args[0].upper() == "TLSV1.3":
            self.warn_once(
                "tls13-ciphers",
                node,
                "SSLCipherSuite TLSv1.3 …: twisted_lb uses OpenSSL's TLS 1.3 cipher suites",
            )
            return
        if len(args) != 1:
            raise node.error("SSLCipherSuite takes [SSL|TLSv1.3] cipher-string")
        self.setting(node, scope, "ciphers", args[0])

    def d_sslhonorcipherorder(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        if not _on_off(node, _one_arg(node), "SSLHonorCipherOrder"):
            self.warn(
                node,
                "SSLHonorCipherOrder off: twisted_lb always picks the cipher by the server's "
                "order (as SSLHonorCipherOrder on)",
            )

    def d_sslverifyclient(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        value = _one_arg(node).lower()
        if value not in ("none", "optional", "require", "optional_no_ca"):
            raise node.error(
                f"SSLVerifyClient {value}: use none, optional, require or optional_no_ca"
            )
        self.setting(node, scope, "client_certificates", value)

    def d_allowencodedslashes(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        value = _one_arg(node).lower()
        if value not in ("on", "off", "nodecode"):
            raise node.error(f"AllowEncodedSlashes must be On, Off or NoDecode, not {value!r}")
        # Used by the routes of this host whose ProxyPass has nocanon (see route()).
        self.setting(node, scope, "encoded_slashes", value)

    def d_protocols(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        if not node.args:
            raise node.error("Protocols takes one or more of h2, h2c, http/1.1")
        names = [a.lower() for a in node.args]
        unknown = [a for a in names if a not in ("h2", "h2c", "http/1.1", "acme-tls/1")]
        if unknown:
            raise node.error(
                f"Protocols {' '.join(unknown)}: unknown protocol (use h2, h2c, http/1.1)"
            )
        if "h2c" in names:
            self.warn(
                node,
                "Protocols h2c: twisted_lb offers HTTP/2 only over TLS (h2, by ALPN); "
                "cleartext connections speak HTTP/1.1",
            )
        # Apache speaks HTTP/2 over TLS only when Protocols lists h2 (the
        # default is http/1.1 alone): the listener's http2 setting.
        self.setting(node, scope, "http2", "h2" in names)

    def d_sslcacertificatefile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "client_ca")

    def d_sslproxycacertificatefile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "ca_file", host=False)

    def d_sslproxymachinecertificatefile(self, node: Node, scope: _Scope) -> None:
        self._file(node, scope, "client_certificate", host=False)

    def _proxy_flag(self, node: Node, scope: _Scope, name: str) -> None:
        if scope.kind == "location":
            raise node.error(f"{node.name} is not supported inside <Location>")
        self.setting(node, scope, name, _on_off(node, _one_arg(node), node.name))

    def d_sslproxyengine(self, node: Node, scope: _Scope) -> None:
        self._proxy_flag(node, scope, "sslproxyengine")

    def d_sslproxycheckpeercn(self, node: Node, scope: _Scope) -> None:
        self._proxy_flag(node, scope, "checkpeercn")

    def d_sslproxycheckpeername(self, node: Node, scope: _Scope) -> None:
        self._proxy_flag(node, scope, "checkpeername")

    def d_sslproxyverify(self, node: Node, scope: _Scope) -> None:
        if scope.kind == "location":
            raise node.error(f"{node.name} is not supported inside <Location>")
        value = _one_arg(node).lower()
        if value not in ("none", "optional", "require", "optional_no_ca"):
            raise node.error(
                f"SSLProxyVerify must be none, optional, require or optional_no_ca, not {value!r}"
            )
        self.setting(node, scope, "sslproxyverify", value)

    # -- proxy directives -----------------------------------------------------

    def one_value(self, node: Node, field: str, value: Any) -> None:
        """
        Set the proxy-wide C{field}; Apache may set it per virtual host, so
        a second, different value is an error.
        """
        if field in self.top_level and self.top_level[field] != value:
            first = self.top_value_nodes[field]
            raise node.error(
                f"{node.name} differs from {first.name} at {self.where(first)}; twisted_lb has "
                "one value for the whole proxy"
            )
        self.top_level[field] = value
        self.top_value_nodes.setdefault(field, node)

    def d_traceenable(self, node: Node, scope: _Scope) -> None:
        value = _one_arg(node).lower()
        if value == "extended":
            raise node.error(
                "TraceEnable extended (TRACE with a body) is not supported; use On or Off"
            )
        self.one_value(node, "allow_trace", _on_off(node, value, "TraceEnable"))

    def d_proxyaddheaders(self, node: Node, scope: _Scope) -> None:
        self.one_value(node, "x_forwarded", _on_off(node, _one_arg(node), "ProxyAddHeaders"))

    def d_limitrequestbody(self, node: Node, scope: _Scope) -> None:
        size = _number(node, "LimitRequestBody", _one_arg(node), integer=True)
        if size < 0:
            raise node.error("LimitRequestBody must be 0 (no limit) or a number of bytes")
        self.one_value(node, "max_body_bytes", size)

    def d_servername(self, node: Node, scope: _Scope) -> None:
        # ServerName [scheme://]domain-name|ip-address[:port]: in a <VirtualHost>
        # the name it serves; anywhere, the host of requests without a Host
        # header (a virtual host without one inherits the main server's).
        self.host_only(node, scope)
        value = _one_arg(node)
        name = _host_of_name(node, value)
        if scope.kind == "vhost":
            self.setting(node, scope, "vhost_name", name)
        self.setting(node, scope, "servername", value.partition("://")[2] or value)

    def d_serveralias(self, node: Node, scope: _Scope) -> None:
        if scope.kind != "vhost":
            raise node.error("ServerAlias belongs in a <VirtualHost>")
        if not node.args:
            raise node.error("ServerAlias needs one or more names")
        scope.aliases += [_host_of_name(node, name) for name in node.args]

    def d_proxyhcexpr(self, node: Node, scope: _Scope) -> None:
        if len(node.args) < 2:
            raise node.error("ProxyHCExpr takes a name and an {expression}")
        name = node.args[0]
        text = " ".join(node.args[1:]).strip()
        if not (text.startswith("{") and text.endswith("}")):
            raise node.error(
                "ProxyHCExpr: the expression goes in braces: {%{REQUEST_STATUS} =~ /^[234]/}"
            )
        try:
            self.hc_exprs[name] = _status_ranges(text[1:-1].strip())
        except ValueError as e:
            raise node.error(f"ProxyHCExpr {name}: {e}") from None

    def d_header(self, node: Node, scope: _Scope) -> None:
        self.header_edit(node, scope, request=False)

    def d_requestheader(self, node: Node, scope: _Scope) -> None:
        self.header_edit(node, scope, request=True)

    def header_edit(self, node: Node, scope: _Scope, *, request: bool) -> None:
        """
        C{Header [always|onsuccess] action name [value [replacement]] [env=[!]VAR]}
        and C{RequestHeader action name [value [replacement]] [env=[!]VAR]}.
        """
        args = list(node.args)
        always = False
        if not request and args and args[0].lower() in ("always", "onsuccess"):
            always = args.pop(0).lower() == "always"
        if not args:
            raise node.error(f"{node.name} needs an action and a header name")
        action = args.pop(0).lower()
        if action in ("echo", "note"):
            raise node.error(
                f"{node.name} {action} is not supported; twisted_lb does not copy request "
                "headers into responses or notes"
            )
        if action not in HEADER_ACTIONS:
            raise node.error(
                f"{node.name}: {action!r} is not one of {', '.join(sorted(HEADER_ACTIONS))}"
            )
        if not args:
            raise node.error(f"{node.name} {action} needs a header name")
        name = args.pop(0)
        wanted = {"unset": 0, "edit": 2, "edit*": 2}.get(action, 1)
        values = args[:wanted]
        rest = args[wanted:]
        if len(values) < wanted:
            raise node.error(
                f"{node.name} {action} {name} needs "
                + ("a regular expression and a replacement" if wanted == 2 else "a value")
            )
        condition, negate = None, False
        if len(rest) > 1:
            raise node.error(f"{node.name}: too many arguments ({' '.join(rest)})")
        if rest:
            extra = rest[0]
            if extra.lower().startswith("env="):
                condition = extra[4:]
                negate = condition.startswith("!")
                condition = condition.lstrip("!")
            elif extra.lower() == "early":
                raise node.error(f"{node.name} … early is not supported; remove 'early'")
            elif extra.lower().startswith("expr="):
                raise node.error(
                    f"{node.name} … expr= conditions are not supported; use env=BALANCER_… "
                    "or remove the condition"
                )
            else:
                raise node.error(f"{node.name}: unexpected argument {extra!r}")
        for i, v in enumerate(values):
            if v.lower().startswith("expr="):
                match = re.fullmatch(r"%\{(HTTPS|REQUEST_SCHEME)\}", v[5:].strip(), re.I)
                if match is None:
                    raise node.error(
                        f"{node.name}: expr= values are not supported, except "
                        "expr=%{REQUEST_SCHEME} and expr=%{HTTPS}; give a plain value"
                    )
                values[i] = "%{" + match.group(1).upper() + "}e"
        text = " ".join(values)
        if request and ((condition or "").startswith("BALANCER_") or "%{BALANCER_" in text):
            raise node.error(
                f"{node.name}: Apache edits request headers before it picks a member, so "
                "BALANCER_* variables are not set there (and env= conditions on them never hold)"
            )
        try:
            edit = HeaderEdit(
                action,
                name,
                values[0] if values else "",
                values[1] if len(values) > 1 else "",
                always=always,
                condition=condition,
                negate=negate,
            )
        except ValueError as e:
            raise node.error(f"{node.name}: {e}") from None
        scope.headers.append((node, request, edit))

    def d_proxyvia(self, node: Node, scope: _Scope) -> None:
        """
        C{ProxyVia On|Full} appends this proxy to C{Via} of requests and
        answers, C{Block} removes C{Via} from requests: header edits of the
        scope, as Apache's mod_proxy makes them.
        """
        self.host_only(node, scope)
        value = _one_arg(node).lower()
        if value not in ("off", "on", "full", "block"):
            raise node.error(f"ProxyVia must be Off, On, Full or Block, not {_one_arg(node)!r}")
        if value == "off":
            return
        if value == "block":
            scope.headers.append((node, True, HeaderEdit("unset", "Via")))
            return
        found = scope.get("servername")
        name = found[0] if found is not None else socket.gethostname()
        via = f"1.1 {name}" + (" (twisted_lb)" if value == "full" else "")
        scope.headers.append((node, True, HeaderEdit("append", "Via", via)))
        scope.headers.append((node, False, HeaderEdit("append", "Via", via, always=True)))

    def access_of(self, node: Node, scope: _Scope, *, require: bool) -> _Access:
        if scope.kind not in ("proxy", "proxyurl", "location"):
            raise node.error(
                f"{node.name} belongs in a <Location> or <Proxy> section (Apache allows it in "
                "directory sections only)"
            )
        access = scope.access
        if access is None:
            access = scope.access = _Access(node)
        return access

    def d_require(self, node: Node, scope: _Scope) -> None:
        args = [a.lower() for a in node.args]
        if not args:
            raise node.error("Require needs a provider: all, ip, host or local")
        kind, rest = args[0], node.args[1:]
        if kind == "not":
            raise node.error(
                "Require not … is not supported; list the addresses that may pass with Require ip"
            )
        if kind in ("valid-user", "user"):
            if kind == "user" and not rest:
                raise node.error("Require user needs one or more user names")
            access = self.access_of(node, scope, require=True)
            access.users = [*(access.users or []), *rest]
            return
        if kind in ("group", "file-owner", "file-group"):
            raise node.error(
                f"Require {kind} is not supported: list the users (Require user …) or use "
                "Require valid-user"
            )
        if kind == "all":
            if len(rest) == 1 and rest[0].lower() in ("granted", "denied"):
                entries = ["all"] if rest[0].lower() == "granted" else []
            else:
                raise node.error("Require all takes granted or denied")
        elif kind == "local":
            entries = ["local"]
        elif kind == "ip":
            if not rest:
                raise node.error("Require ip needs one or more addresses or networks")
            entries = list(rest)
        elif kind == "host":
            if [r.lower() for r in rest] != ["localhost"]:
                raise node.error(
                    "Require host needs a reverse DNS lookup of every client, which twisted_lb "
                    "does not do: use Require ip with the addresses (Require host localhost "
                    "is accepted as Require local)"
                )
            entries = ["local"]
        else:
            raise node.error(
                f"Require {node.args[0]} is not supported: twisted_lb checks Require all, ip, "
                "local and host localhost"
            )
        for entry in entries:
            try:
                parse_network(entry)
            except ValueError as e:
                raise node.error(f"Require {kind}: {e}") from None
        access = self.access_of(node, scope, require=True)
        access.require = [*(access.require or []), *entries]

    def auth_setting(self, node: Node, scope: _Scope) -> None:
        if scope.kind not in ("proxy", "proxyurl", "location"):
            raise node.error(f"{node.name} belongs in a <Location> or <Proxy> section")

    def d_authtype(self, node: Node, scope: _Scope) -> None:
        self.auth_setting(node, scope)
        value = _one_arg(node).lower()
        if value not in ("basic", "none"):
            raise node.error(f"AuthType {_one_arg(node)} is not supported (Basic is)")
        self.setting(node, scope, "authtype", value)

    def d_authname(self, node: Node, scope: _Scope) -> None:
        self.auth_setting(node, scope)
        self.setting(node, scope, "authname", _one_arg(node))

    def d_authbasicprovider(self, node: Node, scope: _Scope) -> None:
        self.auth_setting(node, scope)
        if [a.lower() for a in node.args] != ["file"]:
            raise node.error(
                f"AuthBasicProvider {' '.join(node.args)} is not supported (file, with "
                "AuthUserFile, is)"
            )

    def d_authuserfile(self, node: Node, scope: _Scope) -> None:
        self.auth_setting(node, scope)
        path = resolve_path(_one_arg(node), self.base_dir(node))
        try:
            read_htpasswd(path)
        except OSError as e:
            raise node.error(f"AuthUserFile {path}: cannot be read ({e.strerror or e})") from None
        except ValueError as e:
            raise node.error(f"AuthUserFile: {e}") from None
        self.setting(node, scope, "authuserfile", path)

    def d_order(self, node: Node, scope: _Scope) -> None:
        value = "".join(node.args).lower().replace(" ", "")
        if value not in ("deny,allow", "allow,deny"):
            raise node.error(
                f"Order {' '.join(node.args)}: twisted_lb supports Order deny,allow and "
                "Order allow,deny (mutual-failure is not supported)"
            )
        self.access_of(node, scope, require=False).order = value

    def _allow_deny(self, node: Node, scope: _Scope, which: str) -> None:
        args = list(node.args)
        if len(args) < 2 or args[0].lower() != "from":
            raise node.error(f"{node.name} takes from and addresses: {node.name} from 10.0.0.0/8")
        entries = args[1:]
        for entry in entries:
            if entry.lower().startswith("env="):
                raise node.error(f"{node.name} from env=… is not supported")
            try:
                parse_network(entry)
            except ValueError:
                raise node.error(
                    f"{node.name} from {entry}: host names need a reverse DNS lookup of every "
                    "client, which twisted_lb does not do; give addresses or networks"
                ) from None
        access = self.access_of(node, scope, require=False)
        getattr(access, which).extend(entries)

    def d_allow(self, node: Node, scope: _Scope) -> None:
        self._allow_deny(node, scope, "allow")

    def d_deny(self, node: Node, scope: _Scope) -> None:
        self._allow_deny(node, scope, "deny")

    def d_requireany(self, node: Node, scope: _Scope) -> None:
        # Require lines in one section already combine as "any".
        self.walk(node.children or [], scope)

    def d_proxyrequests(self, node: Node, scope: _Scope) -> None:
        if _on_off(node, _one_arg(node), "ProxyRequests"):
            raise node.error(
                "ProxyRequests On makes Apache a forward proxy; twisted_lb is never a forward "
                "proxy (it is a reverse proxy only) — remove the line or set ProxyRequests Off"
            )

    def d_proxypreservehost(self, node: Node, scope: _Scope) -> None:
        if scope.kind == "proxy":
            raise node.error("ProxyPreserveHost is not supported inside <Proxy>")
        self.setting(node, scope, "preserve_host", _on_off(node, _one_arg(node), node.name))

    def d_proxytimeout(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        seconds = _number(node, "ProxyTimeout", _one_arg(node))
        if self.timeout is not None and self.timeout[0] != seconds:
            self.warn(
                node,
                f"ProxyTimeout {_one_arg(node)} replaces ProxyTimeout {self.timeout[0]:g} "
                f"({self.where(self.timeout[1])}): twisted_lb has one ProxyTimeout for all "
                "listeners",
            )
        self.timeout = (seconds, node)

    def d_timeout(self, node: Node, scope: _Scope) -> None:
        self.host_only(node, scope)
        self.server_timeout = _number(node, "Timeout", _one_arg(node))

    def d_proxypass(self, node: Node, scope: _Scope) -> None:
        args = list(node.args)
        if scope.kind == "proxy":
            raise node.error("ProxyPass is not allowed inside <Proxy>")
        if scope.kind == "location":
            if not args or args[0].startswith("/"):
                raise node.error(
                    "ProxyPass inside <Location> takes the URL only (the path is the location's)"
                )
            if scope.regex is not None:
                # Apache reads it as ProxyPassMatch with the section's expression.
                self.d_proxypassmatch(node, scope, [scope.regex, *args])
                return
            assert scope.location is not None
            args.insert(0, scope.location)
        if len(args) < 2:
            raise node.error("ProxyPass takes /path URL [key=value ...] (or /path !)")
        path, target = args[0], args[1]
        if not path.startswith("/"):
            raise node.error(
                f"ProxyPass {path}: the path must start with '/' (ProxyPassMatch and "
                "wildcards are not supported)"
            )
        rest = args[2:]
        nocanon = False
        for flag in [a for a in rest if "=" not in a]:
            if flag.lower() == "nocanon":
                # twisted_lb passes the path on as the client sent it (after refusing
                # dot segments), which is what nocanon asks for; with the host's
                # AllowEncodedSlashes On or NoDecode, %2F is passed on too.
                rest.remove(flag)
                nocanon = True
            else:
                raise node.error(
                    f"ProxyPass … {flag}: the flag is not supported by twisted_lb (nocanon is; "
                    "interpolate and noquery are not)"
                )
        params = _params(node, rest)
        if target == "!" and params:
            raise node.error("ProxyPass /path ! takes no parameters")
        p = _Pass(node, path, target, params, scope, nocanon)
        self.passes.append(p)
        scope.host.passes.append(p)

    def d_proxypassreverse(self, node: Node, scope: _Scope) -> None:
        args = list(node.args)
        if scope.kind == "proxy":
            raise node.error("ProxyPassReverse is not allowed inside <Proxy>")
        if scope.kind == "location" and len(args) == 1:
            assert scope.location is not None
            args.insert(0, scope.location)
        if len(args) == 3 and args[2].lower() == "interpolate":
            raise node.error("ProxyPassReverse ... interpolate is not supported")
        if len(args) != 2:
            raise node.error("ProxyPassReverse takes /path URL")
        self.reverses.append((node, args[0], args[1]))

    def _cookie(self, node: Node, scope: _Scope, kind: str) -> None:
        if scope.kind == "proxy":
            raise node.error(f"{node.name} is not allowed inside <Proxy>")
        if len(node.args) == 3 and node.args[2].lower() == "interpolate":
            raise node.error(f"{node.name} ... interpolate is not supported")
        if len(node.args) != 2:
            raise node.error(f"{node.name} takes internal public")
        self.cookies.append((node, kind, node.args[0], node.args[1], scope))

    def d_proxypassreversecookiepath(self, node: Node, scope: _Scope) -> None:
        self._cookie(node, scope, "cookie_path")

    def d_proxypassreversecookiedomain(self, node: Node, scope: _Scope) -> None:
        self._cookie(node, scope, "cookie_domain")

    def d_balancermember(self, node: Node, scope: _Scope) -> None:
        args = list(node.args)
        if scope.kind == "proxy":
            assert scope.location is not None
            balancer = self.balancers[scope.location]
        else:
            if scope.kind == "location" or not args or _balancer_name(args[0]) is None:
                raise node.error(
                    "BalancerMember belongs inside <Proxy balancer://name>, or takes the "
                    "balancer URL first: BalancerMember balancer://name URL ..."
                )
            parsed = _balancer_name(args.pop(0))
            assert parsed is not None
            balancer = self.balancer(node, parsed[0], scope)
        if not args:
            raise node.error("BalancerMember needs the member's URL")
        balancer.members.append((node, args[0], _params(node, args[1:]), scope))

    def d_proxyset(self, node: Node, scope: _Scope) -> None:
        args = list(node.args)
        if scope.kind == "proxy":
            assert scope.location is not None
            balancer = self.balancers[scope.location]
        else:
            parsed = _balancer_name(args[0]) if args else None
            if scope.kind == "location" or parsed is None:
                raise node.error(
                    "ProxySet outside <Proxy balancer://name> must name a balancer URL first; "
                    "ProxySet on a member URL is not supported (use BalancerMember parameters)"
                )
            args.pop(0)
            balancer = self.balancer(node, parsed[0], scope)
        params = _params(node, args)
        if not params:
            raise node.error("ProxySet takes key=value parameters")
        self.balancer_params(node, balancer, params, "ProxySet")

    def balancer_params(
        self, node: Node, balancer: _Balancer, params: list[tuple[str, str]], what: str
    ) -> None:
        for key, value in params:
            if key in _MEMBER_PARAMS and key not in _BALANCER_PARAMS:
                raise node.error(
                    f"{what}: {key!r} is a member parameter; Apache rejects it for a balancer "
                    "too — put it on the BalancerMember lines"
                )
            if key not in _BALANCER_PARAMS:
                raise node.error(
                    f"{what}: balancer parameter {key!r} is not supported by twisted_lb (see "
                    "docs/migrating-from-apache.md)"
                )
            if key == "scolonpathdelim":
                if not _on_off(node, value, "scolonpathdelim"):
                    self.warn_once(
                        "scolonpathdelim",
                        node,
                        f"{what} scolonpathdelim=Off: twisted_lb always ends a ;jsessionid= "
                        "path parameter at the next ';' (as scolonpathdelim=On)",
                    )
                continue
            if key == "timeout":
                self.warn(
                    node,
                    f"{what} timeout={value}: Apache waits that long for a free member of "
                    f"balancer://{balancer.name}; twisted_lb does not queue requests and "
                    "answers 503 at once when no member is usable, so this is not used "
                    "(members' answer timeouts come from ProxyTimeout and timeout=)",
                )
                _number(node, "timeout", value)
                continue
            balancer.settings[key] = (value, node)

    # -- building the model -------------------------------------------------

    def read(self) -> tuple[ProxyConfig, list[str]]:
        syntax: list[tuple[str, int, str]] = []
        nodes = parse_file(self.path, syntax)
        for file, line, message in syntax:
            self.warnings.append(f"{self.where(Node(file, line, '', []))}: {message}")
        for i, n in enumerate(_all_nodes(nodes)):
            self.order.setdefault((n.file, n.where), i)
        if not _any_node(nodes, "loadmodule"):
            self.modules = None
        self.walk(nodes, self.main)
        admin = self.admin()
        if admin is not None:
            self.top_level["admin"] = admin
        self.warnings.extend(self.accepted_warnings())
        timeout = (
            self.timeout[0]
            if self.timeout
            else self.server_timeout
            if self.server_timeout is not None
            else 300.0
        )
        if timeout <= 0:
            node = self.timeout[1] if self.timeout else None
            self.errors.append(
                ConfigError(self.path, node.where if node else "timeout", "must be > 0")
            )
            timeout = 300.0
        self.default_timeout = float(timeout)
        balancers: dict[str, BalancerConfig] = {}
        for b in self.balancers.values():
            try:
                balancers[b.name] = self.build_balancer(b)
            except _Reported:
                self.broken.add(b.name)
            except ConfigError as e:
                self.broken.add(b.name)
                self.fail(b.node, e)
        routes = self.build_routes(balancers)
        rules = self.build_rules(balancers, routes)
        listeners = self.build_listeners()
        unrouted = self.build_unrouted()
        self.check_reverses()
        if self.errors:
            errors = sorted(
                self.errors, key=lambda e: self.order.get((e.source, e.key), len(self.order))
            )
            raise ConfigErrors(errors, self.warnings)
        limits: dict[str, Any] = {}
        if "max_body_bytes" in self.top_level:
            limits["limits"] = LimitsConfig(max_body_bytes=self.top_level.pop("max_body_bytes"))
        config = build(
            ProxyConfig,
            {
                "listeners": tuple(listeners),
                "balancers": tuple(balancers.values()),
                "routes": tuple(routes),
                "rules": tuple(rules),
                "unrouted": unrouted,
                "source": self.path,
                "timeout": float(timeout),
                **self.top_level,
                **limits,
            },
            lambda field, problem: ConfigError(self.path, field or "config", problem),
        )
        return config, self.warnings

    def member(
        self, node: Node, url: str, params: list[tuple[str, str]], scope: _Scope
    ) -> MemberConfig:
        kwargs: dict[str, Any] = {"url": url, "timeout": self.default_timeout}
        scheme = urlsplit(url).scheme.lower()
        health: dict[str, str] = {}
        for key, value in params:
            if key in _HEALTH_PARAMS:
                health[key] = value
                continue
            if key in _MEMBER_PARAMS_WITHOUT_EFFECT:
                self.warn_once(
                    ("param", key),
                    node,
                    f"{node.name} … {key}={value}: accepted without effect: "
                    f"{_MEMBER_PARAMS_WITHOUT_EFFECT[key]}",
                )
                continue
            if key not in _MEMBER_PARAMS:
                raise node.error(
                    f"{node.name}: parameter {key!r} is not supported by twisted_lb (see "
                    "docs/migrating-from-apache.md)"
                )
            field = _MEMBER_PARAMS[key]
            if key in ("route", "secret"):
                kwargs[field] = value
            elif key == "status":
                kwargs[field] = self.status(node, value)
            elif key in ("lbset", "max", "iobuffersize"):
                kwargs[field] = _number(node, key, value, integer=True)
            else:
                kwargs[field] = _number(node, key, value, ms=key in ("connectiontimeout", "ping"))
        if scheme in ("https", "wss"):
            kwargs["tls"] = self.backend_tls(node, scope)
        if health:
            check = self.health_check(node, health)
            if check is not None:
                kwargs["health"] = check

        def fail(field: str | None, problem: str) -> ConfigError:
            return node.error(problem)

        return build(MemberConfig, kwargs, fail)

    def health_check(self, node: Node, params: dict[str, str]) -> HealthCheckConfig | None:
        """
        A member's health check from mod_proxy_hcheck's parameters, with
        Apache's defaults (C{hcinterval=30}, C{hcpasses=1}, C{hcfails=1}).
        """
        method = params.get("hcmethod", "none").lower()
        if method == "none":
            self.warn(
                node,
                "hc* parameters without hcmethod: Apache runs no health check for this member, "
                "and neither does twisted_lb",
            )
            return None
        if method not in _HC_METHODS:
            raise node.error(
                f"hcmethod={params['hcmethod']}: not one of None, TCP, CPING, OPTIONS, HEAD, GET "
                "(or OPTIONS11, HEAD11, GET11)"
            )
        kind, http_method = _HC_METHODS[method]
        kwargs: dict[str, Any] = {
            "kind": HealthCheckKind(kind),
            "method": http_method,
            "interval": _number(node, "hcinterval", params.get("hcinterval", "30")),
            "passes": _number(node, "hcpasses", params.get("hcpasses", "1"), integer=True),
            "fails": _number(node, "hcfails", params.get("hcfails", "1"), integer=True),
        }
        if kind == "http":
            kwargs["path"] = params.get("hcuri", "/")
            if "hcexpr" in params:
                name = params["hcexpr"]
                if name not in self.hc_exprs:
                    raise node.error(f"hcexpr={name}: no ProxyHCExpr {name} {{…}} defines it")
                kwargs["expect"] = self.hc_exprs[name]
        elif "hcexpr" in params:
            raise node.error(
                f"hcexpr is only used by HTTP checks, not hcmethod={params['hcmethod']}"
            )
        elif "hcuri" in params:
            raise node.error(
                f"hcuri is only used by HTTP checks, not hcmethod={params['hcmethod']}"
            )

        def fail(field: str | None, problem: str) -> ConfigError:
            return node.error(problem)

        return build(HealthCheckConfig, kwargs, fail)

    def status(self, node: Node, value: str) -> MemberState:
        flags: set[str] = set()
        adding = True
        for c in value.upper():
            if c in "+-":
                adding = c == "+"
                continue
            if c not in _STATUS_FLAGS:
                raise node.error(f"status={value}: unknown flag {c!r}")
            if adding and c in "EIRC":
                raise node.error(
                    f"status={value}: +{c} ({_STATUS_FLAGS[c]}) is not supported by "
                    "twisted_lb: "
                    + {
                        "E": "the error state comes from failures and health probes, it is "
                        "not configured",
                        "I": "a failing member is always taken out of rotation",
                        "R": "there are no hot spares; use +H (standby) or lbset",
                        "C": "the health-check state is set by the probes",
                    }[c]
                )
            if adding:
                flags.add(c)
            else:
                flags.discard(c)
        if flags & {"D", "S"}:
            return MemberState.DISABLED
        if "N" in flags:
            return MemberState.DRAINING
        if "H" in flags:
            return MemberState.STANDBY
        return MemberState.ACTIVE

    def backend_tls(self, node: Node, scope: _Scope) -> BackendTLSConfig:
        peer_cn = scope.value("checkpeercn")
        peer_name = scope.value("checkpeername")
        verify_mode = scope.value("sslproxyverify")
        if scope.value("sslproxyengine") is not True:
            self.warn_once(
                ("engine", id(scope.host)),
                node,
                "an https:// or wss:// member is used without SSLProxyEngine On; Apache would "
                "refuse to connect to it, twisted_lb connects with TLS",
            )
        if peer_cn is False or peer_name is False or verify_mode in ("none", "optional_no_ca"):
            verify = False
        else:
            verify = True
            if verify_mode is None:
                self.warn_once(
                    ("verify", id(scope.host)),
                    node,
                    "no SSLProxyVerify, SSLProxyCheckPeerName or SSLProxyCheckPeerCN is set: "
                    "Apache would not have verified the members' certificate chain "
                    "(SSLProxyVerify none is its default); twisted_lb verifies chain and host "
                    "name — add SSLProxyVerify none (or tls.verify = false) for self-signed "
                    "members",
                )
        return BackendTLSConfig(
            verify=verify,
            ca_file=scope.value("ca_file"),
            client_certificate=scope.value("client_certificate"),
        )

    def warn_once(self, key: Any, node: Node, message: str) -> None:
        seen = self.__dict__.setdefault("_warned", set())
        if key not in seen:
            seen.add(key)
            self.warn(node, message)

    def build_balancer(self, b: _Balancer) -> BalancerConfig:
        built = []
        failed = False
        for node, url, params, scope in b.members:
            try:
                built.append(self.member(node, url, params, scope))
            except ConfigError as e:
                self.fail(node, e)
                failed = True
        if failed:
            raise _Reported()
        members = tuple(built)
        if not members:
            raise b.node.error(f"balancer://{b.name} has no BalancerMember")
        kwargs: dict[str, Any] = {"name": b.name, "members": members, "sticky": None}
        settings = b.settings
        if "lbmethod" in settings:
            value, node = settings["lbmethod"]
            try:
                kwargs["lbmethod"] = LBMethodName(value.lower())
            except ValueError:
                raise node.error(
                    f"lbmethod={value} is not supported; use byrequests, bybusyness or bytraffic"
                ) from None
        if "stickysession" in settings:
            value, node = settings["stickysession"]
            separator = "."
            if "stickysessionsep" in settings:
                separator, node = settings["stickysessionsep"]
            try:
                kwargs["sticky"] = StickySessionConfig.from_apache(value, separator)
            except ValueError as e:
                raise node.error(str(e)) from None
        elif "stickysessionsep" in settings:
            self.warn(
                settings["stickysessionsep"][1],
                "stickysessionsep without stickysession: sessions are not sticky",
            )
        if "nofailover" in settings:
            value, node = settings["nofailover"]
            kwargs["nofailover"] = _on_off(node, value, "nofailover")
        if "maxattempts" in settings:
            value, node = settings["maxattempts"]
            kwargs["maxattempts"] = _number(node, "maxattempts", value, integer=True)

        def fail(field: str | None, problem: str) -> ConfigError:
            setting = {"maxattempts": "maxattempts"}.get(field or "")
            node = settings[setting][1] if setting in settings else b.node
            return node.error(problem)

        return build(BalancerConfig, kwargs, fail)

    def build_routes(self, balancers: dict[str, BalancerConfig]) -> list[RouteConfig]:
        routes: dict[tuple[str, tuple[str, ...]], tuple[RouteConfig, Node]] = {}
        for p in self.passes:
            try:
                route = self.with_hosts(self.route(p, balancers), p)
            except _Reported:
                continue
            except ConfigError as e:
                self.fail(p.node, e)
                continue
            if (route.path, route.hosts) in routes:
                other, other_node = routes[route.path, route.hosts]
                if other_node is p.node:
                    continue
                if other == route and p.scope.host is not self.passes_scope(other_node):
                    continue
                self.fail(
                    p.node,
                    p.node.error(
                        f"ProxyPass {route.path} is mapped a second time (first at "
                        f"{self.where(other_node)}); Apache would only use the first"
                        if p.scope.host is self.passes_scope(other_node)
                        else f"ProxyPass {route.path} maps the path differently from "
                        f"{self.where(other_node)}; twisted_lb routes the same way on every listener"
                    ),
                )
                continue
            routes[route.path, route.hosts] = (route, p.node)
        self.check_shadowing()
        self.check_defaults_across_ports()
        out = []
        self.route_paths = {path for path, _ in routes}
        for r, node in routes.values():
            try:
                out.append(self.with_headers(self.with_cookies(r, node), node))
            except ConfigError as e:
                self.fail(node, e)
        self.check_header_scopes(out)
        return out

    def with_headers(self, route: RouteConfig, node: Node) -> RouteConfig:
        """
        C{route} with the Header and RequestHeader edits that apply to it,
        in Apache's order: the main server, the virtual host, the <Proxy>
        of its balancer, then the <Location> sections that contain it.
        """
        owner = next(p for p in self.passes if p.node is node)
        scopes = [self.main]
        if owner.scope.host is not self.main:
            scopes.append(owner.scope.host)
        scopes += self.proxy_sections_for(owner)
        scopes += [
            loc
            for loc in self.location_scopes
            if loc.host in (self.main, owner.scope.host)
            and loc.location is not None
            and (loc.location == route.path or _covers(loc.location, route.path))
        ]
        edits = [(request, edit) for scope in scopes for _, request, edit in scope.headers]
        access, auth = self.access_rules(route, owner)
        if not edits and not access:
            return route
        return attrs.evolve(
            route,
            request_headers=tuple(e for request, e in edits if request),
            response_headers=tuple(e for request, e in edits if not request),
            access=access,
            auth=auth if any(a.user_file for a in auth) else (),
        )

    def proxy_sections_for(self, owner: _Pass) -> list[_Scope]:
        """The <Proxy> sections whose URL matches what C{owner} proxies to, in file order."""
        target = owner.target.lower()
        out = []
        for section in self.proxy_sections:
            if section.host not in (self.main, owner.scope.host) or target == "!":
                continue
            assert section.location is not None
            url = section.location.lower()
            if section.kind == "proxy":
                parsed = _balancer_name(owner.target)
                if parsed is not None and parsed[0] == section.location:
                    out.append(section)
            elif url == "*" or (
                _balancer_name(owner.target) is None and target.startswith(url.rstrip("*"))
            ):
                out.append(section)
        return out

    def access_rules(
        self, route: RouteConfig, owner: _Pass
    ) -> tuple[tuple[AccessRule, ...], tuple[AuthRule, ...]]:
        """
        C{route}'s access and login rules in Apache's merge order: its
        <Proxy> sections, then the <Location>s that contain it or lie inside
        it (one of each per section, so that a later section decides both).
        """
        rules: list[AccessRule] = []
        auth: list[AuthRule] = []
        for section in self.proxy_sections_for(owner):
            if section.access is not None:
                rules.append(section.access.rule(route.path))
                auth.append(section.access.auth_rule(route.path, section))
        for loc in self.location_scopes:
            if loc.access is None or loc.host not in (self.main, owner.scope.host):
                continue
            assert loc.location is not None
            if loc.location == route.path or _covers(loc.location, route.path):
                rules.append(loc.access.rule(route.path))
                auth.append(loc.access.auth_rule(route.path, loc))
            elif _covers(route.path, loc.location) and not any(
                len(other) > len(route.path)
                and (other == loc.location or _covers(other, loc.location))
                for other in self.route_paths
            ):
                rules.append(loc.access.rule(loc.location))
                auth.append(loc.access.auth_rule(loc.location, loc))
        return tuple(rules), tuple(auth)

    def check_header_scopes(self, routes: list[RouteConfig]) -> None:
        """
        Header lines in a <Location> that covers only part of a route are
        refused; those of a virtual host without routes get a warning.
        """
        proxying_hosts = {
            id(scope.host) for _, scope, status, *_ in self.pending_rules if status == 0
        }
        for vhost in self.vhosts:
            if vhost.headers and not vhost.passes and id(vhost) not in proxying_hosts:
                node = vhost.headers[0][0]
                self.warn(
                    node,
                    f"{node.name} in a <VirtualHost> that proxies nothing is not used "
                    "(twisted_lb's redirect listeners add no headers)",
                )
        paths = {r.path for r in routes}
        for loc in self.location_scopes:
            if not loc.headers or loc.location in paths or loc.proxies:
                continue
            assert loc.location is not None
            wider = [p for p in paths if _covers(p, loc.location)]
            node = loc.headers[0][0]
            if wider:
                self.fail(
                    node,
                    node.error(
                        f"{node.name} in <Location {loc.location}> would apply to part of the "
                        f"route {max(wider, key=len)} only; twisted_lb edits headers per route: "
                        f"add ProxyPass {loc.location} … for that path, or move the line"
                    ),
                )
            elif not any(_covers(loc.location, p) for p in paths):
                self.warn(node, f"{node.name} in <Location {loc.location}>: no route uses it")

    def passes_scope(self, node: Node) -> _Scope:
        for p in self.passes:
            if p.node is node:
                return p.scope.host
        raise AssertionError(node)

    def route(self, p: _Pass, balancers: dict[str, BalancerConfig]) -> RouteConfig:
        preserve = bool(p.scope.value("preserve_host", False))
        kwargs: dict[str, Any] = {"path": p.path, "balancer": None, "preserve_host": preserve}
        # Apache passes %2F on as written only with nocanon and the host's
        # AllowEncodedSlashes On or NoDecode (a virtual host's own, else the
        # main server's, as Apache 2.4 merges it).
        slashes = p.scope.host.get("encoded_slashes")
        if p.nocanon and p.target != "!" and slashes is not None and slashes[0] != "off":
            kwargs["encoded_slashes"] = True
        if p.target == "!":
            pass
        elif (parsed := _balancer_name(p.target)) is not None:
            name, path = parsed
            if name in self.broken:
                raise _Reported()
            if name not in balancers:
                raise p.node.error(
                    f"ProxyPass {p.path} names balancer://{name}, which no <Proxy "
                    f"balancer://{name}> defines"
                )
            self.balancer_params(p.node, self.balancers[name], p.params, "ProxyPass")
            if p.params:
                balancers[name] = self.build_balancer(self.balancers[name])
            kwargs["balancer"] = name
            kwargs["target_path"] = path
        else:
            kwargs["balancer"], kwargs["target_path"] = self.implicit(p, balancers)

        def fail(field: str | None, problem: str) -> ConfigError:
            return p.node.error(problem)

        return build(RouteConfig, kwargs, fail)

    def implicit(self, p: _Pass, balancers: dict[str, BalancerConfig]) -> tuple[str, str]:
        parts = urlsplit(p.target)
        scheme = parts.scheme.lower()
        if scheme not in MEMBER_SCHEMES:
            raise p.node.error(
                f"ProxyPass {p.path} {p.target}: scheme {scheme!r} is not supported "
                f"(use balancer:// or one of {', '.join(MEMBER_SCHEMES)})"
            )
        for key, _ in p.params:
            if key in _BALANCER_PARAMS and key not in _MEMBER_PARAMS:
                raise p.node.error(
                    f"ProxyPass: {key!r} is a balancer parameter; Apache rejects it for a "
                    "direct URL too"
                )
        if parts.query or parts.fragment:
            raise p.node.error(f"ProxyPass {p.target}: a target URL takes no query or fragment")
        member = self.member(p.node, f"{scheme}://{parts.netloc}", p.params, p.scope)
        base = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{scheme}-{parts.netloc}").strip("-")
        name, n = base, 1
        while name in balancers:
            existing = balancers[name]
            if existing.members == (member,) and name not in self.balancers:
                break
            n += 1
            name = f"{base}-{n}"
        else:
            balancers[name] = BalancerConfig(name=name, members=(member,), sticky=None)
        return name, parts.path

    def check_defaults_across_ports(self) -> None:
        """
        With name-based virtual hosts, twisted_lb chooses by name on every
        port; say so when two ports each have a proxying first host (Apache
        would send other names to each port's own first host).
        """
        if not self.name_based:
            return
        defaults: list[_Scope] = []
        for group in self.vhost_groups().values():
            first = group[0][0]
            if first.passes and all(first is not d for d in defaults):
                defaults.append(first)
        if len(defaults) > 1:
            nodes = [d.node for d in defaults if d.node is not None]
            self.warn(
                nodes[1],
                "this <VirtualHost> and the one at "
                f"{self.where(nodes[0])} are each the first on their port; twisted_lb chooses "
                "virtual hosts by name on every port, so a name neither lists reaches the "
                "routes of both (the first file's route wins on the same path), where Apache "
                "would use the first host of the port the request came to",
            )

    def check_shadowing(self) -> None:
        """
        Warn about rules Apache would never use, by its own precedence:
        ProxyPass inside <Location> first, where the last matching
        <Location> wins; then the other ProxyPass lines in file order, the
        first match winning. twisted_lb uses the longest prefix instead.
        """
        for host in [self.main, *self.vhosts]:
            located = [p for p in host.passes if p.scope.kind == "location"]
            plain = [p for p in host.passes if p.scope.kind != "location"]
            for i, later in enumerate(plain):
                for earlier in plain[:i]:
                    if earlier.path != later.path and _covers(earlier.path, later.path):
                        self.warnings.append(
                            "Apache checks ProxyPass rules in file order, so "
                            f"{later.path} ({self.where(later.node)}) is shadowed by "
                            f"{earlier.path} ({self.where(earlier.node)}) there and never "
                            "used; twisted_lb picks the longest prefix, so it is used here"
                        )
                        break
            for i, earlier in enumerate(located):
                for later in located[i + 1 :]:
                    if earlier.path != later.path and _covers(later.path, earlier.path):
                        self.warnings.append(
                            "in Apache the last matching <Location> wins, so ProxyPass in "
                            f"<Location {earlier.path}> ({self.where(earlier.node)}) is "
                            f"shadowed by <Location {later.path}> ({self.where(later.node)}) "
                            "there and never used; twisted_lb picks the longest prefix, so it "
                            "is used here"
                        )
                        break
            for rule in plain:
                for loc in located:
                    if loc.path != rule.path and _covers(loc.path, rule.path):
                        self.warnings.append(
                            "Apache checks ProxyPass in <Location> before the other ProxyPass "
                            f"lines, so {rule.path} ({self.where(rule.node)}) is shadowed by "
                            f"<Location {loc.path}> ({self.where(loc.node)}) there and never "
                            "used; twisted_lb picks the longest prefix, so it is used here"
                        )
                        break

    def with_cookies(self, route: RouteConfig, node: Node) -> RouteConfig:
        if route.balancer is None:
            return route
        owner = next(p for p in self.passes if p.node is node)
        found: dict[str, list[tuple[str, str]]] = {"cookie_path": [], "cookie_domain": []}
        for _cnode, kind, internal, public, scope in self.cookies:
            if scope.kind == "location":
                applies = scope.location == route.path
            else:
                applies = scope.host is owner.scope.host or scope.host is self.main
            if applies and internal not in dict(found[kind]):
                found[kind].append((internal, public))
        if not found["cookie_path"] and not found["cookie_domain"]:
            return route
        return attrs.evolve(
            route,
            cookie_path=tuple(found["cookie_path"]),
            cookie_domain=tuple(found["cookie_domain"]),
        )

    def check_reverses(self) -> None:
        for node, path, url in self.reverses:
            same = [p for p in self.passes if p.path == path]
            if any(_same_url(p.target, url) for p in same):
                continue
            if same:
                self.warn(
                    node,
                    f"ProxyPassReverse {path} {url} does not match ProxyPass {path} "
                    f"{same[0].target} ({self.where(same[0].node)}); twisted_lb rewrites "
                    "redirects from the ProxyPass mappings, so this line changes nothing",
                )
            else:
                self.warn(
                    node,
                    f"ProxyPassReverse {path} {url} matches no ProxyPass; twisted_lb rewrites "
                    "redirects from the ProxyPass mappings, so this line changes nothing",
                )
        for cnode, _kind, _internal, _public, scope in self.cookies:
            if scope.kind == "location" and not any(p.path == scope.location for p in self.passes):
                self.warn(cnode, f"{cnode.name} is in a <Location> without ProxyPass; unused")

    def vhost_groups(self) -> dict[int, list[tuple[_Scope, str]]]:
        """
        The virtual hosts on each port, in file order, with the address each
        gives there (C{*} for any); the first on a port is its default.
        """
        if self._groups is not None:
            return self._groups
        groups: dict[int, list[tuple[_Scope, str]]] = {}
        for vhost in self.vhosts:
            assert vhost.node is not None
            for host, port in vhost.addresses:
                if port is None:
                    candidates = sorted({p for _, _, p in self.listens})
                    if len(candidates) != 1:
                        self.fail(
                            vhost.node,
                            vhost.node.error(
                                f"<VirtualHost {vhost.node.args[0]}>: give the port "
                                "(e.g. *:443); twisted_lb derives a listener from each virtual "
                                "host"
                            ),
                        )
                        continue
                    port = candidates[0]
                group = groups.setdefault(port, [])
                if all(v is not vhost for v, _ in group):
                    group.append((vhost, "127.0.0.1" if host == "localhost" else host))
        self._groups = groups
        return groups

    @property
    def name_based(self) -> bool:
        """Whether some port has several virtual hosts (chosen by the Host header)."""
        return any(len(group) > 1 for group in self.vhost_groups().values())

    def vhost_names(self, vhost: _Scope) -> tuple[str, ...]:
        """The ServerName and ServerAlias names of C{vhost}, lower case."""
        names = []
        name = vhost.settings.get("vhost_name")
        if name is not None:
            names.append(name[0])
        names += vhost.aliases
        return tuple(dict.fromkeys(names))

    def with_hosts(self, route: RouteConfig, owner: _Pass) -> RouteConfig:
        """With name-based virtual hosts, the names C{route}'s virtual host serves."""
        vhost = owner.scope.host
        if vhost is self.main or not self.name_based:
            return route
        names = self.vhost_names(vhost)
        default = any(group[0][0] is vhost for group in self.vhost_groups().values())
        if default:
            names = (DEFAULT_HOST, *names)
        elif not names:
            assert vhost.node is not None
            raise vhost.node.error(
                "this <VirtualHost> shares its port with others but has no ServerName or "
                "ServerAlias, so Apache would never choose it: add ServerName"
            )
        return attrs.evolve(route, hosts=names)

    def build_listeners(self) -> list[ListenerConfig]:
        listeners: list[ListenerConfig] = []
        groups = self.vhost_groups()
        for port, group in groups.items():
            try:
                listeners += self.port_listeners(port, group)
            except ConfigError as e:
                vhost = group[0][0]
                assert vhost.node is not None
                if id(vhost) not in self.failed_scopes:
                    self.fail(vhost.node, e)
        for node, listen_host, port in self.listens:
            if port in groups:
                continue
            listeners.append(self.listener(self.main, node, listen_host or "*", port))
        if not listeners and not self.errors:
            self.errors.append(
                ConfigError(
                    self.path,
                    "listen",
                    "no listener is configured: add Listen or <VirtualHost *:PORT>",
                )
            )
        return listeners

    def port_listeners(self, port: int, group: list[tuple[_Scope, str]]) -> list[ListenerConfig]:
        """
        The sockets for the virtual hosts on C{port}: one for any address
        when one of them is C{*} (or C{_default_}), else one per address;
        the first virtual host gives TLS and redirects.
        """
        default, _ = group[0]
        assert default.node is not None
        for vhost, _ in group[1:]:
            assert vhost.node is not None
            if self.tls_of(vhost) != self.tls_of(default):
                raise vhost.node.error(
                    f"this <VirtualHost> on port {port} has another certificate than the first "
                    f"one ({self.where(default.node)}); twisted_lb serves one certificate per "
                    "port (no SNI): give them the same certificate, or another port"
                )
            if bool(vhost.redirects and not vhost.passes) != bool(
                default.redirects and not default.passes
            ):
                raise vhost.node.error(
                    f"port {port} has a virtual host that only redirects and one that "
                    "proxies; a twisted_lb listener either redirects everything or proxies: "
                    "use a port for each"
                )
        http2 = bool(default.value("http2", False))
        for vhost, _ in group[1:]:
            if bool(vhost.value("http2", False)) != http2:
                assert vhost.node is not None
                self.warn(
                    vhost.node,
                    f"this <VirtualHost> on port {port} "
                    f"{'does not offer' if http2 else 'offers'} HTTP/2 (Protocols) and the "
                    f"first one ({self.where(default.node)}) "
                    f"{'does' if http2 else 'does not'}; twisted_lb offers HTTP/2 per port, "
                    "as the first virtual host says",
                )
        hosts = [host for _, host in group]
        if "*" in hosts:
            listen_hosts = [h for _, h, p in self.listens if p == port and h]
            addresses = [listen_hosts[0] if len(listen_hosts) == 1 else "*"]
        else:
            addresses = list(dict.fromkeys(hosts))
        return [self.listener(default, default.node, host, port) for host in addresses]

    def tls_of(self, scope: _Scope) -> tuple[Any, ...]:
        if scope.value("sslengine") is not True:
            return ()
        return (scope.value("certificate"), scope.value("key"), scope.value("chain"))

    def listener(self, scope: _Scope, node: Node, host: str, port: int) -> ListenerConfig:
        if host == "*":
            endpoint = f"tcp:{port}"
        elif ":" in host:
            endpoint = f"tcp6:{port}:interface={_escape_endpoint(host)}"
        else:
            endpoint = f"tcp:{port}:interface={_escape_endpoint(host)}"
        kwargs: dict[str, Any] = {"endpoint": endpoint}
        if scope.value("sslengine") is True:
            certificate = scope.value("certificate")
            if certificate is None:
                on = scope.get("sslengine")
                assert on is not None
                raise on[1].error("SSLEngine On without SSLCertificateFile")
            verify = scope.get("client_certificates")
            kwargs["tls"] = build(
                TLSConfig,
                {
                    "certificate": certificate,
                    "key": scope.value("key", certificate),
                    "chain": scope.value("chain"),
                    "client_certificates": scope.value("client_certificates", "none"),
                    "client_ca": scope.value("client_ca"),
                    "protocols": scope.value("protocols", TLS_PROTOCOLS),
                    "ciphers": scope.value("ciphers"),
                },
                lambda field, problem: (verify[1] if verify is not None else node).error(problem),
            )
        if scope.redirects and self.redirects_whole_site(scope):
            kwargs.update(self.redirect(scope))
        if "tls" in kwargs:
            # Plain listeners speak HTTP/1.1 whatever the setting says.
            kwargs["http2"] = bool(scope.value("http2", False))
        server_name = scope.get("servername")
        if server_name is not None:
            kwargs["server_name"] = server_name[0]
        return build(
            ListenerConfig,
            kwargs,
            lambda field, problem: (
                server_name[1] if server_name is not None and field == "server_name" else node
            ).error(problem),
        )

    def redirects_whole_site(self, scope: _Scope) -> bool:
        """Whether C{scope} only redirects, all of it, so a redirect listener does it."""
        if scope.passes or scope.rules or not scope.redirects:
            return False
        _, status, path, url = scope.redirects[0]
        return path == "/" and status != 410 and _redirect_base(path, url) is not None

    def build_rules(
        self, balancers: dict[str, BalancerConfig], routes: list[RouteConfig]
    ) -> list[RequestRule]:
        """
        The rules before routing, per host in Apache's order: RewriteRule,
        then Redirect (mod_alias), which a ProxyPass covering its path
        shadows in Apache as it does here.
        """
        out: list[RequestRule] = []
        by_host: dict[int, list[tuple[Node, _Scope, RequestRule]]] = {}
        for node, scope, status, pattern, target, kwargs, match in self.pending_rules:
            host = scope.host
            if not match and host.value("rewriteengine") is not True:
                self.warn_once(
                    ("rewrite-off", id(host)),
                    node,
                    "RewriteRule without RewriteEngine On in its host: not used, as in Apache",
                )
                continue
            if host is self.main and self.vhosts and not match:
                self.warn(
                    node,
                    "RewriteRule at the top level is not used by the <VirtualHost> sections "
                    "(as in Apache without RewriteOptions Inherit)",
                )
                continue
            if match and scope.kind != "location":
                pattern = self.after_earlier_passes(node, host, pattern)
            try:
                if status == 0:
                    url = target
                    kwargs["balancer"], target = self.proxy_target(node, scope, target, balancers)
                    if match and re.search(r"\$\d", url) is None:
                        # ProxyPassMatch without back-references: Apache puts the
                        # whole request path after the URL.
                        # (escaped again, as Apache's canonical URL is).
                        pattern, target = _whole_path(pattern, url, target)
                        kwargs["noescape"] = False
                    kwargs["access"], kwargs["auth"] = self.site_access(node, scope, url)
                    edits = self.site_headers(node, scope, url)
                    kwargs["request_headers"] = tuple(e for request, e in edits if request)
                    kwargs["response_headers"] = tuple(e for request, e in edits if not request)
                rule = RequestRule(pattern, target, status, **kwargs)
            except ValueError as e:
                self.fail(node, node.error(f"{node.name}: {e}"))
                continue
            except ConfigError as e:
                self.fail(node, e)
                continue
            by_host.setdefault(id(host), []).append((node, scope, rule))
        for host in [self.main, *self.vhosts]:
            entries = by_host.get(id(host), []) + host.rules
            if not self.redirects_whole_site(host):
                for node, status, path, url in host.redirects:
                    covering = [
                        r.path
                        for r in routes
                        if r.balancer is not None
                        and (r.path == path or _covers(r.path, path))
                        and self.route_in_host(r, host)
                    ]
                    if covering:
                        self.warn(
                            node,
                            f"{node.name} {path} is not used: ProxyPass {covering[0]} covers it, "
                            "and Apache proxies such requests before it redirects (add ProxyPass "
                            f"{path} ! to redirect)",
                        )
                        continue
                    try:
                        rule = RequestRule(
                            path, url, status, prefix=True, noescape=True, after_routes=True
                        )
                    except ValueError as e:
                        self.fail(node, node.error(str(e)))
                        continue
                    entries.append((node, host, rule))
            for node, scope, rule in entries:
                try:
                    out.append(attrs.evolve(rule, hosts=self.host_names(scope.host)))
                except ConfigError as e:
                    self.fail(node, e)
        return out

    def build_unrouted(self) -> tuple[UnroutedHeaders, ...]:
        """
        The C{Header always} edits of each host (the main server's, then the
        virtual host's own) for the proxy's answers where no route applies:
        Apache makes them on every response of the host, its 404s included.
        """
        out: list[UnroutedHeaders] = []
        hosts = [*self.vhosts, self.main] if self.main.passes or not self.vhosts else self.vhosts
        for host in hosts:
            scopes = [self.main] if host is self.main else [self.main, host]
            edits = tuple(
                edit
                for scope in scopes
                for _, request, edit in scope.headers
                if not request and edit.always
            )
            if not edits:
                continue
            try:
                names = self.host_names(host)
            except ConfigError:
                continue  # reported with the host's routes
            if not names and any(not u.hosts and u.response_headers != edits for u in out):
                assert host.node is not None
                self.warn(
                    host.node,
                    "Header always in several <VirtualHost> sections that are not chosen by "
                    "name: the proxy's own 404 answers get the first one's",
                )
                continue
            out.append(UnroutedHeaders(edits, names))
        return tuple(out)

    def after_earlier_passes(self, node: Node, host: _Scope, pattern: str) -> str:
        """
        C{pattern} of a ProxyPassMatch, made to match no path that a
        ProxyPass Apache checks before it serves: those above it in its
        host (the main server's first, for a virtual host) and those in
        <Location> sections, which Apache checks before all others.
        """
        position = self.order.get((node.file, node.where), 0)
        earlier = [
            p.path
            for p in self.passes
            if p.scope.host in (host, self.main)
            and (
                p.scope.kind == "location"
                or (p.scope.host is self.main and host is not self.main)
                or self.order.get((p.node.file, p.node.where), 0) < position
            )
        ]
        if not earlier:
            return pattern
        try:
            re.compile(pattern)
        except re.error:
            return pattern  # refused with its reason when the rule is built
        prefixes = "|".join(
            re.escape(path) + ("" if path.endswith("/") else "(?:$|[/;])")
            for path in sorted(set(earlier), key=lambda path: (-len(path), path))
        )
        return f"^(?!{prefixes}).*?(?:{pattern})"

    def route_in_host(self, route: RouteConfig, host: _Scope) -> bool:
        names = self.host_names(host)
        return not route.hosts or not names or bool(set(route.hosts) & set(names))

    def host_names(self, vhost: _Scope) -> tuple[str, ...]:
        """The hosts of routes and rules in C{vhost} (see L{with_hosts})."""
        if vhost is self.main or not self.name_based:
            return ()
        names = self.vhost_names(vhost)
        if any(group[0][0] is vhost for group in self.vhost_groups().values()):
            return (DEFAULT_HOST, *names)
        if not names:
            assert vhost.node is not None
            raise vhost.node.error(
                "this <VirtualHost> shares its port with others but has no ServerName or "
                "ServerAlias, so Apache would never choose it: add ServerName"
            )
        return names

    def site_headers(self, node: Node, scope: _Scope, url: str) -> list[tuple[bool, HeaderEdit]]:
        """
        The Header and RequestHeader edits of a proxying rule: the top
        level, its virtual host and the <Proxy> sections its URL matches
        (a <Location>'s edits are per route, and a warning says so).
        """
        fake = _Pass(node, "/", url, [], scope)
        scopes = [self.main] if scope.host is self.main else [self.main, scope.host]
        scopes += self.proxy_sections_for(fake)
        if scope.kind == "location":
            scopes.append(scope)  # the rule's own <LocationMatch>
        return [(request, edit) for s in scopes for _, request, edit in s.headers]

    def site_access(
        self, node: Node, scope: _Scope, url: str
    ) -> tuple[tuple[AccessRule, ...], tuple[AuthRule, ...]]:
        """
        The access and login rules of a proxying rule: those of the <Proxy>
        sections its URL matches, then every <Location> of its host, each
        for its own path (Apache checks them against the requested URL).
        """
        fake = _Pass(node, "/", url, [], scope)
        access: list[AccessRule] = []
        auth: list[AuthRule] = []
        for section in self.proxy_sections_for(fake):
            if section.access is not None:
                access.append(section.access.rule("/"))
                auth.append(section.access.auth_rule("/", section))
        for loc in self.location_scopes:
            if loc.access is None or loc.host not in (self.main, scope.host):
                continue
            assert loc.location is not None
            access.append(loc.access.rule(loc.location))
            auth.append(loc.access.auth_rule(loc.location, loc))
        return tuple(access), tuple(auth) if any(a.user_file for a in auth) else ()

    def proxy_target(
        self, node: Node, scope: _Scope, target: str, balancers: dict[str, BalancerConfig]
    ) -> tuple[str, str]:
        """The balancer and path template of a [P] rule's substitution."""
        parsed = _balancer_name(target)
        if parsed is not None:
            name, path = parsed
            if name not in balancers:
                raise node.error(f"{node.name} names balancer://{name}, which no <Proxy> defines")
            return name, path or "/"
        parts = urlsplit(target)
        if not parts.scheme or not parts.netloc or any(c in parts.netloc for c in "$%{"):
            raise node.error(
                f"{node.name}: {target!r} must be balancer://name/… or a member URL whose "
                "host and port are written out"
            )
        base = f"{parts.scheme}://{parts.netloc}"
        fake = _Pass(node, "/", base, [], scope)
        name, _ = self.implicit(fake, balancers)
        path = target[len(base) :] or "/"
        return name, path

    def redirect(self, scope: _Scope) -> dict[str, Any]:
        if scope.passes:
            first = scope.redirects[0][0]
            raise first.error(
                "Redirect together with ProxyPass in the same virtual host is not supported; a "
                "twisted_lb listener either redirects everything or proxies"
            )
        chosen: tuple[str, int, Node] | None = None
        for node, status, path, url in scope.redirects:
            base = _redirect_base(path, url)
            if chosen is None:
                if path != "/":
                    raise node.error(
                        f"Redirect {path} redirects part of the site only; twisted_lb's "
                        "redirect listener redirects every path, so the first Redirect must be "
                        "for /"
                    )
                if base is None:
                    raise node.error(
                        f"Redirect / {url}: the target must end with '/' to keep the path"
                    )
                chosen = (base, status, node)
            elif base != chosen[0] or status != chosen[1]:
                self.warn(
                    node,
                    f"Redirect {path} {url} is shadowed by Redirect / "
                    f"({self.where(chosen[2])}) in Apache too, and is not used",
                )
        assert chosen is not None
        return {"redirect": chosen[0], "redirect_status": chosen[1]}


_SECTIONS = frozenset(
    {
        "virtualhost",
        "proxy",
        "location",
        "locationmatch",
        "ifmodule",
        "ifdefine",
        "ifversion",
        "iffile",
        "requireany",
    }
)

#: Modules compiled into Debian's httpd (C{apache2 -l}), which <IfModule> finds
#: without LoadModule.
_BUILTIN_MODULES = frozenset(
    {"core", "so", "watchdog", "http_core", "log_config", "logio", "version", "unixd"}
)

#: The httpd version <IfVersion> compares with.
_HTTPD_VERSION = (2, 4, 62)


class _Reported(Exception):
    """A part could not be built, and why was already noted."""


def _module_id(name: str) -> str:
    """C{mod_proxy.c} and C{proxy_module} both name module C{proxy}."""
    name = name.strip().lower()
    if name.endswith(".c"):
        name = name[:-2]
        name = name[4:] if name.startswith("mod_") else name
        if name in ("event", "worker", "prefork"):
            name = "mpm_" + name
    elif name.endswith("_module"):
        name = name[: -len("_module")]
    return name


def _version_matches(node: Node) -> bool:
    """Whether <IfVersion [op] version> holds for L{_HTTPD_VERSION}."""
    args = node.args
    if len(args) == 1:
        op, wanted = "=", args[0]
    elif len(args) == 2:
        op, wanted = args
    else:
        raise node.error("<IfVersion> takes [operator] version")
    negate = op.startswith("!")
    op = op.lstrip("!")
    current = ".".join(map(str, _HTTPD_VERSION))
    if op in ("~",) or (wanted.startswith("/") and wanted.endswith("/")):
        result = re.search(wanted.strip("/"), current) is not None
    else:
        try:
            parts = tuple(int(x) for x in wanted.split("."))
        except ValueError:
            raise node.error(f"<IfVersion>: {wanted!r} is not a version") from None
        mine = _HTTPD_VERSION[: len(parts)]
        compare = {
            "=": mine == parts,
            "==": mine == parts,
            ">": mine > parts,
            ">=": mine >= parts,
            "<": mine < parts,
            "<=": mine <= parts,
        }
        if op not in compare:
            raise node.error(f"<IfVersion>: unknown operator {op!r}")
        result = compare[op]
    return result != negate


_STATUS_TEST = re.compile(
    r"%\{REQUEST_STATUS\}\s*(=~|!~|==|!=|<=|>=|<|>|-eq|-ne|-lt|-le|-gt|-ge)\s*(\S.*)"
)


def _status_ranges(expression: str) -> tuple[tuple[int, int], ...]:
    """
    The statuses (as ranges) for which a ProxyHCExpr of the status form
    holds: C{%{REQUEST_STATUS} =~ /regex/}, C{!~}, or a comparison with a
    number (C{<}, C{-lt}, C{==} ...).

    @raise ValueError: for any other expression.
    """
    match = _STATUS_TEST.fullmatch(expression)
    if match is None or "&&" in expression or "||" in expression:
        raise ValueError(
            "only the status form is supported (%{REQUEST_STATUS} =~ /^[234]/, or < 400 ...); "
            "use the native health.expect"
        )
    op, operand = match.group(1), match.group(2).strip()
    if op in ("=~", "!~"):
        if not (len(operand) >= 2 and operand[0] == "/" and operand.endswith("/")):
            raise ValueError(f"{operand!r} is not a /regular expression/")
        try:
            regex = re.compile(operand[1:-1])
        except re.error as e:
            raise ValueError(f"{operand!r}: {e}") from None

        def test(status: int) -> bool:
            return (regex.search(str(status)) is not None) == (op == "=~")

    else:
        try:
            number = int(operand.strip("'\""))
        except ValueError:
            raise ValueError(f"{operand!r} is not a status number") from None
        compare = {
            "==": int.__eq__,
            "-eq": int.__eq__,
            "!=": int.__ne__,
            "-ne": int.__ne__,
            "<": int.__lt__,
            "-lt": int.__lt__,
            "<=": int.__le__,
            "-le": int.__le__,
            ">": int.__gt__,
            "-gt": int.__gt__,
            ">=": int.__ge__,
            "-ge": int.__ge__,
        }[op]

        def test(status: int) -> bool:
            return bool(compare(status, number))

    ranges: list[tuple[int, int]] = []
    for status in range(100, 600):
        if test(status):
            if ranges and ranges[-1][1] == status - 1:
                ranges[-1] = (ranges[-1][0], status)
            else:
                ranges.append((status, status))
    if not ranges:
        raise ValueError("no status satisfies it")
    return tuple(ranges)


def _rewrite_flags(node: Node, text: str) -> dict[str, int]:
    """C{[R=301,L,NC]} -> C{{"r": 301, "l": 0, "nc": 0}}."""
    if not text:
        return {}
    if not (text.startswith("[") and text.endswith("]")):
        raise node.error(f"{node.name}: flags go in brackets, not {text!r}")
    flags: dict[str, int] = {}
    for flag in text[1:-1].split(","):
        name, _, value = flag.strip().partition("=")
        name = name.lower()
        if value:
            if name not in ("r", "redirect"):
                raise node.error(f"{node.name} flag [{flag.strip()}] is not supported")
            code = {"permanent": 301, "temp": 302, "seeother": 303}.get(value.lower())
            if code is None:
                if not value.isdigit():
                    raise node.error(f"{node.name} [R={value}]: not a status")
                code = int(value)
            flags[name] = code
        else:
            flags[name] = 0
    return flags


def _host_of_name(node: Node, value: str) -> str:
    """The host name of C{ServerName [scheme://]name[:port]}, lower case."""
    text = value.lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    if text.startswith("["):
        text = text.split("]", 1)[0] + "]"
    elif ":" in text:
        text = text.rsplit(":", 1)[0]
    text = text.rstrip(".")
    if not text or any(c in text for c in " /@"):
        raise node.error(f"{node.name} {value!r} is not a host name")
    return text


def _manager_allow(rule: AccessRule) -> tuple[str, ...] | None:
    """
    The admin listener's C{allow} for the rule of a manager <Location>
    (C{None}: everyone), or a refusal when it is no list of addresses
    that may pass.
    """
    if rule.lets_everyone_in:
        return None
    if rule.order == "require":
        return rule.allow
    deny_all = any(e.lower() == "all" for e in rule.deny)
    if rule.order == "deny,allow" and deny_all:
        return rule.allow
    if rule.order == "allow,deny" and (deny_all or not rule.deny):
        return () if deny_all else rule.allow
    raise ValueError(
        "Deny from some addresses in the manager's <Location>: the admin listener takes "
        "the addresses that may use it (admin.allow); write Require ip with those"
    )


def _status_handler(node: Node) -> str | None:
    """C{server-status} or C{balancer-manager} when a <Location> sets that handler."""
    for child in node.children or []:
        if child.key == "sethandler" and child.args:
            handler = child.args[0].lower()
            if handler in ("server-status", "balancer-manager"):
                return handler
    return None


def _all_nodes(nodes: list[Node]) -> Iterator[Node]:
    """Every node, sections before their contents, in file order."""
    for n in nodes:
        yield n
        if n.children is not None:
            yield from _all_nodes(n.children)


def _any_node(nodes: list[Node], key: str) -> bool:
    return any(
        n.key == key or (n.children is not None and _any_node(n.children, key)) for n in nodes
    )


def _covers(shorter: str, longer: str) -> bool:
    """Whether Apache's ProxyPass for C{shorter} also matches C{longer}."""
    if not longer.startswith(shorter):
        return False
    return shorter.endswith("/") or longer[len(shorter)] == "/"


def _same_url(a: str, b: str) -> bool:
    pa, pb = _balancer_name(a), _balancer_name(b)
    if pa is not None or pb is not None:
        return pa == pb
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _redirect_base(path: str, url: str) -> str | None:
    """The base URL that, with the request path appended, gives Apache's redirect."""
    if path.endswith("/") and not url.endswith("/"):
        return None
    if url.endswith(path):
        return url[: len(url) - len(path)]
    return None


def _whole_path(pattern: str, url: str, target: str) -> tuple[str, str]:
    """
    A ProxyPassMatch without back-references as a rule whose target ends
    with the whole request path (Apache appends it when the URL has no
    substitution): C{pattern} matches as before and captures the path.
    """
    try:
        group = re.compile(pattern).groups + 1
    except re.error:
        return pattern, target  # refused with its reason when the rule is built
    base = target
    if not urlsplit(url).path and base == "/":
        base = ""
    return f"^(?=.*?(?:{pattern}))(.*)$", f"{base.rstrip('/') if base != '/' else ''}${group}"


#: The regular expressions of <LocationMatch> that name a path prefix, at a
#: segment boundary: ^/path/ (and ^/path/.*), ^/path(/.*)?$, ^/path(/|$).
_PREFIX_REGEX = re.compile(
    r"\^(?P<path>/(?:[A-Za-z0-9_~!,;:@=+-]|\\[.-]|/)*?)"
    r"(?:(?P<slash>/(?:\.\*|\(\.\*\))?\$?)|\(/\.\*\)\?\$|\(/\|\$\)|\(\$\|/\))"
)


def _regex_prefix(regex: str) -> str | None:
    """
    The path prefix a <LocationMatch> expression stands for, as a <Location>
    path, or C{None} when it names no prefix at a segment boundary (then
    it could cover paths a prefix does not, or fewer).
    """
    if regex in ("^/", "^/.*", "^/.*$"):
        return "/"
    match = _PREFIX_REGEX.fullmatch(regex)
    if match is None:
        return None
    path = re.sub(r"\\(.)", r"\1", match.group("path")).rstrip("/")
    if match.group("slash") is not None:
        if match.group("slash") == "/$":
            return None  # ^/path/$: that one path only
        return path + "/"
    return path or None


def read_apache(path: str) -> tuple[ProxyConfig, list[str]]:
    """
    Read an Apache httpd configuration file.

    @return: the configuration and the warnings (each a sentence, most with
        the line they are about).
    @raise ConfigError: for a directive or parameter twisted_lb does not
        support, or a configuration it cannot use; the key is C{"line N"}.
    """
    return _Reader(path).read()
