"""
Write a configuration as native TOML (C{python -m twisted_lb convert}).

The output names every setting explicitly, so that reading it back with
L{twisted_lb.config.toml.load_toml_text} gives an equal model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import attrs

from ..access import AccessRule
from ..basic_auth import AuthRule
from ..header_edits import HeaderEdit
from ..request_rules import RequestRule
from .model import (
    BackendTLSConfig,
    BalancerConfig,
    HealthCheckConfig,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
)

__all__ = ["to_toml", "toml_string", "toml_key"]

_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def toml_string(value: str) -> str:
    """A TOML basic string."""
    out = []
    for c in value:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        elif 0xD800 <= ord(c) <= 0xDFFF:
            out.append("\\uFFFD")  # a lone surrogate cannot be written
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return _inline(value)
    raise TypeError(f"cannot write {value!r} as TOML")


def _inline(items: dict[str, Any]) -> str:
    body = ", ".join(f"{toml_key(k)} = {_value(v)}" for k, v in items.items() if v is not None)
    return "{ " + body + " }" if body else "{}"


def _lines(items: dict[str, Any]) -> list[str]:
    return [f"{toml_key(k)} = {_value(v)}" for k, v in items.items() if v is not None]


def _listener(listener: ListenerConfig) -> list[str]:
    items: dict[str, Any] = {"endpoint": listener.endpoint}
    if listener.tls is not None:
        items["tls"] = {
            "certificate": listener.tls.certificate,
            "key": listener.tls.key,
            "chain": listener.tls.chain,
            "client_certificates": listener.tls.client_certificates,
            "protocols": list(listener.tls.protocols),
            "ciphers": listener.tls.ciphers,
            "client_ca": listener.tls.client_ca,
        }
    if listener.redirect is not None:
        items["redirect"] = listener.redirect
        items["redirect_status"] = listener.redirect_status
    items["http2"] = listener.http2
    if listener.server_name is not None:
        items["server_name"] = listener.server_name
    return ["[[listen]]", *_lines(items)]


def _health(health: HealthCheckConfig) -> dict[str, Any]:
    return {
        "kind": health.kind.value,
        "interval": float(health.interval),
        "timeout": float(health.timeout),
        "passes": health.passes,
        "fails": health.fails,
        "method": health.method,
        "path": health.path,
        "expect": health.expect_text,
        "slow_start": float(health.slow_start),
    }


def _member(balancer: str, member: MemberConfig) -> list[str]:
    items: dict[str, Any] = {
        "url": member.url,
        "route": member.route,
        "loadfactor": float(member.loadfactor),
        "lbset": member.lbset,
        "status": member.status.value,
        "retry": float(member.retry),
        "connectiontimeout": float(member.connectiontimeout),
        "timeout": float(member.timeout),
        "ping": float(member.ping),
        "secret": member.secret,
        "packet_size": member.packet_size,
        "max": member.max,
        "ttl": float(member.ttl),
    }
    if member.scheme in ("https", "wss") or member.tls != BackendTLSConfig():
        items["tls"] = {
            "verify": member.tls.verify,
            "ca_file": member.tls.ca_file,
            "client_certificate": member.tls.client_certificate,
        }
    if member.health is not None:
        items["health"] = _health(member.health)
    return [f"[[balancers.{toml_key(balancer)}.members]]", *_lines(items)]


def _balancer(balancer: BalancerConfig) -> list[str]:
    sticky: Any = False
    if balancer.sticky is not None:
        sticky = {
            "cookie": list(balancer.sticky.cookie_names),
            "path": list(balancer.sticky.path_names),
            "separator": balancer.sticky.separator,
        }
    items: dict[str, Any] = {
        "lbmethod": balancer.lbmethod.value,
        "stickysession": sticky,
        "nofailover": balancer.nofailover,
        "maxattempts": balancer.maxattempts,
        "probe_interval": float(balancer.probe_interval),
        "ws_max_message_size": balancer.ws_max_message_size,
    }
    if balancer.health is not None:
        items["health"] = _health(balancer.health)
    out = [f"[balancers.{toml_key(balancer.name)}]", *_lines(items)]
    for member in balancer.members:
        out += ["", *_member(balancer.name, member)]
    return out


def _route(route: RouteConfig) -> list[str]:
    items: dict[str, Any] = {
        "path": route.path,
        "balancer": route.balancer if route.balancer is not None else False,
        "target_path": route.target_path,
        "preserve_host": route.preserve_host,
        "timeout": None if route.timeout is None else float(route.timeout),
    }
    if route.encoded_slashes:
        items["encoded_slashes"] = True
    if route.hosts:
        items["hosts"] = list(route.hosts)
    if route.cookie_path:
        items["cookie_path"] = dict(route.cookie_path)
    if route.cookie_domain:
        items["cookie_domain"] = dict(route.cookie_domain)
    out = ["[[routes]]", *_lines(items)]
    out += _header_edits("routes", route.request_headers, route.response_headers)
    out += _auth_tables("routes", route.auth)
    out += _access_tables("routes", route.access)
    return out


def _auth_tables(table: str, auths: Sequence[AuthRule]) -> list[str]:
    """C{[[table.auth]]} for the protected paths."""
    out: list[str] = []
    for auth in auths:
        fields: dict[str, Any] = {
            "path": auth.path,
            "realm": auth.realm,
            "user_file": auth.user_file,
        }
        if auth.users:
            fields["users"] = list(auth.users)
        out += ["", f"[[{table}.auth]]", *_lines(fields)]
    return out


def _access_tables(table: str, rules: Sequence[AccessRule]) -> list[str]:
    """C{[[table.access]]} for the access rules."""
    out: list[str] = []
    for rule in rules:
        fields: dict[str, Any] = {"path": rule.path, "order": rule.order, "allow": list(rule.allow)}
        if rule.deny:
            fields["deny"] = list(rule.deny)
        out += ["", f"[[{table}.access]]", *_lines(fields)]
    return out


def _header_edits(
    table: str, request: Sequence[HeaderEdit], response: Sequence[HeaderEdit]
) -> list[str]:
    """C{[[table.request_headers]]} and C{[[table.response_headers]]} for the edits."""
    out: list[str] = []
    for key, edits in (("request_headers", request), ("response_headers", response)):
        for edit in edits:
            fields: dict[str, Any] = {"action": edit.action, "name": edit.name}
            if edit.value:
                fields["value"] = edit.value
            if edit.replacement:
                fields["replacement"] = edit.replacement
            if edit.always:
                fields["always"] = True
            if edit.condition is not None:
                fields["env"] = ("!" if edit.negate else "") + edit.condition
            out += ["", f"[[{table}.{key}]]", *_lines(fields)]
    return out


def _rule(rule: RequestRule) -> list[str]:
    items: dict[str, Any] = {"pattern": rule.pattern, "target": rule.target, "status": rule.status}
    if rule.balancer:
        items["balancer"] = rule.balancer
    for key in ("nocase", "qsa", "noescape", "prefix", "after_routes"):
        if getattr(rule, key):
            items[key] = True
    if rule.hosts:
        items["hosts"] = list(rule.hosts)
    out = ["[[rules]]", *_lines(items)]
    out += _access_tables("rules", rule.access)
    out += _auth_tables("rules", rule.auth)
    out += _header_edits("rules", rule.request_headers, rule.response_headers)
    for condition in rule.conditions:
        fields: dict[str, Any] = {"test": condition.test, "pattern": condition.pattern}
        if condition.nocase:
            fields["nocase"] = True
        if condition.ornext:
            fields["ornext"] = True
        out += ["", "[[rules.conditions]]", *_lines(fields)]
    return out


def to_toml(config: ProxyConfig, notes: Sequence[str] = ()) -> str:
    """
    Write C{config} as a native TOML configuration.

    File names are written as they are in the model (the readers make them
    absolute), so the output reads back the same from any directory.

    @param notes: the reader's warnings (lines accepted without effect,
        differences from Apache), written as comments at the top.
    """
    source = re.sub(r"[\x00-\x1f\x7f]", " ", config.source)
    out = [f"# twisted_lb configuration (from {source})", ""]
    if notes:
        out.append("# What the source said that has no effect here, or another one:")
        out += ["# - " + re.sub(r"[\x00-\x1f\x7f]", " ", note) for note in notes]
        out.append("")
    out += _lines(
        {
            "timeout": float(config.timeout),
            "x_forwarded": config.x_forwarded,
            "allow_trace": config.allow_trace,
            "access_log": config.access_log,
            "access_log_format": config.access_log_format,
            "log_format": config.log_format,
            "shutdown_timeout": float(config.shutdown_timeout),
            "workers": config.workers,
        }
    )
    out += ["", "[limits]", *_lines(attrs.asdict(config.limits))]
    for listener in config.listeners:
        out += ["", *_listener(listener)]
    for rule in config.rules:
        out += ["", *_rule(rule)]
    for balancer in config.balancers:
        out += ["", *_balancer(balancer)]
    for route in config.routes:
        out += ["", *_route(route)]
    if config.admin is not None:
        admin = config.admin
        items = {"endpoint": admin.endpoint, "user": admin.user, "password": admin.password,
                 "state_file": admin.state_file,
                 "allow": list(admin.allow) if admin.allow is not None else None}
        out += ["", "[admin]", *_lines(items)]
    if config.cluster is not None:
        cluster = config.cluster
        out += ["", "[cluster]", *_lines({
            "etcd": list(cluster.etcd),
            "prefix": cluster.prefix,
            "instance": cluster.instance,
            "address": cluster.address,
            "ca_file": cluster.ca_file,
            "certificate": cluster.certificate,
            "key": cluster.key,
            "user": cluster.user,
            "password": cluster.password,
            "timeout": float(cluster.timeout),
        })]
    for unrouted in config.unrouted:
        out += ["", "[[unrouted]]"]
        if unrouted.hosts:
            out += _lines({"hosts": list(unrouted.hosts)})
        out += _header_edits("unrouted", (), unrouted.response_headers)
    if config.error_pages:
        out += ["", "[error_pages]", *_lines({str(k): v for k, v in config.error_pages})]
    return "\n".join(out) + "\n"
