"""TOML output, the round trip, reader selection and C{python -m twisted_lb convert}."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from twisted_lb.config import (
    BalancerConfig,
    ConfigError,
    ListenerConfig,
    MemberConfig,
    ProxyConfig,
    RouteConfig,
    is_apache_text,
    load_config,
    load_toml,
    load_toml_text,
    read_config,
    to_toml,
)
from twisted_lb.config.convert import toml_key, toml_string

from .helpers import fixture, write

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_round_trip_every_key() -> None:
    """A TOML file with every key survives to_toml and load_toml_text unchanged."""
    config = load_toml(fixture("every-key.toml"))
    assert load_toml_text(to_toml(config), config.source) == config


def test_strings_are_escaped() -> None:
    """Quotes, backslashes, control characters and odd keys are written as valid TOML."""
    assert toml_string('a"b\\c\n\t\x01\x7f') == '"a\\"b\\\\c\\n\\t\\u0001\\u007F"'
    assert toml_key("app") == "app" and toml_key("a b.c") == '"a b.c"'
    nasty = 'we"ird\\name\n\u00e9'
    config = ProxyConfig(
        listeners=(ListenerConfig("tcp:80:interface=\\:\\:1"),),
        balancers=(
            BalancerConfig(nasty, (MemberConfig("http://h:1", route=nasty, secret="\x00\x1f"),)),
        ),
        routes=(RouteConfig('/é "x"', nasty, "/t", cookie_path=(("/a\\", '/b"'),)),),
        source="weird\nsource",
    )
    assert load_toml_text(to_toml(config), "weird\nsource") == config


def test_every_field_is_written() -> None:
    """The output states every setting, so that defaults of the reader cannot change it."""
    text = to_toml(load_config(fixture("seed-001.conf")))
    for key in (
        "timeout",
        "x_forwarded",
        "lbmethod",
        "stickysession",
        "nofailover",
        "probe_interval",
        "loadfactor",
        "lbset",
        "status",
        "retry",
        "connectiontimeout",
        "ping",
        "packet_size",
        "max",
        "ttl",
        "target_path",
        "preserve_host",
    ):
        assert f"\n{key} = " in text


def test_read_config_by_extension_and_content(tmp_path) -> None:
    """.toml and .conf choose the reader; other names are sniffed from their content."""
    assert read_config(fixture("every-key.toml"))[1] == []
    assert read_config(fixture("seed-000.conf"))[1] != []
    apache = open(fixture("seed-001.conf"), encoding="utf-8").read()
    native = open(fixture("every-key.toml"), encoding="utf-8").read()
    a = write(tmp_path, "proxy.cfg", apache)
    n = write(tmp_path, "proxy", native)
    assert read_config(a)[0].balancers[0].name == "app"
    assert load_config(n).timeout == 120.0
    plain = write(tmp_path, "plain", "# comment\nListen 8080\n")
    assert load_config(plain).listeners == (ListenerConfig("tcp:8080"),)


def test_is_apache_text() -> None:
    """Sections and Apache directives mark Apache text; TOML keys with '=' do not."""
    assert is_apache_text("<VirtualHost *:80>\n</VirtualHost>\n")
    assert is_apache_text("  ProxyPass / balancer://app/\n")
    assert not is_apache_text('timeout = 3\n[[listen]]\nendpoint = "tcp:1"\n')
    assert not is_apache_text("listen = []\n")


def test_read_config_missing_file(tmp_path) -> None:
    """A missing file is a ConfigError whichever reader would have been used."""
    for name in ("a.toml", "a.conf", "a.cfg"):
        with pytest.raises(ConfigError):
            read_config(str(tmp_path / name))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "twisted_lb", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def test_cli_convert_seed() -> None:
    """python -m twisted_lb convert prints TOML that reads back as the same model."""
    result = _run("convert", fixture("seed-000.conf"))
    assert result.returncode == 0, result.stderr
    config = load_config(fixture("seed-000.conf"))
    assert load_toml_text(result.stdout, config.source) == config
    assert "warning:" in result.stderr and "shadowed by /" in result.stderr
    # The output says it too, as comments.
    assert "\n# - " in result.stdout and "shadowed by /" in result.stdout


def test_cli_convert_comments_accepted_lines(tmp_path) -> None:
    """Each kind of line accepted without effect is a comment in the converted file."""
    path = write(
        tmp_path,
        "site.conf",
        "Listen 80\nLogFormat a\nLogFormat b\nUser www-data\n<Proxy balancer://a>\n"
        "BalancerMember ajp://h:1\n</Proxy>\nProxyPass / balancer://a/\n",
    )
    result = _run("convert", path)
    assert result.returncode == 0, result.stderr
    comments = [line for line in result.stdout.splitlines() if line.startswith("# - ")]
    assert comments == [
        "# - line 2 and 1 more line: LogFormat is accepted and has no effect on proxying: "
        "twisted_lb writes its own logs (access_log and log_format in the native file)",
        "# - line 4: User is accepted and has no effect on proxying: twisted_lb's processes are "
        "set by twistd and the workers setting, not by Apache's process and MPM settings",
    ]
    assert load_toml_text(result.stdout, path) == load_config(path)


def test_cli_convert_error(tmp_path) -> None:
    """An invalid file gives its error on stderr and exit status 2."""
    path = write(tmp_path, "bad.conf", "Listen 80\nFrobnicate On\n")
    result = _run("convert", path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{path}: line 2: directive 'Frobnicate' is not supported" in result.stderr


def test_cli_usage_error() -> None:
    """A missing argument is a usage error with exit status 2."""
    result = _run("convert")
    assert result.returncode == 2 and "usage" in result.stderr


def test_documented_examples_load() -> None:
    """Every TOML example in docs/configuration.md is a valid configuration."""
    import re

    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as f:
        blocks = re.findall(r"```toml\n(.*?)```", f.read(), re.S)
    assert len(blocks) == 8
    configs = [load_toml_text(block, "<docs>") for block in blocks]
    assert configs[0].balancers[0].members[1].health.path == "/health"
    assert [status for status, _ in configs[4].error_pages] == [502, 503, 504]
    seed_000 = load_config(fixture("seed-000.conf"))
    assert [r.status for r in configs[1].rules] == [0, 301]
    assert [r.path for r in configs[2].routes[0].access] == ["/", "/admin"]
    assert [e.name for e in configs[3].routes[0].response_headers] == [
        "Set-Cookie",
        "Strict-Transport-Security",
    ]
    assert [r.path for r in configs[6].routes] == [r.path for r in seed_000.routes]
    assert configs[6].balancers[0].members[0].tls.verify is False
