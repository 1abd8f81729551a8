"""
Configuration of twisted_lb: one validated model (L{twisted_lb.config.model})
and two ways in, the native TOML file and Apache httpd directives.

Use L{load_config} (or L{read_config} to get the warnings too); both choose
the reader from the file name or, failing that, from the content.
"""

from __future__ import annotations

import os
import re

from .apache import APACHE_DIRECTIVES, read_apache
from .convert import to_toml
from .model import (
    MEMBER_SCHEMES,
    AdminConfig,
    BackendTLSConfig,
    BalancerConfig,
    ClusterConfig,
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
from .toml import load_toml, load_toml_text

__all__ = [
    "AdminConfig",
    "ClusterConfig",
    "ConfigError",
    "ConfigErrors",
    "MemberConfig",
    "StickySessionConfig",
    "BalancerConfig",
    "RouteConfig",
    "UnroutedHeaders",
    "TLSConfig",
    "BackendTLSConfig",
    "ListenerConfig",
    "LimitsConfig",
    "ProxyConfig",
    "MemberState",
    "HealthCheckConfig",
    "HealthCheckKind",
    "LBMethodName",
    "MEMBER_SCHEMES",
    "load_config",
    "read_config",
    "load_toml",
    "load_toml_text",
    "read_apache",
    "to_toml",
    "is_apache_text",
]


def is_apache_text(text: str) -> bool:
    """
    Whether C{text} looks like Apache httpd configuration rather than TOML:
    a line that starts with C{<}, or whose first word is an Apache directive
    (and not followed by C{=}, as a TOML key would be).
    """
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("<"):
            return True
        match = re.match(r"([A-Za-z][A-Za-z0-9_]*)(\s+|$)(.?)", line)
        if match and match.group(1).lower() in APACHE_DIRECTIVES and match.group(3) != "=":
            return True
    return False


def read_config(path: str) -> tuple[ProxyConfig, list[str]]:
    """
    Read a configuration file of either kind.

    C{.toml} files are native; C{.conf} files are Apache's; for any other
    name the content decides.

    @return: the configuration and the reader's warnings (always empty for
        TOML).
    @raise ConfigError: when the file cannot be read or is not valid.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext == ".toml":
        return load_toml(path), []
    if ext == ".conf":
        return read_apache(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, "file", f"cannot be read: {e.strerror or e}") from None
    if is_apache_text(text):
        return read_apache(path)
    return load_toml(path), []


def load_config(path: str) -> ProxyConfig:
    """
    Read a configuration file of either kind (see L{read_config}),
    dropping the warnings.
    """
    return read_config(path)[0]
