"""
The native configuration format of twisted_lb: a TOML file.

Every key is checked: unknown keys and values of the wrong type are errors
that name the key (C{balancers.app.members[0].loadfactor}), and the model's
own checks are reported the same way. The format is described in
C{docs/configuration.md}.
"""

from __future__ import annotations

import difflib
import enum
import re
from typing import Any

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ..access import AccessRule
from ..basic_auth import AuthRule
from ..header_edits import HeaderEdit
from ..request_rules import Condition, RequestRule
from ._build import base_dir_of, build, resolve_path
from .model import (
    ERROR_PAGE_STATUSES,
    AdminConfig,
    BackendTLSConfig,
    BalancerConfig,
    ClusterConfig,
    ConfigError,
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

__all__ = ["load_toml", "load_toml_text"]

# The schema: key -> kind. Kinds: str, bool, int, num (int or float), table,
# tables (array of tables), strlist, strmap, sticky, balancer.
_TOP = {
    "timeout": "num",
    "x_forwarded": "bool",
    "allow_trace": "bool",
    "access_log": "str",
    "access_log_format": "str",
    "log_format": "str",
    "shutdown_timeout": "num",
    "limits": "table",
    "workers": "workers",
    "listen": "tables",
    "balancers": "table",
    "routes": "tables",
    "admin": "table",
    "rules": "tables",
    "cluster": "table",
    "error_pages": "table",
    "unrouted": "tables",
}
_UNROUTED = {"hosts": "strlist", "response_headers": "tables"}
_CLUSTER = {
    "etcd": "strlist",
    "prefix": "str",
    "instance": "str",
    "address": "str",
    "ca_file": "str",
    "certificate": "str",
    "key": "str",
    "user": "str",
    "password": "str",
    "password_file": "str",
    "timeout": "num",
}
_RULE = {
    "pattern": "str",
    "target": "str",
    "status": "int",
    "balancer": "str",
    "conditions": "tables",
    "nocase": "bool",
    "qsa": "bool",
    "noescape": "bool",
    "prefix": "bool",
    "hosts": "strlist",
    "after_routes": "bool",
    "access": "tables",
    "auth": "tables",
    "request_headers": "tables",
    "response_headers": "tables",
}
_CONDITION = {"test": "str", "pattern": "str", "nocase": "bool", "ornext": "bool"}
_ADMIN = {
    "endpoint": "str",
    "user": "str",
    "password": "str",
    "password_file": "str",
    "state_file": "str",
    "allow": "strlist",
}
_LIMITS = {
    "max_headers": "int",
    "max_header_bytes": "int",
    "header_timeout": "num",
    "header_timeout_max": "num",
    "body_timeout": "num",
    "min_rate": "int",
    "idle_timeout": "num",
    "send_timeout": "num",
    "max_connections": "int",
    "max_body_bytes": "int",
}
_LISTEN = {
    "endpoint": "str",
    "tls": "table",
    "redirect": "str",
    "redirect_status": "int",
    "http2": "bool",
    "server_name": "str",
}
_LISTEN_TLS = {
    "certificate": "str",
    "key": "str",
    "chain": "str",
    "client_certificates": "str",
    "protocols": "strlist",
    "ciphers": "str",
    "client_ca": "str",
}
_BALANCER = {
    "lbmethod": "str",
    "stickysession": "sticky",
    "nofailover": "bool",
    "maxattempts": "int",
    "probe_interval": "num",
    "ws_max_message_size": "int",
    "health": "table",
    "members": "tables",
}
_HEALTH = {
    "kind": "str",
    "interval": "num",
    "timeout": "num",
    "passes": "int",
    "fails": "int",
    "method": "str",
    "path": "str",
    "expect": "str",
    "slow_start": "num",
}
_STICKY = {"cookie": "strlist", "path": "strlist", "separator": "str"}
_MEMBER = {
    "url": "str",
    "route": "str",
    "loadfactor": "num",
    "lbset": "int",
    "status": "str",
    "retry": "num",
    "connectiontimeout": "num",
    "timeout": "num",
    "ping": "num",
    "secret": "str",
    "packet_size": "int",
    "max": "int",
    "ttl": "num",
    "tls": "table",
    "health": "table",
}
_MEMBER_TLS = {"verify": "bool", "ca_file": "str", "client_certificate": "str"}
_ROUTE = {
    "path": "str",
    "balancer": "balancer",
    "target_path": "str",
    "preserve_host": "bool",
    "encoded_slashes": "bool",
    "timeout": "num",
    "cookie_path": "strmap",
    "cookie_domain": "strmap",
    "request_headers": "tables",
    "response_headers": "tables",
    "access": "tables",
    "hosts": "strlist",
    "auth": "tables",
}
_AUTH = {"path": "str", "realm": "str", "user_file": "str", "users": "strlist"}
_ACCESS = {"path": "str", "order": "str", "allow": "strlist", "deny": "strlist"}
_HEADER_EDIT = {
    "action": "str",
    "name": "str",
    "value": "str",
    "replacement": "str",
    "always": "bool",
    "env": "str",
}

_KIND_WORDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "num": "a number",
    "table": "a table",
    "tables": "an array of tables ([[...]])",
    "strlist": "a string or an array of strings",
    "strmap": 'a table of strings ({ "/internal" = "/public" })',
    "sticky": "a string (Apache syntax), false, or a table {cookie, path, separator}",
    "balancer": "a balancer name, or false for an exclusion",
    "workers": '"auto" or an integer',
}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _fits(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "tables":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind == "strlist":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    if kind == "strmap":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "sticky":
        return isinstance(value, (str, dict)) or value is False
    if kind == "balancer":
        return isinstance(value, str) or value is False
    if kind == "workers":
        return value == "auto" or (isinstance(value, int) and not isinstance(value, bool))
    raise AssertionError(kind)


def _join(prefix: str, key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{prefix}.{key}" if prefix else key


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.base_dir = base_dir_of(source)

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def check(self, table: dict[str, Any], spec: dict[str, str], prefix: str) -> dict[str, Any]:
        """Refuse unknown keys and values of the wrong type; return the table."""
        for key, value in table.items():
            if key not in spec:
                close = difflib.get_close_matches(key, list(spec), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(spec)
                raise self.error(
                    _join(prefix, key) if prefix else key,
                    f"unknown key {key!r}{hint}; known keys here: {known}",
                )
            kind = spec[key]
            if not _fits(kind, value):
                raise self.error(
                    _join(prefix, key),
                    f"must be {_KIND_WORDS[kind]}, not {_type_name(value)} ({value!r})",
                )
        return table

    def path(self, value: str | None) -> str | None:
        return None if value is None else resolve_path(value, self.base_dir)

    def model(self, cls: type, kwargs: dict[str, Any], prefix: str, names: dict[str, str]) -> Any:
        def fail(field: str | None, problem: str) -> ConfigError:
            if field is None:
                return self.error(prefix, problem)
            return self.error(_join(prefix, names.get(field, field)), problem)

        return build(cls, kwargs, fail)

    def enum(self, enum_cls: type[enum.Enum], value: str, key: str) -> Any:
        try:
            return enum_cls(value)
        except ValueError:
            choices = " | ".join(m.value for m in enum_cls)
            raise self.error(key, f"must be one of {choices}, not {value!r}") from None

    # -- sections ---------------------------------------------------------

    def read(self, data: dict[str, Any]) -> ProxyConfig:
        self.check(data, _TOP, "")
        timeout = data.get("timeout", 300.0)
        listeners = tuple(
            self.listener(t, f"listen[{i}]") for i, t in enumerate(data.get("listen", []))
        )
        balancers = tuple(
            self.balancer(name, t, _join("balancers", name), timeout)
            for name, t in data.get("balancers", {}).items()
        )
        routes = tuple(self.route(t, f"routes[{i}]") for i, t in enumerate(data.get("routes", [])))
        kwargs: dict[str, Any] = {
            "listeners": listeners,
            "balancers": balancers,
            "routes": routes,
            "source": self.source,
            "timeout": float(timeout),
            "x_forwarded": data.get("x_forwarded", True),
            "allow_trace": data.get("allow_trace", True),
            # "-" is standard output, not a file named "-".
            "access_log": (
                "-" if data.get("access_log") == "-" else self.path(data.get("access_log"))
            ),
            "limits": self.limits(data.get("limits", {})),
            "workers": data.get("workers", "auto"),
        }
        for key in ("access_log_format", "log_format"):
            if key in data:
                kwargs[key] = data[key]
        if "shutdown_timeout" in data:
            kwargs["shutdown_timeout"] = float(data["shutdown_timeout"])
        if "admin" in data:
            kwargs["admin"] = self.admin(data["admin"], "admin")
        if "rules" in data:
            kwargs["rules"] = tuple(
                self.rule(t, f"rules[{i}]") for i, t in enumerate(data["rules"])
            )
        if "cluster" in data:
            kwargs["cluster"] = self.cluster(data["cluster"], "cluster")
        if "error_pages" in data:
            kwargs["error_pages"] = self.error_pages(data["error_pages"])
        if "unrouted" in data:
            kwargs["unrouted"] = tuple(
                self.unrouted(t, f"unrouted[{i}]") for i, t in enumerate(data["unrouted"])
            )
        config: ProxyConfig = self.model(ProxyConfig, kwargs, "", {})
        if not config.listeners:
            # (One built in code may have none: its resource served by another Site.)
            raise self.error("listen", "no listener is configured")
        return config

    def read_secret(self, key: str, name: str) -> str:
        """The first line of the file C{name} (a password kept out of the configuration)."""
        try:
            with open(self.path(name), encoding="utf-8") as f:  # type: ignore[arg-type]
                return f.read().strip()
        except OSError as e:
            raise self.error(key, f"cannot be read: {e.strerror or e}") from None

    def cluster(self, table: dict[str, Any], prefix: str) -> ClusterConfig:
        self.check(table, _CLUSTER, prefix)
        if "etcd" not in table:
            raise self.error(_join(prefix, "etcd"), 'is required: etcd = ["http://127.0.0.1:2379"]')
        etcd = table["etcd"]
        kwargs: dict[str, Any] = {"etcd": (etcd,) if isinstance(etcd, str) else tuple(etcd)}
        for key in ("prefix", "instance", "address", "user", "password"):
            if key in table:
                kwargs[key] = table[key]
        for key in ("ca_file", "certificate", "key"):
            if key in table:
                kwargs[key] = self.path(table[key])
        if "timeout" in table:
            kwargs["timeout"] = float(table["timeout"])
        if "password_file" in table:
            if "password" in table:
                raise self.error(
                    _join(prefix, "password_file"), "give password or password_file, not both"
                )
            kwargs["password"] = self.read_secret(
                _join(prefix, "password_file"), table["password_file"]
            )
        if "key" in kwargs and "certificate" not in kwargs:
            raise self.error(
                _join(prefix, "key"), "a key without a certificate: give certificate too"
            )
        if ("user" in kwargs) != ("password" in kwargs):
            missing = "user" if "user" not in kwargs else "password"
            raise self.error(
                _join(prefix, missing),
                "is missing: give both user and password for etcd's authentication, or neither",
            )
        names = {"password": "password_file" if "password_file" in table else "password"}
        return self.model(ClusterConfig, kwargs, prefix, names)

    def admin(self, table: dict[str, Any], prefix: str) -> AdminConfig:
        self.check(table, _ADMIN, prefix)
        kwargs: dict[str, Any] = {
            key: table[key] for key in ("endpoint", "user", "password", "allow") if key in table
        }
        if "password_file" in table:
            if "password" in table:
                raise self.error(
                    _join(prefix, "password_file"), "give password or password_file, not both"
                )
            name = self.path(table["password_file"])
            try:
                with open(name, encoding="utf-8") as f:  # type: ignore[arg-type]
                    kwargs["password"] = f.read().strip()
            except OSError as e:
                raise self.error(
                    _join(prefix, "password_file"), f"cannot be read: {e.strerror or e}"
                ) from None
        if "state_file" in table:
            kwargs["state_file"] = self.path(table["state_file"])
        names = {"password": "password_file" if "password_file" in table else "password"}
        return self.model(AdminConfig, kwargs, prefix, names)

    def error_pages(self, table: dict[str, Any]) -> tuple[tuple[int, str], ...]:
        pages = []
        for key, value in table.items():
            if key not in {str(s) for s in ERROR_PAGE_STATUSES}:
                raise self.error(
                    _join("error_pages", key),
                    "not a status the proxy answers itself "
                    f"(use {', '.join(map(str, ERROR_PAGE_STATUSES))})",
                )
            if not isinstance(value, str) or not value:
                raise self.error(_join("error_pages", key), "must be the name of a file")
            pages.append((int(key), resolve_path(value, self.base_dir)))
        return tuple(pages)

    def limits(self, table: dict[str, Any]) -> LimitsConfig:
        self.check(table, _LIMITS, "limits")
        kwargs = {
            key: float(value) if _LIMITS[key] == "num" else value for key, value in table.items()
        }
        return self.model(LimitsConfig, kwargs, "limits", {})

    def listener(self, table: dict[str, Any], prefix: str) -> ListenerConfig:
        self.check(table, _LISTEN, prefix)
        if "endpoint" not in table:
            raise self.error(_join(prefix, "endpoint"), 'is required (e.g. "tcp:8080")')
        tls = None
        if "tls" in table:
            tls_prefix = _join(prefix, "tls")
            t = self.check(table["tls"], _LISTEN_TLS, tls_prefix)
            if "certificate" not in t:
                raise self.error(_join(tls_prefix, "certificate"), "is required")
            certificate = self.path(t["certificate"])
            tls = self.model(
                TLSConfig,
                {
                    "certificate": certificate,
                    "key": self.path(t["key"]) if "key" in t else certificate,
                    "chain": self.path(t.get("chain")),
                    "client_certificates": t.get("client_certificates", "none"),
                    **(
                        {"protocols": (t["protocols"],) if isinstance(t["protocols"], str)
                         else tuple(t["protocols"])}
                        if "protocols" in t
                        else {}
                    ),
                    "ciphers": t.get("ciphers"),
                    "client_ca": self.path(t.get("client_ca")),
                },
                tls_prefix,
                {},
            )
        kwargs: dict[str, Any] = {"endpoint": table["endpoint"], "tls": tls}
        if "redirect" in table:
            kwargs["redirect"] = table["redirect"]
        if "redirect_status" in table:
            kwargs["redirect_status"] = table["redirect_status"]
        if "http2" in table:
            kwargs["http2"] = table["http2"]
        if "server_name" in table:
            kwargs["server_name"] = table["server_name"]
        return self.model(ListenerConfig, kwargs, prefix, {})

    def sticky(self, value: Any, key: str) -> StickySessionConfig | None:
        if value is False:
            return None
        if isinstance(value, str):
            try:
                return StickySessionConfig.from_apache(value)
            except ValueError as e:
                raise self.error(key, str(e)) from None
        t = self.check(value, _STICKY, key)
        kwargs: dict[str, Any] = {}
        for toml_name, field in (("cookie", "cookie_names"), ("path", "path_names")):
            if toml_name in t:
                names = t[toml_name]
                kwargs[field] = (names,) if isinstance(names, str) else tuple(names)
        if "separator" in t:
            kwargs["separator"] = t["separator"]
        return self.model(
            StickySessionConfig, kwargs, key, {"cookie_names": "cookie", "path_names": "path"}
        )

    def balancer(
        self, name: str, table: Any, prefix: str, default_timeout: float
    ) -> BalancerConfig:
        if not isinstance(table, dict):
            raise self.error(prefix, f"must be a table, not {_type_name(table)}")
        self.check(table, _BALANCER, prefix)
        health = table.get("health")
        balancer_health = None
        if health is not None:
            self.check(health, _HEALTH, _join(prefix, "health"))
            balancer_health = self.health(health, _join(prefix, "health"))
        members = tuple(
            self.member(t, f"{_join(prefix, 'members')}[{i}]", default_timeout, health)
            for i, t in enumerate(table.get("members", []))
        )
        kwargs: dict[str, Any] = {"name": name, "members": members}
        if balancer_health is not None:
            kwargs["health"] = balancer_health
        if "lbmethod" in table:
            kwargs["lbmethod"] = self.enum(
                LBMethodName, table["lbmethod"], _join(prefix, "lbmethod")
            )
        if "stickysession" in table:
            kwargs["sticky"] = self.sticky(table["stickysession"], _join(prefix, "stickysession"))
        for key in ("nofailover", "maxattempts", "ws_max_message_size"):
            if key in table:
                kwargs[key] = table[key]
        if "probe_interval" in table:
            kwargs["probe_interval"] = float(table["probe_interval"])
        return self.model(BalancerConfig, kwargs, prefix, {"sticky": "stickysession"})

    def health(self, table: dict[str, Any], prefix: str) -> HealthCheckConfig:
        kwargs: dict[str, Any] = {}
        for key in ("passes", "fails", "method", "path", "expect"):
            if key in table:
                kwargs[key] = table[key]
        for key in ("interval", "timeout", "slow_start"):
            if key in table:
                kwargs[key] = float(table[key])
        if "kind" in table:
            kwargs["kind"] = self.enum(HealthCheckKind, table["kind"], _join(prefix, "kind"))
        return self.model(HealthCheckConfig, kwargs, prefix, {})

    def member(
        self,
        table: dict[str, Any],
        prefix: str,
        default_timeout: float,
        balancer_health: dict[str, Any] | None = None,
    ) -> MemberConfig:
        self.check(table, _MEMBER, prefix)
        if "url" not in table:
            raise self.error(_join(prefix, "url"), 'is required (e.g. "ajp://127.0.0.1:8009")')
        kwargs: dict[str, Any] = {"url": table["url"], "timeout": float(default_timeout)}
        for key in ("route", "lbset", "secret", "packet_size", "max"):
            if key in table:
                kwargs[key] = table[key]
        for key in ("loadfactor", "retry", "connectiontimeout", "timeout", "ping", "ttl"):
            if key in table:
                kwargs[key] = float(table[key])
        if "status" in table:
            kwargs["status"] = self.enum(MemberState, table["status"], _join(prefix, "status"))
        if "tls" in table:
            tls_prefix = _join(prefix, "tls")
            t = self.check(table["tls"], _MEMBER_TLS, tls_prefix)
            kwargs["tls"] = self.model(
                BackendTLSConfig,
                {
                    "verify": t.get("verify", True),
                    "ca_file": self.path(t.get("ca_file")),
                    "client_certificate": self.path(t.get("client_certificate")),
                },
                tls_prefix,
                {},
            )
        if "health" in table:
            # The member's keys override the balancer's, key by key.
            health_prefix = _join(prefix, "health")
            own = self.check(table["health"], _HEALTH, health_prefix)
            kwargs["health"] = self.health({**(balancer_health or {}), **own}, health_prefix)
        return self.model(MemberConfig, kwargs, prefix, {})

    def route(self, table: dict[str, Any], prefix: str) -> RouteConfig:
        self.check(table, _ROUTE, prefix)
        if "path" not in table:
            raise self.error(_join(prefix, "path"), 'is required (e.g. "/")')
        balancer = table.get("balancer", False)
        kwargs: dict[str, Any] = {
            "path": table["path"],
            "balancer": None if balancer is False else balancer,
        }
        for key in ("target_path", "preserve_host", "encoded_slashes"):
            if key in table:
                kwargs[key] = table[key]
        if "timeout" in table:
            kwargs["timeout"] = float(table["timeout"])
        for key in ("cookie_path", "cookie_domain"):
            if key in table:
                kwargs[key] = tuple(table[key].items())
        for key in ("request_headers", "response_headers"):
            if key in table:
                kwargs[key] = tuple(
                    self.header_edit(t, f"{_join(prefix, key)}[{i}]", key == "request_headers")
                    for i, t in enumerate(table[key])
                )
        if "hosts" in table:
            hosts = table["hosts"]
            kwargs["hosts"] = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        if "auth" in table:
            kwargs["auth"] = self.auth_rules(table["auth"], prefix, table["path"])
        if "access" in table:
            kwargs["access"] = tuple(
                self.access_rule(t, f"{_join(prefix, 'access')}[{i}]", table["path"])
                for i, t in enumerate(table["access"])
            )
        return self.model(RouteConfig, kwargs, prefix, {})

    def auth_rules(
        self, tables: list[dict[str, Any]], prefix: str, default_path: str
    ) -> tuple[AuthRule, ...]:
        auth = []
        for i, t in enumerate(tables):
            aprefix = f"{_join(prefix, 'auth')}[{i}]"
            self.check(t, _AUTH, aprefix)
            users = t.get("users", ())
            auth.append(
                self.model(
                    AuthRule,
                    {
                        "path": t.get("path", default_path),
                        "realm": t.get("realm", "Restricted"),
                        "user_file": self.path(t["user_file"]) if "user_file" in t else "",
                        "users": (users,) if isinstance(users, str) else tuple(users),
                    },
                    aprefix,
                    {},
                )
            )
        return tuple(auth)

    def access_rule(self, table: dict[str, Any], prefix: str, route_path: str) -> AccessRule:
        self.check(table, _ACCESS, prefix)

        def strings(key: str) -> tuple[str, ...]:
            value = table.get(key, ())
            return (value,) if isinstance(value, str) else tuple(value)

        kwargs: dict[str, Any] = {
            "path": table.get("path", route_path),
            "order": table.get("order", "require"),
            "allow": strings("allow"),
            "deny": strings("deny"),
        }
        return self.model(AccessRule, kwargs, prefix, {})

    def rule(self, table: dict[str, Any], prefix: str) -> RequestRule:
        self.check(table, _RULE, prefix)
        for key in ("pattern", "target", "status"):
            if key not in table:
                raise self.error(_join(prefix, key), "is required")
        conditions = []
        for i, t in enumerate(table.get("conditions", [])):
            cprefix = f"{_join(prefix, 'conditions')}[{i}]"
            self.check(t, _CONDITION, cprefix)
            for key in ("test", "pattern"):
                if key not in t:
                    raise self.error(_join(cprefix, key), "is required")
            conditions.append(self.model(Condition, dict(t), cprefix, {}))
        kwargs = {
            k: v
            for k, v in table.items()
            if k
            not in ("conditions", "hosts", "access", "auth", "request_headers", "response_headers")
        }
        for key in ("request_headers", "response_headers"):
            kwargs[key] = tuple(
                self.header_edit(t, f"{_join(prefix, key)}[{i}]", key == "request_headers")
                for i, t in enumerate(table.get(key, []))
            )
        kwargs["access"] = tuple(
            self.access_rule(t, f"{_join(prefix, 'access')}[{i}]", "/")
            for i, t in enumerate(table.get("access", []))
        )
        kwargs["auth"] = self.auth_rules(table.get("auth", []), prefix, "/")
        hosts = table.get("hosts", ())
        kwargs["hosts"] = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        kwargs["conditions"] = tuple(conditions)
        return self.model(RequestRule, kwargs, prefix, {})

    def unrouted(self, table: dict[str, Any], prefix: str) -> UnroutedHeaders:
        self.check(table, _UNROUTED, prefix)
        key = _join(prefix, "response_headers")
        edits = tuple(
            self.header_edit(t, f"{key}[{i}]", False)
            for i, t in enumerate(table.get("response_headers", []))
        )
        hosts = table.get("hosts", ())
        kwargs = {
            "response_headers": edits,
            "hosts": (hosts,) if isinstance(hosts, str) else tuple(hosts),
        }
        return self.model(UnroutedHeaders, kwargs, prefix, {})

    def header_edit(self, table: dict[str, Any], prefix: str, request: bool) -> HeaderEdit:
        self.check(table, _HEADER_EDIT, prefix)
        for key in ("action", "name"):
            if key not in table:
                raise self.error(_join(prefix, key), "is required")
        if request and table.get("always"):
            raise self.error(_join(prefix, "always"), "is for response headers only")
        env = table.get("env")
        kwargs: dict[str, Any] = {
            "action": table["action"],
            "name": table["name"],
            "value": table.get("value", ""),
            "replacement": table.get("replacement", ""),
            "always": table.get("always", False),
            "condition": env.lstrip("!") if env else None,
            "negate": bool(env and env.startswith("!")),
        }
        return self.model(HeaderEdit, kwargs, prefix, {"condition": "env"})


def load_toml_text(text: str, source: str = "<string>") -> ProxyConfig:
    """
    Read a native configuration from a string.

    @param source: the file name, used in messages and to resolve relative
        file names (none are resolved when it starts with C{<}).
    @raise ConfigError: when the text is not valid TOML or not a valid
        configuration.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        key = f"line {match.group(1)}" if match else "syntax"
        if not match and "end of document" in message:
            key = f"line {text.count(chr(10)) + 1}"
        raise ConfigError(source, key, f"TOML syntax error: {message}") from None
    return _Reader(source).read(data)


def load_toml(path: str) -> ProxyConfig:
    """
    Read a native configuration file.

    Relative file names in it (certificates, keys, CA files, the access log)
    are relative to the file's directory.

    @raise ConfigError: when the file cannot be read or is not valid.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, "file", f"cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "file", f"is not UTF-8 text: {e}") from None
    return load_toml_text(text, path)
